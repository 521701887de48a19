//! FHIR `OperationOutcome`, the body of every error response.

use serde::{Deserialize, Serialize};

/// The FHIR `IssueType` codes this service uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueCode {
    /// Bad parameter or body.
    Invalid,
    /// Parameter or feature not supported.
    NotSupported,
    /// Authentication failed or missing.
    Login,
    /// Authenticated but not allowed.
    Forbidden,
    /// No such job or file.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// Too many requests.
    Throttled,
    /// A temporary failure; retry later.
    Transient,
    /// An internal failure.
    Exception,
    /// Informational.
    Informational,
}

/// One issue of an outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: String,
    /// What kind of problem.
    pub code: IssueCode,
    /// Human-readable detail; never carries internals or patient data.
    pub diagnostics: String,
}

/// A FHIR `OperationOutcome` resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// Always `"OperationOutcome"`.
    pub resource_type: String,
    /// The issues.
    pub issue: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with one `error` issue.
    pub fn error(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Self::single("error", code, diagnostics)
    }

    /// An outcome with one issue of the given severity.
    pub fn single(severity: &str, code: IssueCode, diagnostics: impl Into<String>) -> Self {
        OperationOutcome {
            resource_type: "OperationOutcome".into(),
            issue: vec![Issue { severity: severity.into(), code, diagnostics: diagnostics.into() }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_outcome_serialises_as_the_usage_document_shows() {
        let json = serde_json::to_value(OperationOutcome::error(IssueCode::NotFound, "Export job not found"))
            .expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Export job not found"}]
            })
        );
    }
}
