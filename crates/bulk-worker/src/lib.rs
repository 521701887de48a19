#![doc = include_str!("../README.md")]

mod error;
mod export;
mod ndjson;
mod runner;

pub use error::JobError;
pub use runner::{Worker, WorkerConfig};
