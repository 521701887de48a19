//! A kick-off request, parsed and authorised before anything is enqueued.
//!
//! GET query parameters and the parameters of a POST `Parameters` body feed
//! one parser ([`ExportRequest::parse`]); repeated parameters behave as
//! comma-joined values. What is unsupported or malformed is refused with a
//! message naming the parameter, unless the client sent
//! `Prefer: handling=lenient`: then what can be dropped is dropped and
//! reported in [`ExportRequest::ignored`], which the worker writes to the
//! manifest's `error` files.

mod body;
mod headers;
mod params;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::elements::ElementSpec;
use crate::type_filter::TypeFilter;
use crate::{Principal, ResourceType, Role};
pub use body::{parse_parameters, MAX_BODY_PARAMETERS};
pub use headers::{accepts_fhir_json, parse_prefer, Handling, Preferences};
pub use params::NDJSON_FORMATS;

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

/// `includeAssociatedData` values this service supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssociatedData {
    /// The most recent Provenance of each exported resource, and no other Provenance.
    LatestProvenanceResources,
    /// Every Provenance of each exported resource. When both values are
    /// asked for, this one (the larger set) wins, as the IG requires.
    RelevantProvenanceResources,
}

/// A validated export request: what the worker will export, for whom.
///
/// It is serialised into the job record; fields added after the first
/// release are `#[serde(default)]` so older records still load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// System, patient or group level.
    pub level: ExportLevel,
    /// Types to export, without duplicates, in the order asked (or the
    /// configured order when `_type` is absent); never empty.
    pub types: Vec<ResourceType>,
    /// When set, only resources in this patient's compartment are exported (a patient user).
    pub patient_scope: Option<String>,
    /// The full kick-off URL, echoed in the manifest's `request` (for a POST,
    /// the URL alone: body parameters are not in it).
    pub request_url: String,
    /// `_since`: only resources last updated after this instant.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub since: Option<OffsetDateTime>,
    /// `_until`: only resources last updated no later than this instant.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub until: Option<OffsetDateTime>,
    /// `_typeFilter` queries: a resource of a type with filters is exported
    /// when any of them matches ([`ExportRequest::passes_filters`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_filters: Vec<TypeFilter>,
    /// `_elements`: project exported resources with [`crate::elements::project`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<ElementSpec>,
    /// `patient` (POST only): ids of the only patients whose compartments are
    /// exported; the worker reports the ones it cannot find (or, at group
    /// level, that are not members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<String>,
    /// `includeAssociatedData` values; empty means the IG's default (every
    /// Provenance whose target is exported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_associated: Vec<AssociatedData>,
    /// Under `Prefer: handling=lenient`, what was ignored and why, one
    /// human-readable line each, for the manifest's `error` files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
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

/// What the parser needs besides the parameters.
#[derive(Clone, Debug)]
pub struct ParseOptions<'a> {
    /// The deployment's exportable types (`export.types`).
    pub exportable: &'a [ResourceType],
    /// `Prefer: handling=lenient`: drop and report what is unsupported.
    pub lenient: bool,
    /// The current time, against which `_since` must not be in the future.
    pub now: OffsetDateTime,
}

impl Default for ParseOptions<'_> {
    /// The usage document's four types, strict, now.
    fn default() -> Self {
        ParseOptions { exportable: &ResourceType::DEFAULT_EXPORTABLE, lenient: false, now: OffsetDateTime::now_utc() }
    }
}

impl ExportRequest {
    /// A request for `types` at `level` with no other parameters.
    pub fn new(level: ExportLevel, types: Vec<ResourceType>, request_url: impl Into<String>) -> Self {
        ExportRequest {
            level,
            types,
            patient_scope: None,
            request_url: request_url.into(),
            since: None,
            until: None,
            type_filters: Vec::new(),
            elements: Vec::new(),
            patients: Vec::new(),
            include_associated: Vec::new(),
            ignored: Vec::new(),
        }
    }

    /// Parses a kick-off at `level` by `principal`: `query` are the URL's
    /// parameters, `body` those of a POST `Parameters` body (see
    /// [`parse_parameters`]); `patient` is accepted only from the body.
    ///
    /// Checks, in order: the caller may use this level (else `Forbidden`);
    /// each parameter in turn (query first); then what depends on several
    /// (`_until` after `_since`, the types against the caller's scopes, each
    /// `_typeFilter`'s type among the exported types, a patient user naming
    /// only themselves).
    pub fn parse(
        level: ExportLevel,
        query: &[(String, String)],
        body: &[(String, String)],
        principal: &Principal,
        request_url: String,
        opts: &ParseOptions<'_>,
    ) -> Result<Self, RequestError> {
        let patient_scope = match (principal.role, &level) {
            (Role::Admin, _) => None,
            (Role::Patient, ExportLevel::System | ExportLevel::Group(_)) => return Err(RequestError::Forbidden),
            (Role::Patient, ExportLevel::Patient) => Some(principal.patient_id.clone().ok_or(RequestError::Forbidden)?),
        };
        let mut p = params::Parser::new(&level, opts);
        for (name, value) in query {
            p.param(name, value, false)?;
        }
        for (name, value) in body {
            p.param(name, value, true)?;
        }
        let mut request = p.finish(principal)?;
        request.level = level;
        request.patient_scope = patient_scope;
        request.request_url = request_url;
        Ok(request)
    }

    /// The `_typeFilter` queries that apply to resources of type `t`.
    pub fn filters_for(&self, t: ResourceType) -> impl Iterator<Item = &TypeFilter> {
        self.type_filters.iter().filter(move |f| f.resource_type() == t)
    }

    /// Whether a resource of type `t` passes `_typeFilter`: a type without
    /// filters always does, otherwise any one of its filters must match.
    pub fn passes_filters(&self, t: ResourceType, resource: &Value) -> bool {
        let mut filters = self.filters_for(t).peekable();
        filters.peek().is_none() || filters.any(|f| f.matches(resource))
    }
}

/// Echoes client input in a diagnostic without control characters and at a bounded length.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A FHIR logical id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
