//! One kick-off parameter at a time, then the checks that need them all.

use time::{Duration, OffsetDateTime};

use super::{is_fhir_id, printable, AssociatedData, ExportLevel, ExportRequest, ParseOptions, RequestError};
use crate::elements::ElementSpec;
use crate::fhir_time::parse_instant;
use crate::type_filter::{split_queries, FilterError, TypeFilter};
use crate::{Principal, ResourceType, Role};

/// The `_outputFormat` spellings the IG says mean NDJSON.
pub const NDJSON_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// How far in the future `_since` may be: a client that passes the previous
/// manifest's `transactionTime` (the store's clock) must not be refused
/// because the API's clock is a little behind.
pub(crate) const SINCE_CLOCK_SKEW: Duration = Duration::seconds(60);

/// Longest `_type`, `_elements` or `includeAssociatedData` value we look at.
pub(crate) const MAX_LIST_PARAM_LEN: usize = 4096;
/// Most `_typeFilter` queries in one request.
pub(crate) const MAX_TYPE_FILTERS: usize = 64;
/// Most `patient` references in one request.
pub(crate) const MAX_PATIENTS: usize = 10_000;

/// The state of a parse in progress.
pub(super) struct Parser<'a> {
    level: &'a ExportLevel,
    opts: &'a ParseOptions<'a>,
    saw_type: bool,
    request: ExportRequest,
}

fn invalid(m: String) -> RequestError {
    RequestError::Invalid(m)
}

impl<'a> Parser<'a> {
    pub(super) fn new(level: &'a ExportLevel, opts: &'a ParseOptions<'a>) -> Self {
        Parser { level, opts, saw_type: false, request: ExportRequest::new(level.clone(), Vec::new(), "") }
    }

    /// A refusal lenient handling may turn into a report.
    fn soft(&mut self, e: RequestError) -> Result<(), RequestError> {
        if self.opts.lenient {
            self.request.ignored.push(format!("Ignored: {e}"));
            Ok(())
        } else {
            Err(e)
        }
    }

    fn patient_level(&self) -> bool {
        !matches!(self.level, ExportLevel::System)
    }

    /// One parameter; `in_body` when it came from a POST `Parameters` body.
    pub(super) fn param(&mut self, name: &str, value: &str, in_body: bool) -> Result<(), RequestError> {
        match name {
            "_type" => self.types(value),
            "_outputFormat" if NDJSON_FORMATS.contains(&value) => Ok(()),
            "_outputFormat" => Err(invalid(format!(
                "Unsupported _outputFormat '{}': only application/fhir+ndjson is supported",
                printable(value)
            ))),
            "_since" | "_until" => self.instant(name, value),
            "_typeFilter" => self.type_filters(value),
            "_elements" => self.elements(value),
            "patient" => self.patient(value, in_body),
            "includeAssociatedData" => self.associated(value),
            other => self.soft(RequestError::NotSupported(format!("Unsupported parameter '{}'", printable(other)))),
        }
    }

    /// The comma-separated entries of a list parameter; an empty entry is malformed.
    fn entries(name: &str, value: &str) -> Result<Vec<String>, RequestError> {
        if value.len() > MAX_LIST_PARAM_LEN {
            return Err(invalid(format!("The {name} parameter is too long")));
        }
        let entries: Vec<String> = value.split(',').map(|e| e.trim().to_owned()).collect();
        if entries.iter().any(String::is_empty) {
            return Err(invalid(format!("The {name} parameter has an empty entry")));
        }
        Ok(entries)
    }

    fn types(&mut self, value: &str) -> Result<(), RequestError> {
        self.saw_type = true;
        for name in Self::entries("_type", value)? {
            let t = name.parse::<ResourceType>().ok().filter(|t| self.opts.exportable.contains(t));
            let Some(t) = t else {
                let supported = supported_list(self.opts.exportable);
                let msg = format!("Unsupported resource type '{}' in _type; {supported}", printable(&name));
                self.soft(invalid(msg))?;
                continue;
            };
            if self.patient_level() && !t.in_patient_compartment() {
                let msg =
                    format!("_type '{t}' is outside the Patient compartment; it is exported only at system level");
                self.soft(invalid(msg))?;
                continue;
            }
            if !self.request.types.contains(&t) {
                self.request.types.push(t);
            }
        }
        Ok(())
    }

    fn instant(&mut self, name: &str, value: &str) -> Result<(), RequestError> {
        let at = parse_instant(value).ok_or_else(|| {
            invalid(format!("{name} '{}' is not a FHIR instant (e.g. 2024-01-31T00:00:00Z)", printable(value)))
        })?;
        let slot = if name == "_since" { &mut self.request.since } else { &mut self.request.until };
        if slot.replace(at).is_some() {
            return Err(invalid(format!("{name} is given more than once")));
        }
        if name == "_since" && since_is_future(at, self.opts.now) {
            return Err(invalid(format!("_since '{}' is in the future", printable(value))));
        }
        Ok(())
    }

