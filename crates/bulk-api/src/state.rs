//! What every handler shares.

use std::sync::Arc;

use bulk_content::ContentStore;
use bulk_core::settings::Conformance;
use bulk_core::ResourceType;
use bulk_queue::JobQueue;
use bulk_resources::ResourceStore;

use crate::smart::BackendServices;
use crate::{Throttle, Verifier};

/// Shared, cheaply cloned handler state.
#[derive(Clone)]
pub struct AppState {
    /// Job queue and records.
    pub queue: Arc<dyn JobQueue>,
    /// Where export files are served from.
    pub content: Arc<dyn ContentStore>,
    /// Bearer-token verification.
    pub verifier: Arc<Verifier>,
    /// Public base URL (no trailing slash) absolute URLs are built from.
    pub public_base_url: String,
    /// Usage document or Bulk Data IG v2 behaviour (cancel status, file URLs).
    pub conformance: Conformance,
    /// `429` limits: polls per job, concurrent exports per client.
    pub throttle: Arc<Throttle>,
    /// The SMART Backend Services token endpoint; `None` when no client is registered.
    pub smart: Option<Arc<BackendServices>>,
    /// Read only to validate a kick-off: does the Group of a group export exist?
    pub resources: Arc<dyn ResourceStore>,
    /// The deployment's exportable types (`export.types`), for kick-off parsing.
    pub exportable: Vec<ResourceType>,
}

impl AppState {
    /// State for an API on `settings`, sharing the given queue, content and
    /// resource stores (an all-in-one process hands the same ones to its workers).
    pub fn new(
        settings: &bulk_core::settings::Settings,
        queue: Arc<dyn JobQueue>,
        content: Arc<dyn ContentStore>,
        resources: Arc<dyn ResourceStore>,
    ) -> Result<Self, crate::auth::AuthConfigError> {
        let smart = BackendServices::from_settings(settings)?.map(Arc::new);
        let mut verifier = Verifier::from_settings(&settings.auth)?;
        if let Some(smart) = &smart {
            verifier = verifier.with_issued(smart.issued());
        }
        Ok(AppState {
            queue,
            content,
            verifier: Arc::new(verifier),
            public_base_url: settings.server.public_base_url.clone(),
            conformance: settings.conformance,
            throttle: Arc::new(Throttle::from_settings(&settings.server)),
            smart,
            resources,
            exportable: settings.export.types.clone(),
        })
    }

    /// The absolute status URL of a job.
    pub fn status_url(&self, id: &bulk_core::JobId) -> String {
        format!("{}/fhir/r4/$export-status/{id}", self.public_base_url)
    }

    /// The absolute URL of file `cid` of job `id` on the file endpoint (the
    /// manifest's `url` in `ig-v2` mode).
    pub fn file_url(&self, id: &bulk_core::JobId, cid: &str) -> String {
        format!("{}/fhir/r4/$export-file/{id}/{cid}", self.public_base_url)
    }
}
