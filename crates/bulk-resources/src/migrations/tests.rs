//! Upgrading a SQLite file written under schema version 1.

use rusqlite::Connection;

use super::SQLITE;
use crate::{PatientFilter, ResourceQuery, ResourceStore, SqliteStore};

fn query(ty: &str, patients: PatientFilter) -> ResourceQuery {
    ResourceQuery {
        resource_type: ty.into(),
        patients,
        since: None,
        until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

#[tokio::test]
async fn sqlite_rows_written_under_schema_version_1_keep_their_compartment_after_the_upgrade() {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let dir = std::env::temp_dir().join(format!("bulk-resources-migrate-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("v1.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(SQLITE[0].1).expect("version 1");
        conn.pragma_update(None, "user_version", 1).expect("user_version");
        conn.execute_batch(
            r#"INSERT INTO resources (resource_type, id, patient_id, last_updated, resource) VALUES
                ('Patient', 'p1', 'p1', 1, '{"resourceType":"Patient","id":"p1"}'),
                ('Consent', 'c1', 'p1', 1, '{"resourceType":"Consent","id":"c1"}'),
                ('Organization', 'o1', NULL, 1, '{"resourceType":"Organization","id":"o1"}');"#,
        )
        .expect("rows");
    }
    let store = SqliteStore::open(&path).await.expect("open");
    store.migrate().await.expect("upgrade");
    store.migrate().await.expect("a second migrate is a no-op");
    let ids = |q| {
        let store = &store;
        async move { store.page(&q, None, 10).await.expect("page").into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(ids(query("Consent", PatientFilter::Patients(vec!["p1".into()]))).await, ["c1"]);
    assert_eq!(ids(query("Patient", PatientFilter::AnyPatient)).await, ["p1"]);
    assert!(ids(query("Organization", PatientFilter::AnyPatient)).await.is_empty());
    assert_eq!(ids(query("Organization", PatientFilter::All)).await, ["o1"]);
    assert_eq!(store.existing("Consent", &["c1".into()]).await.expect("existing"), ["c1"], "not deleted");
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}
