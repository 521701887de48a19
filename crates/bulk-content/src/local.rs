//! The embedded content store: a directory of files named by their Kubo CID.
//!
//! Layout under the configured directory:
//! - `blobs/{cid}`: one file per stored content, written once and never changed;
//! - `tmp/`: uploads in progress, renamed into `blobs/` once complete and synced.
//!
//! A blob appears in `blobs/` only by an atomic rename of a fully written and
//! synced file, so a reader never sees a partial blob, even after a crash.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::{ByteStream, Cid, CidBuilder, ContentError, ContentReader, ContentStore, Stored};

/// Size of the reads from a `put` source: large enough that per-read overhead
/// vanishes, small enough to keep memory flat.
const IO_CHUNK: usize = 128 * 1024;

/// Size of the chunks a `get` stream yields.
const READ_CHUNK: usize = 64 * 1024;

/// Prefix of temp file names; also what `open` recognises as leftovers to remove.
const TMP_PREFIX: &str = "put-";

/// Makes temp file names unique within the process; the pid and the clock make
/// them unique across processes and restarts.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of blobs named by CID, computing the same CIDs as Kubo.
///
/// There is no pin set: a stored blob is pinned, `unpin` deletes it.
#[derive(Debug)]
pub struct LocalStore {
    /// Finished blobs, `blobs/{cid}`.
    blobs: PathBuf,
    /// Uploads in progress; only this store writes here.
    tmp: PathBuf,
}

impl LocalStore {
    /// Opens the store in `dir`, creating `dir/blobs` and `dir/tmp`, and removes
    /// temp files a crashed process left behind.
    ///
    /// The directory must belong to one process: leftovers are recognised by
    /// name only, so a second process opening it would delete the uploads the
    /// first one has in progress.
    pub async fn open(dir: &Path) -> Result<Self, ContentError> {
        let blobs = dir.join("blobs");
        let tmp = dir.join("tmp");
        tokio::fs::create_dir_all(&blobs).await?;
        tokio::fs::create_dir_all(&tmp).await?;

        let mut entries = tokio::fs::read_dir(&tmp).await?;
        let mut removed = 0usize;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %tmp.display(), "removed unfinished uploads");
        }
        Ok(LocalStore { blobs, tmp })
    }

    /// Where the blob of `cid` lives. `Cid` only admits base58 and base32
    /// characters, so the name cannot escape `blobs/`.
    fn blob_path(&self, cid: &Cid) -> PathBuf {
        self.blobs.join(cid.as_str())
    }

    /// A fresh, unique temp file path.
    fn tmp_path(&self) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{TMP_PREFIX}{}-{nanos}-{n}", std::process::id()))
    }

    /// Streams `reader` into the temp file behind `guard`, computing the CID.
    async fn write_tmp(guard: &TmpFile, mut reader: ContentReader) -> Result<CidBuilder, ContentError> {
        // `create_new`: the name is unique, so an existing file means a bug, not
        // something to overwrite.
        let mut file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&guard.path).await?;
        let mut builder = CidBuilder::new();
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            let n = reader.read(&mut buf).await.map_err(ContentError::Source)?;
            if n == 0 {
                break;
            }
            // Hashing 128 KiB takes well under a millisecond, short enough to do
            // on the runtime thread rather than hopping to a blocking one.
            builder.update(&buf[..n]);
            file.write_all(&buf[..n]).await?;
        }
        // Flush completes tokio's in-flight write; `sync_all` makes the bytes
        // durable before the rename can make them visible.
        file.flush().await?;
        file.sync_all().await?;
        Ok(builder)
    }
}

/// A temp file that is deleted when dropped unless it was renamed away.
///
/// Dropping covers every exit: an error, a panic, and the `put` future being
/// cancelled mid-upload, where no cleanup code after an `.await` would run.
struct TmpFile {
    path: PathBuf,
    /// Set once the file has been renamed into `blobs/`: nothing left to delete.
    done: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.done {
            // A blocking unlink in Drop: async cleanup cannot run in Drop, and
            // an unlink is one fast system call.
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove temp file");
                }
            }
        }
    }
}

#[async_trait]
impl ContentStore for LocalStore {
    async fn put(&self, reader: ContentReader) -> Result<Stored, ContentError> {
        let mut tmp = TmpFile { path: self.tmp_path(), done: false };
        let builder = Self::write_tmp(&tmp, reader).await?;
        let size = builder.bytes_len();
        let cid = builder.finish();
        let blob = self.blob_path(&cid);

        if tokio::fs::try_exists(&blob).await? {
            // Same CID, same bytes: keep the existing blob; `tmp` removes ours.
            return Ok(Stored { cid, size });
        }
        // Atomic on the same file system. Should another put of the same bytes
        // win the race since the check above, this replaces its identical file.
        tokio::fs::rename(&tmp.path, &blob).await?;
        tmp.done = true;
        // Make the rename itself durable: it lives in the directory's entries.
        tokio::fs::File::open(&self.blobs).await?.sync_all().await?;
        Ok(Stored { cid, size })
    }

