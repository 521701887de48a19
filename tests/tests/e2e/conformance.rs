//! The steps of Inferno's Bulk Data v2.0.0 server suite (groups 2.2 Group,
//! 2.3 Patient, 2.4 System), walked against the service in `ig-v2` mode on
//! the Synthea fixture: capability, kick-off with and without a token,
//! polling to a complete manifest, absolute file URLs, downloads with and
//! without a token, every line a resource of its file's type, at least two
//! patients, cancel then 404, the three `_outputFormat` spellings and `_since`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use crate::exports::FIXTURE_TYPES;
use crate::helpers::*;

/// The fixture's Group of all its patients.
const GROUP_ID: &str = "d9f31445-f448-48c0-af57-295c005e07df";

/// An app in `ig-v2` mode exporting every fixture type, with the fixture loaded.
pub async fn ig_app(mode: Mode) -> TestApp {
    // Polls are throttled per job; Inferno waits Retry-After seconds between polls, this
    // test only a few milliseconds, so the poll limit is off here (tested in `serving`).
    let extra = [IG_V2, ("BULK__EXPORT__TYPES", FIXTURE_TYPES), ("BULK__SERVER__POLL_BURST", "0")];
    let app = TestApp::spawn_in(mode, &extra).await;
    app.load_fixture().await;
    app
}

/// A path on the test server for an absolute URL under the public base.
fn local(url: &str) -> &str {
    url.strip_prefix(PUBLIC_BASE).unwrap_or_else(|| panic!("{url} is not under {PUBLIC_BASE}"))
}

/// Inferno's kick-off: GET with `Accept: application/fhir+json` and `Prefer: respond-async`.
async fn inferno_kick_off(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}{path}", app.address))
        .header("accept", "application/fhir+json")
        .header("prefer", "respond-async");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("sent")
}

