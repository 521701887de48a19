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

impl OutputFile {
    /// The CID of a file the manifest stores as `ipfs://{cid}`.
    pub fn cid(&self) -> Option<&str> {
        self.url.strip_prefix("ipfs://")
    }
}

impl Manifest {
    /// Every file the manifest lists: `output`, `error` and `deleted` alike.
    pub fn files(&self) -> impl Iterator<Item = &OutputFile> {
        self.output.iter().chain(&self.error).chain(&self.deleted)
    }

    /// [`Manifest::files`], to rewrite their URLs.
    pub fn files_mut(&mut self) -> impl Iterator<Item = &mut OutputFile> {
        self.output.iter_mut().chain(&mut self.error).chain(&mut self.deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ty: &str, url: &str) -> OutputFile {
        OutputFile { resource_type: ty.into(), url: url.into(), count: 1, extension: vec![] }
    }

    #[test]
    fn every_listed_file_is_visited_and_only_ipfs_urls_have_a_cid() {
        let m = Manifest {
            transaction_time: String::new(),
            request: String::new(),
            requires_access_token: true,
            output: vec![file("Patient", "ipfs://QmA")],
            error: vec![file("OperationOutcome", "ipfs://QmB")],
            deleted: vec![file("Bundle", "https://x/QmC")],
        };
        let types: Vec<&str> = m.files().map(|f| f.resource_type.as_str()).collect();
        assert_eq!(types, ["Patient", "OperationOutcome", "Bundle"]);
        assert_eq!(m.files().filter_map(OutputFile::cid).collect::<Vec<_>>(), ["QmA", "QmB"]);
    }
}
