//! Kick-off over HTTP: the three levels, GET and POST, the IG's parameters,
//! `Prefer` and `Accept`. What the worker makes of a parsed request is
//! checked elsewhere; here we check what is (or is not) enqueued.

use bulk_core::{ExportLevel, ExportRequest, JobId, ResourceType};
use serde_json::{json, Value};

use crate::helpers::*;

/// A kick-off request: method, path and query, headers, optional JSON body.
struct Kick<'a> {
    method: reqwest::Method,
    target: &'a str,
    token: String,
    headers: Vec<(&'a str, &'a str)>,
    body: Option<(String, &'a str)>,
}

impl<'a> Kick<'a> {
    fn get(target: &'a str) -> Self {
        Kick { method: reqwest::Method::GET, target, token: admin(), headers: vec![], body: None }
    }

    fn post(target: &'a str, parameters: Value) -> Self {
        let body = Some((parameters.to_string(), "application/fhir+json"));
        Kick { method: reqwest::Method::POST, target, token: admin(), headers: vec![], body }
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn token(mut self, token: String) -> Self {
        self.token = token;
        self
    }

    async fn send(self, app: &TestApp) -> reqwest::Response {
        let mut req =
            app.client.request(self.method, format!("{}{}", app.address, self.target)).bearer_auth(self.token);
        for (k, v) in self.headers {
            req = req.header(k, v);
        }
        if let Some((body, content_type)) = self.body {
            req = req.header("content-type", content_type).body(body);
        }
        req.send().await.expect("sent")
    }
}

/// `Parameters` with one `valueString` per pair (`patient` as a `valueReference`).
fn parameters(pairs: &[(&str, &str)]) -> Value {
    let parameter: Vec<Value> = pairs
        .iter()
        .map(|(name, value)| match *name {
            "patient" => json!({"name": name, "valueReference": {"reference": value}}),
            _ => json!({"name": name, "valueString": value}),
        })
        .collect();
    json!({"resourceType": "Parameters", "parameter": parameter})
}

/// The request enqueued by a `202` kick-off.
async fn enqueued(app: &TestApp, res: reqwest::Response) -> ExportRequest {
    let status = res.status();
    let location = res.headers().get("content-location").map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(status, 202, "{:?}", res.text().await);
    let location = location.expect("Content-Location");
    let id: JobId = location.rsplit('/').next().expect("id").parse().expect("job id");
    app.queue.get(&id).await.expect("record").expect("job exists").request
}

async fn add_group(app: &TestApp, id: &str, members: &[&str]) {
    let member: Vec<Value> = members.iter().map(|p| json!({"entity": {"reference": format!("Patient/{p}")}})).collect();
    let json = json!({"resourceType": "Group", "id": id, "type": "person", "actual": true, "member": member});
    let row = bulk_resources::NewResource {
        resource_type: "Group".into(),
        id: id.into(),
        patient_ids: Vec::new(),
        json: json.to_string(),
    };
    app.resources.upsert(&[row]).await.expect("upsert group");
}

async fn get_and_post_kick_offs_enqueue_the_same_request(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let params = [
        ("_type", "Patient,Consent"),
        ("_outputFormat", "ndjson"),
        ("_since", "2020-01-01T00:00:00Z"),
        ("_until", "2024-01-01T00:00:00+01:00"),
        ("_typeFilter", "Consent?status=active"),
        ("_elements", "id,Patient.gender"),
        ("includeAssociatedData", "LatestProvenanceResources"),
    ];
    let query: String = url_encode(&params);
    for path in ["/fhir/r4/$export", "/fhir/r4/Patient/$export"] {
        let target = format!("{path}?{query}");
        let by_get = enqueued(&app, Kick::get(&target).send(&app).await).await;
        let by_post = enqueued(&app, Kick::post(path, parameters(&params)).send(&app).await).await;
        assert_eq!(by_get.request_url, format!("{PUBLIC_BASE}{target}"));
        assert_eq!(by_post.request_url, format!("{PUBLIC_BASE}{path}"), "a POST's request is the URL alone");
        assert_eq!(
            ExportRequest { request_url: String::new(), ..by_get.clone() },
            ExportRequest { request_url: String::new(), ..by_post }
        );
        assert_eq!(by_get.types, [ResourceType::PATIENT, ResourceType::CONSENT]);
        assert!(by_get.since.is_some() && by_get.until.is_some());
        assert_eq!(by_get.type_filters.len(), 1);
        assert_eq!(by_get.elements.len(), 2);
        assert_eq!(by_get.include_associated.len(), 1);
    }
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    url_form(pairs.iter().copied())
}

fn url_form<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~,".contains(&b) {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
    }
    s
}

