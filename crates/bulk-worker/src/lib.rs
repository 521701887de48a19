#![doc = include_str!("../README.md")]

mod admin;
mod error;
mod export;
mod extras;
mod ndjson;
mod runner;
mod scope;
mod shape;
mod split;
mod typefile;

pub use admin::{serve_admin, Backends};
pub use error::JobError;
pub use runner::{Backoff, Worker, WorkerConfig};
pub use split::FileLimits;
