//! `worker.encrypt_files`: the content store holds only ciphertext; the key
//! is in the authenticated manifest; the API's file endpoints decrypt.

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::helpers::*;

async fn encrypted_exports_store_ciphertext_and_the_api_serves_the_ndjson(mode: Mode) {
    let app = TestApp::spawn_in(mode, &[("BULK__WORKER__ENCRYPT_FILES", "true")]).await;
    app.seed(3, 2).await;
    let status = app.kick_off("/fhir/r4/$export?_type=Patient,DocumentReference", &admin()).await;
    app.run_worker().await;
    let manifest = app.manifest(&status, &admin()).await;
    let id = status.rsplit('/').next().expect("id");
    for item in manifest["output"].as_array().expect("output") {
        let url = item["url"].as_str().expect("url");
        let cid = url.trim_start_matches("ipfs://");
        let stored = app.fetch_ipfs(url).await;
        assert!(!stored.windows(12).any(|w| w == b"resourceType"), "plaintext reached the content store");

        // The manifest's key decrypts what IPFS holds to the NDJSON the extensions describe.
        let output: bulk_core::OutputFile = serde_json::from_value(item.clone()).expect("output item");
        let key = bulk_content::output_key(&output).expect("key").expect("encrypted");
        let raw = app.content.get(&cid.parse().expect("cid")).await.expect("get");
        let chunks: Vec<_> = bulk_content::decrypt_stream(raw, key).try_collect().await.expect("decrypts");
        let plain = chunks.concat();
        let ext = item["extension"].as_array().expect("extension");
        assert!(ext.iter().any(|e| e["valueString"] == format!("{:x}", Sha256::digest(&plain))));
        assert_eq!(ndjson(&plain).len() as u64, item["count"].as_u64().expect("count"));

        for path in [format!("/ipfs/{cid}"), format!("/fhir/r4/$export-file/{id}/{cid}")] {
            let res = app.get(&path, Some(&admin())).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.bytes().await.expect("body").to_vec(), plain, "{path}");
        }
    }
}

both_modes!(encrypted_exports_store_ciphertext_and_the_api_serves_the_ndjson);
