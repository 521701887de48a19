//! The resource store's one error type.

/// What can go wrong reading or writing resources.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The database is unreachable or the connection dropped; worth a retry.
    #[error("resource store unavailable: {0}")]
    Unavailable(String),
    /// A query failed for a reason a retry will not fix.
    #[error("resource store query failed: {0}")]
    Query(String),
    /// Reading an input file failed.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ResourceError {
    /// Transient failures a job may retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ResourceError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for ResourceError {
    fn from(e: tokio_postgres::Error) -> Self {
        // A closed connection or an I/O error has no SQLSTATE. Of the server's
        // errors, these are about the connection or the server's state, not
        // the query: class 08 (connection exception), 53 (insufficient
        // resources), 57P01-57P03 (shutdown, crash, cannot connect now), and
        // 40001/40P01 (serialization failure, deadlock): a retry may succeed.
        let transient = match e.code() {
            None => true,
            Some(code) => {
                let c = code.code();
                c.starts_with("08")
                    || c.starts_with("53")
                    || matches!(c, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            }
        };
        if e.is_closed() || transient {
            ResourceError::Unavailable(e.to_string())
        } else {
            ResourceError::Query(e.to_string())
        }
    }
}

impl From<deadpool_postgres::PoolError> for ResourceError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ResourceError::Unavailable(e.to_string())
    }
}
