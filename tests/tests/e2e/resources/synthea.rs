//! The 100-patient Synthea sample (`../shared/data/synthea-100-r4`, 38,473
//! resources of 18 types): it loads completely, and every resource sits in
//! the compartments the R4 Patient CompartmentDefinition puts it in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use bulk_resources::{group_member_patients, load_files, PatientFilter};
use serde_json::Value;

use super::{ids, of_patients, query};
use crate::helpers::*;

/// The sample's directory: `BULK_TEST_SYNTHEA_DIR`, else the shared data next to the checkout.
fn sample_dir() -> PathBuf {
    let dir = std::env::var_os("BULK_TEST_SYNTHEA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/synthea-100-r4")));
    assert!(dir.is_dir(), "the Synthea sample is missing at {}", dir.display());
    dir
}

/// Resources per type, from the sample's README.
const COUNTS: [(&str, u64); 18] = [
    ("AllergyIntolerance", 38),
    ("CarePlan", 278),
    ("CareTeam", 278),
    ("Claim", 6_083),
    ("Condition", 639),
    ("Device", 4),
    ("DiagnosticReport", 897),
    ("Encounter", 3_697),
    ("ExplanationOfBenefit", 3_697),
    ("Group", 1),
    ("ImagingStudy", 16),
    ("Immunization", 1_287),
    ("MedicationRequest", 2_386),
    ("Observation", 16_315),
    ("Organization", 203),
    ("Patient", 100),
    ("Practitioner", 203),
    ("Procedure", 2_351),
];

async fn the_synthea_sample_loads_completely_with_every_resource_in_its_patients_compartment(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    let started = Instant::now();
    let report = load_files(store, &[sample_dir()]).await.expect("load");
    eprintln!("synthea-100-r4: {} resources loaded into the {mode:?} store in {:?}", report.loaded, started.elapsed());
    assert_eq!(report.errors, []);
    assert_eq!(report.loaded, 38_473);
    for (t, n) in COUNTS {
        assert_eq!(store.count(&query(t, PatientFilter::All)).await.expect("count"), n, "{t}");
    }

    let patient_ids = ids(store, &query("Patient", PatientFilter::All)).await;
    assert_eq!(patient_ids.len(), 100);
    for p in &patient_ids {
        assert_eq!(
            ids(store, &query("Patient", of_patients(&[p]))).await,
            std::slice::from_ref(p),
            "a patient is its own"
        );
    }

    // Clinical and financial resources: each in exactly the compartment of the
    // patient its subject (or patient) element names.
    for (t, element) in [
        ("Observation", "subject"),
        ("Encounter", "subject"),
        ("Condition", "subject"),
        ("Claim", "patient"),
        ("ExplanationOfBenefit", "patient"),
        ("MedicationRequest", "subject"),
    ] {
        let mut compartments: HashMap<String, Vec<String>> = HashMap::new();
        for p in &patient_ids {
            for r in store.page(&query(t, of_patients(&[p])), None, 100_000).await.expect("page") {
                let v: Value = serde_json::from_str(&r.json).expect("JSON");
                assert_eq!(v[element]["reference"], format!("Patient/{p}"), "{t}/{} in {p}'s compartment", r.id);
                compartments.entry(r.id).or_default().push(p.clone());
            }
        }
        let total = store.count(&query(t, PatientFilter::All)).await.expect("count");
        assert_eq!(compartments.len() as u64, total, "every {t} is in a compartment");
        assert!(compartments.values().all(|ps| ps.len() == 1), "each {t} in one compartment");
        assert_eq!(store.count(&query(t, PatientFilter::AnyPatient)).await.expect("count"), total, "{t}");
    }

    // Definitional resources and Device (outside R4's Patient compartment) are in none.
    for t in ["Organization", "Practitioner", "Device"] {
        assert_eq!(store.count(&query(t, PatientFilter::AnyPatient)).await.expect("count"), 0, "{t}");
    }

    // The Group lists every patient, and is in each member's compartment.
    let groups = store.page(&query("Group", PatientFilter::All), None, 10).await.expect("page");
    let mut members = group_member_patients(&groups[0].json);
    members.sort();
    assert_eq!(members, patient_ids);
    for p in &patient_ids {
        assert_eq!(store.count(&query("Group", of_patients(&[p]))).await.expect("count"), 1, "{p}");
    }
    assert_eq!(store.existing("Group", &[groups[0].id.clone()]).await.expect("existing"), [groups[0].id.clone()]);
}

both_modes!(the_synthea_sample_loads_completely_with_every_resource_in_its_patients_compartment);
