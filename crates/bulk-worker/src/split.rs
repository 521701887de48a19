//! One resource type's output, cut into files of at most so many resources
//! and so many bytes, each streamed to the content store as it fills.

use std::sync::Arc;

use bulk_content::{ContentError, ContentStore, FileKey};
use bulk_core::OutputFile;
use serde_json::json;

use crate::ndjson::{NdjsonFile, WrittenFile};

/// Base of the extension URLs the manifest's output items carry.
pub(crate) const EXT: &str = "https://fhir-bulk.dev/StructureDefinition";

/// Where a file is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    /// Most resources (lines) in one file.
    pub max_resources: u64,
    /// Most bytes of NDJSON in one file; a single larger resource still gets a file of its own.
    pub max_bytes: u64,
}

/// A file finished by a [`SplitWriter`], with the key it was encrypted with.
pub(crate) struct Finished {
    pub written: WrittenFile,
    pub key: Option<FileKey>,
}

/// Writes lines into as many files as the limits need.
pub(crate) struct SplitWriter {
    content: Arc<dyn ContentStore>,
    encrypt: bool,
    limits: FileLimits,
    current: Option<Open>,
    finished: Vec<Finished>,
}

struct Open {
    file: NdjsonFile,
    key: Option<FileKey>,
    lines: u64,
    bytes: u64,
}

impl SplitWriter {
    pub fn new(content: Arc<dyn ContentStore>, encrypt: bool, limits: FileLimits) -> Self {
        SplitWriter { content, encrypt, limits, current: None, finished: Vec::new() }
    }

    /// Appends lines (one resource each, without the newline), starting a new
    /// file whenever the next line would break a limit.
    pub async fn write<S: AsRef<str>>(&mut self, lines: &[S]) -> Result<(), ContentError> {
        let mut batch: Vec<&str> = Vec::with_capacity(lines.len());
        for line in lines {
            let line = line.as_ref();
            let size = line.len() as u64 + 1;
            let open = self.current.get_or_insert_with(|| Open::start(&self.content, self.encrypt));
            let full = open.lines + batch.len() as u64 >= self.limits.max_resources
                || (open.lines + batch.len() as u64 > 0 && open.bytes + size > self.limits.max_bytes);
            if full {
                Self::flush(open, &mut batch).await?;
                self.roll().await?;
            }
            let open = self.current.get_or_insert_with(|| Open::start(&self.content, self.encrypt));
            open.bytes += size;
            batch.push(line);
        }
        if let Some(open) = self.current.as_mut() {
            Self::flush(open, &mut batch).await?;
        }
        Ok(())
    }

    async fn flush(open: &mut Open, batch: &mut Vec<&str>) -> Result<(), ContentError> {
        if batch.is_empty() {
            return Ok(());
        }
        open.lines += batch.len() as u64;
        open.file.write_page(batch.drain(..)).await
    }

    /// Finishes the open file, if any.
    async fn roll(&mut self) -> Result<(), ContentError> {
        if let Some(open) = self.current.take() {
            let written = open.file.finish().await?;
            self.finished.push(Finished { written, key: open.key });
        }
        Ok(())
    }

    /// Finishes the last file and returns every file written, in order.
    pub async fn finish(mut self) -> Result<Vec<Finished>, ContentError> {
        self.roll().await?;
        Ok(std::mem::take(&mut self.finished))
    }

    /// The files finished so far (already pinned), for cleanup when the
    /// writer is abandoned; the open one is dropped and stores nothing.
    pub fn abandon(mut self) -> Vec<Finished> {
        self.current = None;
        std::mem::take(&mut self.finished)
    }
}

impl Open {
    fn start(content: &Arc<dyn ContentStore>, encrypt: bool) -> Self {
        let key = encrypt.then(FileKey::generate);
        let file = NdjsonFile::start(Arc::clone(content), key.as_ref());
        Open { file, key, lines: 0, bytes: 0 }
    }
}

