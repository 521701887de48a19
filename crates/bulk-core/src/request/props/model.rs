//! The model of the kick-off rules the property tests check `parse` against:
//! labelled tables of generated values (what each one means, so the model
//! never parses) and the rules applied in their documented order.

use super::super::*;

pub(super) fn rt(name: &str) -> ResourceType {
    name.parse().expect("an R4 type")
}

/// Types a generated deployment may export: the usage document's four, a
/// clinical one, and two outside the Patient compartment.
pub(super) const POOL: [&str; 7] =
    ["Patient", "DocumentReference", "Consent", "Provenance", "Observation", "Organization", "Practitioner"];

/// `_since`/`_until` values and what they mean: seconds since the epoch, or why not.
#[derive(Clone, Copy, Debug)]
pub(super) enum Instant {
    At(i64),
    Future,
    Malformed,
}

pub(super) const INSTANTS: [(&str, Instant); 8] = [
    ("2020-01-01T00:00:00Z", Instant::At(1_577_836_800)),
    ("2021-06-01T12:30:00.5+02:00", Instant::At(1_622_543_400)),
    ("2019-12-31T23:59Z", Instant::At(1_577_836_740)),
    ("2999-01-01T00:00:00Z", Instant::Future),
    ("2020-01-01", Instant::Malformed),
    ("2020-01-01T00:00:00", Instant::Malformed),
    ("yesterday", Instant::Malformed),
    ("", Instant::Malformed),
];

/// What a `_typeFilter` query is: fine for a type, or refused as which kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Query {
    For(&'static str),
    Invalid,
    NotSupported,
}

pub(super) const QUERIES: [(&str, Query); 12] = [
    ("Patient?gender=female", Query::For("Patient")),
    ("Patient?_id=p1,p2", Query::For("Patient")),
    ("Consent?status=active", Query::For("Consent")),
    ("Observation?code=http://loinc.org|1234-5&date=ge2020", Query::For("Observation")),
    ("DocumentReference?date=lt2021-01-01", Query::For("DocumentReference")),
    ("Organization?type=prov", Query::For("Organization")),
    ("Patient?name=Smith", Query::NotSupported),
    ("Observation?status:not=final", Query::NotSupported),
    ("Observation?date=sa2020", Query::NotSupported),
    ("Observation?_sort=date", Query::Invalid),
    ("Nope?x=1", Query::Invalid),
    ("Observation?date=notadate", Query::Invalid),
];

/// `_elements` entries: the element they name, or `None` when invalid.
pub(super) const ELEMENTS: [(&str, Option<&str>); 7] = [
    ("id", Some("id")),
    ("Patient.gender", Some("Patient.gender")),
    ("value[x]", Some("value")),
    ("Patient.name.given", None),
    ("Nope.id", None),
    ("1x", None),
    ("Name", None),
];

/// `patient` values: the id they name, or `None` when malformed.
pub(super) const PATIENTS: [(&str, Option<&str>); 5] =
    [("Patient/p1", Some("p1")), ("Patient/p2", Some("p2")), ("p1", None), ("Group/g", None), ("Patient/../x", None)];

pub(super) const ASSOCIATED: [(&str, Option<AssociatedData>); 4] = [
    ("LatestProvenanceResources", Some(AssociatedData::LatestProvenanceResources)),
    ("RelevantProvenanceResources", Some(AssociatedData::RelevantProvenanceResources)),
    ("_custom", None),
    ("latestprovenanceresources", None),
];

/// One generated parameter: its name, value, and the labels the model needs.
#[derive(Clone, Debug)]
pub(super) enum Gen {
    Types(Vec<String>),
    Format(String),
    Since(usize),
    Until(usize),
    Filters(Vec<usize>),
    Elements(Vec<Option<usize>>),
    Patient(usize),
    Associated(Vec<Option<usize>>),
    Other(String, String),
}

impl Gen {
    pub(super) fn pair(&self) -> (String, String) {
        let list = |v: Vec<&str>| v.join(",");
        match self {
            Gen::Types(v) => ("_type".into(), v.join(",")),
            Gen::Format(f) => ("_outputFormat".into(), f.clone()),
            Gen::Since(i) => ("_since".into(), INSTANTS[*i].0.into()),
            Gen::Until(i) => ("_until".into(), INSTANTS[*i].0.into()),
            Gen::Filters(v) => ("_typeFilter".into(), list(v.iter().map(|i| QUERIES[*i].0).collect())),
            Gen::Elements(v) => ("_elements".into(), list(v.iter().map(|i| i.map_or("", |i| ELEMENTS[i].0)).collect())),
            Gen::Patient(i) => ("patient".into(), PATIENTS[*i].0.into()),
            Gen::Associated(v) => {
                ("includeAssociatedData".into(), list(v.iter().map(|i| i.map_or("", |i| ASSOCIATED[i].0)).collect()))
            }
            Gen::Other(n, v) => (n.clone(), v.clone()),
        }
    }
}

/// What the parser must answer: the parts of the request the model tracks, or the kind of refusal.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expected {
    Accepted {
        types: Vec<ResourceType>,
        ignored: usize,
        since: Option<i64>,
        until: Option<i64>,
        filters: usize,
        elements: usize,
        patients: Vec<String>,
        associated: Vec<AssociatedData>,
    },
    Invalid,
    NotSupported,
    Forbidden,
}

