#![doc = include_str!("../README.md")]

mod error;
mod keys;
mod queue;
mod record;
mod redis_queue;
mod scripts;
mod sqlite;
mod sqlite_once;

pub use error::QueueError;
pub use keys::Keys;
pub use queue::{now_ms_after, open, Enqueued, JobFilter, JobQueue, Progress, QueueConfig, Reaped};
pub use record::JobRecord;
pub use redis_queue::RedisQueue;
pub use sqlite::SqliteQueue;
