//! Deleting resources: tombstones leave every read but `deleted_page`, and a
//! write brings the resource back.

use std::time::Duration;

use bulk_resources::{NewResource, PatientFilter, ResourceQuery};

use super::{ids, of_patients, query};
use crate::helpers::*;

fn observation(id: &str, ps: &[&str]) -> NewResource {
    NewResource {
        resource_type: "Observation".into(),
        id: id.into(),
        patient_ids: ps.iter().map(|p| (*p).to_owned()).collect(),
        json: format!(r#"{{"resourceType":"Observation","id":"{id}"}}"#),
    }
}

fn obs(id: &str) -> (String, String) {
    ("Observation".into(), id.into())
}

async fn a_deleted_resource_leaves_page_count_and_get_and_is_listed_as_a_tombstone_in_its_window(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    store
        .upsert(&[observation("o1", &["p1"]), observation("o2", &["p1", "p2"]), observation("o3", &["p2"])])
        .await
        .expect("upsert");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = store.now().await.expect("now");
    tokio::time::sleep(Duration::from_millis(5)).await;

    assert_eq!(store.delete(&[obs("o1"), obs("o2"), obs("absent")]).await.expect("delete"), 2);
    assert_eq!(store.delete(&[obs("o1")]).await.expect("delete again"), 0, "already deleted");
    let after = store.now().await.expect("now");

    // Gone from every read of live resources.
    assert_eq!(ids(store, &query("Observation", PatientFilter::All)).await, ["o3"]);
    assert_eq!(store.count(&query("Observation", of_patients(&["p1"]))).await.expect("count"), 0);
    assert_eq!(store.count(&query("Observation", PatientFilter::AnyPatient)).await.expect("count"), 1);
    assert_eq!(store.get("Observation", "o1").await.expect("get"), None);
    assert_eq!(store.patients_of(&[obs("o1"), obs("o2")]).await.expect("of"), Vec::<String>::new());

    // Listed as tombstones, within their compartments and deletion window.
    let window = |filter, since, until| ResourceQuery { since, until, ..query("Observation", filter) };
    let tombstones = |q: ResourceQuery| async move { store.deleted_page(&q, None, 100).await.expect("deleted") };
    assert_eq!(tombstones(window(PatientFilter::All, Some(before), after)).await, ["o1", "o2"]);
    assert_eq!(tombstones(window(PatientFilter::All, None, after)).await, ["o1", "o2"]);
    assert_eq!(tombstones(window(of_patients(&["p2"]), Some(before), after)).await, ["o2"]);
    assert_eq!(tombstones(window(PatientFilter::AnyPatient, Some(before), after)).await, ["o1", "o2"]);
    assert!(tombstones(window(of_patients(&["p3"]), None, after)).await.is_empty());
    assert!(tombstones(window(PatientFilter::All, Some(after), after)).await.is_empty(), "deleted before since");
    assert!(tombstones(window(PatientFilter::All, None, before)).await.is_empty(), "deleted after until");
    assert!(tombstones(query("Patient", PatientFilter::All)).await.is_empty(), "other types");
    // Keyset paging.
    let q = window(PatientFilter::All, None, after);
    assert_eq!(store.deleted_page(&q, None, 1).await.expect("page"), ["o1"]);
    assert_eq!(store.deleted_page(&q, Some("o1"), 1).await.expect("page"), ["o2"]);
    assert!(store.deleted_page(&q, Some("o2"), 1).await.expect("page").is_empty());
}

async fn writing_a_deleted_resource_again_revives_it_with_its_new_compartments(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    let store = app.resources.as_ref();
    store.upsert(&[observation("o1", &["p1"])]).await.expect("upsert");
    store.delete(&[obs("o1")]).await.expect("delete");
    assert_eq!(store.get("Observation", "o1").await.expect("get"), None);

    store.upsert(&[observation("o1", &["p2"])]).await.expect("revive");
    let now = store.now().await.expect("now");
    assert!(store.get("Observation", "o1").await.expect("get").is_some());
    assert_eq!(ids(store, &query("Observation", of_patients(&["p2"]))).await, ["o1"]);
    assert!(ids(store, &query("Observation", of_patients(&["p1"]))).await.is_empty());
    let tombstones = ResourceQuery { until: now, ..query("Observation", PatientFilter::All) };
    assert!(store.deleted_page(&tombstones, None, 10).await.expect("deleted").is_empty());
    assert_eq!(store.existing("Observation", &["o1".into()]).await.expect("existing"), ["o1"]);
}

both_modes!(
    a_deleted_resource_leaves_page_count_and_get_and_is_listed_as_a_tombstone_in_its_window,
    writing_a_deleted_resource_again_revives_it_with_its_new_compartments,
);
