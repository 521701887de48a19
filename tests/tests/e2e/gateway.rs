//! `GET /ipfs/{cid}`: files by CID, to the owner of a job that lists them.

use crate::helpers::*;

async fn gateway_serves_a_file_only_to_the_owner_of_a_job_that_lists_it(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[]).await;
    app.seed(3, 1).await;
    let owner = patient("seed-p0000001");
    let status = app.kick_off("/fhir/r4/Patient/$export?_type=Patient,Consent", &owner).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &owner).await;
    for item in manifest["output"].as_array().expect("output") {
        let url = item["url"].as_str().expect("url");
        let path = format!("/ipfs/{}", url.trim_start_matches("ipfs://"));
        let res = app.get(&path, Some(&owner)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
        let body = res.bytes().await.expect("body").to_vec();
        assert_eq!(body, app.fetch_ipfs(url).await);
        assert_eq!(ndjson(&body).len() as u64, item["count"].as_u64().expect("count"));

        assert_eq!(app.get(&path, Some(&admin())).await.status(), 200);
        assert_outcome(app.get(&path, Some(&patient("seed-p0000002"))).await, 403, "forbidden").await;
        assert_outcome(app.get(&path, None).await, 401, "login").await;
    }
    assert_outcome(
        app.get("/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", Some(&owner)).await,
        404,
        "not-found",
    )
    .await;
    assert_outcome(app.get("/ipfs/..%2F..%2Fetc%2Fpasswd", Some(&owner)).await, 404, "not-found").await;

    // Discarded: the gateway no longer serves its files.
    let first = manifest["output"][0]["url"].as_str().expect("url").trim_start_matches("ipfs://").to_owned();
    assert_eq!(app.delete(&status, &owner).await.status(), 204);
    assert_outcome(app.get(&format!("/ipfs/{first}"), Some(&owner)).await, 404, "not-found").await;
}

both_modes!(gateway_serves_a_file_only_to_the_owner_of_a_job_that_lists_it);