async fn repeated_parameters_behave_as_comma_joined_values(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let joined = enqueued(
        &app,
        Kick::get("/fhir/r4/$export?_type=Patient,Consent&_elements=id,gender&_typeFilter=Patient%3Fgender%3Dmale,Consent%3Fstatus%3Dactive")
            .send(&app)
            .await,
    )
    .await;
    let repeated = enqueued(
        &app,
        Kick::get("/fhir/r4/$export?_type=Patient&_type=Consent&_elements=id&_elements=gender&_typeFilter=Patient%3Fgender%3Dmale&_typeFilter=Consent%3Fstatus%3Dactive")
            .send(&app)
            .await,
    )
    .await;
    assert_eq!(
        ExportRequest { request_url: String::new(), ..joined },
        ExportRequest { request_url: String::new(), ..repeated }
    );
    let posted = Kick::post(
        "/fhir/r4/$export",
        parameters(&[("_type", "Patient"), ("_type", "Consent"), ("_elements", "id"), ("_elements", "gender")]),
    );
    let posted = enqueued(&app, posted.send(&app).await).await;
    assert_eq!(posted.types, [ResourceType::PATIENT, ResourceType::CONSENT]);
    assert_eq!(posted.elements.len(), 2);
}

async fn prefer_handling_lenient_reports_an_unknown_parameter_that_strict_refuses(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let target = "/fhir/r4/$export?_type=Patient&_foo=1&_typeFilter=Patient%3Fname%3DSmith";
    for prefer in ["respond-async, handling=lenient", "RESPOND-ASYNC;x=1,Handling = \"Lenient\""] {
        let r = enqueued(&app, Kick::get(target).header("prefer", prefer).send(&app).await).await;
        assert_eq!(r.ignored.len(), 2, "{prefer}: {:?}", r.ignored);
        assert!(r.ignored[0].contains("_foo") && r.ignored[1].contains("name"), "{:?}", r.ignored);
        assert!(r.type_filters.is_empty());
    }
    let queued = app.queue.queue_len().await.expect("len");
    for prefer in
        [None, Some("respond-async"), Some("respond-async, handling=strict"), Some("handling=strict,handling=lenient")]
    {
        let mut kick = Kick::get(target);
        if let Some(p) = prefer {
            kick = kick.header("prefer", p);
        }
        let diagnostics = assert_outcome(kick.send(&app).await, 400, "not-supported").await;
        assert!(diagnostics.contains("_foo"), "{prefer:?}: {diagnostics}");
    }
    assert_eq!(app.queue.queue_len().await.expect("len"), queued, "a refused kick-off was enqueued");
    // Without Prefer at all, a valid request is accepted (the usage document's flow).
    assert_eq!(Kick::get("/fhir/r4/$export").send(&app).await.status(), 202);
}

async fn an_accept_header_that_excludes_fhir_json_is_refused(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    for accept in ["text/html", "application/xml", "application/fhir+json;q=0"] {
        let res = Kick::get("/fhir/r4/$export").header("accept", accept).send(&app).await;
        let diagnostics = assert_outcome(res, 400, "invalid").await;
        assert!(diagnostics.contains("Accept"), "{diagnostics}");
    }
    assert_eq!(app.queue.queue_len().await.expect("len"), 0);
    for accept in ["application/fhir+json", "application/json", "*/*", "text/html, application/fhir+json"] {
        assert_eq!(Kick::get("/fhir/r4/$export").header("accept", accept).send(&app).await.status(), 202, "{accept}");
    }
}

