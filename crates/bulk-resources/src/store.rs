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
    /// Patient whose compartment it is in, if any.
    pub patient_id: Option<String>,
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
    /// Resources in this one patient's compartment.
    Only(String),
}

/// What one export of one type reads: resources of `resource_type`
/// matching `patients`, last updated no later than `until`.
#[derive(Clone, Debug)]
pub struct ResourceQuery {
    /// FHIR resource type.
    pub resource_type: String,
    /// Compartment restriction.
    pub patients: PatientFilter,
    /// The export's transaction time: later writes are not exported.
    pub until: OffsetDateTime,
}

/// Where resources are read from and loaded into.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Creates or upgrades the schema. Safe to call from many processes at once.
    async fn migrate(&self) -> Result<(), ResourceError>;

    /// Inserts or replaces resources by (type, id); returns how many were written.
    async fn upsert(&self, batch: &[NewResource]) -> Result<u64, ResourceError>;

    /// The compartment owner of already stored resources, by (type, id).
    async fn patient_of(&self, refs: &[(String, String)]) -> Result<Option<String>, ResourceError>;

    /// The current JSON of one resource, `None` when there is none (or it was deleted).
    async fn get(&self, resource_type: &str, id: &str) -> Result<Option<String>, ResourceError>;

    /// The store's current time; an export's transaction time.
    async fn now(&self) -> Result<OffsetDateTime, ResourceError>;

    /// How many resources `query` matches.
    async fn count(&self, query: &ResourceQuery) -> Result<u64, ResourceError>;

    /// Up to `limit` matching resources with id greater than `after`, by id (keyset pagination).
    async fn page(
        &self,
        query: &ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredResource>, ResourceError>;

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
