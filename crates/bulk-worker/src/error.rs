//! How a job can fail, classified for the queue's policy.

use bulk_content::ContentError;
use bulk_core::{IssueCode, OperationOutcome};
use bulk_queue::QueueError;
use bulk_resources::ResourceError;

/// Why an export job stopped before its manifest was written.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job was cancelled or handed to another worker: stop quietly.
    #[error("job no longer held by this worker")]
    LostLease,
    /// Reading resources failed.
    #[error("reading {resource_type} resources failed: {source}")]
    Resources {
        /// Type being exported.
        resource_type: String,
        /// Cause.
        #[source]
        source: ResourceError,
    },
    /// Writing a file failed.
    #[error("writing the {resource_type} file failed: {source}")]
    Content {
        /// Type being exported.
        resource_type: String,
        /// Cause.
        #[source]
        source: ContentError,
    },
    /// The queue failed.
    #[error("job queue failed: {0}")]
    Queue(#[from] QueueError),
}

impl JobError {
    /// A failure another attempt may not hit (an unreachable service).
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::LostLease => false,
            JobError::Resources { source, .. } => source.is_retryable(),
            JobError::Content { source, .. } => source.is_retryable(),
            JobError::Queue(e) => e.is_retryable(),
        }
    }

    /// What the client is told: which step failed, no internals.
    pub fn to_outcome(&self) -> OperationOutcome {
        let code = if self.is_retryable() { IssueCode::Transient } else { IssueCode::Exception };
        let text = match self {
            JobError::LostLease => "Export job was interrupted".to_owned(),
            JobError::Resources { resource_type, source } if source.is_retryable() => {
                format!("Export failed reading {resource_type} resources: the resource store is unavailable")
            }
            JobError::Resources { resource_type, .. } => {
                format!("Export failed reading {resource_type} resources from the resource store")
            }
            JobError::Content { resource_type, source } if source.is_retryable() => {
                format!("Export failed writing the {resource_type} file: the content store (IPFS) is unavailable")
            }
            JobError::Content { resource_type, .. } => {
                format!("Export failed writing the {resource_type} file to the content store (IPFS)")
            }
            JobError::Queue(_) => "Export failed: the job queue is unavailable".to_owned(),
        };
        OperationOutcome::error(code, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_content_store_is_a_transient_failure_naming_the_file() {
        let e = JobError::Content {
            resource_type: "Consent".into(),
            source: ContentError::Unavailable("connection refused 10.0.0.7:5001".into()),
        };
        let o = e.to_outcome();
        assert_eq!(o.issue[0].code, IssueCode::Transient);
        assert!(o.issue[0].diagnostics.contains("Consent"));
        assert!(!o.issue[0].diagnostics.contains("10.0.0.7"), "internals leaked");
    }

    #[test]
    fn a_failing_query_is_an_exception() {
        let e = JobError::Resources { resource_type: "Patient".into(), source: ResourceError::Query("syntax".into()) };
        assert_eq!(e.to_outcome().issue[0].code, IssueCode::Exception);
    }
}
