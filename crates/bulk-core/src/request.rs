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
    /// `/Group/{id}/$export`: the compartments of the group's member patients.
    Group(String),
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
            (Role::Patient, ExportLevel::Group(_)) => return Err(RequestError::Forbidden),
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
            types = ResourceType::DEFAULT_EXPORTABLE.to_vec();
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
        let t: ResourceType =
            name.parse().ok().filter(|t| ResourceType::DEFAULT_EXPORTABLE.contains(t)).ok_or_else(|| {
                RequestError::Invalid(format!(
                    "Unsupported resource type '{}' in _type; supported: {}",
                    printable(name),
                    ResourceType::DEFAULT_EXPORTABLE.map(ResourceType::as_str).join(", ")
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
mod tests;
