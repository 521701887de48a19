//! Tests of the parent module: one or more per parameter rule.

use super::*;

fn admin() -> Principal {
    Principal::admin("admin")
}

fn patient(id: &str) -> Principal {
    Principal::patient(format!("user-{id}"), id)
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// Exportable types of a deployment configured beyond the usage document's four.
static WIDE: std::sync::LazyLock<Vec<ResourceType>> = std::sync::LazyLock::new(|| {
    ["Patient", "DocumentReference", "Consent", "Provenance", "Group", "Observation", "Organization"].map(rt).to_vec()
});

fn rt(name: &str) -> ResourceType {
    name.parse().expect("an R4 type")
}

fn opts(lenient: bool) -> ParseOptions<'static> {
    ParseOptions { exportable: WIDE.as_slice(), lenient, now: OffsetDateTime::now_utc() }
}

fn parse(level: ExportLevel, pairs: &[(&str, &str)], who: &Principal) -> Result<ExportRequest, RequestError> {
    ExportRequest::parse(level, &q(pairs), &[], who, "http://x/fhir/r4/Patient/$export".into(), &opts(false))
}

fn lenient(level: ExportLevel, pairs: &[(&str, &str)]) -> Result<ExportRequest, RequestError> {
    ExportRequest::parse(level, &q(pairs), &[], &admin(), String::new(), &opts(true))
}

fn post(level: ExportLevel, body: &[(&str, &str)], who: &Principal) -> Result<ExportRequest, RequestError> {
    ExportRequest::parse(level, &[], &q(body), who, String::new(), &opts(false))
}

fn invalid_naming(r: Result<ExportRequest, RequestError>, what: &str) {
    match r {
        Err(RequestError::Invalid(m)) => assert!(m.contains(what), "{m:?} does not name {what:?}"),
        other => panic!("expected Invalid naming {what}, got {other:?}"),
    }
}

fn group() -> ExportLevel {
    ExportLevel::Group("g1".into())
}

// _type

#[test]
fn no_type_parameter_means_every_exportable_type_at_system_level() {
    let r = parse(ExportLevel::System, &[], &admin()).expect("valid");
    assert_eq!(r.types, *WIDE);
    let r = ExportRequest::parse(ExportLevel::System, &[], &[], &admin(), String::new(), &ParseOptions::default());
    assert_eq!(r.expect("valid").types, ResourceType::DEFAULT_EXPORTABLE.to_vec());
}

#[test]
fn no_type_parameter_at_patient_or_group_level_means_the_compartment_types() {
    for level in [ExportLevel::Patient, group()] {
        let r = parse(level, &[], &admin()).expect("valid");
        assert!(!r.types.contains(&rt("Organization")), "{:?}", r.types);
        assert!(r.types.contains(&rt("Observation")) && r.types.contains(&ResourceType::PATIENT));
    }
}

#[test]
fn repeated_and_comma_separated_types_are_merged_without_duplicates() {
    let r = parse(
        ExportLevel::Patient,
        &[("_type", "Consent,Patient"), ("_type", "Patient"), ("_type", " Provenance ")],
        &admin(),
    )
    .expect("valid");
    assert_eq!(r.types, vec![ResourceType::CONSENT, ResourceType::PATIENT, ResourceType::PROVENANCE]);
}

#[test]
fn a_type_that_is_not_exportable_is_invalid_and_named() {
    invalid_naming(parse(ExportLevel::System, &[("_type", "Patient,Condition")], &admin()), "Condition");
    invalid_naming(parse(ExportLevel::System, &[("_type", "Nope")], &admin()), "Nope");
}

#[test]
fn a_type_outside_the_patient_compartment_is_refused_below_system_level() {
    invalid_naming(parse(ExportLevel::Patient, &[("_type", "Organization")], &admin()), "Organization");
    invalid_naming(parse(group(), &[("_type", "Patient,Organization")], &admin()), "Organization");
    let r = parse(ExportLevel::System, &[("_type", "Organization")], &admin()).expect("system level");
    assert_eq!(r.types, vec![rt("Organization")]);
}

#[test]
fn lenient_handling_drops_unsupported_types_and_reports_them() {
    let r = lenient(ExportLevel::Patient, &[("_type", "Patient,Organization,Nope")]).expect("lenient");
    assert_eq!(r.types, vec![ResourceType::PATIENT]);
    assert_eq!(r.ignored.len(), 2);
    assert!(r.ignored[0].contains("Organization") && r.ignored[1].contains("Nope"), "{:?}", r.ignored);
    invalid_naming(lenient(ExportLevel::Patient, &[("_type", "Nope")]), "_type");
}

