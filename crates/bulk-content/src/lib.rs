#![doc = include_str!("../README.md")]

mod cid;
mod crypto;
mod error;
mod kubo;
mod local;
mod store;
mod unixfs;

pub use cid::Cid;
pub use crypto::{ciphertext_len, decrypt_stream, output_key, EncryptingReader, FileKey, ENCRYPTION_ALGORITHM};
pub use error::ContentError;
pub use kubo::KuboStore;
pub use local::LocalStore;
pub use store::{open, ByteStream, ContentReader, ContentStore, Stored};
pub use unixfs::CidBuilder;
