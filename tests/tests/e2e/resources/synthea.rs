//! The Synthea sample: it loads completely, and every resource sits in the
//! compartments the R4 Patient CompartmentDefinition puts it in.
//!
//! On the full 100-patient sample (`../shared/data/synthea-100-r4`, 38,473
//! resources of 18 types) when it is next to the checkout, else on the
//! repository's 12-patient slice of it (`tests/data/synthea-12`);
//! `BULK_TEST_SYNTHEA_DIR` names another. What is expected is read from the
//! files themselves, so any Synthea export will do.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use bulk_resources::{group_member_patients, load_files, PatientFilter};
use serde_json::Value;

use super::{ids, of_patients, query};
use crate::helpers::*;

/// The sample's directory (see the module doc).
fn sample_dir() -> PathBuf {
    let full = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/synthea-100-r4"));
    let slice = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/synthea-12"));
    let dir = match std::env::var_os("BULK_TEST_SYNTHEA_DIR") {
        Some(d) => PathBuf::from(d),
        None if full.is_dir() => full,
        None => slice,
    };
    assert!(dir.is_dir(), "no Synthea sample at {}", dir.display());
    dir
}

/// Resources per type in the sample's `Type.ndjson.gz` files.
fn counts_in_files(dir: &PathBuf) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("sample dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let Some(ty) = name.strip_suffix(".ndjson.gz") else { continue };
        let reader =
            std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).expect("open")));
        let lines = reader.lines().map(|l| l.expect("gzip")).filter(|l| !l.trim().is_empty()).count();
        *counts.entry(ty.to_owned()).or_default() += lines as u64;
    }
    counts
}

async fn the_synthea_sample_loads_completely_with_every_resource_in_its_patients_compartment(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    let started = Instant::now();
    let dir = sample_dir();
    let counts = counts_in_files(&dir);
    let report = load_files(store, std::slice::from_ref(&dir)).await.expect("load");
    eprintln!(
        "{}: {} resources loaded into the {mode:?} store in {:?}",
        dir.display(),
        report.loaded,
        started.elapsed()
    );
    assert_eq!(report.errors, []);
    assert_eq!(report.loaded, counts.values().sum::<u64>());
    for (t, n) in &counts {
        assert_eq!(store.count(&query(t, PatientFilter::All)).await.expect("count"), *n, "{t}");
    }

    let patient_ids = ids(store, &query("Patient", PatientFilter::All)).await;
    assert!(patient_ids.len() >= 10, "a sample of many patients");
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
