//! A job record as read back from its Redis hash.

use std::collections::HashMap;

use bulk_core::{ExportRequest, JobId, JobStatus, Manifest, OperationOutcome, OutputFile};

use crate::QueueError;

/// Everything known about one job.
#[derive(Clone, Debug)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// Where it is in its life.
    pub status: JobStatus,
    /// `sub` of the token that created it; only they (and admins) may see it.
    pub owner: String,
    /// What to export.
    pub request: ExportRequest,
    /// Worker holding the lease, while running.
    pub worker: Option<String>,
    /// How many times a worker claimed it.
    pub attempts: u32,
    /// Resources written so far.
    pub processed: u64,
    /// Resources the export will write in all (known once counted).
    pub total: u64,
    /// The FHIR instant the export reads as of, once started.
    pub transaction_time: Option<String>,
    /// The manifest, once completed.
    pub manifest: Option<Manifest>,
    /// Why it failed, once failed.
    pub error: Option<OperationOutcome>,
    /// When a worker first claimed it (ms since the epoch); kept across
    /// re-claims, so progress over time since then estimates the time left.
    pub started_at: Option<u64>,
    /// Files an earlier attempt completed (still pinned): a re-run keeps them
    /// and the transaction time, and exports only the types not yet done.
    pub checkpoint: Vec<OutputFile>,
}

impl JobRecord {
    /// Progress in percent, 0–100; 100 only when completed.
    pub fn progress(&self) -> u8 {
        match self.status {
            JobStatus::Completed => 100,
            _ if self.total == 0 => 0,
            // Never 100 before the manifest is written.
            _ => ((self.processed.min(self.total) * 100 / self.total) as u8).min(99),
        }
    }

    /// What operators see of a job (admin API and `fhir-bulk jobs`): no manifest.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "status": self.status.as_str(),
            "owner": self.owner,
            "request": self.request.request_url,
            "types": self.request.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "attempts": self.attempts,
            "worker": self.worker,
            "progress": self.progress(),
            "processed": self.processed,
            "total": self.total,
            "transactionTime": self.transaction_time,
            "error": self.error,
        })
    }

    pub(crate) fn from_fields(id: JobId, mut h: HashMap<String, String>) -> Result<Self, QueueError> {
        let status = h
            .get("status")
            .and_then(|s| JobStatus::parse(s))
            .ok_or_else(|| QueueError::Corrupt(format!("job {id}: bad status")))?;
        let request = h
            .get("request")
            .ok_or_else(|| QueueError::Corrupt(format!("job {id}: no request")))
            .and_then(|r| serde_json::from_str(r).map_err(|e| QueueError::Corrupt(format!("job {id}: {e}"))))?;
        let num = |h: &HashMap<String, String>, k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let manifest = match h.get("manifest") {
            Some(m) => Some(serde_json::from_str(m).map_err(|e| QueueError::Corrupt(format!("job {id}: {e}")))?),
            None => None,
        };
        let error = match h.get("error") {
            Some(m) => Some(serde_json::from_str(m).map_err(|e| QueueError::Corrupt(format!("job {id}: {e}")))?),
            None => None,
        };
        let checkpoint = match h.get("checkpoint") {
            Some(c) => serde_json::from_str(c).map_err(|e| QueueError::Corrupt(format!("job {id}: {e}")))?,
            None => Vec::new(),
        };
        Ok(JobRecord {
            checkpoint,
            id,
            status,
            owner: h.remove("owner").unwrap_or_default(),
            request,
            worker: h.remove("worker"),
            attempts: num(&h, "attempts") as u32,
            processed: num(&h, "processed"),
            total: num(&h, "total"),
            started_at: h.get("started_at").and_then(|v| v.parse().ok()),
            transaction_time: h.remove("transaction_time"),
            manifest,
            error,
        })
    }
}
