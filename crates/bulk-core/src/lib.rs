#![doc = include_str!("../README.md")]

pub mod compartment;
mod job;
mod manifest;
pub mod metrics;
mod outcome;
mod request;
mod resource_type;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use job::{InvalidJobId, JobId, JobStatus, Principal, Role};
pub use manifest::{Manifest, OutputFile};
pub use outcome::{IssueCode, OperationOutcome};
pub use request::{ExportLevel, ExportRequest, RequestError};
pub use resource_type::ResourceType;
