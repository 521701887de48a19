//! Which patient's compartment a resource belongs to, decided when it is loaded.

use serde_json::Value;

/// The compartment owner of a resource, as far as the resource itself tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compartment {
    /// In no patient's compartment (or a type we do not place).
    None,
    /// In this patient's compartment.
    Patient(String),
    /// A Provenance whose targets are not patients: it belongs to the patient
    /// of the first target that has one (resolved against the store).
    ViaTargets(Vec<(String, String)>),
}

/// Places a resource of `resource_type` in a patient compartment:
/// `Patient` by its id, `DocumentReference` by `subject`, `Consent` by
/// `patient`, `Provenance` by a `Patient/…` target or else through its targets.
pub fn compartment_of(resource_type: &str, resource: &Value) -> Compartment {
    let reference = |field: &str| {
        resource.get(field).and_then(|r| r.get("reference")).and_then(Value::as_str).and_then(parse_reference)
    };
    let patient = |r: Option<(String, String)>| match r {
        Some((t, id)) if t == "Patient" => Compartment::Patient(id),
        _ => Compartment::None,
    };
    match resource_type {
        "Patient" => match resource.get("id").and_then(Value::as_str) {
            Some(id) => Compartment::Patient(id.to_owned()),
            None => Compartment::None,
        },
        "DocumentReference" => patient(reference("subject")),
        "Consent" => patient(reference("patient")),
        "Provenance" => {
            let targets: Vec<(String, String)> = resource
                .get("target")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| t.get("reference").and_then(Value::as_str).and_then(parse_reference))
                        .collect()
                })
                .unwrap_or_default();
            if let Some((_, id)) = targets.iter().find(|(t, _)| t == "Patient") {
                Compartment::Patient(id.clone())
            } else if targets.is_empty() {
                Compartment::None
            } else {
                Compartment::ViaTargets(targets)
            }
        }
        _ => Compartment::None,
    }
}

/// `Type/id`, optionally absolute or with `/_history/n`, to `(Type, id)`.
/// Contained (`#x`) and `urn:` references name nothing in the store.
fn parse_reference(r: &str) -> Option<(String, String)> {
    if r.starts_with('#') || r.starts_with("urn:") {
        return None;
    }
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let mut parts = r.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next()?;
    let ok_type =
        ty.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && ty.chars().all(|c| c.is_ascii_alphabetic());
    (ok_type && !id.is_empty()).then(|| (ty.to_owned(), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_patient_is_in_its_own_compartment() {
        assert_eq!(compartment_of("Patient", &json!({"id": "p1"})), Compartment::Patient("p1".into()));
    }

    #[test]
    fn document_references_and_consents_follow_subject_and_patient() {
        let d = json!({"subject": {"reference": "Patient/p2"}});
        assert_eq!(compartment_of("DocumentReference", &d), Compartment::Patient("p2".into()));
        let c = json!({"patient": {"reference": "https://ehr.example/fhir/Patient/p3/_history/2"}});
        assert_eq!(compartment_of("Consent", &c), Compartment::Patient("p3".into()));
        let g = json!({"subject": {"reference": "Group/g1"}});
        assert_eq!(compartment_of("DocumentReference", &g), Compartment::None);
    }

    #[test]
    fn a_provenance_belongs_to_a_patient_target_or_else_resolves_through_its_targets() {
        let direct = json!({"target": [{"reference": "Consent/c1"}, {"reference": "Patient/p4"}]});
        assert_eq!(compartment_of("Provenance", &direct), Compartment::Patient("p4".into()));
        let via = json!({"target": [{"reference": "DocumentReference/d1"}, {"reference": "#contained"}]});
        assert_eq!(
            compartment_of("Provenance", &via),
            Compartment::ViaTargets(vec![("DocumentReference".into(), "d1".into())])
        );
    }
}
