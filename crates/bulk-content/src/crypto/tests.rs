//! Tests of the parent module.

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::*;
use crate::{ContentStore, LocalStore};

/// Odd read sizes, including single bytes, none dividing the chunk size.
const STEPS: [usize; 6] = [1, 3, 7, 61, 509, 4093];

/// Hands out `data` a few bytes at a time, pending before every other read,
/// like a slow network source.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    reads: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.reads += 1;
        if self.reads.is_multiple_of(2) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let step = STEPS[(self.reads / 2) % STEPS.len()];
        let n = step.min(buf.remaining()).min(self.data.len() - self.pos);
        buf.put_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn trickle(data: &[u8]) -> ContentReader {
    Box::new(Trickle { data: data.to_vec(), pos: 0, reads: 0 })
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Encrypts through the reader, reading it with a small odd-sized buffer.
async fn encrypt(plaintext: &[u8], key: &FileKey) -> Vec<u8> {
    let mut reader = EncryptingReader::new(trickle(plaintext), key);
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = reader.read(&mut buf).await.expect("encrypting read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Feeds `ciphertext` to `decrypt_stream` in pieces of `piece` bytes.
async fn decrypt_in_pieces(ciphertext: &[u8], key: &FileKey, piece: usize) -> Result<Vec<u8>, ContentError> {
    let pieces: Vec<Result<Bytes, ContentError>> =
        ciphertext.chunks(piece).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    let mut stream = decrypt_stream(Box::pin(futures_util::stream::iter(pieces)), key.clone());
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn decrypt(ciphertext: &[u8], key: &FileKey) -> Result<Vec<u8>, ContentError> {
    decrypt_in_pieces(ciphertext, key, 1000).await
}

fn assert_integrity_error(result: Result<Vec<u8>, ContentError>, what: &str) {
    match result {
        Err(e @ ContentError::Integrity(_)) => assert!(!e.is_retryable(), "{what}: {e} is retryable"),
        Err(e) => panic!("{what}: expected an integrity error, got {e:?}"),
        Ok(plain) => panic!("{what}: decrypted {} bytes instead of failing", plain.len()),
    }
}

/// Start of sealed chunk `i` in a ciphertext.
fn chunk_start(i: usize) -> usize {
    HEADER_LEN + i * SEALED_LEN
}

#[tokio::test]
async fn every_size_round_trips_through_tiny_odd_reads() {
    let key = FileKey::generate();
    for size in [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 1024 * 1024 + 7] {
        let plaintext = pattern(size);
        let ciphertext = encrypt(&plaintext, &key).await;
        assert_eq!(ciphertext.len() as u64, ciphertext_len(size as u64), "length for {size}");
        assert_eq!(&ciphertext[..5], b"FBE1\x01");
        assert!(decrypt(&ciphertext, &key).await.expect("decrypt") == plaintext, "{size} bytes differ");
        // One piece holding the whole file, and pieces of one byte.
        assert!(decrypt_in_pieces(&ciphertext, &key, usize::MAX).await.expect("decrypt") == plaintext);
        if size <= 65_537 {
            assert!(decrypt_in_pieces(&ciphertext, &key, 1).await.expect("decrypt") == plaintext);
        }
    }
}

#[test]
fn ciphertext_len_counts_header_plaintext_and_one_tag_per_chunk() {
    assert_eq!(ciphertext_len(0), 12 + 16);
    assert_eq!(ciphertext_len(1), 12 + 1 + 16);
    assert_eq!(ciphertext_len(65_535), 12 + 65_535 + 16);
    assert_eq!(ciphertext_len(65_536), 12 + 65_536 + 2 * 16);
    assert_eq!(ciphertext_len(3 * 65_536 + 5), 12 + 3 * 65_536 + 5 + 4 * 16);
    assert_eq!(ciphertext_len(u64::MAX), u64::MAX);
}

#[tokio::test]
async fn the_same_plaintext_encrypts_differently_each_time() {
    let key = FileKey::generate();
    let a = encrypt(b"same bytes", &key).await;
    let b = encrypt(b"same bytes", &key).await;
    assert_ne!(a, b, "the random nonce prefix must differ per file");
}

#[tokio::test]
async fn a_wrong_key_fails_authentication() {
    let ciphertext = encrypt(&pattern(100_000), &FileKey::generate()).await;
    assert_integrity_error(decrypt(&ciphertext, &FileKey::generate()).await, "wrong key");
    let empty = encrypt(b"", &FileKey::generate()).await;
    assert_integrity_error(decrypt(&empty, &FileKey::generate()).await, "wrong key, empty file");
}

#[tokio::test]
async fn flipping_any_byte_of_header_tag_or_body_fails() {
    let key = FileKey::generate();
    // Two chunks: a full one and a final one of 10 bytes.
    let ciphertext = encrypt(&pattern(CHUNK_LEN + 10), &key).await;
    let final_start = chunk_start(1);
    let mut positions: Vec<usize> = (0..HEADER_LEN).collect();
    positions.extend(final_start - TAG_LEN..final_start); // tag of chunk 0
    positions.extend((HEADER_LEN..final_start - TAG_LEN).step_by(4099)); // body of chunk 0
    positions.push(final_start - TAG_LEN - 1);
    positions.extend(final_start..ciphertext.len()); // all of the final chunk
    for pos in positions {
        let mut tampered = ciphertext.clone();
        tampered[pos] ^= 0x01;
        assert_integrity_error(decrypt(&tampered, &key).await, &format!("byte {pos} flipped"));
    }
}

#[tokio::test]
async fn truncation_fails_at_chunk_boundaries_and_inside_chunks() {
    let key = FileKey::generate();
    // Multiple of the chunk size: two full chunks and an empty final one.
    let ciphertext = encrypt(&pattern(2 * CHUNK_LEN), &key).await;
    assert_eq!(ciphertext.len(), chunk_start(2) + TAG_LEN);
    for cut in [chunk_start(2), chunk_start(1), HEADER_LEN, chunk_start(1) + 100, ciphertext.len() - 1, 5, 0] {
        assert_integrity_error(decrypt(&ciphertext[..cut], &key).await, &format!("cut at {cut}"));
    }
    // A short final chunk cut to a boundary leaves a full chunk last.
    let ciphertext = encrypt(&pattern(CHUNK_LEN + 10), &key).await;
    assert_integrity_error(decrypt(&ciphertext[..chunk_start(1)], &key).await, "final chunk dropped");
}

#[tokio::test]
async fn appended_chunks_or_bytes_fail() {
    let key = FileKey::generate();
    for size in [10, 2 * CHUNK_LEN] {
        let ciphertext = encrypt(&pattern(size), &key).await;
        let first_chunk = ciphertext[chunk_start(0)..chunk_start(1).min(ciphertext.len())].to_vec();
        let final_chunk = ciphertext[chunk_start(size / CHUNK_LEN)..].to_vec();
        for (what, extra) in [("first chunk", first_chunk), ("final chunk", final_chunk), ("one byte", vec![0])] {
            let mut extended = ciphertext.clone();
            extended.extend_from_slice(&extra);
            assert_integrity_error(decrypt(&extended, &key).await, &format!("{size} bytes + {what}"));
        }
        // Another file's whole ciphertext, appended.
        let mut extended = ciphertext.clone();
        extended.extend_from_slice(&encrypt(b"more", &key).await);
        assert_integrity_error(decrypt(&extended, &key).await, "another file appended");
    }
}

#[tokio::test]
async fn swapped_duplicated_or_foreign_chunks_fail() {
    let key = FileKey::generate();
    let ciphertext = encrypt(&pattern(3 * CHUNK_LEN + 5), &key).await;
    let chunk = |i: usize| ciphertext[chunk_start(i)..chunk_start(i + 1)].to_vec();

    let mut swapped = ciphertext.clone();
    swapped[chunk_start(0)..chunk_start(1)].copy_from_slice(&chunk(1));
    swapped[chunk_start(1)..chunk_start(2)].copy_from_slice(&chunk(0));
    assert_integrity_error(decrypt(&swapped, &key).await, "chunks 0 and 1 swapped");

    let mut duplicated = ciphertext.clone();
    duplicated[chunk_start(2)..chunk_start(3)].copy_from_slice(&chunk(1));
    assert_integrity_error(decrypt(&duplicated, &key).await, "chunk 1 duplicated over chunk 2");

    let mut dropped = ciphertext[..chunk_start(1)].to_vec();
    dropped.extend_from_slice(&ciphertext[chunk_start(2)..]);
    assert_integrity_error(decrypt(&dropped, &key).await, "chunk 1 dropped");

    // Same key, same position, another file: the header (nonce prefix) differs.
    let other = encrypt(&pattern(3 * CHUNK_LEN + 5), &key).await;
    let mut foreign = ciphertext.clone();
    foreign[chunk_start(1)..chunk_start(2)].copy_from_slice(&other[chunk_start(1)..chunk_start(2)]);
    assert_integrity_error(decrypt(&foreign, &key).await, "chunk from another file");
}

#[tokio::test]
async fn bad_magic_or_version_is_rejected() {
    let key = FileKey::generate();
    let ciphertext = encrypt(b"hello", &key).await;
    let mut magic = ciphertext.clone();
    magic[0] = b'X';
    assert_integrity_error(decrypt(&magic, &key).await, "magic");
    let mut version = ciphertext.clone();
    version[4] = 2;
    assert_integrity_error(decrypt(&version, &key).await, "version");
    assert_integrity_error(decrypt(b"hello, plain text that is not encrypted", &key).await, "plaintext");
}

#[tokio::test]
async fn plaintext_comes_out_chunk_by_chunk_before_the_ciphertext_ends() {
    let key = FileKey::generate();
    let plaintext = pattern(2 * CHUNK_LEN + 3);
    let ciphertext = encrypt(&plaintext, &key).await;
    // The header and the first sealed chunk, in odd pieces, then the source fails.
    let mut items: Vec<Result<Bytes, ContentError>> =
        ciphertext[..chunk_start(1)].chunks(7777).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    items.push(Err(ContentError::Unavailable("connection reset".into())));
    let mut stream = decrypt_stream(Box::pin(futures_util::stream::iter(items)), key);

    let first = stream.next().await.expect("an item").expect("the first chunk");
    assert!(first[..] == plaintext[..CHUNK_LEN], "first chunk differs");
    let err = stream.next().await.expect("an item").expect_err("the source's error");
    assert!(matches!(err, ContentError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable(), "the source's error keeps its class");
    assert!(stream.next().await.is_none(), "the stream ends after an error");
}

#[tokio::test]
async fn a_failing_source_fails_the_encrypting_reader() {
    struct Failing;
    impl AsyncRead for Failing {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::other("disk on fire")))
        }
    }
    let mut reader = EncryptingReader::new(Box::new(Failing), &FileKey::generate());
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).await.expect_err("the source's error");
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn the_encrypting_reader_is_a_content_reader() {
    fn content_reader<T: AsyncRead + Send + Sync + Unpin + 'static>() {}
    content_reader::<EncryptingReader>();
}

#[tokio::test]
async fn a_key_survives_base64_and_its_debug_output_hides_it() {
    let key = FileKey::generate();
    let text = key.to_base64();
    assert_eq!(text.len(), 44);
    let parsed = FileKey::from_base64(&text).expect("parse");
    assert_eq!(parsed.to_base64(), text);
    let ciphertext = encrypt(b"round trip", &key).await;
    assert_eq!(decrypt(&ciphertext, &parsed).await.expect("decrypt"), b"round trip");

    let debug = format!("{key:?}");
    assert!(!debug.contains(&text) && !debug.contains(&text[..8]), "{debug}");

    let short = base64::engine::general_purpose::STANDARD.encode([0u8; 31]);
    let long = base64::engine::general_purpose::STANDARD.encode([0u8; 33]);
    let not_base64 = "!".repeat(44);
    for bad in ["", short.as_str(), long.as_str(), not_base64.as_str(), &text[..43]] {
        assert!(matches!(FileKey::from_base64(bad), Err(ContentError::Integrity(_))), "{bad:?} accepted");
    }
}

/// A unique directory under the system temp dir, removed on drop.
struct TestDir(std::path::PathBuf);

impl TestDir {
    fn new() -> Self {
        let name = format!("bulk-content-crypto-{}-{:016x}", std::process::id(), rand::random::<u64>());
        TestDir(std::env::temp_dir().join(name))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn an_encrypted_put_to_the_local_store_decrypts_back_from_get() {
    let dir = TestDir::new();
    let store = LocalStore::open(&dir.0).await.expect("open");
    let key = FileKey::generate();
    let plaintext = pattern(300_001);

    let stored = store.put(Box::new(EncryptingReader::new(trickle(&plaintext), &key))).await.expect("put");
    assert_eq!(stored.size, ciphertext_len(plaintext.len() as u64));
    let stream = decrypt_stream(store.get(&stored.cid).await.expect("get"), key);
    let chunks: Vec<Result<Bytes, ContentError>> = stream.collect().await;
    let decrypted: Vec<u8> = chunks.into_iter().flat_map(|c| c.expect("chunk")).collect();
    assert!(decrypted == plaintext, "decrypted bytes differ");
}