#[test]
fn empty_type_entries_are_invalid() {
    invalid_naming(parse(ExportLevel::System, &[("_type", "Patient,,Consent")], &admin()), "_type");
    invalid_naming(parse(ExportLevel::System, &[("_type", "")], &admin()), "_type");
}

#[test]
fn explicit_types_the_token_does_not_grant_are_forbidden() {
    let who = Principal { granted_types: Some(vec![ResourceType::PATIENT]), ..admin() };
    assert_eq!(parse(ExportLevel::System, &[("_type", "Patient,Consent")], &who), Err(RequestError::Forbidden));
    assert_eq!(
        parse(ExportLevel::System, &[("_type", "Patient")], &who).map(|r| r.types),
        Ok(vec![ResourceType::PATIENT])
    );
}

#[test]
fn without_type_the_exported_types_are_those_the_token_grants() {
    let who = Principal { granted_types: Some(vec![ResourceType::CONSENT, rt("Organization")]), ..admin() };
    let r = parse(ExportLevel::Patient, &[], &who).expect("valid");
    assert_eq!(r.types, vec![ResourceType::CONSENT]);
    let none = Principal { granted_types: Some(vec![rt("Organization")]), ..admin() };
    assert_eq!(parse(ExportLevel::Patient, &[], &none), Err(RequestError::Forbidden));
}

// _outputFormat

#[test]
fn the_three_ndjson_output_format_spellings_are_accepted_and_others_refused() {
    for f in NDJSON_FORMATS {
        assert!(parse(ExportLevel::System, &[("_outputFormat", f)], &admin()).is_ok(), "{f}");
    }
    invalid_naming(parse(ExportLevel::System, &[("_outputFormat", "text/csv")], &admin()), "_outputFormat");
    invalid_naming(lenient(ExportLevel::System, &[("_outputFormat", "text/csv")]), "_outputFormat");
}

// _since, _until

#[test]
fn since_and_until_are_parsed_as_instants() {
    let r = parse(
        ExportLevel::System,
        &[("_since", "2020-01-01T00:00:00Z"), ("_until", "2020-06-01T00:00:00.000+02:00")],
        &admin(),
    )
    .expect("valid");
    assert_eq!(r.since.map(|t| t.unix_timestamp()), Some(1_577_836_800));
    assert_eq!(r.until.map(|t| t.unix_timestamp()), Some(1_590_962_400));
}

#[test]
fn a_malformed_or_date_only_since_is_invalid_and_named() {
    for bad in ["yesterday", "2020-01-01", "2020-01-01T00:00:00", "2020-13-01T00:00:00Z", ""] {
        invalid_naming(parse(ExportLevel::System, &[("_since", bad)], &admin()), "_since");
        invalid_naming(parse(ExportLevel::System, &[("_until", bad)], &admin()), "_until");
    }
}

#[test]
fn a_since_in_the_future_is_invalid_but_clock_skew_is_tolerated() {
    let now = OffsetDateTime::now_utc();
    let o = ParseOptions { now, ..opts(false) };
    let at = |t: OffsetDateTime| {
        vec![("_since".to_owned(), t.format(&time::format_description::well_known::Rfc3339).expect("fmt"))]
    };
    let future = ExportRequest::parse(
        ExportLevel::System,
        &at(now + time::Duration::hours(1)),
        &[],
        &admin(),
        String::new(),
        &o,
    );
    invalid_naming(future, "future");
    let skewed = ExportRequest::parse(
        ExportLevel::System,
        &at(now + time::Duration::seconds(5)),
        &[],
        &admin(),
        String::new(),
        &o,
    );
    assert!(skewed.is_ok());
}

#[test]
fn until_before_since_or_a_repeated_instant_is_invalid() {
    invalid_naming(
        parse(ExportLevel::System, &[("_since", "2020-02-01T00:00:00Z"), ("_until", "2020-01-01T00:00:00Z")], &admin()),
        "_until",
    );
    invalid_naming(
        parse(ExportLevel::System, &[("_since", "2020-02-01T00:00:00Z"), ("_since", "2020-02-01T00:00:00Z")], &admin()),
        "more than once",
    );
}

