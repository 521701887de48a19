#![doc = include_str!("../README.md")]

mod admin;
mod error;
mod export;
mod ndjson;
mod runner;
mod split;

pub use admin::{serve_admin, Backends};
pub use error::JobError;
pub use runner::{Backoff, Worker, WorkerConfig};
pub use split::FileLimits;
