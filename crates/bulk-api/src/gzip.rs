//! `Content-Encoding: gzip` on the fly: negotiation from `Accept-Encoding`,
//! and a stream adapter that compresses chunk by chunk (never the whole file).

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::{Stream, StreamExt};

/// Whether the client accepts gzip: `gzip` (or `x-gzip`) listed with a
/// non-zero quality, or `*` with a non-zero quality when gzip is not listed.
/// `gzip;q=0` refuses it.
pub(crate) fn accepted(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else { return false };
    let mut wildcard = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok());
        // A quality we cannot read counts as a refusal.
        let acceptable = q.is_some_and(|q| q > 0.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return acceptable;
        }
        if coding == "*" {
            wildcard = Some(acceptable);
        }
    }
    wildcard.unwrap_or(false)
}

/// `inner` gzip-compressed as it streams. Each input chunk is fed to the
/// encoder and whatever compressed bytes it has produced are passed on;
/// the trailer follows the last chunk. An error from `inner` ends the stream
/// with that error (the client sees a broken, not a short, body).
pub(crate) fn compress<S>(inner: S) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
{
    // Level 1: NDJSON still shrinks several-fold, at a fraction of the CPU of
    // the default level, which matters on a shared API replica.
    let encoder = GzEncoder::new(Vec::new(), Compression::fast());
    futures_util::stream::unfold(Some((inner, encoder)), |state| async move {
        let (mut inner, mut encoder) = state?;
        loop {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = encoder.write_all(&chunk) {
                        return Some((Err(e), None));
                    }
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some((inner, encoder))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => return Some((encoder.finish().map(Bytes::from), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use futures_util::stream;

    use super::*;

    #[test]
    fn gzip_is_used_only_when_the_client_accepts_it() {
        assert!(accepted(Some("gzip")));
        assert!(accepted(Some("deflate, GZIP;q=0.5, br")));
        assert!(accepted(Some("x-gzip")));
        assert!(accepted(Some("*")));
        assert!(!accepted(None));
        assert!(!accepted(Some("identity")));
        assert!(!accepted(Some("br, deflate")));
        assert!(!accepted(Some("gzip;q=0")));
        assert!(!accepted(Some("gzip; q=0.000, *")), "an explicit refusal beats the wildcard");
        assert!(!accepted(Some("*;q=0")));
        assert!(!accepted(Some("gzip;q=abc")));
    }

    #[tokio::test]
    async fn the_compressed_stream_decompresses_to_the_input() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let gz: Vec<u8> = compress(stream::iter(chunks)).map(|c| c.expect("chunk").to_vec()).concat().await;
        assert!(gz.len() < data.len() / 3, "{} of {} bytes", gz.len(), data.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).expect("valid gzip");
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn an_empty_file_compresses_to_a_valid_empty_gzip() {
        let gz: Vec<u8> = compress(stream::iter(Vec::<Result<Bytes, std::io::Error>>::new()))
            .map(|c| c.expect("chunk").to_vec())
            .concat()
            .await;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).expect("valid gzip");
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn an_error_in_the_input_ends_the_stream_with_that_error() {
        let chunks = vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("store failed"))];
        let items: Vec<_> = compress(stream::iter(chunks)).collect().await;
        assert!(items.last().is_some_and(|r| r.is_err()), "{items:?}");
    }
}
