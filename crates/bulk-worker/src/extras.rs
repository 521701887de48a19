//! The manifest's other arrays: `deleted` (transaction Bundles of `DELETE`
//! entries for resources deleted since `_since`) and `error` (NDJSON of
//! OperationOutcomes for what the export could not honour).

use std::sync::Arc;

use bulk_core::JobId;
use bulk_core::{IssueCode, OperationOutcome, OutputFile};
use bulk_resources::ResourceQuery;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::split::SplitWriter;
use crate::{JobError, Worker};

/// One line of a `deleted` file: a transaction Bundle deleting one resource.
pub(crate) fn deletion_bundle(resource_type: &str, id: &str) -> String {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": format!("{resource_type}/{id}")}}]
    })
    .to_string()
}

/// One line of an `error` file.
pub(crate) fn problem_outcome(diagnostics: &str) -> String {
    serde_json::to_string(&OperationOutcome::single("warning", IssueCode::Informational, diagnostics))
        .unwrap_or_default()
}

impl Worker {
    /// The `deleted` files: every resource of the queries' types (and
    /// compartments) deleted in the `(since, until]` window, by type.
    pub(crate) async fn deleted_files(
        &self,
        id: JobId,
        queries: &[ResourceQuery],
        lost: &CancellationToken,
    ) -> Result<Vec<OutputFile>, JobError> {
        let content_err = |source| JobError::Content { resource_type: "Bundle".into(), source };
        let mut files = SplitWriter::new(Arc::clone(&self.content), self.config.encrypt_files, self.config.files);
        let pages = async {
            for q in queries {
                let mut after: Option<String> = None;
                loop {
                    if lost.is_cancelled() {
                        return Err(JobError::LostLease);
                    }
                    let page = self.resources.deleted_page(q, after.as_deref(), self.config.page_size).await;
                    let page =
                        page.map_err(|source| JobError::Resources { resource_type: q.resource_type.clone(), source })?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.clone());
                    let lines: Vec<String> = page.iter().map(|i| deletion_bundle(&q.resource_type, i)).collect();
                    files.write(&lines).await.map_err(content_err)?;
                    self.progress(id, &bulk_queue::Progress::default()).await?;
                    if page.len() < self.config.page_size as usize {
                        break;
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = pages.await {
            self.unpin_finished(files.abandon()).await;
            return Err(e);
        }
        let finished = files.finish().await.map_err(content_err)?;
        self.recorded("Bundle", finished).await
    }

    /// The `error` files: one OperationOutcome per problem.
    pub(crate) async fn error_files(&self, problems: &[String]) -> Result<Vec<OutputFile>, JobError> {
        if problems.is_empty() {
            return Ok(Vec::new());
        }
        let content_err = |source| JobError::Content { resource_type: "OperationOutcome".into(), source };
        let mut files = SplitWriter::new(Arc::clone(&self.content), self.config.encrypt_files, self.config.files);
        let lines: Vec<String> = problems.iter().map(|p| problem_outcome(p)).collect();
        if let Err(e) = files.write(&lines).await {
            self.unpin_finished(files.abandon()).await;
            return Err(content_err(e));
        }
        let finished = files.finish().await.map_err(content_err)?;
        self.recorded("OperationOutcome", finished).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deletion_is_a_transaction_bundle_with_one_delete_entry() {
        let b: serde_json::Value = serde_json::from_str(&deletion_bundle("Observation", "o-1")).expect("JSON");
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        assert_eq!(b["entry"][0]["request"], json!({"method": "DELETE", "url": "Observation/o-1"}));
        assert_eq!(b["entry"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_problem_is_an_operation_outcome_line() {
        let o: serde_json::Value = serde_json::from_str(&problem_outcome("Patient/x was not found")).expect("JSON");
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["diagnostics"], "Patient/x was not found");
        assert_eq!(o["issue"][0]["severity"], "warning");
    }
}