    async fn get(&self, cid: &Cid) -> Result<ByteStream, ContentError> {
        let file = match tokio::fs::File::open(self.blob_path(cid)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ContentError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let stream = ReaderStream::with_capacity(file, READ_CHUNK);
        Ok(Box::pin(stream.map(|chunk| chunk.map_err(ContentError::Io))))
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), ContentError> {
        match tokio::fs::remove_file(self.blob_path(cid)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn health_check(&self) -> Result<(), ContentError> {
        match tokio::fs::metadata(&self.blobs).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(ContentError::Unavailable(format!("{} is not a directory", self.blobs.display()))),
            Err(e) => Err(ContentError::Unavailable(format!("{}: {e}", self.blobs.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    /// A unique directory under the system temp dir, removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("bulk-content-local-{}-{nanos}-{n}", std::process::id()));
            TestDir(dir)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn reader(bytes: Vec<u8>) -> ContentReader {
        Box::new(std::io::Cursor::new(bytes))
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    async fn read_all(store: &LocalStore, cid: &Cid) -> Vec<u8> {
        let mut stream = store.get(cid).await.expect("get");
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Yields `good` bytes, then fails, like a connection dropped mid-upload.
    struct FailingReader {
        good: usize,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.good == 0 {
                return Poll::Ready(Err(std::io::Error::other("connection reset")));
            }
            let n = self.good.min(buf.remaining());
            buf.put_slice(&vec![7u8; n]);
            self.good -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn hello_world_is_stored_under_kubos_cid_and_streams_back() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let stored = store.put(reader(b"hello world\n".to_vec())).await.expect("put");
        assert_eq!(stored.cid.as_str(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
        assert_eq!(stored.size, 12);
        assert_eq!(read_all(&store, &stored.cid).await, b"hello world\n");
        store.health_check().await.expect("healthy");
    }

    #[tokio::test]
    async fn a_file_of_two_chunks_gets_kubos_cid_and_identical_bytes_back() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let bytes = pattern(262_145);
        let stored = store.put(reader(bytes.clone())).await.expect("put");
        assert_eq!(stored.cid.as_str(), "QmUSjGawaz4ptvREcMKSMJneWCa5j8dAz2wSAAvHtW2rnB");
        assert_eq!(stored.size, 262_145);
        assert!(read_all(&store, &stored.cid).await == bytes, "bytes differ");
    }

    #[tokio::test]
    async fn an_unpinned_blob_is_not_found_and_unpinning_twice_is_fine() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let stored = store.put(reader(b"hello world\n".to_vec())).await.expect("put");
        store.unpin(&stored.cid).await.expect("unpin");
        assert!(matches!(store.get(&stored.cid).await, Err(ContentError::NotFound)));
        store.unpin(&stored.cid).await.expect("unpin of a missing blob");
        assert!(file_names(&dir.0.join("blobs")).is_empty());
    }

    #[tokio::test]
    async fn a_reader_failing_midway_leaves_no_file_behind() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let result = store.put(Box::new(FailingReader { good: 300_000 })).await;
        assert!(matches!(result, Err(ContentError::Source(_))), "{result:?}");
        assert!(file_names(&dir.0.join("blobs")).is_empty());
        assert!(file_names(&dir.0.join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn the_same_bytes_stored_twice_give_one_cid_and_one_blob() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let first = store.put(reader(pattern(1000))).await.expect("first put");
        let second = store.put(reader(pattern(1000))).await.expect("second put");
        assert_eq!(first, second);
        assert_eq!(file_names(&dir.0.join("blobs")), vec![first.cid.to_string()]);
        assert!(file_names(&dir.0.join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn opening_removes_uploads_a_crash_left_behind() {
        let dir = TestDir::new();
        drop(LocalStore::open(&dir.0).await.expect("first open"));
        let leftover = dir.0.join("tmp").join(format!("{TMP_PREFIX}1-2-3"));
        std::fs::write(&leftover, b"partial").expect("write leftover");
        let store = LocalStore::open(&dir.0).await.expect("reopen");
        assert!(!leftover.exists());
        store.health_check().await.expect("healthy");
    }

    #[tokio::test]
    async fn an_unknown_cid_is_not_found() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".parse().expect("cid");
        assert!(matches!(store.get(&cid).await, Err(ContentError::NotFound)));
    }

    #[tokio::test]
    async fn a_store_whose_blob_directory_vanished_is_unhealthy() {
        let dir = TestDir::new();
        let store = LocalStore::open(&dir.0).await.expect("open");
        std::fs::remove_dir_all(dir.0.join("blobs")).expect("remove blobs");
        assert!(store.health_check().await.is_err());
    }
}