// _typeFilter

#[test]
fn type_filters_are_split_parsed_and_kept_per_type() {
    let r = parse(
        ExportLevel::System,
        &[
            ("_type", "Observation,Patient"),
            ("_typeFilter", "Observation?status=final,Observation?code=a,b"),
            ("_typeFilter", "Patient?gender=female"),
        ],
        &admin(),
    )
    .expect("valid");
    assert_eq!(r.type_filters.len(), 3);
    assert_eq!(r.filters_for(rt("Observation")).count(), 2);
    let obs = |status: &str, code: &str| serde_json::json!({"resourceType": "Observation", "status": status, "code": {"coding": [{"code": code}]}});
    assert!(r.passes_filters(rt("Observation"), &obs("final", "z")));
    assert!(r.passes_filters(rt("Observation"), &obs("draft", "b")), "filters of one type are OR");
    assert!(!r.passes_filters(rt("Observation"), &obs("draft", "z")));
    assert!(r.passes_filters(ResourceType::CONSENT, &serde_json::json!({"resourceType": "Consent"})));
}

#[test]
fn an_unsupported_type_filter_is_refused_naming_it_or_dropped_when_lenient() {
    match parse(ExportLevel::System, &[("_typeFilter", "Observation?value-quantity=5")], &admin()) {
        Err(RequestError::NotSupported(m)) => assert!(m.contains("value-quantity") && m.contains("_typeFilter"), "{m}"),
        other => panic!("{other:?}"),
    }
    invalid_naming(parse(ExportLevel::System, &[("_typeFilter", "Observation")], &admin()), "_typeFilter");
    let r = lenient(ExportLevel::System, &[("_typeFilter", "Observation?value-quantity=5,Patient?gender=male")])
        .expect("lenient");
    assert_eq!(r.type_filters.len(), 1);
    assert!(r.ignored[0].contains("value-quantity"), "{:?}", r.ignored);
}

#[test]
fn a_type_filter_for_a_type_not_exported_is_refused() {
    invalid_naming(
        parse(ExportLevel::System, &[("_type", "Patient"), ("_typeFilter", "Observation?status=final")], &admin()),
        "Observation",
    );
    invalid_naming(parse(ExportLevel::System, &[("_typeFilter", "Condition?code=x")], &admin()), "Condition");
    invalid_naming(parse(ExportLevel::Patient, &[("_typeFilter", "Organization?type=prov")], &admin()), "Organization");
}

#[test]
fn too_many_type_filters_are_invalid() {
    let many = vec!["Patient?gender=male"; 65].join(",");
    let distinct: Vec<String> = (0..65).map(|i| format!("Patient?_id=p{i}")).collect();
    assert!(parse(ExportLevel::System, &[("_typeFilter", &many)], &admin()).is_ok(), "duplicates collapse");
    invalid_naming(parse(ExportLevel::System, &[("_typeFilter", &distinct.join(","))], &admin()), "_typeFilter");
}

// _elements

#[test]
fn elements_with_and_without_a_type_are_kept_in_order() {
    let r = parse(ExportLevel::System, &[("_elements", "id,Patient.birthDate"), ("_elements", "status")], &admin())
        .expect("valid");
    let names: Vec<String> = r.elements.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["id", "Patient.birthDate", "status"]);
}

#[test]
fn invalid_element_names_are_refused_naming_them() {
    invalid_naming(parse(ExportLevel::System, &[("_elements", "Patient.name.given")], &admin()), "Patient.name.given");
    invalid_naming(parse(ExportLevel::System, &[("_elements", "id,,meta")], &admin()), "_elements");
    invalid_naming(parse(ExportLevel::System, &[("_elements", "Bogus.id")], &admin()), "Bogus");
}

// patient

#[test]
fn patient_references_from_a_post_body_are_stored_as_ids() {
    let r = post(group(), &[("patient", "Patient/p1"), ("patient", "Patient/p2"), ("patient", "Patient/p1")], &admin())
        .expect("valid");
    assert_eq!(r.patients, ["p1", "p2"]);
}

#[test]
fn patient_in_a_query_string_is_refused_as_post_only() {
    invalid_naming(parse(ExportLevel::Patient, &[("patient", "Patient/p1")], &admin()), "POST");
}

