//! Job identity, life cycle and who asked for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An export job's id: a random UUID, so ids cannot be guessed or enumerated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh random id.
    pub fn new() -> Self {
        JobId(Uuid::new_v4())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

/// The text is not a job id this service hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid export job id")]
pub struct InvalidJobId;

impl FromStr for JobId {
    type Err = InvalidJobId;
    /// Accepts only the lower-case hyphenated form we hand out, so one job has one URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uuid = Uuid::try_parse(s).map_err(|_| InvalidJobId)?;
        if s.len() == 36 && uuid.hyphenated().to_string() == s {
            Ok(JobId(uuid))
        } else {
            Err(InvalidJobId)
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting on the queue.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Manifest written.
    Completed,
    /// Ended with an error.
    Failed,
    /// Cancelled or discarded by its owner.
    Cancelled,
}

impl JobStatus {
    /// The string stored in Redis and shown in the status body.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses what `as_str` wrote.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "in_progress" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    /// No more work will happen; the record is on its final TTL.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// What a verified token lets its bearer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Exports everything.
    Admin,
    /// Exports only their own compartment.
    Patient,
}

/// The authenticated caller, as taken from a verified token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The token's `sub`: who owns the jobs this caller creates.
    pub subject: String,
    /// Admin or patient.
    pub role: Role,
    /// For patient users, the patient id whose compartment they may export.
    pub patient_id: Option<String>,
    /// The resource types the token's scopes grant; `None` grants every type.
    #[serde(default)]
    pub granted_types: Option<Vec<crate::ResourceType>>,
}

impl Principal {
    /// An administrator with access to every type.
    pub fn admin(subject: impl Into<String>) -> Self {
        Principal { subject: subject.into(), role: Role::Admin, patient_id: None, granted_types: None }
    }

    /// A patient user who may export `patient_id`'s compartment, every type.
    pub fn patient(subject: impl Into<String>, patient_id: impl Into<String>) -> Self {
        Principal {
            subject: subject.into(),
            role: Role::Patient,
            patient_id: Some(patient_id.into()),
            granted_types: None,
        }
    }

    /// Whether the token's scopes grant reading resources of type `t`.
    pub fn may_read(&self, t: crate::ResourceType) -> bool {
        self.granted_types.as_ref().is_none_or(|g| g.contains(&t))
    }

    /// Whether this caller may see, cancel or download a job owned by `owner`.
    pub fn may_access(&self, owner: &str) -> bool {
        self.role == Role::Admin || self.subject == owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_round_trip_through_their_text_form() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().ok(), Some(id));
    }

    #[test]
    fn non_canonical_job_ids_are_rejected() {
        let id = JobId::new().to_string();
        assert!(id.replace('-', "").parse::<JobId>().is_err());
        assert!(format!("{{{id}}}").parse::<JobId>().is_err());
        assert!("not-a-uuid".parse::<JobId>().is_err());
    }

    #[test]
    fn a_patient_may_only_access_their_own_jobs_and_an_admin_all() {
        let p = Principal::patient("u1", "p1");
        assert!(p.may_access("u1"));
        assert!(!p.may_access("u2"));
        let a = Principal::admin("root");
        assert!(a.may_access("u2"));
    }
}
