//! The embedded queue: job records in a SQLite file, with the Redis queue's contract.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bulk_core::{ExportRequest, IssueCode, JobId, Manifest, OperationOutcome};
use rusqlite::{params, Connection, OptionalExtension};

use crate::keys::idempotency_hash;
use crate::queue::now_ms;
use crate::{Enqueued, JobFilter, JobQueue, JobRecord, Progress, QueueConfig, QueueError, Reaped};

/// Record columns read back into a `JobRecord`, in `SELECT` order.
const COLUMNS: [&str; 12] = [
    "status",
    "owner",
    "request",
    "worker",
    "attempts",
    "processed",
    "total",
    "transaction_time",
    "manifest",
    "error",
    "checkpoint",
    "started_at",
];

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- FIFO order of the queue
    id               TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    owner            TEXT NOT NULL,
    request          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    transaction_time TEXT,
    worker           TEXT,
    lease_until      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    processed        INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL DEFAULT 0,
    manifest         TEXT,
    error            TEXT,
    checkpoint       TEXT,
    -- Like a Redis TTL: past it the record is gone for every reader, and purged.
    expires_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (lease_until) WHERE status = 'in_progress';
-- (owner, Idempotency-Key) hashed -> the job it created; lives as long as an active record.
CREATE TABLE IF NOT EXISTS idempotency (
    key_hash   TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
-- Every pinned export file, by when it may be unpinned (ms).
CREATE TABLE IF NOT EXISTS content (
    cid        TEXT PRIMARY KEY,
    due_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS content_by_due ON content (due_at);
-- Downloads in flight: a file is not unpinned mid-stream.
CREATE TABLE IF NOT EXISTS reading (
    cid        TEXT PRIMARY KEY,
    readers    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS job_files (
    cid        TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (cid, job_id)
);
"#;

/// The queue in a SQLite file. One connection behind a mutex, used from
/// blocking tasks: SQLite serialises writers anyway, and every transition is
/// one short transaction.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
    config: QueueConfig,
}

/// Upgrades files made by an older version. The queue shares its file with
/// the resource store, whose migrations own `PRAGMA user_version`, so the
/// queue checks for what it needs instead.
fn add_column_if_missing(conn: &Connection, table: &str, column: &str, decl: &str) -> Result<(), QueueError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})")).map_err(db_err)?;
    let exists = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(db_err)?
        .filter_map(Result::ok)
        .any(|name| name == column);
    if !exists {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}")).map_err(db_err)?;
    }
    Ok(())
}

