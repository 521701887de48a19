//! One-time values in the SQLite queue: the embedded `SET NX EX`.

use rusqlite::{params, Connection};

use crate::QueueError;

/// Values seen, hashed, with when they may be forgotten (ms since the epoch).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS once_keys (
    key_hash   TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS once_keys_by_expiry ON once_keys (expires_at);
"#;

/// Records `key_hash` until `now + ttl_ms` unless a live record exists; `true`
/// when this call recorded it. Expired records are purged on the way, so the
/// table holds only values that may still be presented.
pub(crate) fn remember(conn: &mut Connection, key_hash: &str, now: i64, ttl_ms: i64) -> Result<bool, QueueError> {
    let db = |e: rusqlite::Error| QueueError::Unavailable(format!("sqlite: {e}"));
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
    tx.execute("DELETE FROM once_keys WHERE expires_at <= ?1", params![now]).map_err(db)?;
    let inserted = tx
        .execute(
            "INSERT INTO once_keys (key_hash, expires_at) VALUES (?1, ?2) ON CONFLICT (key_hash) DO NOTHING",
            params![key_hash, now + ttl_ms],
        )
        .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_remembered_once_until_it_expires() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(SCHEMA).expect("schema");
        assert!(remember(&mut conn, "k", 1_000, 500).expect("first"));
        assert!(!remember(&mut conn, "k", 1_400, 500).expect("replay while live"));
        assert!(remember(&mut conn, "other", 1_400, 500).expect("another value"));
        assert!(remember(&mut conn, "k", 1_500, 500).expect("after expiry"));
    }
}
