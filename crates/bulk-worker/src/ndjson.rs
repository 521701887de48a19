//! One NDJSON file being streamed into the content store.

use std::sync::Arc;

use bulk_content::{ContentError, ContentStore, Stored};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

/// Size of the pipe between page writes and the upload: bounds the memory one
/// file in flight holds besides the current page.
const PIPE_BYTES: usize = 256 * 1024;

/// A file in the making: lines go into a pipe whose other end the content
/// store's `put` reads, while we hash and count them.
pub(crate) struct NdjsonFile {
    writer: DuplexStream,
    upload: JoinHandle<Result<Stored, ContentError>>,
    sha256: Sha256,
    lines: u64,
    bytes: u64,
}

/// A finished file.
pub(crate) struct WrittenFile {
    pub stored: Stored,
    pub lines: u64,
    pub sha256_hex: String,
}

impl NdjsonFile {
    /// Starts the upload.
    pub fn start(content: Arc<dyn ContentStore>) -> Self {
        let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
        let upload = tokio::spawn(async move { content.put(Box::new(reader)).await });
        NdjsonFile { writer, upload, sha256: Sha256::new(), lines: 0, bytes: 0 }
    }

    /// Appends resources, one compact JSON per line, exactly as stored.
    pub async fn write_page<'a>(&mut self, resources: impl Iterator<Item = &'a str>) -> Result<(), ContentError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        for json in resources {
            buf.extend_from_slice(json.as_bytes());
            buf.push(b'\n');
            self.lines += 1;
        }
        self.sha256.update(&buf);
        self.bytes += buf.len() as u64;
        if let Err(e) = self.writer.write_all(&buf).await {
            // The reading side is gone: the upload failed; its error says why.
            return Err(self.upload_error().await.unwrap_or(ContentError::Source(e)));
        }
        Ok(())
    }

    async fn upload_error(&mut self) -> Option<ContentError> {
        match (&mut self.upload).await {
            Ok(Err(e)) => Some(e),
            Ok(Ok(_)) => Some(ContentError::Unavailable("upload ended before the file was written".into())),
            Err(_) => Some(ContentError::Unavailable("upload task failed".into())),
        }
    }

    /// Ends the file and waits for the store's CID.
    pub async fn finish(mut self) -> Result<WrittenFile, ContentError> {
        self.writer.shutdown().await.map_err(ContentError::Source)?;
        drop(self.writer);
        let stored = match self.upload.await {
            Ok(r) => r?,
            Err(_) => return Err(ContentError::Unavailable("upload task failed".into())),
        };
        if stored.size != self.bytes {
            return Err(ContentError::Unavailable(format!(
                "content store stored {} bytes of {}",
                stored.size, self.bytes
            )));
        }
        let sha256_hex = self.sha256.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(WrittenFile { stored, lines: self.lines, sha256_hex })
    }

    /// Gives up on the file: the upload is aborted, so nothing is pinned.
    pub fn abort(self) {
        self.upload.abort();
    }
}