/// The manifest item for a finished file: `ipfs://` URL, exact count, and the
/// CID, size and SHA-256 (and the key, when encrypted) in extensions.
pub(crate) fn output_item(resource_type: &str, f: &Finished) -> OutputFile {
    let written = &f.written;
    let cid = &written.stored.cid;
    let mut extension = vec![
        json!({"url": format!("{EXT}/cid"), "valueString": cid.as_str()}),
        // Size and SHA-256 of the NDJSON a client receives from the file endpoints.
        // R4 has no integer64; a decimal holds sizes past 2 GiB exactly.
        json!({"url": format!("{EXT}/size"), "valueDecimal": written.plain_bytes}),
        json!({"url": format!("{EXT}/sha256"), "valueString": written.sha256_hex}),
    ];
    if let Some(key) = &f.key {
        // The key travels only in the manifest, which only the owner can read.
        extension.push(json!({"url": format!("{EXT}/encryption"), "extension": [
            {"url": "algorithm", "valueString": bulk_content::ENCRYPTION_ALGORITHM},
            {"url": "key", "valueString": key.to_base64()},
            {"url": "size", "valueDecimal": written.stored.size},
        ]}));
    }
    OutputFile { resource_type: resource_type.to_owned(), url: cid.ipfs_url(), count: written.lines, extension }
}

#[cfg(test)]
mod tests {
    use bulk_content::LocalStore;
    use futures_util::TryStreamExt;

    use super::*;

    async fn store() -> (Arc<dyn ContentStore>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("split-{}", uuid::Uuid::new_v4()));
        (Arc::new(LocalStore::open(&dir).await.expect("store")), dir)
    }

    async fn text(content: &Arc<dyn ContentStore>, f: &Finished) -> String {
        let chunks: Vec<bytes::Bytes> =
            content.get(&f.written.stored.cid).await.expect("get").try_collect().await.expect("read");
        String::from_utf8(chunks.concat()).expect("utf-8")
    }

    #[tokio::test]
    async fn files_are_cut_at_the_resource_limit_and_keep_every_line_in_order() {
        let (content, dir) = store().await;
        let mut w = SplitWriter::new(content.clone(), false, FileLimits { max_resources: 3, max_bytes: u64::MAX });
        let lines: Vec<String> = (0..8).map(|i| format!("{{\"n\":{i}}}")).collect();
        w.write(&lines[..5]).await.expect("write");
        w.write(&lines[5..]).await.expect("write");
        let files = w.finish().await.expect("finish");
        assert_eq!(files.iter().map(|f| f.written.lines).collect::<Vec<_>>(), [3, 3, 2]);
        let mut all = String::new();
        for f in &files {
            all.push_str(&text(&content, f).await);
        }
        assert_eq!(all, lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn files_are_cut_before_the_byte_limit_and_an_oversized_line_gets_its_own_file() {
        let (content, dir) = store().await;
        // Lines of 10 bytes with their newline; 25 bytes hold two.
        let mut w = SplitWriter::new(content.clone(), false, FileLimits { max_resources: 100, max_bytes: 25 });
        let big = format!("{{\"b\":\"{}\"}}", "x".repeat(40));
        w.write(&["{\"a\":\"1\"}", "{\"a\":\"2\"}", "{\"a\":\"3\"}", big.as_str(), "{\"a\":\"4\"}"])
            .await
            .expect("write");
        let files = w.finish().await.expect("finish");
        assert_eq!(files.iter().map(|f| f.written.lines).collect::<Vec<_>>(), [2, 1, 1, 1]);
        assert!(files.iter().filter(|f| f.written.lines > 1).all(|f| f.written.plain_bytes <= 25));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn nothing_written_means_no_file() {
        let (content, dir) = store().await;
        let w = SplitWriter::new(content, false, FileLimits { max_resources: 2, max_bytes: 100 });
        assert!(w.finish().await.expect("finish").is_empty());
        std::fs::remove_dir_all(dir).ok();
    }
}
