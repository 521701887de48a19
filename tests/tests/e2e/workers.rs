//! Many workers, one queue.

use std::collections::HashSet;

use crate::helpers::*;

async fn two_workers_sharing_one_queue_do_every_job_exactly_once(mode: Mode) {
    // Eight exports of one client at once: beyond the default concurrent-export limit.
    let app = TestApp::spawn_in(mode, &[("BULK__SERVER__MAX_ACTIVE_EXPORTS_PER_CLIENT", "0")]).await;
    app.seed(3, 1).await;
    let token = admin();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(app.kick_off("/fhir/r4/$export", &token).await);
    }
    let (a, b) = (app.worker(), app.worker());
    let (ra, rb) = tokio::join!(a.run_until_empty(), b.run_until_empty());
    assert_eq!(ra.expect("a") + rb.expect("b"), 8);

    let mut ids = HashSet::new();
    for status in &statuses {
        let id = status.rsplit('/').next().expect("id").parse().expect("id");
        let record = app.queue.get(&id).await.expect("get").expect("record");
        assert_eq!(record.attempts, 1, "job claimed twice");
        assert!(ids.insert(id));
        let manifest = app.manifest(status, &token).await;
        assert_eq!(manifest["output"].as_array().map(Vec::len), Some(4));
    }
}

both_modes!(two_workers_sharing_one_queue_do_every_job_exactly_once,);