async fn every_refused_parameter_is_a_400_naming_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    add_group(&app, "g1", &[]).await;
    let cases: &[(&str, &str, &str)] = &[
        ("_outputFormat=application/fhir%2Bjson", "invalid", "_outputFormat"),
        ("_type=Observation", "invalid", "Observation"),
        ("_since=2020-01-01", "invalid", "_since"),
        ("_since=2999-01-01T00:00:00Z", "invalid", "future"),
        ("_until=soon", "invalid", "_until"),
        ("_since=2021-01-01T00:00:00Z&_until=2020-01-01T00:00:00Z", "invalid", "_until"),
        ("_typeFilter=Patient%3Fname%3DSmith", "not-supported", "name"),
        ("_typeFilter=Consent%3Fstatus%3Anot%3Dactive", "not-supported", ":not"),
        ("_typeFilter=Consent", "invalid", "_typeFilter"),
        ("_type=Patient&_typeFilter=Consent%3Fstatus%3Dactive", "invalid", "Consent"),
        ("_elements=Patient.name.family", "invalid", "Patient.name.family"),
        ("patient=Patient/p1", "invalid", "patient"),
        ("includeAssociatedData=_mine", "not-supported", "includeAssociatedData"),
        ("_count=10", "not-supported", "_count"),
    ];
    for path in ["/fhir/r4/$export", "/fhir/r4/Patient/$export", "/fhir/r4/Group/g1/$export"] {
        for (query, code, names) in cases {
            let res = Kick::get(&format!("{path}?{query}")).send(&app).await;
            let diagnostics = assert_outcome(res, 400, code).await;
            assert!(diagnostics.contains(names), "{path}?{query}: {diagnostics}");
        }
    }
    assert_eq!(app.queue.queue_len().await.expect("len"), 0, "a refused kick-off was enqueued");
}