pub(super) fn summary(r: &ExportRequest) -> Expected {
    Expected::Accepted {
        types: r.types.clone(),
        ignored: r.ignored.len(),
        since: r.since.map(|t| t.unix_timestamp()),
        until: r.until.map(|t| t.unix_timestamp()),
        filters: r.type_filters.len(),
        elements: r.elements.len(),
        patients: r.patients.clone(),
        associated: r.include_associated.clone(),
    }
}

pub(super) fn kind(e: &RequestError) -> Expected {
    match e {
        RequestError::Invalid(_) => Expected::Invalid,
        RequestError::NotSupported(_) => Expected::NotSupported,
        RequestError::Forbidden => Expected::Forbidden,
    }
}

/// The documented rules, applied to the labelled parameters.
pub(super) fn model(
    level: &ExportLevel,
    query: &[Gen],
    body: &[Gen],
    who: &Principal,
    exportable: &[ResourceType],
    lenient: bool,
) -> Expected {
    use Expected::{Forbidden, Invalid, NotSupported};
    match (who.role, level) {
        (Role::Patient, ExportLevel::System | ExportLevel::Group(_)) => return Forbidden,
        (Role::Patient, _) if who.patient_id.is_none() => return Forbidden,
        _ => {}
    }
    let below_system = *level != ExportLevel::System;
    let (mut types, mut ignored, mut saw_type) = (Vec::new(), 0, false);
    let (mut since, mut until) = (None, None);
    let (mut filters, mut elements, mut patients, mut associated) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // A refusal lenient handling turns into a report.
    macro_rules! soft {
        ($kind:expr) => {
            if lenient {
                ignored += 1
            } else {
                return $kind;
            }
        };
    }
    for (g, in_body) in query.iter().map(|g| (g, false)).chain(body.iter().map(|g| (g, true))) {
        match g {
            Gen::Types(entries) => {
                saw_type = true;
                if entries.iter().any(|e| e.trim().is_empty()) {
                    return Invalid;
                }
                for e in entries {
                    match exportable.iter().find(|t| t.as_str() == e.trim()) {
                        None => soft!(Invalid),
                        Some(t) if below_system && !t.in_patient_compartment() => soft!(Invalid),
                        Some(t) if !types.contains(t) => types.push(*t),
                        Some(_) => {}
                    }
                }
            }
            Gen::Format(f) => {
                if !NDJSON_FORMATS.contains(&f.as_str()) {
                    return Invalid;
                }
            }
            Gen::Since(i) | Gen::Until(i) => {
                let slot = if matches!(g, Gen::Since(_)) { &mut since } else { &mut until };
                match INSTANTS[*i].1 {
                    Instant::Malformed => return Invalid,
                    _ if slot.is_some() => return Invalid,
                    Instant::Future if matches!(g, Gen::Since(_)) => return Invalid,
                    Instant::Future => *slot = Some(32_472_144_000), // 2999-01-01
                    Instant::At(t) => *slot = Some(t),
                }
            }
            Gen::Filters(list) => {
                for i in list {
                    match QUERIES[*i].1 {
                        Query::Invalid => soft!(Invalid),
                        Query::NotSupported => soft!(NotSupported),
                        Query::For(t) if !exportable.contains(&rt(t)) => soft!(Invalid),
                        Query::For(_) if !filters.contains(i) => filters.push(*i),
                        Query::For(_) => {}
                    }
                }
            }
            Gen::Elements(list) => {
                for entry in list {
                    match entry.map(|i| ELEMENTS[i].1) {
                        None | Some(None) => return Invalid,
                        Some(Some(name)) if !elements.contains(&name) => elements.push(name),
                        Some(Some(_)) => {}
                    }
                }
            }
            Gen::Patient(i) => match (in_body, below_system, PATIENTS[*i].1) {
                (false, _, _) => return Invalid,
                (true, false, _) => soft!(NotSupported),
                (true, true, None) => return Invalid,
                (true, true, Some(id)) if !patients.iter().any(|p| p == id) => patients.push(id.to_owned()),
                (true, true, Some(_)) => {}
            },
            Gen::Associated(list) => {
                if list.contains(&None) {
                    return Invalid;
                }
                for entry in list {
                    match entry.map(|i| ASSOCIATED[i].1) {
                        None => unreachable!("empty entries were refused above"),
                        Some(None) => soft!(NotSupported),
                        Some(Some(a)) if !associated.contains(&a) => associated.push(a),
                        Some(Some(_)) => {}
                    }
                }
            }
            Gen::Other(..) => soft!(NotSupported),
        }
    }
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Invalid;
        }
    }
    if saw_type {
        if types.iter().any(|t| !who.may_read(*t)) {
            return Forbidden;
        }
        if types.is_empty() {
            return Invalid;
        }
    } else {
        let at_level: Vec<ResourceType> =
            exportable.iter().copied().filter(|t| !below_system || t.in_patient_compartment()).collect();
        if at_level.is_empty() {
            return Invalid;
        }
        types = at_level.into_iter().filter(|t| who.may_read(*t)).collect();
        if types.is_empty() {
            return Forbidden;
        }
    }
    let before = filters.len();
    filters.retain(|i| matches!(QUERIES[*i].1, Query::For(t) if types.contains(&rt(t))));
    for _ in filters.len()..before {
        soft!(Invalid);
    }
    if who.role == Role::Patient && patients.iter().any(|p| Some(p) != who.patient_id.as_ref()) {
        return Forbidden;
    }
    Expected::Accepted {
        types,
        ignored,
        since,
        until,
        filters: filters.len(),
        elements: elements.len(),
        patients,
        associated,
    }
}