/// How a running job ends, with the JSON it ends with.
enum Ending<'a> {
    Completed(&'a str),
    Failed(&'a str),
}

/// Ends `worker`'s running job: final status, its manifest or error, and the
/// record TTL from now. `false` (nothing written) when the job is no longer
/// that worker's.
fn end_job(
    conn: &Connection,
    id: &JobId,
    worker: &str,
    ending: Ending<'_>,
    now: i64,
    ttl: i64,
) -> Result<bool, QueueError> {
    let (status, column, json) = match ending {
        Ending::Completed(m) => ("completed", "manifest", m),
        Ending::Failed(e) => ("failed", "error", e),
    };
    let n = conn
        .execute(
            &format!(
                "UPDATE jobs SET status = '{status}', {column} = ?3, finished_at = ?4, worker = NULL,
                 lease_until = NULL, expires_at = ?4 + ?5
                 WHERE id = ?1 AND worker = ?2 AND status = 'in_progress' AND expires_at > ?4"
            ),
            params![id.to_string(), worker, json, now, ttl],
        )
        .map_err(db_err)?;
    Ok(n == 1)
}

fn db_err(e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("sqlite: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, QueueError> {
    serde_json::to_string(v).map_err(|e| QueueError::Corrupt(e.to_string()))
}

impl SqliteQueue {
    /// Opens (creating) the database file and its schema.
    pub async fn open(path: &Path, config: QueueConfig) -> Result<Self, QueueError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, QueueError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| QueueError::Unavailable(e.to_string()))?;
            }
            let conn = Connection::open(&path).map_err(db_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
            conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
            conn.execute_batch(SCHEMA).map_err(db_err)?;
            conn.execute_batch(crate::sqlite_once::SCHEMA).map_err(db_err)?;
            add_column_if_missing(&conn, "jobs", "checkpoint", "TEXT")?;
            Ok(conn)
        })
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))??;
        Ok(SqliteQueue { conn: Arc::new(Mutex::new(conn)), config })
    }

    /// Runs `f` on the connection in a blocking task.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable: every
            // transition is one transaction, rolled back if it did not commit.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))?
    }

    fn read(conn: &Connection, id: &JobId, now: u64) -> Result<Option<JobRecord>, QueueError> {
        let sql = format!("SELECT {} FROM jobs WHERE id = ?1 AND expires_at > ?2", COLUMNS.join(", "));
        let row = conn
            .query_row(&sql, params![id.to_string(), now as i64], |row| {
                let mut fields = HashMap::new();
                for (i, name) in COLUMNS.iter().enumerate() {
                    let value: Option<String> = match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                        _ => None,
                    };
                    if let Some(v) = value {
                        fields.insert((*name).to_owned(), v);
                    }
                }
                Ok(fields)
            })
            .optional()
            .map_err(db_err)?;
        row.map(|fields| JobRecord::from_fields(*id, fields)).transpose()
    }
}

#[async_trait]
impl JobQueue for SqliteQueue {
    fn config(&self) -> &QueueConfig {
        &self.config
    }

