//! Tests of the parent module: parsing, evaluation and the canonical form.

use serde_json::json;

use super::*;

fn filter(text: &str) -> TypeFilter {
    TypeFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn obs(status: &str, effective: Value) -> Value {
    json!({
        "resourceType": "Observation", "id": "o1", "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}, {"code": "local-1"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": effective,
        "meta": {"lastUpdated": "2021-06-01T12:00:00.000Z"}
    })
}

#[test]
fn a_status_token_matches_the_code_and_a_comma_means_or() {
    let o = obs("final", json!("2020-05-01"));
    assert!(filter("Observation?status=final").matches(&o));
    assert!(filter("Observation?status=amended,final").matches(&o));
    assert!(!filter("Observation?status=preliminary").matches(&o));
    // `status` is a code: its system is implicit, so a system never excludes it.
    assert!(filter("Observation?status=http://hl7.org/fhir/observation-status|final").matches(&o));
    assert!(filter("Observation?status=|final").matches(&o));
}

#[test]
fn codeable_concept_tokens_honour_system_and_code_forms() {
    let o = obs("final", json!("2020-05-01"));
    assert!(filter("Observation?code=1234-5").matches(&o));
    assert!(filter("Observation?code=http://loinc.org|1234-5").matches(&o));
    assert!(!filter("Observation?code=http://snomed.info/sct|1234-5").matches(&o));
    assert!(filter("Observation?code=http://loinc.org|").matches(&o));
    assert!(!filter("Observation?code=http://snomed.info/sct|").matches(&o));
    assert!(filter("Observation?code=|local-1").matches(&o));
    assert!(!filter("Observation?code=|1234-5").matches(&o), "the LOINC coding has a system");
    assert!(filter("Observation?category=laboratory").matches(&o));
    assert!(!filter("Observation?category=vital-signs").matches(&o));
}

#[test]
fn clauses_joined_by_ampersand_must_all_match() {
    let o = obs("final", json!("2020-05-01"));
    assert!(filter("Observation?status=final&category=laboratory").matches(&o));
    assert!(!filter("Observation?status=final&category=vital-signs").matches(&o));
}

#[test]
fn date_prefixes_compare_the_spans_of_both_values() {
    let o = obs("final", json!("2020-05-01T10:30:00Z"));
    for (query, want) in [
        ("date=2020", true),
        ("date=2020-05", true),
        ("date=2020-05-01", true),
        ("date=eq2020-05-02", false),
        ("date=ne2020-05-02", true),
        ("date=ne2020", false),
        ("date=gt2020-04-30", true),
        ("date=gt2020-05-01", false),
        ("date=ge2020-05-01", true),
        ("date=lt2020-05-02", true),
        ("date=lt2020-05-01", false),
        ("date=le2020-05-01", true),
        ("date=gt2020-05-01T10:00:00Z", true),
        ("date=lt2020-05-01T12:30:00%2B02:00", false),
        ("date=lt2020-05-01T12:31:00%2B02:00", true),
        ("date=le2020-04-30,ge2020-05-01", true),
    ] {
        assert_eq!(filter(&format!("Observation?{query}")).matches(&o), want, "{query}");
    }
}

#[test]
fn a_period_matches_by_its_span_and_open_ends_reach_forever() {
    let enc = |period: Value| json!({"resourceType": "Encounter", "id": "e", "status": "finished", "period": period});
    let closed = enc(json!({"start": "2020-01-10", "end": "2020-01-20"}));
    assert!(filter("Encounter?date=2020-01").matches(&closed));
    assert!(filter("Encounter?date=gt2020-01-15").matches(&closed));
    assert!(!filter("Encounter?date=gt2020-01-20").matches(&closed));
    let open = enc(json!({"start": "2020-01-10"}));
    assert!(filter("Encounter?date=gt2030-01-01").matches(&open));
    assert!(!filter("Encounter?date=lt2020-01-10").matches(&open));
}

#[test]
fn choice_elements_and_last_updated_are_searched() {
    let o = obs("final", json!("2020-05-01"));
    assert!(filter("Observation?_lastUpdated=gt2021-01-01").matches(&o));
    assert!(!filter("Observation?_lastUpdated=lt2021-01-01").matches(&o));
    let c = json!({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
        "onsetPeriod": {"start": "2019-02-01"}, "recordedDate": "2019-03-01"});
    assert!(filter("Condition?onset-date=ge2019-02-01").matches(&c));
    assert!(filter("Condition?recorded-date=2019-03").matches(&c));
    let missing = json!({"resourceType": "Condition", "id": "c2"});
    assert!(!filter("Condition?recorded-date=ge1900").matches(&missing), "no value never matches");
}

#[test]
fn references_match_by_type_and_id_relative_or_absolute() {
    let o = obs("final", json!("2020-05-01"));
    assert!(filter("Observation?patient=Patient/p1").matches(&o));
    assert!(filter("Observation?patient=p1").matches(&o));
    assert!(filter("Observation?subject=p1").matches(&o));
    assert!(!filter("Observation?patient=p2").matches(&o));
    let abs = json!({"resourceType": "Consent", "id": "c", "patient": {"reference": "https://x/fhir/Patient/p1"}});
    assert!(filter("Consent?patient=Patient/p1").matches(&abs));
    assert!(!filter("Consent?patient=Patient/p11").matches(&abs));
}

#[test]
fn ids_gender_and_intent_are_matched() {
    let p = json!({"resourceType": "Patient", "id": "p1", "gender": "female"});
    assert!(filter("Patient?_id=p0,p1").matches(&p));
    assert!(!filter("Patient?_id=p2").matches(&p));
    assert!(filter("Patient?gender=female").matches(&p));
    assert!(!filter("Patient?gender=male").matches(&p));
    let mr = json!({"resourceType": "MedicationRequest", "id": "m", "status": "active", "intent": "order"});
    assert!(filter("MedicationRequest?intent=order&status=active").matches(&mr));
    assert!(!filter("MedicationRequest?intent=plan").matches(&mr));
}

#[test]
fn a_filter_never_matches_a_resource_of_another_type() {
    let p = json!({"resourceType": "Patient", "id": "p1"});
    assert!(!filter("Observation?_id=p1").matches(&p));
}

#[test]
fn malformed_filters_are_invalid_and_name_the_problem() {
    for (text, names) in [
        ("Observation", "Type?param=value"),
        ("Nope?status=final", "Nope"),
        ("Observation?", "no search parameters"),
        ("Observation?status", "status"),
        ("Observation?status=", "empty value"),
        ("Observation?status=final,", "empty value"),
        ("Observation?date=yesterday", "date"),
        ("Observation?date=gt2020-13-01", "date"),
        ("Observation?patient=Group/1", "patient"),
        ("Observation?patient=../x", "patient"),
        ("Observation?_sort=date", "_sort"),
        ("Observation?_include=Observation:subject", "_include"),
    ] {
        match TypeFilter::parse(text) {
            Err(FilterError::Invalid(m)) => assert!(m.contains(names), "{text}: {m}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_parameters_modifiers_and_prefixes_are_not_supported_and_named() {
    for (text, names) in [
        ("Observation?value-quantity=5", "value-quantity"),
        ("Patient?status=active", "status"),
        ("Observation?status:not=final", ":not"),
        ("Observation?code:text=glucose", ":text"),
        ("Observation?date=sa2020", "sa"),
        ("Observation?date=ap2020", "ap"),
        ("Patient?name=Smith", "name"),
    ] {
        match TypeFilter::parse(text) {
            Err(FilterError::NotSupported(m)) => assert!(m.contains(names), "{text}: {m}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn percent_encoded_values_are_decoded_once() {
    let f = filter("Observation%3Fstatus%3Dfinal".replace("%3F", "?").replace("%3D", "=").as_str());
    assert!(f.matches(&obs("final", json!("2020"))));
    let encoded = filter("Observation?date=gt2020-05-01T00%3A00%3A00Z");
    assert!(encoded.matches(&obs("final", json!("2020-06-01"))));
}

#[test]
fn the_canonical_text_parses_back_to_the_same_filter() {
    for text in [
        "Observation?status=final,amended&code=http://loinc.org|1234-5",
        "Observation?date=gt2020-05-01T10:00:00%2B02:00&_lastUpdated=le2021",
        "Observation?date=2020-05&date=ne2020-05-01T10:00Z&date=lt2020-05-01T10:00:00.25Z",
        "Encounter?type=|x,sys|&patient=p1&subject=Patient/p2",
        "Patient?_id=a.b-c&gender=other&birthdate=1970-01-01",
        "Observation?code=a%26b%25c%3Fd",
    ] {
        let f = filter(text);
        let again = filter(&f.to_string());
        assert_eq!(again, f, "{text} → {f}");
        let json = serde_json::to_string(&f).expect("serialise");
        assert_eq!(serde_json::from_str::<TypeFilter>(&json).expect("deserialise"), f);
    }
}

#[test]
fn queries_are_split_on_commas_that_start_a_new_type() {
    assert_eq!(
        split_queries("MedicationRequest?status=active,MedicationRequest?status=completed&date=gt2018-07-01T00:00:00Z"),
        vec!["MedicationRequest?status=active", "MedicationRequest?status=completed&date=gt2018-07-01T00:00:00Z"]
    );
    assert_eq!(
        split_queries("Observation?code=a,b,Condition?code=c"),
        vec!["Observation?code=a,b", "Condition?code=c"]
    );
    assert_eq!(split_queries("Observation?status=final"), vec!["Observation?status=final"]);
    assert_eq!(split_queries(""), vec![""]);
}
