#![doc = include_str!("../README.md")]

mod admin;
mod error;
mod export;
mod ndjson;
mod runner;

pub use admin::{serve_admin, Backends};
pub use error::JobError;
pub use runner::{Backoff, Worker, WorkerConfig};
