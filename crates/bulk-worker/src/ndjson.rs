//! One NDJSON file being streamed into the content store.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulk_content::{ContentError, ContentStore, Stored};
use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pages in flight between the page writer and the upload: bounds the memory
/// one file holds to this many pages.
const PAGES_IN_FLIGHT: usize = 2;

/// What the writer sends: bytes, then an explicit end. A writer that goes away
/// without `End` (crash, abort, cancel) makes the upload fail instead of
/// storing a truncated file.
enum Piece {
    Data(Bytes),
    End,
}

/// A file in the making: pages go through a bounded channel to the content
/// store's `put`, while we hash and count them.
pub(crate) struct NdjsonFile {
    sender: mpsc::Sender<Piece>,
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
        let (sender, receiver) = mpsc::channel(PAGES_IN_FLIGHT);
        let reader = PieceReader { receiver, current: Bytes::new(), ended: false };
        let upload = tokio::spawn(async move { content.put(Box::new(reader)).await });
        NdjsonFile { sender, upload, sha256: Sha256::new(), lines: 0, bytes: 0 }
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
        if self.sender.send(Piece::Data(Bytes::from(buf))).await.is_err() {
            // The upload stopped reading: it failed, and its error says why.
            return Err(self.upload_error().await);
        }
        Ok(())
    }

    async fn upload_error(&mut self) -> ContentError {
        match (&mut self.upload).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => ContentError::Unavailable("upload ended before the file was written".into()),
            Err(_) => ContentError::Unavailable("upload task failed".into()),
        }
    }

    /// Ends the file and waits for the store's CID.
    pub async fn finish(mut self) -> Result<WrittenFile, ContentError> {
        if self.sender.send(Piece::End).await.is_err() {
            return Err(self.upload_error().await);
        }
        let stored = match (&mut self.upload).await {
            Ok(r) => r?,
            Err(_) => return Err(ContentError::Unavailable("upload task failed".into())),
        };
        if stored.size != self.bytes {
            return Err(ContentError::Unavailable(format!(
                "content store stored {} bytes of {}",
                stored.size, self.bytes
            )));
        }
        let sha256_hex = std::mem::take(&mut self.sha256).finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(WrittenFile { stored, lines: self.lines, sha256_hex })
    }
}

impl NdjsonFile {
    /// Gives up on the file: nothing is stored or pinned.
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for NdjsonFile {
    /// Dropped before `finish` (error, cancel, shutdown): the upload sees the
    /// channel close without `End`, fails, and nothing is pinned.
    fn drop(&mut self) {
        if !self.upload.is_finished() {
            self.upload.abort();
        }
    }
}

/// The upload's side of the channel, as an `AsyncRead`.
struct PieceReader {
    receiver: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl AsyncRead for PieceReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if self.current.has_remaining() {
                let n = self.current.len().min(buf.remaining());
                buf.put_slice(&self.current[..n]);
                self.current.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(Piece::Data(b))) => self.current = b,
                Poll::Ready(Some(Piece::End)) => self.ended = true,
                Poll::Ready(None) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "export file abandoned before its end",
                    )))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bulk_content::LocalStore;

    use super::*;

    async fn store() -> (Arc<dyn ContentStore>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ndjson-{}", uuid::Uuid::new_v4()));
        (Arc::new(LocalStore::open(&dir).await.expect("store")), dir)
    }

    #[tokio::test]
    async fn a_finished_file_has_every_line_its_hash_and_its_size() {
        let (content, dir) = store().await;
        let mut f = NdjsonFile::start(content.clone());
        f.write_page(["{\"a\":1}", "{\"b\":2}"].into_iter()).await.expect("page");
        f.write_page(["{\"c\":3}"].into_iter()).await.expect("page");
        let w = f.finish().await.expect("finish");
        assert_eq!((w.lines, w.stored.size), (3, 24));
        let expected: String =
            Sha256::digest(b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(w.sha256_hex, expected);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_file_dropped_before_its_end_stores_nothing() {
        let (content, dir) = store().await;
        let mut f = NdjsonFile::start(content.clone());
        f.write_page(["{\"a\":1}"].into_iter()).await.expect("page");
        drop(f);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let blobs = std::fs::read_dir(dir.join("blobs")).expect("blobs").count();
        assert_eq!(blobs, 0, "a truncated file was stored");
        std::fs::remove_dir_all(dir).ok();
    }
}