    async fn enqueue_within(
        &self,
        id: JobId,
        owner: &str,
        request: &ExportRequest,
        idempotency_key: Option<&str>,
        max_active: u64,
    ) -> Result<Enqueued, QueueError> {
        let key_hash = idempotency_key.map(|k| idempotency_hash(owner, k));
        let (owner, request) = (owner.to_owned(), to_json(request)?);
        let ttl = self.config.active_ttl.as_millis() as i64;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            if let Some(hash) = &key_hash {
                let prior: Option<(String, String)> = tx
                    .query_row(
                        "SELECT j.id, j.request FROM idempotency i JOIN jobs j ON j.id = i.job_id
                         WHERE i.key_hash = ?1 AND i.expires_at > ?2 AND j.expires_at > ?2",
                        params![hash, now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db_err)?;
                if let Some((job, prior_request)) = prior {
                    let job: JobId = job.parse().map_err(|_| QueueError::Corrupt(format!("bad job id {job:?}")))?;
                    return Ok(if prior_request == request { Enqueued::Existing(job) } else { Enqueued::KeyReused(job) });
                }
            }
            if max_active > 0 {
                let active: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM jobs
                         WHERE status IN ('queued', 'in_progress') AND owner = ?1 AND expires_at > ?2",
                        params![owner, now],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if active as u64 >= max_active {
                    return Ok(Enqueued::AtLimit);
                }
            }
            tx.execute(
                "INSERT INTO jobs (id, status, owner, request, created_at, expires_at) VALUES (?1, 'queued', ?2, ?3, ?4, ?5)",
                params![id.to_string(), owner, request, now, now + ttl],
            )
            .map_err(db_err)?;
            if let Some(hash) = &key_hash {
                tx.execute(
                    "INSERT INTO idempotency (key_hash, job_id, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key_hash) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at",
                    params![hash, id.to_string(), now + ttl],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(Enqueued::New(id))
        })
        .await
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, QueueError> {
        let id = *id;
        self.with(move |conn| Self::read(conn, &id, now_ms())).await
    }

    async fn cancel(&self, id: &JobId) -> Result<bool, QueueError> {
        let id = *id;
        let ttl = self.config.record_ttl.as_millis() as i64;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let n = conn
                .execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?2, worker = NULL, lease_until = NULL,
                     expires_at = ?2 + ?3 WHERE id = ?1 AND status <> 'cancelled' AND expires_at > ?2",
                    params![id.to_string(), now, ttl],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn claim(&self, worker: &str) -> Result<Option<JobRecord>, QueueError> {
        let worker = worker.to_owned();
        let (lease, ttl) = (self.config.lease.as_millis() as i64, self.config.active_ttl.as_millis() as i64);
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let id: Option<String> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE status = 'queued' AND expires_at > ?1 ORDER BY seq LIMIT 1",
                    params![now as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let Some(id) = id else { return Ok(None) };
            tx.execute(
                "UPDATE jobs SET status = 'in_progress', worker = ?2, lease_until = ?3, attempts = attempts + 1,
                 started_at = COALESCE(started_at, ?4), expires_at = ?4 + ?5 WHERE id = ?1",
                params![id, worker, now as i64 + lease, now as i64, ttl],
            )
            .map_err(db_err)?;
            let id: JobId = id.parse().map_err(|_| QueueError::Corrupt(format!("bad job id {id:?}")))?;
            let record = Self::read(&tx, &id, now)?;
            tx.commit().map_err(db_err)?;
            Ok(record)
        })
        .await
    }

    async fn heartbeat(&self, id: &JobId, worker: &str, progress: &Progress) -> Result<bool, QueueError> {
        let (id, worker, p) = (*id, worker.to_owned(), progress.clone());
        let lease = self.config.lease.as_millis() as i64;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let n = conn
                .execute(
                    "UPDATE jobs SET lease_until = ?3,
                       transaction_time = COALESCE(?4, transaction_time),
                       total = COALESCE(?5, total), processed = COALESCE(?6, processed),
                       checkpoint = COALESCE(?8, checkpoint)
                     WHERE id = ?1 AND worker = ?2 AND status = 'in_progress' AND expires_at > ?7",
                    params![
                        id.to_string(),
                        worker,
                        now + lease,
                        p.transaction_time,
                        p.total.map(|n| n as i64),
                        p.processed.map(|n| n as i64),
                        now,
                        p.checkpoint
                    ],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn complete(
        &self,
        id: &JobId,
        worker: &str,
        manifest: &Manifest,
        cids: &[String],
    ) -> Result<bool, QueueError> {
        let (id, worker, manifest, cids) = (*id, worker.to_owned(), to_json(manifest)?, cids.to_vec());
        let ttl = self.config.record_ttl.as_millis() as i64;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let tx = conn.transaction().map_err(db_err)?;
            let ended = end_job(&tx, &id, &worker, Ending::Completed(&manifest), now, ttl)?;
            if ended {
                for cid in &cids {
                    tx.execute(
                        "INSERT INTO job_files (cid, job_id, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (cid, job_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
                        params![cid, id.to_string(), now + ttl],
                    )
                    .map_err(db_err)?;
                    // Unpinnable once the longest-lived job listing it has expired.
                    tx.execute(
                        "INSERT INTO content (cid, due_at) SELECT ?1, MAX(expires_at) FROM job_files WHERE cid = ?1
                         ON CONFLICT (cid) DO UPDATE SET due_at = excluded.due_at",
                        params![cid],
                    )
                    .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(ended)
        })
        .await
    }

    async fn fail(&self, id: &JobId, worker: &str, outcome: &OperationOutcome) -> Result<bool, QueueError> {
        let (id, worker, outcome) = (*id, worker.to_owned(), to_json(outcome)?);
        let ttl = self.config.record_ttl.as_millis() as i64;
        self.with(move |conn| end_job(conn, &id, &worker, Ending::Failed(&outcome), now_ms() as i64, ttl)).await
    }

    async fn reap_expired_leases(&self) -> Result<Reaped, QueueError> {
        let outcome = to_json(&OperationOutcome::error(
            IssueCode::Exception,
            format!("Export abandoned after {} attempts", self.config.max_attempts),
        ))?;
        let (max, ttl) = (i64::from(self.config.max_attempts), self.config.record_ttl.as_millis() as i64);
        self.with(move |conn| {
            let now = now_ms() as i64;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let failed = tx
                .execute(
                    "UPDATE jobs SET status = 'failed', error = ?1, finished_at = ?2, worker = NULL,
                     lease_until = NULL, expires_at = ?2 + ?3
                     WHERE status = 'in_progress' AND lease_until <= ?2 AND attempts >= ?4 AND expires_at > ?2",
                    params![outcome, now, ttl, max],
                )
                .map_err(db_err)?;
            // Back on the queue; keeping its `seq` puts it ahead of every job queued after it.
            let requeued = tx
                .execute(
                    "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL
                     WHERE status = 'in_progress' AND lease_until <= ?1 AND expires_at > ?1",
                    params![now],
                )
                .map_err(db_err)?;
            // Housekeeping: records past their TTL are gone, like expired Redis keys.
            tx.execute("DELETE FROM jobs WHERE expires_at <= ?1", params![now]).map_err(db_err)?;
            tx.execute("DELETE FROM job_files WHERE expires_at <= ?1", params![now]).map_err(db_err)?;
            tx.execute("DELETE FROM idempotency WHERE expires_at <= ?1", params![now]).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(Reaped { requeued: requeued as u64, failed: failed as u64 })
        })
        .await
    }

    async fn release(&self, id: &JobId, worker: &str) -> Result<bool, QueueError> {
        let (id, worker) = (*id, worker.to_owned());
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL
                     WHERE id = ?1 AND worker = ?2 AND status = 'in_progress' AND expires_at > ?3",
                    params![id.to_string(), worker, now_ms() as i64],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>, QueueError> {
        let (status, owner) = (filter.status.map(|s| s.as_str().to_owned()), filter.owner.clone());
        self.with(move |conn| {
            let now = now_ms();
            let ids: Vec<String> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id FROM jobs WHERE expires_at > ?1 AND (?2 IS NULL OR status = ?2)
                         AND (?3 IS NULL OR owner = ?3) ORDER BY seq DESC LIMIT ?4",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![now as i64, status, owner, limit as i64], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(db_err)?;
                rows
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let Ok(id) = id.parse::<JobId>() else { continue };
                if let Some(r) = Self::read(conn, &id, now)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn requeue(&self, id: &JobId) -> Result<bool, QueueError> {
        let id = *id;
        let ttl = self.config.active_ttl.as_millis() as i64;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let n = conn
                .execute(
                    "UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, finished_at = NULL,
                     checkpoint = NULL, transaction_time = NULL, processed = 0, total = 0,
                     expires_at = ?2 + ?3 WHERE id = ?1 AND status = 'failed' AND expires_at > ?2",
                    params![id.to_string(), now, ttl],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn track_files(&self, cids: &[String], until_ms: u64) -> Result<(), QueueError> {
        let cids = cids.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            for cid in &cids {
                tx.execute(
                    "INSERT INTO content (cid, due_at) VALUES (?1, ?2)
                     ON CONFLICT (cid) DO UPDATE SET due_at = MAX(due_at, excluded.due_at)",
                    params![cid, until_ms as i64],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn discard_files(&self, id: &JobId, cids: &[String]) -> Result<(), QueueError> {
        let (id, cids) = (*id, cids.to_vec());
        self.with(move |conn| {
            let now = now_ms() as i64;
            let tx = conn.transaction().map_err(db_err)?;
            for cid in &cids {
                tx.execute("DELETE FROM job_files WHERE cid = ?1 AND job_id = ?2", params![cid, id.to_string()])
                    .map_err(db_err)?;
                tx.execute(
                    "INSERT INTO content (cid, due_at) VALUES (?1, ?2)
                     ON CONFLICT (cid) DO UPDATE SET due_at = excluded.due_at
                     WHERE NOT EXISTS (SELECT 1 FROM job_files WHERE cid = ?1 AND expires_at > ?2)",
                    params![cid, now],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn due_files(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        self.with(move |conn| {
            let now = now_ms() as i64;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
            let due: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("SELECT cid FROM content WHERE due_at <= ?1 LIMIT ?2").map_err(db_err)?;
                let rows = stmt
                    .query_map(params![now, limit as i64], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(db_err)?;
                rows
            };
            let mut out = Vec::new();
            for cid in due {
                // Listed by a completed, unexpired job: not before that job expires.
                let listed: Option<i64> = tx
                    .query_row(
                        "SELECT MAX(f.expires_at) FROM job_files f JOIN jobs j ON j.id = f.job_id
                         WHERE f.cid = ?1 AND f.expires_at > ?2 AND j.status = 'completed' AND j.expires_at > ?2",
                        params![cid, now],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                let reading: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM reading WHERE cid = ?1 AND readers > 0 AND expires_at > ?2)",
                        params![cid, now],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                let next = match (listed, reading) {
                    (Some(until), _) => until,
                    (None, true) => now + 60_000,
                    (None, false) => {
                        out.push(cid.clone());
                        now + 60_000
                    }
                };
                tx.execute("UPDATE content SET due_at = ?2 WHERE cid = ?1", params![cid, next]).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    async fn forget_file(&self, cid: &str) -> Result<(), QueueError> {
        let cid = cid.to_owned();
        self.with(move |conn| {
            conn.execute("DELETE FROM content WHERE cid = ?1", params![cid]).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn reading(&self, cid: &str, starts: bool) -> Result<(), QueueError> {
        let cid = cid.to_owned();
        self.with(move |conn| {
            let now = now_ms() as i64;
            if starts {
                conn.execute(
                    "INSERT INTO reading (cid, readers, expires_at) VALUES (?1, 1, ?2)
                     ON CONFLICT (cid) DO UPDATE SET readers = readers + 1, expires_at = excluded.expires_at",
                    params![cid, now + 3_600_000],
                )
            } else {
                conn.execute("UPDATE reading SET readers = MAX(readers - 1, 0) WHERE cid = ?1", params![cid])
            }
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn jobs_with_file(&self, cid: &str) -> Result<Vec<JobId>, QueueError> {
        let cid = cid.to_owned();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT job_id FROM job_files WHERE cid = ?1 AND expires_at > ?2")
                .map_err(db_err)?;
            let ids = stmt
                .query_map(params![cid, now_ms() as i64], |r| r.get::<_, String>(0))
                .map_err(db_err)?
                .filter_map(|r| r.ok().and_then(|s| s.parse().ok()))
                .collect();
            Ok(ids)
        })
        .await
    }

    async fn queue_len(&self) -> Result<u64, QueueError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT count(*) FROM jobs WHERE status = 'queued' AND expires_at > ?1",
                params![now_ms() as i64],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }

    async fn record_ttl(&self, id: &JobId) -> Result<Option<u64>, QueueError> {
        let id = *id;
        self.with(move |conn| {
            let now = now_ms() as i64;
            let expires: Option<i64> = conn
                .query_row(
                    "SELECT expires_at FROM jobs WHERE id = ?1 AND expires_at > ?2",
                    params![id.to_string(), now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            Ok(expires.map(|e| ((e - now) / 1000) as u64))
        })
        .await
    }

    async fn health_check(&self) -> Result<(), QueueError> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err)).await
    }

    async fn remember_once(&self, key: &str, ttl_secs: u64) -> Result<bool, QueueError> {
        let hash = idempotency_hash("once", key);
        let ttl_ms = ttl_secs.max(1).saturating_mul(1000) as i64;
        self.with(move |conn| crate::sqlite_once::remember(conn, &hash, now_ms() as i64, ttl_ms)).await
    }
}
