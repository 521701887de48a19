//! Per-file encryption before content reaches the store: a streaming, chunked
//! AEAD format (a simplified age STREAM / Tink streaming AEAD) that encrypts and
//! decrypts files of any size in bounded memory.
//!
//! Why: anything added to a public IPFS network is readable by whoever learns
//! the CID. With a random [`FileKey`] per file, carried only in the
//! authenticated manifest, the stored bytes are useless without the manifest.
//!
//! # Format, version 1
//!
//! ```text
//! header  = "FBE1" ‖ 0x01 ‖ prefix            12 bytes; prefix: 7 random bytes per file
//! chunk i = AES-256-GCM(key, nonce_i, aad = header, plaintext_i) ‖ tag   (tag: 16 bytes)
//! nonce_i = prefix ‖ u32 big-endian i ‖ last   (last: 0x01 on the final chunk, else 0x00)
//! file    = header ‖ chunk 0 ‖ chunk 1 ‖ … ‖ chunk n
//! ```
//!
//! The plaintext is cut into 64 KiB pieces. Every chunk but the final one holds
//! exactly 64 KiB; the final chunk holds less, and is empty when the plaintext is
//! empty or a multiple of 64 KiB. A reader therefore knows from the length alone
//! which chunk must be the final one (the one shorter than 64 KiB + 16), and the
//! nonce makes that claim authenticated:
//! - the counter in the nonce binds each chunk to its position, so reordering,
//!   duplicating or dropping a chunk in the middle fails authentication;
//! - the last-flag binds finality, so cutting the file at a chunk boundary
//!   (dropping the final chunk) or appending data after it fails;
//! - the header is the associated data of every chunk, and the random prefix
//!   differs per file, so a chunk moved from another file under the same key
//!   fails, and so does a tampered header.
//!
//! At most 2³² chunks (256 TiB) fit in one file. A wrong key is indistinguishable
//! from tampering: both fail authentication of chunk 0.
//!
//! Decryption is streaming: each chunk's plaintext is released once its tag
//! verifies, before later chunks are read. A consumer must treat an error at any
//! point as the failure of the whole file: what was released before the error
//! is authentic, but the file is incomplete.
//!
//! Keys are meant to be used for one file each; the 7-byte random prefix only
//! keeps nonces apart should a key ever be reused for a few files.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Key, Tag};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use rand::Rng as _;
use tokio::io::{AsyncRead, ReadBuf};
use zeroize::{Zeroize, Zeroizing};

use crate::{ByteStream, ContentError, ContentReader};

/// Identifies the format; the first four bytes of every encrypted file.
const MAGIC: &[u8; 4] = b"FBE1";

/// How manifests name this format.
pub const ENCRYPTION_ALGORITHM: &str = "FBE1-AES-256-GCM-64K";

/// The key of an encrypted manifest output item (its `…/encryption`
/// extension), `None` for a file stored in the clear.
pub fn output_key(item: &bulk_core::OutputFile) -> Result<Option<FileKey>, ContentError> {
    let Some(enc) = item.extension.iter().find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/encryption")))
    else {
        return Ok(None);
    };
    let field = |name: &str| {
        enc["extension"]
            .as_array()
            .and_then(|xs| xs.iter().find(|x| x["url"] == name))
            .and_then(|x| x["valueString"].as_str())
    };
    if field("algorithm") != Some(ENCRYPTION_ALGORITHM) {
        return Err(ContentError::Integrity("unknown encryption algorithm in the manifest".into()));
    }
    let key = field("key").ok_or_else(|| ContentError::Integrity("no key in the manifest".into()))?;
    FileKey::from_base64(key).map(Some)
}
/// The one format version this code reads and writes.
const VERSION: u8 = 1;
/// Random per-file part of every nonce.
const PREFIX_LEN: usize = 7;
/// Magic, version and nonce prefix; also the associated data of every chunk.
const HEADER_LEN: usize = MAGIC.len() + 1 + PREFIX_LEN;
/// Plaintext bytes per chunk: every chunk but the final one holds exactly this many.
const CHUNK_LEN: usize = 64 * 1024;
/// AES-GCM authentication tag after each chunk.
const TAG_LEN: usize = 16;
/// A full sealed chunk; anything shorter can only be the final chunk.
const SEALED_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Length of an AES-256 key.
const KEY_LEN: usize = 32;
/// Length of a key in standard base64 with padding.
const KEY_BASE64_LEN: usize = 44;

/// A random AES-256 key for one file. It travels base64-encoded in the
/// manifest's `extension`, never next to the content.
///
/// `Debug` shows no key material, and the bytes are zeroed on drop.
#[derive(Clone)]
pub struct FileKey([u8; KEY_LEN]);

