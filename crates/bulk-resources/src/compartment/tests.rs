//! Tests of the parent module.

use serde_json::json;

use super::*;

fn patients(ids: &[&str]) -> Compartment {
    Compartment::Patients(ids.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn a_patient_is_in_its_own_compartment_and_in_those_of_the_patients_it_links_to() {
    assert_eq!(compartment_of("Patient", &json!({"id": "p1"})), patients(&["p1"]));
    let linked = json!({"id": "p1", "link": [
        {"other": {"reference": "Patient/p0"}, "type": "replaces"},
        {"other": {"reference": "RelatedPerson/r1"}, "type": "seealso"}
    ]});
    assert_eq!(compartment_of("Patient", &linked), patients(&["p0", "p1"]));
}

#[test]
fn document_references_and_consents_follow_subject_and_patient_in_any_reference_form() {
    let d = json!({"subject": {"reference": "Patient/p2"}});
    assert_eq!(compartment_of("DocumentReference", &d), patients(&["p2"]));
    let c = json!({"patient": {"reference": "https://ehr.example/fhir/Patient/p3/_history/2"}});
    assert_eq!(compartment_of("Consent", &c), patients(&["p3"]));
    let g = json!({"subject": {"reference": "Group/g1"}});
    assert_eq!(compartment_of("DocumentReference", &g), patients(&[]));
    let contained = json!({"subject": {"reference": "#p"}});
    assert_eq!(compartment_of("DocumentReference", &contained), patients(&[]));
}

#[test]
fn an_observation_is_in_the_compartments_of_its_subject_and_of_every_patient_performer() {
    let o = json!({
        "subject": {"reference": "Patient/s"},
        "performer": [
            {"reference": "Practitioner/dr"},
            {"reference": "Patient/b"},
            {"reference": "Patient/s"}
        ]
    });
    assert_eq!(compartment_of("Observation", &o), patients(&["b", "s"]));
}

#[test]
fn nested_arrays_are_traversed_at_every_step_of_a_path() {
    let care_plan = json!({
        "subject": {"reference": "Patient/a"},
        "activity": [
            {"detail": {"performer": [{"reference": "Patient/b"}, {"reference": "Practitioner/x"}]}},
            {"detail": {"performer": [{"reference": "Patient/c"}]}},
            {"reference": {"reference": "Patient/ignored"}}
        ]
    });
    assert_eq!(compartment_of("CarePlan", &care_plan), patients(&["a", "b", "c"]));
    let appointment = json!({"participant": [
        {"actor": {"reference": "Patient/x"}},
        {"actor": {"reference": "Location/room"}},
        {"actor": {"reference": "Patient/y"}}
    ]});
    assert_eq!(compartment_of("Appointment", &appointment), patients(&["x", "y"]));
}

#[test]
fn a_group_is_in_the_compartment_of_every_patient_member() {
    let g = json!({"member": [
        {"entity": {"reference": "Patient/m1"}},
        {"entity": {"reference": "Patient/m2"}, "inactive": true},
        {"entity": {"reference": "Device/d"}}
    ]});
    assert_eq!(compartment_of("Group", &g), patients(&["m1", "m2"]));
}

#[test]
fn claims_and_explanations_of_benefit_follow_patient_and_payee_party() {
    let eob = json!({
        "patient": {"reference": "Patient/insured"},
        "payee": {"party": {"reference": "Patient/payee"}},
        "provider": {"reference": "Patient/not-a-compartment-element"}
    });
    assert_eq!(compartment_of("ExplanationOfBenefit", &eob), patients(&["insured", "payee"]));
    assert_eq!(compartment_of("Claim", &eob), patients(&["insured", "payee"]));
}

#[test]
fn types_outside_the_patient_compartment_have_no_patients_whatever_they_reference() {
    let r = json!({"patient": {"reference": "Patient/p"}, "subject": {"reference": "Patient/p"}});
    for t in ["Organization", "Practitioner", "Device", "Medication", "Location"] {
        assert_eq!(compartment_of(t, &r), patients(&[]), "{t}");
    }
}

#[test]
fn elements_not_named_by_the_definition_do_not_place_a_resource() {
    // Encounter's compartment parameter searches `subject`, not `participant`.
    let e = json!({"participant": [{"individual": {"reference": "Patient/p"}}]});
    assert_eq!(compartment_of("Encounter", &e), patients(&[]));
}

#[test]
fn a_provenance_belongs_to_its_patient_targets_or_else_resolves_through_all_its_targets() {
    let direct = json!({"target": [
        {"reference": "Consent/c1"}, {"reference": "Patient/p4"}, {"reference": "Patient/p5"}
    ]});
    assert_eq!(compartment_of("Provenance", &direct), patients(&["p4", "p5"]));
    let via = json!({"target": [
        {"reference": "DocumentReference/d1"}, {"reference": "#contained"}, {"reference": "Consent/c1"}
    ]});
    assert_eq!(
        compartment_of("Provenance", &via),
        Compartment::ViaTargets(vec![("Consent".into(), "c1".into()), ("DocumentReference".into(), "d1".into())])
    );
    assert_eq!(compartment_of("Provenance", &json!({"target": []})), patients(&[]));
}

#[test]
fn group_members_are_the_active_patient_entities_in_order_each_once() {
    let g = json!({"resourceType": "Group", "id": "g", "member": [
        {"entity": {"reference": "Patient/b"}},
        {"entity": {"reference": "Patient/a"}, "inactive": false},
        {"entity": {"reference": "Patient/gone"}, "inactive": true},
        {"entity": {"reference": "Practitioner/x"}},
        {"entity": {"reference": "https://other.example/fhir/Patient/c"}},
        {"entity": {"reference": "Patient/b"}},
        {"entity": {"display": "no reference"}}
    ]});
    assert_eq!(group_member_patients(&g.to_string()), ["b", "a", "c"]);
    assert!(group_member_patients(r#"{"resourceType":"Group","id":"empty"}"#).is_empty());
    assert!(group_member_patients("not json").is_empty());
}
