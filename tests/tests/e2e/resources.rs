//! The resource stores (PostgreSQL and SQLite) and the loader: compartments,
//! tombstones, the `(since, until]` window, patient filters.

mod synthea;
mod tombstones;

use std::io::Write;

use bulk_resources::{load_files, load_lines, LoadReport, NewResource, PatientFilter, ResourceQuery, ResourceStore};

use crate::helpers::*;

pub(crate) fn query(ty: &str, patients: PatientFilter) -> ResourceQuery {
    ResourceQuery {
        resource_type: ty.into(),
        patients,
        since: None,
        until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

pub(crate) fn of_patients(ids: &[&str]) -> PatientFilter {
    PatientFilter::Patients(ids.iter().map(|s| (*s).to_owned()).collect())
}

/// Loads NDJSON text as if from a file named `source`.
pub(crate) async fn load_text(store: &dyn ResourceStore, source: &str, text: &str) -> LoadReport {
    let mut report = LoadReport::default();
    load_lines(store, source, text.as_bytes(), &mut report).await.expect("load");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report
}

/// The ids of every live resource `q` matches, in the store's order.
pub(crate) async fn ids(store: &dyn ResourceStore, q: &ResourceQuery) -> Vec<String> {
    store.page(q, None, 100_000).await.expect("page").into_iter().map(|r| r.id).collect()
}

async fn loading_ndjson_reports_bad_lines_by_file_and_number_and_loads_the_rest(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let dir = std::env::temp_dir().join(format!("load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("Mixed.ndjson");
    std::fs::write(
        &path,
        concat!(
            "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n",
            "{\"resourceType\":\"Patient\",\"id\":\n",
            "\n",
            "{\"resourceType\":\"DocumentReference\",\"id\":\"d1\",\"subject\":{\"reference\":\"Patient/a\"}}\n",
            "[]\n",
            "{\"resourceType\":\"Patient\",\"id\":\"a\",\"active\":true}\n",
        ),
    )
    .expect("write");
    let report = load_files(app.resources.as_ref(), std::slice::from_ref(&path)).await.expect("load");
    let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 5]);
    assert!(report.errors.iter().all(|e| e.file.ends_with("Mixed.ndjson")));
    // Upsert by (type, id): the second Patient/a replaced the first.
    let patients = app.resources.page(&query("Patient", PatientFilter::All), None, 10).await.expect("page");
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0].json, r#"{"resourceType":"Patient","id":"a","active":true}"#);
    let docs = app.resources.count(&query("DocumentReference", of_patients(&["a"]))).await.expect("n");
    assert_eq!(docs, 1);
    std::fs::remove_dir_all(dir).ok();
}

async fn gzipped_files_load_and_provenance_follows_its_targets_into_the_compartment(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let dir = std::env::temp_dir().join(format!("load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let gz = |name: &str, body: &str| {
        let f = std::fs::File::create(dir.join(name)).expect("create");
        let mut w = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        w.write_all(body.as_bytes()).expect("write");
        w.finish().expect("finish");
    };
    // Provenance sorts first by name but is loaded last.
    gz(
        "Provenance.ndjson.gz",
        "{\"resourceType\":\"Provenance\",\"id\":\"v1\",\"target\":[{\"reference\":\"Consent/c1\"}]}\n",
    );
    gz(
        "Consent.ndjson.gz",
        "{\"resourceType\":\"Consent\",\"id\":\"c1\",\"patient\":{\"reference\":\"Patient/p9\"}}\n",
    );
    let report = load_files(app.resources.as_ref(), std::slice::from_ref(&dir)).await.expect("load");
    assert_eq!((report.loaded, report.errors.len()), (2, 0));
    let n = app.resources.count(&query("Provenance", of_patients(&["p9"]))).await.expect("count");
    assert_eq!(n, 1);
    std::fs::remove_dir_all(dir).ok();
}

async fn keyset_pages_cover_every_matching_resource_once_in_id_order(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(23, 0).await;
    let q = query("Patient", PatientFilter::AnyPatient);
    let mut after: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let page = app.resources.page(&q, after.as_deref(), 4).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        ids.extend(page.into_iter().map(|r| r.id));
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 23);
    assert_eq!(app.resources.count(&q).await.expect("count"), 23);
}

async fn a_resource_referencing_several_patients_is_in_each_compartment_and_a_provenance_follows_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    load_text(
        store,
        "multi.ndjson",
        concat!(
            r#"{"resourceType":"Observation","id":"both","subject":{"reference":"Patient/a"},"performer":[{"reference":"Practitioner/dr"},{"reference":"Patient/b"}]}"#,
            "\n",
            r#"{"resourceType":"Observation","id":"only-c","subject":{"reference":"Patient/c"}}"#,
            "\n",
            r#"{"resourceType":"Organization","id":"org","partOf":{"reference":"Patient/a"}}"#,
            "\n",
        ),
    )
    .await;
    // In a later load, as a real feed would be: resolved against the store.
    load_text(
        store,
        "Provenance.ndjson",
        concat!(
            r#"{"resourceType":"Provenance","id":"prov","target":[{"reference":"Observation/both"},{"reference":"Organization/org"}]}"#,
            "\n"
        ),
    )
    .await;
    for (p, want) in [("a", vec!["both"]), ("b", vec!["both"]), ("c", vec!["only-c"])] {
        assert_eq!(ids(store, &query("Observation", of_patients(&[p]))).await, want, "patient {p}");
        let prov = ids(store, &query("Provenance", of_patients(&[p]))).await;
        assert_eq!(prov.len(), usize::from(p != "c"), "patient {p}: {prov:?}");
    }
    assert_eq!(store.patients_of(&[("Observation".into(), "both".into())]).await.expect("of"), ["a", "b"]);
    assert_eq!(store.count(&query("Organization", PatientFilter::AnyPatient)).await.expect("count"), 0);
    assert_eq!(store.count(&query("Organization", PatientFilter::All)).await.expect("count"), 1);

    // Writing a resource again replaces its membership.
    load_text(
        store,
        "moved.ndjson",
        concat!(r#"{"resourceType":"Observation","id":"both","subject":{"reference":"Patient/c"}}"#, "\n"),
    )
    .await;
    assert!(ids(store, &query("Observation", of_patients(&["a"]))).await.is_empty());
    assert_eq!(ids(store, &query("Observation", of_patients(&["c"]))).await, ["both", "only-c"]);
}

async fn a_patients_filter_selects_the_union_of_the_listed_compartments_each_resource_once(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let row = |id: &str, ps: &[&str]| NewResource {
        resource_type: "Observation".into(),
        id: id.into(),
        patient_ids: ps.iter().map(|p| (*p).to_owned()).collect(),
        json: format!(r#"{{"resourceType":"Observation","id":"{id}"}}"#),
    };
    let rows =
        [row("o1", &["p1"]), row("o2", &["p2"]), row("o3", &["p3"]), row("o13", &["p1", "p3"]), row("none", &[])];
    app.resources.upsert(&rows).await.expect("upsert");
    let store = app.resources.as_ref();
    assert_eq!(ids(store, &query("Observation", of_patients(&["p1", "p3"]))).await, ["o1", "o13", "o3"]);
    assert_eq!(store.count(&query("Observation", of_patients(&["p3", "p1"]))).await.expect("count"), 3);
    assert_eq!(ids(store, &query("Observation", of_patients(&["p2", "nobody"]))).await, ["o2"]);
    assert!(ids(store, &query("Observation", of_patients(&[]))).await.is_empty());
    assert_eq!(store.count(&query("Observation", PatientFilter::AnyPatient)).await.expect("count"), 4);
    assert_eq!(store.count(&query("Observation", PatientFilter::All)).await.expect("count"), 5);
    // Keyset paging over a union: every resource once, in id order.
    let q = query("Observation", of_patients(&["p1", "p2", "p3"]));
    let first = store.page(&q, None, 2).await.expect("page");
    let rest = store.page(&q, first.last().map(|r| r.id.as_str()), 10).await.expect("page");
    let all: Vec<_> = first.iter().chain(&rest).map(|r| r.id.as_str()).collect();
    assert_eq!(all, ["o1", "o13", "o2", "o3"]);
}

async fn since_keeps_only_resources_written_after_it_and_until_only_those_written_up_to_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    let patient = |id: &str| NewResource {
        resource_type: "Patient".into(),
        id: id.into(),
        patient_ids: vec![id.into()],
        json: format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#),
    };
    store.upsert(&[patient("early")]).await.expect("upsert");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = store.now().await.expect("now");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.upsert(&[patient("late")]).await.expect("upsert");
    let after = store.now().await.expect("now");

    let window = |since, until| ResourceQuery { since, until, ..query("Patient", PatientFilter::AnyPatient) };
    assert_eq!(ids(store, &window(None, after)).await, ["early", "late"]);
    assert_eq!(ids(store, &window(Some(between), after)).await, ["late"]);
    assert_eq!(store.count(&window(Some(between), after)).await.expect("count"), 1);
    assert_eq!(ids(store, &window(None, between)).await, ["early"]);
    assert!(ids(store, &window(Some(after), after)).await.is_empty());
    // Rewriting a resource moves it past `since` again.
    store.upsert(&[patient("early")]).await.expect("upsert");
    let now = store.now().await.expect("now");
    assert_eq!(ids(store, &window(Some(after), now)).await, ["early"]);
}

async fn existing_names_the_stored_live_ids_of_a_type_each_once(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 0).await;
    let store = app.resources.as_ref();
    let asked: Vec<String> =
        ["seed-p0000002", "nobody", "seed-p0000000", "seed-p0000002"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(store.existing("Patient", &asked).await.expect("existing"), ["seed-p0000000", "seed-p0000002"]);
    assert!(store.existing("Group", &asked).await.expect("existing").is_empty());
    assert!(store.existing("Patient", &[]).await.expect("existing").is_empty());
    store.delete(&[("Patient".into(), "seed-p0000000".into())]).await.expect("delete");
    assert_eq!(store.existing("Patient", &asked).await.expect("existing"), ["seed-p0000002"]);
}

both_modes!(
    loading_ndjson_reports_bad_lines_by_file_and_number_and_loads_the_rest,
    gzipped_files_load_and_provenance_follows_its_targets_into_the_compartment,
    keyset_pages_cover_every_matching_resource_once_in_id_order,
    a_resource_referencing_several_patients_is_in_each_compartment_and_a_provenance_follows_it,
    a_patients_filter_selects_the_union_of_the_listed_compartments_each_resource_once,
    since_keeps_only_resources_written_after_it_and_until_only_those_written_up_to_it,
    existing_names_the_stored_live_ids_of_a_type_each_once,
);

/// Version 1 of the PostgreSQL schema, as deployed: one `patient_id` per resource.
const POSTGRES_V1: &str = r#"
    CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO schema_migrations (version) VALUES (1);
    CREATE TABLE resources (
        resource_type text NOT NULL,
        id            text COLLATE "C" NOT NULL,
        patient_id    text COLLATE "C",
        last_updated  timestamptz NOT NULL DEFAULT now(),
        resource      text NOT NULL,
        PRIMARY KEY (resource_type, id)
    );
    CREATE INDEX resources_by_patient ON resources (resource_type, patient_id, id);
    INSERT INTO resources (resource_type, id, patient_id, resource) VALUES
        ('Patient', 'p1', 'p1', '{"resourceType":"Patient","id":"p1"}'),
        ('Consent', 'c1', 'p1', '{"resourceType":"Consent","id":"c1"}'),
        ('Organization', 'o1', NULL, '{"resourceType":"Organization","id":"o1"}');
"#;

#[tokio::test]
async fn postgres_rows_written_under_schema_version_1_keep_their_compartment_after_the_upgrade() {
    let services = bulk_testkit::TestServices::from_env();
    let db = bulk_testkit::TestDb::create(&services.postgres_url).await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute(POSTGRES_V1).await.expect("version 1");

    let store = bulk_resources::PostgresStore::connect(&secrecy::SecretString::from(db.url.clone()), 2).expect("pool");
    store.migrate().await.expect("upgrade");
    store.migrate().await.expect("a second migrate is a no-op");
    assert_eq!(ids(&store, &query("Consent", of_patients(&["p1"]))).await, ["c1"]);
    assert_eq!(ids(&store, &query("Patient", PatientFilter::AnyPatient)).await, ["p1"]);
    assert_eq!(store.count(&query("Organization", PatientFilter::AnyPatient)).await.expect("count"), 0);
    assert_eq!(store.count(&query("Organization", PatientFilter::All)).await.expect("count"), 1);
    assert_eq!(store.existing("Consent", &["c1".into()]).await.expect("existing"), ["c1"], "not deleted");
}

#[tokio::test]
async fn the_postgres_transaction_time_stays_before_a_write_still_in_flight() {
    let app = TestApp::spawn().await;
    let url = app.db.as_ref().expect("production mode has a database").url.clone();
    let (mut writer, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    // A loader's transaction: its rows are stamped with its start, and it has not committed.
    let tx = writer.transaction().await.expect("begin");
    tx.execute("INSERT INTO resources (resource_type, id, resource) VALUES ('Patient', 'in-flight', '{}')", &[])
        .await
        .expect("insert");
    let started: time::OffsetDateTime = tx.query_one("SELECT now()", &[]).await.expect("now").get(0);
    let t = app.resources.now().await.expect("transaction time");
    assert!(t < started, "transaction time {t} is not before the in-flight write stamped {started}");
    tx.commit().await.expect("commit");
    // With it committed, the next transaction time is past it again.
    assert!(app.resources.now().await.expect("now") > started);
}
