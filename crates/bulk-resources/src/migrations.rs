//! PostgreSQL schema, as numbered migrations applied once each.

/// `(version, SQL)`, applied in order inside one transaction each.
pub(crate) const POSTGRES: &[(i32, &str)] = &[(
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
)];

/// `(user_version, SQL)` for SQLite, applied in order in one transaction.
pub(crate) const SQLITE: &[(i32, &str)] = &[(
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
)];
