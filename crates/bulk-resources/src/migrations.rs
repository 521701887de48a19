//! The schema of each backend, as numbered migrations applied once each.

/// `(version, SQL)`, applied in order inside one transaction each.
pub(crate) const POSTGRES: &[(i32, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE resources (
        resource_type text NOT NULL,
        -- "C" collation: keyset pagination compares ids bytewise, whatever the locale.
        id            text COLLATE "C" NOT NULL,
        patient_id    text COLLATE "C",
        last_updated  timestamptz NOT NULL DEFAULT now(),
        resource      text NOT NULL,
        PRIMARY KEY (resource_type, id)
    );
    -- Patient-scoped paging: WHERE resource_type = $1 AND patient_id = $2 AND id > $3 ORDER BY id.
    CREATE INDEX resources_by_patient ON resources (resource_type, patient_id, id);
    "#,
    ),
    (
        2,
        r#"
    -- A resource can be in several patients' compartments (an Observation's
    -- subject and performer, a Group's members): membership is its own table,
    -- replacing resources.patient_id. No foreign key: a resource row is never
    -- removed (deletion leaves a tombstone), so there is nothing to cascade.
    CREATE TABLE resource_patients (
        resource_type text NOT NULL,
        id            text COLLATE "C" NOT NULL,
        patient_id    text COLLATE "C" NOT NULL,
        PRIMARY KEY (resource_type, id, patient_id)
    );
    -- A patient's (or a Group's members') resources of one type, in id order.
    CREATE INDEX resource_patients_by_patient ON resource_patients (patient_id, resource_type, id);
    INSERT INTO resource_patients (resource_type, id, patient_id)
        SELECT resource_type, id, patient_id FROM resources WHERE patient_id IS NOT NULL;
    DROP INDEX resources_by_patient;
    ALTER TABLE resources DROP COLUMN patient_id;
    -- Tombstones: a deleted resource keeps its row (and membership) so that an
    -- export with _since can report it; last_updated is the deletion time.
    ALTER TABLE resources ADD COLUMN deleted boolean NOT NULL DEFAULT false;
    CREATE INDEX resources_deleted ON resources (resource_type, id) WHERE deleted;
    "#,
    ),
    (
        3,
        r#"
    -- Incremental exports (_since) read a narrow last_updated window of a
    -- type: without this index each one scanned the whole type. (Built inside
    -- the migration's transaction, so writes wait while it builds on a large
    -- existing table; build it CONCURRENTLY by hand first to avoid that.)
    CREATE INDEX IF NOT EXISTS resources_by_update ON resources (resource_type, last_updated);
    "#,
    ),
];

/// `(user_version, SQL)` for SQLite, applied in order in one transaction.
pub(crate) const SQLITE: &[(i32, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE resources (
        resource_type TEXT NOT NULL,
        id            TEXT NOT NULL,
        patient_id    TEXT,
        last_updated  INTEGER NOT NULL, -- microseconds since the epoch
        resource      TEXT NOT NULL,
        PRIMARY KEY (resource_type, id)
    ) WITHOUT ROWID;
    CREATE INDEX resources_by_patient ON resources (resource_type, patient_id, id);
    "#,
    ),
    (
        2,
        r#"
    -- Same shape as PostgreSQL's version 2: membership table, tombstones.
    CREATE TABLE resource_patients (
        resource_type TEXT NOT NULL,
        id            TEXT NOT NULL,
        patient_id    TEXT NOT NULL,
        PRIMARY KEY (resource_type, id, patient_id)
    ) WITHOUT ROWID;
    CREATE INDEX resource_patients_by_patient ON resource_patients (patient_id, resource_type, id);
    INSERT INTO resource_patients (resource_type, id, patient_id)
        SELECT resource_type, id, patient_id FROM resources WHERE patient_id IS NOT NULL;
    DROP INDEX resources_by_patient;
    ALTER TABLE resources DROP COLUMN patient_id;
    ALTER TABLE resources ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX resources_deleted ON resources (resource_type, id) WHERE deleted = 1;
    "#,
    ),
    (
        3,
        r#"
    -- As PostgreSQL's version 3: the last_updated window of _since.
    CREATE INDEX IF NOT EXISTS resources_by_update ON resources (resource_type, last_updated);
    "#,
    ),
];

#[cfg(test)]
mod tests;
