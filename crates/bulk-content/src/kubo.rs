//! The production content store: a Kubo node's RPC API.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use ipfs_api_backend_hyper::{request::Add, IpfsApi, IpfsClient, TryFromUri};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::{ByteStream, Cid, ContentError, ContentReader, ContentStore, Stored};

/// Talks to Kubo's `/api/v0` over HTTP.
pub struct KuboStore {
    client: IpfsClient,
    /// Bounds calls that are not streamed uploads: a `cat` of a CID the node
    /// cannot find waits forever otherwise.
    timeout: Duration,
}

impl KuboStore {
    /// A client for the node at `api_url` (e.g. `http://127.0.0.1:5001`).
    pub fn new(api_url: &str, timeout_secs: u64) -> Result<Self, ContentError> {
        let client = IpfsClient::from_str(api_url)
            .map_err(|e| ContentError::Unavailable(format!("invalid Kubo API URL: {e}")))?;
        Ok(KuboStore { client, timeout: Duration::from_secs(timeout_secs.max(1)) })
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ipfs_api_backend_hyper::Error>>,
    ) -> Result<T, ContentError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(ContentError::Unavailable("Kubo RPC call timed out".into())),
        }
    }
}

fn unavailable(e: ipfs_api_backend_hyper::Error) -> ContentError {
    ContentError::Unavailable(e.to_string())
}

#[async_trait]
impl ContentStore for KuboStore {
    async fn put(&self, reader: ContentReader) -> Result<Stored, ContentError> {
        let counted = Arc::new(AtomicU64::new(0));
        let source = CountingReader { inner: reader, count: counted.clone() };
        // Kubo's defaults (CIDv0, 256 KiB chunks, balanced DAG), stated so a
        // node configured otherwise still gives the CIDs the local store gives.
        let options = Add {
            pin: Some(true),
            cid_version: Some(0),
            chunker: Some("size-262144"),
            raw_leaves: Some(false),
            trickle: Some(false),
            ..Default::default()
        };
        let response = self.client.add_async_with_options(source.compat(), options).await.map_err(unavailable)?;
        let cid: Cid = response
            .hash
            .parse()
            .map_err(|_| ContentError::Unavailable("Kubo answered add with an unexpected CID".into()))?;
        Ok(Stored { cid, size: counted.load(Ordering::Relaxed) })
    }

    async fn get(&self, cid: &Cid) -> Result<ByteStream, ContentError> {
        // Is it ours? `pin/ls` answers at once, where `cat` of a missing CID would hang.
        let pinned = self.bounded(self.client.pin_ls(Some(cid.as_str()), None)).await;
        if let Err(e) = pinned {
            return Err(if e.to_string().contains("not pinned") { ContentError::NotFound } else { e });
        }
        let stream = self.client.cat(cid.as_str()).map_err(unavailable);
        Ok(Box::pin(stream.boxed()))
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), ContentError> {
        match self.bounded(self.client.pin_rm(cid.as_str(), true)).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("not pinned") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn health_check(&self) -> Result<(), ContentError> {
        self.bounded(self.client.version()).await.map(|_| ())
    }
}

/// Counts bytes as they pass to Kubo, so `Stored::size` is the file's size
/// (Kubo's `Size` is the DAG's, which includes node overhead).
struct CountingReader {
    inner: ContentReader,
    count: Arc<AtomicU64>,
}

impl AsyncRead for CountingReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.count.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        res
    }
}