#[test]
fn a_malformed_patient_reference_is_invalid() {
    for bad in ["p1", "Group/g1", "Patient/", "Patient/../x", "Patient/a b"] {
        invalid_naming(post(ExportLevel::Patient, &[("patient", bad)], &admin()), "patient");
    }
}

#[test]
fn patient_does_not_apply_at_system_level() {
    assert!(
        matches!(post(ExportLevel::System, &[("patient", "Patient/p1")], &admin()), Err(RequestError::NotSupported(m)) if m.contains("patient"))
    );
}

#[test]
fn a_patient_user_may_name_only_themselves() {
    let r = post(ExportLevel::Patient, &[("patient", "Patient/p7")], &patient("p7")).expect("self");
    assert_eq!(r.patients, ["p7"]);
    assert_eq!(post(ExportLevel::Patient, &[("patient", "Patient/p8")], &patient("p7")), Err(RequestError::Forbidden));
}

// includeAssociatedData

#[test]
fn associated_data_values_are_parsed_and_others_refused() {
    let r = parse(
        ExportLevel::System,
        &[("includeAssociatedData", "LatestProvenanceResources,RelevantProvenanceResources")],
        &admin(),
    )
    .expect("valid");
    assert_eq!(
        r.include_associated,
        [AssociatedData::LatestProvenanceResources, AssociatedData::RelevantProvenanceResources]
    );
    match parse(ExportLevel::System, &[("includeAssociatedData", "_custom")], &admin()) {
        Err(RequestError::NotSupported(m)) => assert!(m.contains("includeAssociatedData") && m.contains("_custom")),
        other => panic!("{other:?}"),
    }
    let r = lenient(ExportLevel::System, &[("includeAssociatedData", "_custom")]).expect("lenient");
    assert!(r.include_associated.is_empty() && r.ignored[0].contains("_custom"));
}

// unknown parameters, levels, principals

#[test]
fn an_unknown_parameter_is_not_silently_ignored() {
    let err = parse(ExportLevel::System, &[("_foo", "1")], &admin()).expect_err("refused");
    assert!(matches!(err, RequestError::NotSupported(m) if m.contains("_foo")));
    let r = lenient(ExportLevel::System, &[("_foo", "1")]).expect("lenient");
    assert_eq!(r.ignored, ["Ignored: Unsupported parameter '_foo'"]);
}

#[test]
fn a_patient_user_is_scoped_to_their_own_compartment() {
    let r = parse(ExportLevel::Patient, &[], &patient("p7")).expect("valid");
    assert_eq!(r.patient_scope.as_deref(), Some("p7"));
}

#[test]
fn a_patient_user_may_not_start_a_system_or_group_export() {
    assert_eq!(parse(ExportLevel::System, &[], &patient("p7")), Err(RequestError::Forbidden));
    assert_eq!(parse(group(), &[], &patient("p7")), Err(RequestError::Forbidden));
}

#[test]
fn control_characters_in_input_are_not_echoed() {
    let err = parse(ExportLevel::System, &[("_type", "Pat\u{1b}[31mient")], &admin()).expect_err("invalid");
    assert!(!format!("{err}").contains('\u{1b}'));
}

#[test]
fn a_request_with_every_parameter_survives_the_job_record_round_trip() {
    let r = ExportRequest::parse(
        group(),
        &q(&[
            ("_type", "Patient,Observation"),
            ("_since", "2020-01-01T00:00:00Z"),
            ("_until", "2021-01-01T00:00:00Z"),
            ("_typeFilter", "Observation?status=final&date=ge2020-03"),
            ("_elements", "id,Observation.code"),
            ("includeAssociatedData", "RelevantProvenanceResources"),
            ("_foo", "x"),
        ]),
        &q(&[("patient", "Patient/p1")]),
        &admin(),
        "https://x/fhir/r4/Group/g1/$export".into(),
        &opts(true),
    )
    .expect("valid");
    let json = serde_json::to_string(&r).expect("serialise");
    assert_eq!(serde_json::from_str::<ExportRequest>(&json).expect("deserialise"), r);
}

#[test]
fn a_record_written_before_the_new_parameters_still_loads() {
    let old = r#"{"level":{"level":"patient"},"types":["Patient"],"patient_scope":null,"request_url":"u"}"#;
    let r: ExportRequest = serde_json::from_str(old).expect("old record");
    assert_eq!(r, ExportRequest::new(ExportLevel::Patient, vec![ResourceType::PATIENT], "u"));
}
