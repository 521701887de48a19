//! The queue's one error type.

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis is unreachable or answered with an error; worth a retry.
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    /// A record holds data this version cannot read.
    #[error("corrupt job record: {0}")]
    Corrupt(String),
}

impl QueueError {
    /// Transient failures a caller may retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

impl From<deadpool_redis::PoolError> for QueueError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}
