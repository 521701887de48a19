//! The PostgreSQL resource store and the loader.

use std::io::Write;

use bulk_resources::{load_files, PatientFilter, ResourceQuery};

use crate::helpers::*;

fn query(ty: &str, patients: PatientFilter) -> ResourceQuery {
    ResourceQuery {
        resource_type: ty.into(),
        patients,
        until: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
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
    let docs = app.resources.count(&query("DocumentReference", PatientFilter::Only("a".into()))).await.expect("n");
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
    let n = app.resources.count(&query("Provenance", PatientFilter::Only("p9".into()))).await.expect("count");
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

both_modes!(
    loading_ndjson_reports_bad_lines_by_file_and_number_and_loads_the_rest,
    gzipped_files_load_and_provenance_follows_its_targets_into_the_compartment,
    keyset_pages_cover_every_matching_resource_once_in_id_order,
);
