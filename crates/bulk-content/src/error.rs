//! The content store's one error type.

/// What can go wrong storing or reading export files.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The text is not a CID this service produces.
    #[error("not a valid CID")]
    InvalidCid,
    /// No content under that CID.
    #[error("content not found")]
    NotFound,
    /// The backend could not be reached or answered with an error; worth a retry.
    #[error("content store unavailable: {0}")]
    Unavailable(String),
    /// Reading the bytes to store failed.
    #[error("reading the content to store failed: {0}")]
    Source(#[source] std::io::Error),
    /// Encrypted content failed verification: tampered, truncated or extended,
    /// not in the encrypted format, or read with the wrong key. Retrying reads
    /// the same bytes, so it is permanent.
    #[error("encrypted content failed verification: {0}")]
    Integrity(String),
    /// Local file system error.
    #[error("content store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ContentError {
    /// Transient failures a job may retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ContentError::Unavailable(_) | ContentError::Io(_))
    }

    /// The CID is unknown to the store.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentError::NotFound)
    }
}
