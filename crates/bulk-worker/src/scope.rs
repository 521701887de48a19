//! Whose compartments an export reads: the level, a patient user's own
//! compartment, a group's members, and the `patient` parameter.

use bulk_core::{ExportLevel, ExportRequest};
use bulk_resources::{group_member_patients, PatientFilter};

use crate::{JobError, Worker};

/// The compartments to read, and what the client asked for that could not be
/// honoured (reported in the manifest's `error` file).
pub(crate) struct Scope {
    pub patients: PatientFilter,
    pub problems: Vec<String>,
}

impl Worker {
    /// Resolves the request's compartments as of now: group membership is
    /// read when the export runs, so it matches the data exported.
    pub(crate) async fn scope(&self, request: &ExportRequest) -> Result<Scope, JobError> {
        let store_err = |resource_type: &str| {
            let resource_type = resource_type.to_owned();
            move |source| JobError::Resources { resource_type, source }
        };
        // The patients the level (or the caller) allows; None: no restriction.
        let allowed: Option<Vec<String>> = match (&request.patient_scope, &request.level) {
            (Some(p), _) => Some(vec![p.clone()]),
            (None, ExportLevel::System | ExportLevel::Patient) => None,
            (None, ExportLevel::Group(id)) => {
                let group = self
                    .retrying("reading the group", || async {
                        self.resources.get("Group", id).await.map_err(store_err("Group"))
                    })
                    .await?;
                // Checked at kick-off; a group deleted since then has no members to export.
                Some(group.map(|json| group_member_patients(&json)).unwrap_or_default())
            }
        };
        let mut problems = Vec::new();
        if request.patients.is_empty() {
            let patients = match (allowed, &request.level) {
                (Some(ids), _) => PatientFilter::Patients(ids),
                (None, ExportLevel::System) => PatientFilter::All,
                (None, _) => PatientFilter::AnyPatient,
            };
            return Ok(Scope { patients, problems });
        }
        let existing = self
            .retrying("looking up the requested patients", || async {
                self.resources.existing("Patient", &request.patients).await.map_err(store_err("Patient"))
            })
            .await?;
        let mut chosen = Vec::new();
        for p in &request.patients {
            if !existing.contains(p) {
                problems.push(format!("Patient/{p} named in the patient parameter was not found"));
            } else if allowed.as_ref().is_some_and(|a| !a.contains(p)) {
                let whose = match &request.level {
                    ExportLevel::Group(g) => format!("a member of Group/{g}"),
                    _ => "in the caller's compartment".to_owned(),
                };
                problems.push(format!("Patient/{p} named in the patient parameter is not {whose}"));
            } else if !chosen.contains(p) {
                chosen.push(p.clone());
            }
        }
        Ok(Scope { patients: PatientFilter::Patients(chosen), problems })
    }
}