impl FileKey {
    /// A fresh key from the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill(&mut key);
        FileKey(key)
    }

    /// The key in standard base64 with padding (44 characters).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Parses what [`FileKey::to_base64`] wrote; anything but 32 bytes of
    /// standard base64 is an `Integrity` error.
    pub fn from_base64(text: &str) -> Result<Self, ContentError> {
        let invalid = || ContentError::Integrity("file key is not 32 bytes of standard base64".into());
        // Checking the length first keeps a huge string from being decoded.
        if text.len() != KEY_BASE64_LEN {
            return Err(invalid());
        }
        let bytes = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| invalid())?);
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| invalid())?;
        Ok(FileKey(key))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Size of the encrypted form of `plaintext_len` bytes: header, plaintext, and
/// one tag per chunk (including the final, possibly empty, chunk). Saturates
/// rather than overflows for lengths the format cannot hold anyway.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len / CHUNK_LEN as u64 + 1;
    (HEADER_LEN as u64).saturating_add(plaintext_len).saturating_add(chunks.saturating_mul(TAG_LEN as u64))
}

/// The nonce of chunk `counter`.
fn chunk_nonce(header: &[u8; HEADER_LEN], counter: u32, last: bool) -> Nonce<Aes256Gcm> {
    let mut nonce = [0u8; 12];
    nonce[..PREFIX_LEN].copy_from_slice(&header[HEADER_LEN - PREFIX_LEN..]);
    nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::<Aes256Gcm>::from(nonce)
}

/// Where an [`EncryptingReader`] is in its cycle.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Reading plaintext into `buf[..CHUNK_LEN]`; `filled` bytes so far.
    Filling { filled: usize },
    /// Handing out `buf[pos..end]` (the header, or a sealed chunk); `last` once
    /// the final chunk is sealed.
    Draining { pos: usize, end: usize, last: bool },
    /// The final chunk is out: end of stream.
    Done,
}

/// Encrypts an async plaintext source into the format above, as an
/// [`AsyncRead`] of ciphertext that can itself be handed to
/// [`ContentStore::put`](crate::ContentStore::put).
///
/// Memory stays at one buffer of one sealed chunk (64 KiB + 16): plaintext is
/// read into it, sealed in place, and handed out before the next read.
/// Errors of the inner reader pass through unchanged.
pub struct EncryptingReader {
    inner: ContentReader,
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    /// The counter of the next chunk to seal.
    counter: u32,
    /// `SEALED_LEN` bytes: a chunk being filled, or the sealed bytes being drained.
    buf: Box<[u8]>,
    phase: Phase,
}

impl EncryptingReader {
    /// Wraps `inner`, a fresh random nonce prefix for this file, and `key`.
    pub fn new(inner: ContentReader, key: &FileKey) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[..MAGIC.len()].copy_from_slice(MAGIC);
        header[MAGIC.len()] = VERSION;
        rand::rng().fill(&mut header[MAGIC.len() + 1..]);
        let mut buf = vec![0u8; SEALED_LEN].into_boxed_slice();
        buf[..HEADER_LEN].copy_from_slice(&header);
        EncryptingReader {
            inner,
            cipher: key.cipher(),
            header,
            counter: 0,
            buf,
            phase: Phase::Draining { pos: 0, end: HEADER_LEN, last: false },
        }
    }

    /// Seals `buf[..len]` in place as the next chunk and appends its tag.
    fn seal(&mut self, len: usize, last: bool) -> io::Result<()> {
        if !last && self.counter == u32::MAX {
            return Err(io::Error::other("file too large for the encrypted format (2^32 chunks)"));
        }
        let nonce = chunk_nonce(&self.header, self.counter, last);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &self.header, (&mut self.buf[..len]).into())
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        self.buf[len..len + TAG_LEN].copy_from_slice(&tag);
        self.counter = self.counter.wrapping_add(1);
        self.phase = Phase::Draining { pos: 0, end: len + TAG_LEN, last };
        Ok(())
    }
}

impl fmt::Debug for EncryptingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingReader").field("chunk", &self.counter).field("phase", &self.phase).finish()
    }
}

