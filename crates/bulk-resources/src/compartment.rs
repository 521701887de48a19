//! Which patients' compartments a resource belongs to, decided when it is loaded.
//!
//! The reference elements per type come from the R4 Patient
//! `CompartmentDefinition` table in [`bulk_core::compartment`]; this module
//! walks them through a resource's JSON.

use bulk_core::compartment::patient_reference_paths;
use serde_json::Value;

/// Where a resource goes, as far as the resource itself tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compartment {
    /// In these patients' compartments, sorted and distinct; empty for a
    /// type outside the Patient compartment or one that references no patient.
    Patients(Vec<String>),
    /// A Provenance none of whose targets is a patient: it is in the
    /// compartments its targets are in (resolved against the store).
    ViaTargets(Vec<(String, String)>),
}

/// Places a resource of `resource_type`: in the compartment of every patient
/// its type's reference elements point at (arrays traversed). A `Patient` is
/// also in its own compartment, by id. A `Provenance` with no `Patient/…`
/// target follows its targets instead.
pub fn compartment_of(resource_type: &str, resource: &Value) -> Compartment {
    let Some(paths) = patient_reference_paths(resource_type) else {
        return Compartment::Patients(Vec::new());
    };
    let mut refs = Vec::new();
    for path in paths {
        collect_references(resource, path, &mut refs);
    }
    let mut patients: Vec<String> = refs.iter().filter(|(t, _)| t == "Patient").map(|(_, id)| id.clone()).collect();
    if resource_type == "Patient" {
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            patients.push(id.to_owned());
        }
    }
    if resource_type == "Provenance" && patients.is_empty() && !refs.is_empty() {
        refs.sort();
        refs.dedup();
        return Compartment::ViaTargets(refs);
    }
    patients.sort();
    patients.dedup();
    Compartment::Patients(patients)
}

/// The Patient ids a `Group` lists as members (`member[].entity`), skipping
/// members marked `inactive: true`, in order and each once. Empty when the
/// JSON is not a Group with members.
pub fn group_member_patients(group_json: &str) -> Vec<String> {
    let Ok(group) = serde_json::from_str::<Value>(group_json) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = Vec::new();
    let members = group.get("member").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for member in members {
        if member.get("inactive").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let reference = member.get("entity").and_then(|e| e.get("reference")).and_then(Value::as_str);
        if let Some((t, id)) = reference.and_then(parse_reference) {
            if t == "Patient" && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Appends the `(Type, id)` of every reference at the dotted `path` below
/// `value`, descending through arrays at every step.
fn collect_references(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, path, out)),
        Value::Object(obj) => match path.split_once('.') {
            Some((head, rest)) => {
                if let Some(child) = obj.get(head) {
                    collect_references(child, rest, out);
                }
            }
            None => match obj.get(path) {
                Some(Value::Array(items)) => items.iter().for_each(|r| push_reference(r, out)),
                Some(r) => push_reference(r, out),
                None => {}
            },
        },
        _ => {}
    }
}

fn push_reference(r: &Value, out: &mut Vec<(String, String)>) {
    if let Some(parsed) = r.get("reference").and_then(Value::as_str).and_then(parse_reference) {
        out.push(parsed);
    }
}

/// `Type/id`, optionally absolute or with `/_history/n`, to `(Type, id)`.
/// Contained (`#x`) and `urn:` references name nothing in the store.
pub(crate) fn parse_reference(r: &str) -> Option<(String, String)> {
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
mod tests;
