#![doc = include_str!("../README.md")]

pub mod compartment;
pub mod elements;
mod fhir_time;
mod job;
mod manifest;
pub mod metrics;
mod outcome;
mod request;
mod resource_type;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod type_filter;

pub use elements::ElementSpec;
pub use job::{InvalidJobId, JobId, JobStatus, Principal, Role};
pub use manifest::{Manifest, OutputFile};
pub use outcome::{IssueCode, OperationOutcome};
pub use request::{
    accepts_fhir_json, is_fhir_id, parse_parameters, parse_prefer, AssociatedData, ExportLevel, ExportRequest,
    Handling, ParseOptions, Preferences, RequestError, MAX_BODY_PARAMETERS, NDJSON_FORMATS,
};
pub use resource_type::ResourceType;
pub use type_filter::TypeFilter;
