//! The completion manifest (Bulk Data IG "Response - Complete Status").

use serde::{Deserialize, Serialize};

/// One exported file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Resource type of every line in the file.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Where to fetch it: `ipfs://{cid}`.
    pub url: String,
    /// Exact number of resources (lines) in the file.
    pub count: u64,
    /// CID, byte size and SHA-256 of the file, so a client can verify what it fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<serde_json::Value>,
}

/// The manifest a completed job answers with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// FHIR instant taken when the job started reading; nothing modified later is in the files.
    pub transaction_time: String,
    /// The full kick-off URL.
    pub request: String,
    /// Whether fetching the files needs the bearer token.
    pub requires_access_token: bool,
    /// The files, one or more per resource type that has resources.
    pub output: Vec<OutputFile>,
    /// Files of `OperationOutcome`s for partial failures; empty when none.
    pub error: Vec<OutputFile>,
    /// Files of transaction `Bundle`s with a `DELETE` entry per resource
    /// deleted since `_since`; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<OutputFile>,
}
