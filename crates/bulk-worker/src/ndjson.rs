//! One NDJSON file being streamed into the content store.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulk_content::{ciphertext_len, ContentError, ContentReader, ContentStore, EncryptingReader, FileKey, Stored};
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
    encrypted: bool,
}

/// A finished file.
pub(crate) struct WrittenFile {
    /// CID and size of what the store holds (the ciphertext when encrypted).
    pub stored: Stored,
    /// Size of the NDJSON itself.
    pub plain_bytes: u64,
    pub lines: u64,
    pub sha256_hex: String,
}

impl NdjsonFile {
    /// Starts the upload; with a key, the bytes are encrypted on the way.
    pub fn start(content: Arc<dyn ContentStore>, key: Option<&FileKey>) -> Self {
        let (sender, receiver) = mpsc::channel(PAGES_IN_FLIGHT);
        let reader: ContentReader = Box::new(PieceReader { receiver, current: Bytes::new(), ended: false });
        let reader: ContentReader = match key {
            Some(key) => Box::new(EncryptingReader::new(reader, key)),
            None => reader,
        };
        let encrypted = key.is_some();
        let upload = tokio::spawn(async move { content.put(reader).await });
        NdjsonFile { sender, upload, sha256: Sha256::new(), lines: 0, bytes: 0, encrypted }
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
        let expected = if self.encrypted { ciphertext_len(self.bytes) } else { self.bytes };
        if stored.size != expected {
            return Err(ContentError::Unavailable(format!(
                "content store stored {} bytes of {}",
                stored.size, self.bytes
            )));
        }
        let sha256_hex = std::mem::take(&mut self.sha256).finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(WrittenFile { stored, plain_bytes: self.bytes, lines: self.lines, sha256_hex })
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
        let mut f = NdjsonFile::start(content.clone(), None);
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
        let mut f = NdjsonFile::start(content.clone(), None);
        f.write_page(["{\"a\":1}"].into_iter()).await.expect("page");
        drop(f);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let blobs = std::fs::read_dir(dir.join("blobs")).expect("blobs").count();
        assert_eq!(blobs, 0, "a truncated file was stored");
        std::fs::remove_dir_all(dir).ok();
    }
}

#[cfg(test)]
mod encrypted_tests {
    use bulk_content::{decrypt_stream, LocalStore};
    use futures_util::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn an_encrypted_file_stores_ciphertext_that_decrypts_to_the_lines() {
        let dir = std::env::temp_dir().join(format!("ndjson-enc-{}", uuid::Uuid::new_v4()));
        let content: Arc<dyn ContentStore> = Arc::new(LocalStore::open(&dir).await.expect("store"));
        let key = FileKey::generate();
        let mut f = NdjsonFile::start(content.clone(), Some(&key));
        f.write_page(["{\"resourceType\":\"Patient\",\"id\":\"a\"}"].into_iter()).await.expect("page");
        let w = f.finish().await.expect("finish");
        assert_eq!(w.stored.size, ciphertext_len(w.plain_bytes));
        let raw: Vec<bytes::Bytes> = content.get(&w.stored.cid).await.expect("get").try_collect().await.expect("read");
        assert!(!raw.concat().windows(7).any(|x| x == b"Patient"), "plaintext in the store");
        let plain: Vec<bytes::Bytes> =
            decrypt_stream(content.get(&w.stored.cid).await.expect("get"), key).try_collect().await.expect("decrypt");
        assert_eq!(plain.concat(), b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n");
        std::fs::remove_dir_all(dir).ok();
    }
}
