//! Single byte ranges (RFC 9110 §14): parsing `Range` / `If-Range`, and
//! cutting a byte stream down to the range without buffering it.
//!
//! One range only: a request for several ranges is answered with the whole
//! file (`200`), which RFC 9110 allows (a server may ignore `Range`), and is
//! what a download client resuming a file needs. A malformed `Range`, or one
//! in a unit other than `bytes`, is ignored the same way.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// What to send for a request, given the representation's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// The whole representation, `200`.
    Full,
    /// Bytes `start..=end`, `206 Partial Content`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive (as `Content-Range` writes it).
        end: u64,
    },
    /// No byte satisfies the range: `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The selection for a `Range` header value (`None`: no header) on a
/// representation of `len` bytes.
pub(crate) fn select(range: Option<&str>, len: u64) -> Selection {
    let Some(spec) = range.map(str::trim).and_then(|r| strip_prefix_ignore_case(r, "bytes=")) else {
        return Selection::Full;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return Selection::Full;
    }
    let Some((first, last)) = spec.split_once('-') else { return Selection::Full };
    let (first, last) = (first.trim(), last.trim());
    match (digits(first), digits(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => match (n, len) {
            (0, _) | (_, 0) => Selection::Unsatisfiable,
            (n, len) => Selection::Part { start: len.saturating_sub(n), end: len - 1 },
        },
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => {
            if start < len {
                Selection::Part { start, end: len - 1 }
            } else {
                Selection::Unsatisfiable
            }
        }
        // `a-b`: a last byte before the first makes the header invalid, so it is ignored.
        (Some(start), Some(end)) if start <= end => {
            if start < len {
                Selection::Part { start, end: end.min(len - 1) }
            } else {
                Selection::Unsatisfiable
            }
        }
        _ => Selection::Full,
    }
}

/// Whether an `If-Range` precondition lets the range apply: only when it is
/// exactly our strong ETag. A date, a weak tag or another tag means the
/// client's copy may differ, so it gets the whole file.
pub(crate) fn if_range_matches(if_range: Option<&str>, etag: &str) -> bool {
    if_range.is_none_or(|v| v.trim() == etag)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// A non-empty run of ASCII digits as a number (no sign, no overflow).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `inner` with its first `skip` bytes dropped and cut after `take` bytes.
/// Ends (dropping `inner`, which stops the read from the store) as soon as
/// the last wanted byte is out.
pub(crate) struct Window<S> {
    inner: S,
    skip: u64,
    take: u64,
}

impl<S> Window<S> {
    /// Bytes `start..=end` of `inner`.
    pub(crate) fn new(inner: S, start: u64, end: u64) -> Self {
        Window { inner, skip: start, take: end - start + 1 }
    }
}

impl<S, E> Stream for Window<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.take == 0 {
                return Poll::Ready(None);
            }
            let Some(chunk) = ready!(Pin::new(&mut self.inner).poll_next(cx)) else { return Poll::Ready(None) };
            let mut chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            let len = chunk.len() as u64;
            if self.skip >= len {
                self.skip -= len;
                continue;
            }
            let from = self.skip as usize;
            self.skip = 0;
            let to = (from as u64 + self.take).min(len) as usize;
            self.take -= (to - from) as u64;
            chunk = chunk.slice(from..to);
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(chunk)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{stream, StreamExt};

    use super::*;

    #[test]
    fn the_three_single_range_forms_select_the_bytes_they_name() {
        assert_eq!(select(Some("bytes=0-9"), 100), Selection::Part { start: 0, end: 9 });
        assert_eq!(select(Some("bytes=90-"), 100), Selection::Part { start: 90, end: 99 });
        assert_eq!(select(Some("bytes=-10"), 100), Selection::Part { start: 90, end: 99 });
        assert_eq!(select(Some("Bytes = 5-5"), 100), Selection::Full, "spaces around '=' are not the syntax");
        assert_eq!(select(Some("BYTES=5-5"), 100), Selection::Part { start: 5, end: 5 });
    }

    #[test]
    fn ranges_past_the_end_are_trimmed_or_unsatisfiable() {
        assert_eq!(select(Some("bytes=50-500"), 100), Selection::Part { start: 50, end: 99 });
        assert_eq!(select(Some("bytes=-500"), 100), Selection::Part { start: 0, end: 99 });
        assert_eq!(select(Some("bytes=100-"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=100-200"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=-0"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=-5"), 0), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=0-"), 0), Selection::Unsatisfiable);
    }

    #[test]
    fn malformed_other_unit_and_multiple_ranges_get_the_whole_file() {
        for header in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(select(Some(header), 100), Selection::Full, "{header}");
        }
        assert_eq!(select(None, 100), Selection::Full);
    }

    #[test]
    fn if_range_applies_the_range_only_for_our_exact_etag() {
        let etag = "\"QmX\"";
        assert!(if_range_matches(None, etag));
        assert!(if_range_matches(Some("\"QmX\""), etag));
        assert!(!if_range_matches(Some("W/\"QmX\""), etag));
        assert!(!if_range_matches(Some("\"QmY\""), etag));
        assert!(!if_range_matches(Some("Wed, 21 Oct 2015 07:28:00 GMT"), etag));
    }

    #[tokio::test]
    async fn a_window_yields_exactly_its_bytes_across_chunk_boundaries() {
        let data: Vec<u8> = (0..=255u8).collect();
        for (start, end) in [(0, 255), (0, 0), (10, 20), (63, 64), (64, 127), (200, 255), (255, 255)] {
            let chunks: Vec<Result<Bytes, ()>> = data.chunks(64).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            let got: Vec<u8> =
                Window::new(stream::iter(chunks), start, end).map(|c| c.expect("chunk").to_vec()).concat().await;
            assert_eq!(got, &data[start as usize..=end as usize], "{start}-{end}");
        }
    }

    #[tokio::test]
    async fn a_window_stops_reading_once_its_last_byte_is_out() {
        let chunks = stream::iter(vec![Ok::<_, ()>(Bytes::from_static(b"abcd")), Err(())]);
        let got: Vec<_> = Window::new(chunks, 1, 2).collect().await;
        assert_eq!(got, vec![Ok(Bytes::from_static(b"bc"))], "the error after the range was read");
    }
}