    fn type_filters(&mut self, value: &str) -> Result<(), RequestError> {
        for query in split_queries(value) {
            if self.request.type_filters.len() >= MAX_TYPE_FILTERS {
                return Err(invalid(format!("More than {MAX_TYPE_FILTERS} _typeFilter queries")));
            }
            match TypeFilter::parse(query) {
                Ok(f) if !self.opts.exportable.contains(&f.resource_type()) => {
                    let msg = format!("_typeFilter names '{}', which is not exported", f.resource_type());
                    self.soft(invalid(msg))?;
                }
                Ok(f) => {
                    if !self.request.type_filters.contains(&f) {
                        self.request.type_filters.push(f);
                    }
                }
                Err(FilterError::Invalid(m)) => self.soft(RequestError::Invalid(m))?,
                Err(FilterError::NotSupported(m)) => self.soft(RequestError::NotSupported(m))?,
            }
        }
        Ok(())
    }

    fn elements(&mut self, value: &str) -> Result<(), RequestError> {
        for entry in Self::entries("_elements", value)? {
            let spec: ElementSpec = entry.parse().map_err(|e: crate::elements::InvalidElement| invalid(e.0))?;
            if !self.request.elements.contains(&spec) {
                self.request.elements.push(spec);
            }
        }
        Ok(())
    }

    fn patient(&mut self, value: &str, in_body: bool) -> Result<(), RequestError> {
        if !in_body {
            return Err(invalid(
                "The patient parameter is accepted only in a POST Parameters body, as a valueReference".into(),
            ));
        }
        if !self.patient_level() {
            return self.soft(RequestError::NotSupported(
                "The patient parameter does not apply to a system-level export".into(),
            ));
        }
        let id = value.strip_prefix("Patient/").filter(|id| is_fhir_id(id)).ok_or_else(|| {
            invalid(format!("patient '{}' is not a reference of the form Patient/[id]", printable(value)))
        })?;
        if !self.request.patients.iter().any(|p| p == id) {
            if self.request.patients.len() >= MAX_PATIENTS {
                return Err(invalid(format!("More than {MAX_PATIENTS} patient parameters")));
            }
            self.request.patients.push(id.to_owned());
        }
        Ok(())
    }

    fn associated(&mut self, value: &str) -> Result<(), RequestError> {
        for entry in Self::entries("includeAssociatedData", value)? {
            let v = match entry.as_str() {
                "LatestProvenanceResources" => AssociatedData::LatestProvenanceResources,
                "RelevantProvenanceResources" => AssociatedData::RelevantProvenanceResources,
                other => {
                    let msg = format!(
                        "includeAssociatedData value '{}' is not supported; supported: \
                         LatestProvenanceResources, RelevantProvenanceResources",
                        printable(other)
                    );
                    self.soft(RequestError::NotSupported(msg))?;
                    continue;
                }
            };
            if !self.request.include_associated.contains(&v) {
                self.request.include_associated.push(v);
            }
        }
        Ok(())
    }

    /// The checks that need every parameter.
    pub(super) fn finish(mut self, who: &Principal) -> Result<ExportRequest, RequestError> {
        if let (Some(since), Some(until)) = (self.request.since, self.request.until) {
            if until < since {
                return Err(invalid("_until is before _since".into()));
            }
        }
        if self.saw_type {
            if self.request.types.iter().any(|t| !who.may_read(*t)) {
                return Err(RequestError::Forbidden);
            }
            if self.request.types.is_empty() {
                return Err(invalid("No exportable resource type is left in _type".into()));
            }
        } else {
            let at_level: Vec<ResourceType> = self
                .opts
                .exportable
                .iter()
                .copied()
                .filter(|t| !self.patient_level() || t.in_patient_compartment())
                .collect();
            if at_level.is_empty() {
                return Err(invalid("No exportable resource type is in the Patient compartment".into()));
            }
            self.request.types = at_level.into_iter().filter(|t| who.may_read(*t)).collect();
            if self.request.types.is_empty() {
                return Err(RequestError::Forbidden);
            }
        }
        let filters = std::mem::take(&mut self.request.type_filters);
        for f in filters {
            if self.request.types.contains(&f.resource_type()) {
                self.request.type_filters.push(f);
            } else {
                let msg = format!("_typeFilter for '{}', a type this export does not include", f.resource_type());
                self.soft(invalid(msg))?;
            }
        }
        if who.role == Role::Patient && self.request.patients.iter().any(|p| Some(p) != who.patient_id.as_ref()) {
            return Err(RequestError::Forbidden);
        }
        Ok(self.request)
    }
}

/// "supported: A, B, …" for a diagnostic, or a pointer when the list is long
/// (diagnostics stay short).
fn supported_list(types: &[ResourceType]) -> String {
    let list = types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    if list.len() <= 120 {
        format!("supported: {list}")
    } else {
        "see the CapabilityStatement for the supported types".into()
    }
}

/// Whether `_since` is later than `now` allows.
fn since_is_future(since: OffsetDateTime, now: OffsetDateTime) -> bool {
    since > now + SINCE_CLOCK_SKEW
}