async fn a_post_body_must_be_a_bounded_fhir_parameters_resource(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let send_raw = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(format!("{}/fhir/r4/$export", app.address))
            .bearer_auth(admin())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let res = send_raw(b"{not json".to_vec(), "application/fhir+json").await.expect("sent");
    assert!(assert_outcome(res, 400, "invalid").await.contains("JSON"));
    let res =
        send_raw(json!({"resourceType": "Patient"}).to_string().into_bytes(), "application/json").await.expect("sent");
    assert!(assert_outcome(res, 400, "invalid").await.contains("Parameters"));
    let wrong_value = json!({"resourceType": "Parameters", "parameter": [{"name": "_type", "valueInteger": 3}]});
    let res = send_raw(wrong_value.to_string().into_bytes(), "application/fhir+json").await.expect("sent");
    assert!(assert_outcome(res, 400, "invalid").await.contains("_type"));
    let res = send_raw(parameters(&[("_type", "Patient")]).to_string().into_bytes(), "text/plain").await.expect("sent");
    assert_outcome(res, 415, "not-supported").await;
    let big =
        json!({"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "x".repeat(2 << 20)}]});
    let res = send_raw(big.to_string().into_bytes(), "application/fhir+json").await.expect("sent");
    assert_outcome(res, 413, "invalid").await;
    assert_eq!(app.queue.queue_len().await.expect("len"), 0);
    // An empty POST is a kick-off without parameters.
    let r = enqueued(&app, send_raw(Vec::new(), "application/fhir+json").await.expect("sent")).await;
    assert_eq!(r.types, ResourceType::DEFAULT_EXPORTABLE);
}

async fn patient_references_are_accepted_from_a_post_body_and_scoped_to_the_caller(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let body = parameters(&[("patient", "Patient/p1"), ("patient", "Patient/p2")]);
    let r = enqueued(&app, Kick::post("/fhir/r4/Patient/$export", body.clone()).send(&app).await).await;
    assert_eq!(r.patients, ["p1", "p2"]);
    let res = Kick::post("/fhir/r4/Patient/$export", body).token(patient("p1")).send(&app).await;
    assert_outcome(res, 403, "forbidden").await;
    let own = parameters(&[("patient", "Patient/p1")]);
    let r = enqueued(&app, Kick::post("/fhir/r4/Patient/$export", own).token(patient("p1")).send(&app).await).await;
    assert_eq!((r.patients, r.patient_scope), (vec!["p1".to_owned()], Some("p1".to_owned())));
    let res = Kick::post("/fhir/r4/$export", parameters(&[("patient", "Patient/p1")])).send(&app).await;
    assert!(assert_outcome(res, 400, "not-supported").await.contains("patient"));
}

async fn a_group_export_needs_a_stored_live_group_and_an_admin(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    add_group(&app, "cohort-1", &["p1", "p2"]).await;
    for path in ["/fhir/r4/Group/nope/$export", "/fhir/r4/Group/bad%20id/$export"] {
        let diagnostics = assert_outcome(Kick::get(path).send(&app).await, 404, "not-found").await;
        assert!(diagnostics.contains("Group"), "{diagnostics}");
    }
    let res = Kick::post("/fhir/r4/Group/nope/$export", parameters(&[])).send(&app).await;
    assert_outcome(res, 404, "not-found").await;
    for path in ["/fhir/r4/Group/cohort-1/$export", "/fhir/r4/Group/nope/$export"] {
        assert_outcome(Kick::get(path).token(patient("p1")).send(&app).await, 403, "forbidden").await;
    }
    assert_eq!(app.queue.queue_len().await.expect("len"), 0, "nothing enqueued before the group is known");

    let r = enqueued(&app, Kick::get("/fhir/r4/Group/cohort-1/$export?_type=Patient").send(&app).await).await;
    assert_eq!(r.level, ExportLevel::Group("cohort-1".into()));
    assert_eq!(r.types, [ResourceType::PATIENT]);
    let body = parameters(&[("patient", "Patient/p2")]);
    let r = enqueued(&app, Kick::post("/fhir/r4/Group/cohort-1/$export", body).send(&app).await).await;
    assert_eq!(r.patients, ["p2"]);
    // Without `_type`, a group export covers the Patient compartment's exportable types.
    let r = enqueued(&app, Kick::get("/fhir/r4/Group/cohort-1/$export").send(&app).await).await;
    assert!(r.types.iter().all(|t| t.in_patient_compartment()));

    // A deleted Group is as unknown as one never stored.
    let queued = app.queue.queue_len().await.expect("len");
    app.resources.delete(&[("Group".into(), "cohort-1".into())]).await.expect("delete");
    let res = Kick::get("/fhir/r4/Group/cohort-1/$export").send(&app).await;
    assert_outcome(res, 404, "not-found").await;
    assert_eq!(app.queue.queue_len().await.expect("len"), queued);
}

async fn types_outside_the_patient_compartment_are_exported_only_at_system_level(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__EXPORT__TYPES", "Patient,Observation,Organization")]).await;
    let r = enqueued(&app, Kick::get("/fhir/r4/$export").send(&app).await).await;
    let names: Vec<&str> = r.types.iter().map(|t| t.as_str()).collect();
    assert_eq!(names, ["Patient", "Observation", "Organization"]);
    let r = enqueued(&app, Kick::get("/fhir/r4/Patient/$export").send(&app).await).await;
    let names: Vec<&str> = r.types.iter().map(|t| t.as_str()).collect();
    assert_eq!(names, ["Patient", "Observation"]);
    let res = Kick::get("/fhir/r4/Patient/$export?_type=Organization").send(&app).await;
    assert!(assert_outcome(res, 400, "invalid").await.contains("Organization"));
    let lenient =
        Kick::get("/fhir/r4/Patient/$export?_type=Organization,Observation").header("prefer", "handling=lenient");
    let r = enqueued(&app, lenient.send(&app).await).await;
    assert_eq!(r.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["Observation"]);
    assert!(r.ignored[0].contains("Organization"), "{:?}", r.ignored);
}

both_modes!(
    get_and_post_kick_offs_enqueue_the_same_request,
    repeated_parameters_behave_as_comma_joined_values,
    prefer_handling_lenient_reports_an_unknown_parameter_that_strict_refuses,
    an_accept_header_that_excludes_fhir_json_is_refused,
    every_refused_parameter_is_a_400_naming_it,
    a_post_body_must_be_a_bounded_fhir_parameters_resource,
    patient_references_are_accepted_from_a_post_body_and_scoped_to_the_caller,
    a_group_export_needs_a_stored_live_group_and_an_admin,
    types_outside_the_patient_compartment_are_exported_only_at_system_level,
);