impl AsyncRead for EncryptingReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.phase {
                Phase::Draining { pos, end, last } if pos < end => {
                    let n = (end - pos).min(out.remaining());
                    out.put_slice(&this.buf[pos..pos + n]);
                    this.phase = Phase::Draining { pos: pos + n, end, last };
                    return Poll::Ready(Ok(()));
                }
                Phase::Draining { last: true, .. } | Phase::Done => {
                    this.phase = Phase::Done;
                    return Poll::Ready(Ok(()));
                }
                Phase::Draining { last: false, .. } => this.phase = Phase::Filling { filled: 0 },
                Phase::Filling { filled } => {
                    let mut read = ReadBuf::new(&mut this.buf[filled..CHUNK_LEN]);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
                    let n = read.filled().len();
                    let len = filled + n;
                    if len == CHUNK_LEN {
                        // A full chunk is never the final one: the final chunk
                        // is the short (maybe empty) one that meets end of input.
                        this.seal(len, false)?;
                    } else if n == 0 {
                        this.seal(len, true)?;
                    } else {
                        this.phase = Phase::Filling { filled: len };
                    }
                }
            }
        }
    }
}

/// Decrypts and verifies a stream in the format above, yielding each chunk's
/// plaintext as soon as its tag verifies.
///
/// Bad magic or version, a failed tag (tampering or the wrong key), and a file
/// cut short or extended all yield one `ContentError::Integrity` and end the
/// stream; errors of `ciphertext` pass through unchanged and end it too.
pub fn decrypt_stream(ciphertext: ByteStream, key: FileKey) -> ByteStream {
    Box::pin(Decrypting {
        inner: ciphertext,
        cipher: key.cipher(),
        header: None,
        buf: BytesMut::new(),
        counter: 0,
        inner_done: false,
        done: false,
    })
}

/// The stream behind [`decrypt_stream`].
struct Decrypting {
    inner: ByteStream,
    cipher: Aes256Gcm,
    /// Set once the header has been read and checked.
    header: Option<[u8; HEADER_LEN]>,
    /// Ciphertext received but not yet opened: less than one sealed chunk, plus
    /// at most what the last item of `inner` brought.
    buf: BytesMut,
    /// The counter of the next chunk to open.
    counter: u32,
    /// `inner` has ended: what is left in `buf` is the final chunk.
    inner_done: bool,
    /// The final chunk was opened, or an error was yielded.
    done: bool,
}

impl Decrypting {
    /// Opens what `buf` allows: `None` when more input is needed.
    fn step(&mut self) -> Option<Result<Bytes, ContentError>> {
        let header = match self.header {
            Some(header) => header,
            None if self.buf.len() >= HEADER_LEN => {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&self.buf.split_to(HEADER_LEN));
                if &header[..MAGIC.len()] != MAGIC {
                    return Some(Err(ContentError::Integrity("not an encrypted export file".into())));
                }
                if header[MAGIC.len()] != VERSION {
                    let version = header[MAGIC.len()];
                    return Some(Err(ContentError::Integrity(format!("unknown encryption format version {version}"))));
                }
                self.header = Some(header);
                header
            }
            None if self.inner_done => return Some(Err(ContentError::Integrity("encrypted file is truncated".into()))),
            None => return None,
        };
        if self.buf.len() >= SEALED_LEN {
            let sealed = self.buf.split_to(SEALED_LEN);
            Some(self.open(&header, sealed, false))
        } else if self.inner_done {
            self.done = true;
            if self.buf.len() < TAG_LEN {
                return Some(Err(ContentError::Integrity("encrypted file is truncated".into())));
            }
            let sealed = self.buf.split();
            Some(self.open(&header, sealed, true))
        } else {
            None
        }
    }

    /// Verifies and decrypts one sealed chunk in place.
    fn open(&mut self, header: &[u8; HEADER_LEN], mut sealed: BytesMut, last: bool) -> Result<Bytes, ContentError> {
        let counter = self.counter;
        let failed = || ContentError::Integrity(format!("encrypted file failed authentication at chunk {counter}"));
        let len = sealed.len() - TAG_LEN;
        let (msg, tag) = sealed.split_at_mut(len);
        let tag = Tag::try_from(&*tag).map_err(|_| failed())?;
        let nonce = chunk_nonce(header, counter, last);
        self.cipher.decrypt_inout_detached(&nonce, header, msg.into(), &tag).map_err(|_| failed())?;
        if !last {
            self.counter = counter
                .checked_add(1)
                .ok_or_else(|| ContentError::Integrity("encrypted file has too many chunks".into()))?;
        }
        sealed.truncate(len);
        Ok(sealed.freeze())
    }
}

impl Stream for Decrypting {
    type Item = Result<Bytes, ContentError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.step() {
                // The final chunk of a plaintext that is a multiple of 64 KiB.
                Some(Ok(plain)) if plain.is_empty() => continue,
                Some(Ok(plain)) => return Poll::Ready(Some(Ok(plain))),
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {}
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(bytes)) => this.buf.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.inner_done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests;
