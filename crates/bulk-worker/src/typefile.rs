//! Writing one resource type's files: page through the store, shape each
//! resource, cut files at the limits, and record what was pinned.

use std::borrow::Cow;
use std::sync::Arc;

use bulk_core::metrics::metrics;
use bulk_core::{JobId, OutputFile};
use bulk_queue::Progress;
use bulk_resources::ResourceQuery;
use tokio_util::sync::CancellationToken;

use crate::shape::Shaper;
use crate::split::{output_item, Finished, SplitWriter};
use crate::{JobError, Worker};

impl Worker {
    /// Streams one type's resources into as many files as the limits need.
    /// Empty when nothing matched after all (deleted since counting).
    pub(crate) async fn export_type(
        &self,
        id: JobId,
        q: &ResourceQuery,
        shaper: &Shaper<'_>,
        lost: &CancellationToken,
        base: u64,
    ) -> Result<Vec<OutputFile>, JobError> {
        let mut processed = base;
        let content_err = |source| JobError::Content { resource_type: q.resource_type.clone(), source };
        let mut files = SplitWriter::new(Arc::clone(&self.content), self.config.encrypt_files, self.config.files);
        let pages = async {
            let mut after: Option<String> = None;
            loop {
                if lost.is_cancelled() {
                    return Err(JobError::LostLease);
                }
                let page = self
                    .resources
                    .page(q, after.as_deref(), self.config.page_size)
                    .await
                    .map_err(|source| JobError::Resources { resource_type: q.resource_type.clone(), source })?;
                let Some(last) = page.last() else { return Ok(()) };
                after = Some(last.id.clone());
                let lines: Vec<Cow<'_, str>> = page.iter().filter_map(|r| shaper.shape(r)).collect();
                files.write(&lines).await.map_err(content_err)?;
                processed += page.len() as u64;
                self.progress(id, &Progress { processed: Some(processed), ..Default::default() }).await?;
                if page.len() < self.config.page_size as usize {
                    return Ok(());
                }
            }
        };
        if let Err(e) = pages.await {
            // Files already finished are pinned but recorded nowhere yet: unpin them.
            self.unpin_finished(files.abandon()).await;
            return Err(e);
        }
        let finished = files.finish().await.map_err(content_err)?;
        self.recorded(&q.resource_type, finished).await
    }

    /// Counts finished files in the metrics, tracks them for expiry and
    /// makes their manifest items.
    pub(crate) async fn recorded(
        &self,
        resource_type: &str,
        finished: Vec<Finished>,
    ) -> Result<Vec<OutputFile>, JobError> {
        let cids: Vec<String> = finished.iter().map(|f| f.written.stored.cid.to_string()).collect();
        // Tracked from the moment they are pinned, so even the files of an attempt
        // that dies before they are recorded anywhere are unpinned in the end.
        let until = bulk_queue::now_ms_after(self.queue.config().active_ttl);
        if let Err(e) = self.queue.track_files(&cids, until).await {
            tracing::warn!(error = %e, "could not track new files for expiry");
        }
        let mut items = Vec::with_capacity(finished.len());
        for f in &finished {
            metrics().resources_exported.inc_by(f.written.lines);
            metrics().bytes_exported.inc_by(f.written.plain_bytes);
            items.push(output_item(resource_type, f));
        }
        Ok(items)
    }

    pub(crate) async fn unpin_finished(&self, finished: Vec<Finished>) {
        for f in finished {
            if let Err(e) = self.content.unpin(&f.written.stored.cid).await {
                tracing::warn!(error = %e, "could not unpin an abandoned file");
            }
        }
    }
}
