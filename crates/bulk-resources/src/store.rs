//! The `ResourceStore` trait and the one function that picks a backend.

use std::sync::Arc;

use async_trait::async_trait;
use bulk_core::settings::ResourceSettings;
use time::OffsetDateTime;

use crate::{PostgresStore, ResourceError, SqliteStore};

/// A resource to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewResource {
    /// FHIR resource type.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// Patients whose compartments it is in (none for a resource outside the
    /// Patient compartment). Writing the resource replaces its membership.
    pub patient_ids: Vec<String>,
    /// The resource JSON, exactly as it will be exported.
    pub json: String,
}

/// A resource read back for export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResource {
    /// Logical id (the paging cursor).
    pub id: String,
    /// The JSON as stored.
    pub json: String,
}

/// Which compartments an export reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatientFilter {
    /// Every resource (system export).
    All,
    /// Resources in any patient's compartment (admin `Patient/$export`).
    AnyPatient,
    /// Resources in the compartment of any of these patients (a patient's own
    /// export, a Group's members, the `patient` parameter). Empty matches nothing.
    Patients(Vec<String>),
}

/// What one export of one type reads: resources of `resource_type`
/// matching `patients`, last updated after `since` and no later than `until`.
#[derive(Clone, Debug)]
pub struct ResourceQuery {
    /// FHIR resource type.
    pub resource_type: String,
    /// Compartment restriction.
    pub patients: PatientFilter,
    /// `_since`: only resources last updated strictly after it; `None` for all.
    pub since: Option<OffsetDateTime>,
    /// The export's transaction time: later writes are not exported.
    pub until: OffsetDateTime,
}

/// Where resources are read from and loaded into.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Creates or upgrades the schema. Safe to call from many processes at once.
    async fn migrate(&self) -> Result<(), ResourceError>;

    /// Inserts or replaces resources by (type, id), with their compartment
    /// membership; a deleted resource written again is live again. Returns how
    /// many were written. Within a batch, the last of a repeated (type, id) wins.
    async fn upsert(&self, batch: &[NewResource]) -> Result<u64, ResourceError>;

    /// Marks resources deleted, by (type, id): tombstones keep their row and
    /// compartment membership, with `last_updated` set to the store's clock, so
    /// an export with `_since` can list them. Returns how many were newly
    /// deleted (absent or already deleted ones are not counted).
    async fn delete(&self, refs: &[(String, String)]) -> Result<u64, ResourceError>;

    /// The patients in whose compartments the given stored, not deleted
    /// resources are, sorted and distinct (a Provenance follows its targets here).
    async fn patients_of(&self, refs: &[(String, String)]) -> Result<Vec<String>, ResourceError>;

    /// The current JSON of one resource, `None` when there is none (or it was deleted).
    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError>;

    /// The store's current time; an export's transaction time.
    async fn now(&self) -> Result<OffsetDateTime, ResourceError>;

    /// How many live (not deleted) resources `query` matches.
    async fn count(&self, query: &ResourceQuery) -> Result<u64, ResourceError>;

    /// Up to `limit` matching live resources with id greater than `after`, by id (keyset pagination).
    async fn page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredResource>, ResourceError>;

    /// Ids of the tombstones of `query.resource_type` in the compartments
    /// `query.patients` selects, deleted after `query.since` and no later than
    /// `query.until`: up to `limit` with id greater than `after`, by id.
    async fn deleted_page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, ResourceError>;

    /// Which of `ids` exist as resources of `resource_type` and are not
    /// deleted, by id, each once.
    async fn existing(&self, resource_type: &str, ids: &[String]) -> Result<Vec<String>, ResourceError>;

    /// Whether the database answers, for readiness probes.
    async fn health_check(&self) -> Result<(), ResourceError>;
}

/// Builds the configured backend and migrates its schema. Called once at start-up.
pub async fn open(settings: &ResourceSettings) -> Result<Arc<dyn ResourceStore>, ResourceError> {
    let store: Arc<dyn ResourceStore> = match settings {
        ResourceSettings::Postgres { url, pool_size } => Arc::new(PostgresStore::connect(url, *pool_size)?),
        ResourceSettings::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
    };
    store.migrate().await?;
    Ok(store)
}
