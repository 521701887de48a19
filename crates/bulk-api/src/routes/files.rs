//! Export files: `GET /fhir/r4/$export-file/{id}/{cid}` (one job's file) and
//! `GET /ipfs/{cid}` (gateway-style path), both only to the job's owner or an
//! admin, for any file the manifest lists (`output`, `error`, `deleted`).
//!
//! Both answer a single `Range` with `206` (see `range.rs`), compress with
//! gzip when the client accepts it, and carry the CID as a strong `ETag`.
//! A ranged response is never compressed: the range applies to the file's
//! own bytes, and a client asking for a range gets exactly those bytes.

use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bulk_content::Cid;
use bulk_core::{JobStatus, OutputFile};
use bulk_queue::{JobQueue, JobRecord};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::status::owned_job;
use crate::auth::Authenticated;
use crate::range::{self, Selection};
use crate::{gzip, ApiError, AppState};

/// The body streams of this file, whatever was done to them on the way.
type Body = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>>>>;

/// One file of one job.
pub(crate) async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, cid) = path.into_inner();
    let record = owned_job(&state, &who, &id).await?;
    let cid: Cid = cid.parse().map_err(|_| ApiError::FileNotFound)?;
    let item = listed_file(&record, &cid).ok_or(ApiError::FileNotFound)?;
    stream(&req, &state, &cid, item).await
}

/// A file by CID alone, as an IPFS gateway would serve it, but only to the
/// owner (or an admin) of a live job whose manifest lists it.
pub(crate) async fn gateway(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(who): Authenticated,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cid: Cid = cid.parse().map_err(|_| ApiError::FileNotFound)?;
    let mut listed_elsewhere = false;
    for id in state.queue.jobs_with_file(cid.as_str()).await? {
        let Some(record) = state.queue.get(&id).await? else { continue };
        let Some(item) = listed_file(&record, &cid) else { continue };
        if who.may_access(&record.owner) {
            return stream(&req, &state, &cid, item).await;
        }
        listed_elsewhere = true;
    }
    if listed_elsewhere {
        tracing::warn!(user.id = %who.subject, "access to another user's file refused");
        Err(ApiError::Forbidden)
    } else {
        Err(ApiError::FileNotFound)
    }
}

/// The manifest item for `cid` (in `output`, `error` or `deleted`), when the
/// job is completed (not cancelled or expired) and its manifest lists it.
fn listed_file<'a>(record: &'a JobRecord, cid: &Cid) -> Option<&'a OutputFile> {
    if record.status != JobStatus::Completed {
        return None;
    }
    record.manifest.as_ref()?.files().find(|f| f.cid() == Some(cid.as_str()))
}

/// The file's plain byte size, from its `size` extension.
fn plain_size(item: &OutputFile) -> Option<u64> {
    let ext = item.extension.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/size")))?;
    ext["valueDecimal"].as_u64()
}

/// Streams the file from the content store; never loads it whole. While the
/// download is in flight the file is counted as being read, so expiry does
/// not unpin it mid-stream.
async fn stream(req: &HttpRequest, state: &AppState, cid: &Cid, item: &OutputFile) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let etag = format!("\"{cid}\"");
    let len = plain_size(item);
    // Without a known length no range can be checked: the whole file is sent.
    let selection = match len {
        Some(len) if range::if_range_matches(text(header::IF_RANGE), &etag) => range::select(text(header::RANGE), len),
        _ => Selection::Full,
    };
    if selection == Selection::Unsatisfiable {
        return Err(ApiError::RangeNotSatisfiable { len: len.unwrap_or(0) });
    }
    let compress = selection == Selection::Full && gzip::accepted(text(header::ACCEPT_ENCODING));
    let key = bulk_content::output_key(item).map_err(|e| ApiError::Internal(Box::new(e)))?;
    state.queue.reading(cid.as_str(), true).await?;
    let guard = ReadGuard { queue: Arc::clone(&state.queue), cid: cid.to_string() };
    let stream = match state.content.get(cid).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Err(ApiError::FileNotFound),
        Err(e) => return Err(ApiError::Unavailable(Box::new(e))),
    };
    // Encrypted files are decrypted on the way out; a chunk that fails
    // authentication ends the response with an error, never a clean end.
    let stream = match key {
        Some(key) => bulk_content::decrypt_stream(stream, key),
        None => stream,
    };
    let body = stream.map_err(|e| std::io::Error::other(e.to_string())).map(move |chunk| {
        let _held = &guard;
        chunk
    });
    // Ranges of an encrypted file are cut from the decrypted stream: the
    // bytes before the range are decrypted and dropped, none are buffered.
    let body: Body = match selection {
        Selection::Part { start, end } => Box::pin(range::Window::new(body, start, end)),
        _ => Box::pin(body),
    };
    let mut res = match selection {
        Selection::Part { start, end } => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", len.unwrap_or(0))));
            res
        }
        _ => HttpResponse::Ok(),
    };
    res.content_type("application/fhir+ndjson").insert_header((header::VARY, "Accept-Encoding"));
    if len.is_some() {
        res.insert_header((header::ACCEPT_RANGES, "bytes"));
    }
    if compress {
        // No ETag: the CID names the plain bytes, not this encoding of them.
        res.insert_header((header::CONTENT_ENCODING, "gzip"));
        return Ok(res.streaming(gzip::compress(body)));
    }
    res.insert_header((header::ETAG, etag));
    Ok(match (selection, len) {
        (Selection::Part { start, end }, _) => res.body(SizedStream::new(end - start + 1, body)),
        (_, Some(len)) => res.body(SizedStream::new(len, body)),
        (_, None) => res.streaming(body),
    })
}

/// Ends the "being read" mark when the response body is dropped (finished,
/// failed or abandoned by the client).
struct ReadGuard {
    queue: Arc<dyn JobQueue>,
    cid: String,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let (queue, cid) = (Arc::clone(&self.queue), std::mem::take(&mut self.cid));
        tokio::spawn(async move {
            if let Err(e) = queue.reading(&cid, false).await {
                tracing::warn!(error = %e, "could not end a download mark; it expires by itself");
            }
        });
    }
}
