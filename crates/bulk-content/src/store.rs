//! The `ContentStore` trait and the one function that picks a backend.

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bulk_core::settings::ContentSettings;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncRead;

use crate::{Cid, ContentError, KuboStore, LocalStore};

/// The bytes of a stored file, as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ContentError>> + Send>>;

/// What a writer hands to `put`: any async byte source.
pub type ContentReader = Box<dyn AsyncRead + Send + Sync + Unpin>;

/// The result of a `put`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Content identifier, as Kubo computes it with default settings.
    pub cid: Cid,
    /// Number of bytes stored.
    pub size: u64,
}

/// Content-addressed, pinned storage for export files.
#[async_trait]
pub trait ContentStore: Send + Sync {
    /// Reads `reader` to its end, stores and pins the bytes, and returns their CID.
    /// Never buffers the whole input.
    async fn put(&self, reader: ContentReader) -> Result<Stored, ContentError>;

    /// Streams the bytes stored under `cid`; `NotFound` when they are not there.
    async fn get(&self, cid: &Cid) -> Result<ByteStream, ContentError>;

    /// Drops our pin on `cid` so the store can reclaim the bytes. Unknown CIDs are not an error.
    async fn unpin(&self, cid: &Cid) -> Result<(), ContentError>;

    /// Whether the backend is reachable, for readiness probes.
    async fn health_check(&self) -> Result<(), ContentError>;
}

/// Builds the configured backend. Called once at start-up.
pub async fn open(settings: &ContentSettings) -> Result<Arc<dyn ContentStore>, ContentError> {
    Ok(match settings {
        ContentSettings::Kubo { api_url, timeout_secs } => Arc::new(KuboStore::new(api_url, *timeout_secs)?),
        ContentSettings::Local { dir } => Arc::new(LocalStore::open(dir).await?),
    })
}
