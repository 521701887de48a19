#![doc = include_str!("../README.md")]

mod error;
mod keys;
mod queue;
mod record;
mod scripts;

pub use error::QueueError;
pub use keys::Keys;
pub use queue::{Claimed, JobQueue, QueueConfig};
pub use record::JobRecord;
