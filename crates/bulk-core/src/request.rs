//! A kick-off request, parsed and authorised before anything is enqueued.

use serde::{Deserialize, Serialize};

use crate::{Principal, ResourceType, Role};

/// Which data an export covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "level", content = "id", rename_all = "snake_case")]
pub enum ExportLevel {
    /// `/$export`: everything on the server.
    System,
    /// `/Patient/$export`: every patient compartment the caller may see.
    Patient,
}

/// A validated export request: what the worker will export, for whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// System or patient level.
    pub level: ExportLevel,
    /// Types to export, without duplicates, in the order asked.
    pub types: Vec<ResourceType>,
    /// When set, only resources in this patient's compartment are exported.
    pub patient_scope: Option<String>,
    /// The full kick-off URL, echoed in the manifest's `request`.
    pub request_url: String,
}

/// Why a kick-off was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A parameter's value is malformed or unsupported.
    #[error("{0}")]
    Invalid(String),
    /// The parameter itself is not supported.
    #[error("{0}")]
    NotSupported(String),
    /// The caller may not make this request.
    #[error("Access denied")]
    Forbidden,
}

/// The `_outputFormat` spellings the IG says mean NDJSON.
const NDJSON_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Longest `_type` value we look at; a longer one cannot name supported types only.
const MAX_TYPE_PARAM_LEN: usize = 4096;

impl ExportRequest {
    /// Parses the query parameters of a kick-off at `level` by `principal`.
    ///
    /// `_type` may be repeated and comma-separated; an unknown or unsupported
    /// type, an unknown parameter, or a patient user asking for a system export
    /// is refused here so nothing is enqueued.
    pub fn parse(
        level: ExportLevel,
        params: &[(String, String)],
        principal: &Principal,
        request_url: String,
    ) -> Result<Self, RequestError> {
        let patient_scope = match (principal.role, &level) {
            (Role::Admin, _) => None,
            (Role::Patient, ExportLevel::System) => return Err(RequestError::Forbidden),
            (Role::Patient, ExportLevel::Patient) => Some(principal.patient_id.clone().ok_or(RequestError::Forbidden)?),
        };

        let mut types: Vec<ResourceType> = Vec::new();
        let mut saw_type = false;
        for (name, value) in params {
            match name.as_str() {
                "_type" => {
                    saw_type = true;
                    parse_types(value, &mut types)?;
                }
                "_outputFormat" => {
                    if !NDJSON_FORMATS.contains(&value.as_str()) {
                        return Err(RequestError::Invalid(format!(
                            "Unsupported _outputFormat '{}': only application/fhir+ndjson is supported",
                            printable(value)
                        )));
                    }
                }
                other => {
                    return Err(RequestError::NotSupported(format!("Unsupported parameter '{}'", printable(other))))
                }
            }
        }
        if !saw_type {
            types = ResourceType::ALL.to_vec();
        }
        Ok(ExportRequest { level, types, patient_scope, request_url })
    }
}

fn parse_types(value: &str, into: &mut Vec<ResourceType>) -> Result<(), RequestError> {
    if value.len() > MAX_TYPE_PARAM_LEN {
        return Err(RequestError::Invalid("The _type parameter is too long".into()));
    }
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(RequestError::Invalid("The _type parameter has an empty resource type".into()));
        }
        let t: ResourceType = name.parse().map_err(|_| {
            RequestError::Invalid(format!(
                "Unsupported resource type '{}' in _type; supported: {}",
                printable(name),
                ResourceType::ALL.map(ResourceType::as_str).join(", ")
            ))
        })?;
        if !into.contains(&t) {
            into.push(t);
        }
    }
    Ok(())
}

/// Echoes client input in a diagnostic without control characters and at a bounded length.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Principal {
        Principal { subject: "admin".into(), role: Role::Admin, patient_id: None }
    }

    fn patient(id: &str) -> Principal {
        Principal { subject: format!("user-{id}"), role: Role::Patient, patient_id: Some(id.into()) }
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn parse(level: ExportLevel, pairs: &[(&str, &str)], who: &Principal) -> Result<ExportRequest, RequestError> {
        ExportRequest::parse(level, &q(pairs), who, "http://x/fhir/r4/Patient/$export".into())
    }

    #[test]
    fn no_type_parameter_means_every_supported_type() {
        let r = parse(ExportLevel::Patient, &[], &admin()).expect("valid");
        assert_eq!(r.types, ResourceType::ALL.to_vec());
    }

    #[test]
    fn repeated_and_comma_separated_types_are_merged_without_duplicates() {
        let r = parse(
            ExportLevel::Patient,
            &[("_type", "Consent,Patient"), ("_type", "Patient"), ("_type", "Provenance")],
            &admin(),
        )
        .expect("valid");
        assert_eq!(r.types, vec![ResourceType::Consent, ResourceType::Patient, ResourceType::Provenance]);
    }

    #[test]
    fn an_unknown_type_is_invalid_and_named_in_the_message() {
        let err = parse(ExportLevel::System, &[("_type", "Patient,Observation")], &admin()).expect_err("invalid");
        assert!(matches!(&err, RequestError::Invalid(m) if m.contains("Observation")), "{err:?}");
    }

    #[test]
    fn empty_type_entries_are_invalid() {
        assert!(parse(ExportLevel::System, &[("_type", "Patient,,Consent")], &admin()).is_err());
        assert!(parse(ExportLevel::System, &[("_type", "")], &admin()).is_err());
    }

    #[test]
    fn an_unknown_parameter_is_not_silently_ignored() {
        let err = parse(ExportLevel::System, &[("_foo", "1")], &admin()).expect_err("refused");
        assert!(matches!(err, RequestError::NotSupported(m) if m.contains("_foo")));
    }

    #[test]
    fn the_three_ndjson_output_format_spellings_are_accepted_and_others_refused() {
        for f in NDJSON_FORMATS {
            assert!(parse(ExportLevel::System, &[("_outputFormat", f)], &admin()).is_ok(), "{f}");
        }
        assert!(parse(ExportLevel::System, &[("_outputFormat", "text/csv")], &admin()).is_err());
    }

    #[test]
    fn a_patient_user_is_scoped_to_their_own_compartment() {
        let r = parse(ExportLevel::Patient, &[], &patient("p7")).expect("valid");
        assert_eq!(r.patient_scope.as_deref(), Some("p7"));
    }

    #[test]
    fn a_patient_user_may_not_start_a_system_export() {
        assert_eq!(parse(ExportLevel::System, &[], &patient("p7")), Err(RequestError::Forbidden));
    }

    #[test]
    fn control_characters_in_input_are_not_echoed() {
        let err = parse(ExportLevel::System, &[("_type", "Pat\u{1b}[31mient")], &admin()).expect_err("invalid");
        assert!(!format!("{err}").contains('\u{1b}'));
    }
}
