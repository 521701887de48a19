//! Deterministic synthetic data for demos, tests and benchmarks.

use serde_json::json;

use crate::{NewResource, ResourceError, ResourceStore};

/// How much to generate. The same spec always gives the same resources, byte for byte.
#[derive(Clone, Copy, Debug)]
pub struct SeedSpec {
    /// Number of patients (ids `seed-p{n}`).
    pub patients: u32,
    /// DocumentReferences per patient.
    pub documents_per_patient: u32,
}

impl Default for SeedSpec {
    fn default() -> Self {
        SeedSpec { patients: 10, documents_per_patient: 3 }
    }
}

const FAMILIES: [&str; 8] = ["Smith", "Garcia", "Okafor", "Nguyen", "Müller", "Rossi", "Kowalski", "Tanaka"];
const GIVEN: [&str; 8] = ["Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Goran", "Hana"];
const WRITES_PER_BATCH: usize = 2000;

/// Writes `spec.patients` patients, each with `documents_per_patient`
/// DocumentReferences, one Consent and one Provenance (targeting the patient,
/// their consent and their documents). Returns the number of resources written.
pub async fn seed(store: &dyn ResourceStore, spec: SeedSpec) -> Result<u64, ResourceError> {
    let mut batch = Vec::with_capacity(WRITES_PER_BATCH);
    let mut written = 0;
    for n in 0..spec.patients {
        batch.extend(patient_bundle(n, spec.documents_per_patient));
        if batch.len() >= WRITES_PER_BATCH {
            written += store.upsert(&batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        written += store.upsert(&batch).await?;
    }
    Ok(written)
}

/// One patient's resources.
pub(crate) fn patient_bundle(n: u32, documents: u32) -> Vec<NewResource> {
    let pid = format!("seed-p{n:07}");
    let family = FAMILIES[n as usize % FAMILIES.len()];
    let given = GIVEN[(n as usize / FAMILIES.len()) % GIVEN.len()];
    let day = 1 + n % 28;
    let month = 1 + n % 12;
    let mut out = Vec::with_capacity(documents as usize + 3);
    let row = |ty: &str, id: String, v: serde_json::Value| NewResource {
        resource_type: ty.into(),
        id,
        patient_ids: vec![pid.clone()],
        json: v.to_string(),
    };
    out.push(row(
        "Patient",
        pid.clone(),
        json!({
            "resourceType": "Patient", "id": pid,
            "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": format!("MRN-{n:08}")}],
            "active": true,
            "name": [{"use": "official", "family": family, "given": [given]}],
            "telecom": [{"system": "phone", "value": format!("555-{:04}", n % 10000), "use": "home"}],
            "gender": if n.is_multiple_of(2) { "female" } else { "male" },
            "birthDate": format!("19{:02}-{month:02}-{day:02}", 40 + n % 60),
            "address": [{"line": [format!("{} Main Street", 1 + n % 999)], "city": "Springfield", "state": "MA", "postalCode": "01101", "country": "US"}]
        }),
    ));
    let mut targets = vec![json!({"reference": format!("Patient/{pid}")})];
    for d in 0..documents {
        let id = format!("{pid}-doc{d:03}");
        targets.push(json!({"reference": format!("DocumentReference/{id}")}));
        out.push(row(
            "DocumentReference",
            id.clone(),
            json!({
                "resourceType": "DocumentReference", "id": id, "status": "current",
                "type": {"coding": [{"system": "http://loinc.org", "code": "34133-9", "display": "Summary of episode note"}]},
                "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note"}]}],
                "subject": {"reference": format!("Patient/{pid}")},
                "date": format!("2025-{month:02}-{:02}T10:{:02}:00Z", 1 + d % 28, d % 60),
                "author": [{"reference": "Practitioner/seed-dr-1", "display": "Dr. Seed"}],
                "description": format!("Visit note {d} for {given} {family}"),
                "content": [{"attachment": {"contentType": "text/plain", "language": "en-US",
                    "url": format!("Binary/{id}"), "size": 2048 + d * 7, "title": format!("note-{d}.txt"),
                    "creation": format!("2025-{month:02}-{:02}", 1 + d % 28)}}],
                "context": {"period": {"start": format!("2025-{month:02}-{:02}T09:00:00Z", 1 + d % 28)}}
            }),
        ));
    }
    let consent_id = format!("{pid}-consent");
    targets.push(json!({"reference": format!("Consent/{consent_id}")}));
    out.push(row(
        "Consent",
        consent_id.clone(),
        json!({
            "resourceType": "Consent", "id": consent_id, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
            "patient": {"reference": format!("Patient/{pid}")},
            "dateTime": format!("2024-{month:02}-{day:02}T08:00:00Z"),
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "period": {"start": "2024-01-01", "end": "2029-12-31"}}
        }),
    ));
    let prov_id = format!("{pid}-prov");
    out.push(row(
        "Provenance",
        prov_id.clone(),
        json!({
            "resourceType": "Provenance", "id": prov_id,
            "target": targets,
            "recorded": format!("2025-{month:02}-{day:02}T12:00:00Z"),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"}]},
            "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
                       "who": {"reference": "Practitioner/seed-dr-1"}}]
        }),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compartment_of, Compartment};

    #[test]
    fn seeding_is_deterministic() {
        assert_eq!(patient_bundle(42, 3), patient_bundle(42, 3));
    }

    #[test]
    fn every_seeded_resource_is_in_its_patients_compartment_by_the_loader_rules() {
        for r in patient_bundle(7, 2) {
            let v: serde_json::Value = serde_json::from_str(&r.json).expect("json");
            assert_eq!(
                compartment_of(&r.resource_type, &v),
                Compartment::Patients(vec!["seed-p0000007".into()]),
                "{}",
                r.resource_type
            );
        }
    }
}