/// Inferno's polling: sleeps `Retry-After` (capped for the test) until the status is not 202.
async fn poll_to_completion(app: &TestApp, status: &str, token: &str) -> reqwest::Response {
    for _ in 0..200 {
        let res = app
            .client
            .get(format!("{}{status}", app.address))
            .header("accept", "application/json")
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        if res.status() != 202 {
            return res;
        }
        let wait: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("delta-seconds");
        assert!(wait >= 1, "Retry-After must be positive delta-seconds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export did not complete");
}

async fn the_inferno_v2_export_groups_pass_at_every_level(mode: Mode) {
    let app = ig_app(mode).await;
    let token = admin();
    let workers = app.spawn_workers(1);

    // 2.x.1.01: the CapabilityStatement declares each export operation.
    let cs: Value = app.get("/fhir/r4/metadata", None).await.json().await.expect("json");
    assert!(cs["instantiates"].to_string().contains("http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"));

    for (level, path, op) in [
        ("Group", format!("/fhir/r4/Group/{GROUP_ID}/$export"), "group-export"),
        ("Patient", "/fhir/r4/Patient/$export".to_owned(), "patient-export"),
        ("System", "/fhir/r4/$export".to_owned(), "export"),
    ] {
        let declared = match level {
            "System" => cs["rest"][0]["operation"].clone(),
            ty => cs["rest"][0]["resource"]
                .as_array()
                .expect("resources")
                .iter()
                .find(|r| r["type"] == ty)
                .expect("resource")["operation"]
                .clone(),
        };
        assert_eq!(declared[0]["name"], "export", "{level}");
        assert_eq!(
            declared[0]["definition"],
            format!("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/{op}"),
            "{level}"
        );

        // .02: a kick-off without a token is refused.
        let res = inferno_kick_off(&app, &path, None).await;
        assert!([400, 401].contains(&res.status().as_u16()), "{level}: {}", res.status());

        // .03: kick-off.
        let res = inferno_kick_off(&app, &path, Some(&token)).await;
        assert_eq!(res.status(), 202, "{level}");
        let location = res.headers()["content-location"].to_str().expect("ascii").to_owned();
        let status = local(&location).to_owned();

        // .04: polling ends in 200 with every required key.
        let res = poll_to_completion(&app, &status, &token).await;
        assert_eq!(res.status(), 200, "{level}");
        assert!(res.headers()["content-type"].to_str().expect("ascii").contains("application/json"), "{level}");
        let manifest: Value = res.json().await.expect("json");
        for key in ["transactionTime", "request", "requiresAccessToken", "output", "error"] {
            assert!(manifest.get(key).is_some(), "{level}: manifest lacks {key}");
        }
        assert_eq!(manifest["requiresAccessToken"], true);

        // .05: every output entry has a type and an absolute http(s) URL.
        let output = manifest["output"].as_array().expect("output");
        assert!(!output.is_empty(), "{level}: empty output");
        for item in output {
            assert!(item["type"].is_string(), "{level}");
            let url = item["url"].as_str().expect("url");
            assert!(url.starts_with("https://") || url.starts_with("http://"), "{level}: {url}");
        }

        // 2.x.2.02: a download without the token is refused.
        let first = local(output[0]["url"].as_str().expect("url")).to_owned();
        let res = app
            .client
            .get(format!("{}{first}", app.address))
            .header("accept", "application/fhir+ndjson")
            .send()
            .await
            .expect("sent");
        assert!([400, 401].contains(&res.status().as_u16()), "{level}: {}", res.status());

        // .03: every line of every file is a resource of the file's type.
        let mut patients = BTreeSet::new();
        for item in output {
            let ty = item["type"].as_str().expect("type");
            let res = app.get(local(item["url"].as_str().expect("url")), Some(&token)).await;
            assert_eq!(res.status(), 200, "{level} {ty}");
            assert!(res.headers()["content-type"].to_str().expect("ascii").starts_with("application/fhir+ndjson"));
            let text = res.text().await.expect("body");
            // The extensions describe the bytes served: CID in the URL, size and SHA-256.
            let ext = |name: &str| {
                let e = item["extension"].as_array().expect("extension").iter();
                e.clone().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(&format!("/{name}")))).cloned()
            };
            let cid = ext("cid").and_then(|e| e["valueString"].as_str().map(str::to_owned)).expect("cid");
            assert!(item["url"].as_str().expect("url").ends_with(&format!("/{cid}")), "{level} {ty}");
            assert_eq!(ext("size").and_then(|e| e["valueDecimal"].as_u64()), Some(text.len() as u64), "{level} {ty}");
            let sha: String = sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(ext("sha256").and_then(|e| e["valueString"].as_str().map(str::to_owned)), Some(sha));
            let mut n = 0;
            for line in text.lines() {
                let r: Value = serde_json::from_str(line).expect("a JSON resource per line");
                assert_eq!(r["resourceType"], ty, "{level}: a {} line in a {ty} file", r["resourceType"]);
                assert!(r["id"].is_string());
                if ty == "Patient" {
                    patients.insert(r["id"].as_str().expect("id").to_owned());
                }
                n += 1;
            }
            assert_eq!(item["count"], n, "{level} {ty}: count");
        }
        // .04: at least two patients.
        assert!(patients.len() >= 2, "{level}: {} patients", patients.len());

        // 2.x.3: cancel a new export (202 in ig-v2), then its status is a 404 OperationOutcome.
        let res = inferno_kick_off(&app, &path, Some(&token)).await;
        assert_eq!(res.status(), 202);
        let status = local(res.headers()["content-location"].to_str().expect("ascii")).to_owned();
        let res = app.delete(&status, &token).await;
        assert_eq!(res.status(), 202, "{level}: cancel");
        let res = app.get(&status, Some(&token)).await;
        assert_outcome(res, 404, "not-found").await;

        // 2.x.4: the three _outputFormat spellings and _since, each accepted then cancelled.
        let week_ago = (time::OffsetDateTime::now_utc() - time::Duration::weeks(1))
            .format(&time::format_description::well_known::Rfc3339)
            .expect("instant");
        let params = [
            "_outputFormat=application%2Ffhir%2Bndjson".to_owned(),
            "_outputFormat=application%2Fndjson".to_owned(),
            "_outputFormat=ndjson".to_owned(),
            format!("_since={}", week_ago.replace('+', "%2B").replace(':', "%3A")),
        ];
        for p in params {
            let res = inferno_kick_off(&app, &format!("{path}?{p}"), Some(&token)).await;
            assert_eq!(res.status(), 202, "{level} {p}");
            let status = local(res.headers()["content-location"].to_str().expect("ascii")).to_owned();
            assert_eq!(app.delete(&status, &token).await.status(), 202, "{level} {p}");
        }
    }
    workers.stop().await;
}

both_modes!(the_inferno_v2_export_groups_pass_at_every_level);
