//! The IPFS (Kubo RPC) content store against a real node.

use bulk_content::{ContentStore, LocalStore};

use crate::helpers::*;

#[tokio::test]
async fn kubo_and_the_local_store_give_the_same_cid_for_the_same_bytes() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("local-{}", uuid::Uuid::new_v4()));
    let local = LocalStore::open(&dir).await.expect("local store");
    // Spans two 256 KiB chunks.
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let kubo = app.content.put(Box::new(std::io::Cursor::new(bytes.clone()))).await.expect("kubo put");
    let here = local.put(Box::new(std::io::Cursor::new(bytes.clone()))).await.expect("local put");
    assert_eq!(kubo, here);
    assert_eq!(kubo.size, 600_000);
    assert_eq!(fetch(app.content.as_ref(), &kubo.cid).await, bytes);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn an_unpinned_file_is_no_longer_served() {
    let app = TestApp::spawn().await;
    let unique = format!("{{\"resourceType\":\"Patient\",\"id\":\"{}\"}}\n", uuid::Uuid::new_v4());
    let stored = app.content.put(Box::new(std::io::Cursor::new(unique.into_bytes()))).await.expect("put");
    assert!(app.content.get(&stored.cid).await.is_ok());
    app.content.unpin(&stored.cid).await.expect("unpin");
    assert!(app.content.get(&stored.cid).await.err().is_some_and(|e| e.is_not_found()));
    // Unpinning twice is fine.
    app.content.unpin(&stored.cid).await.expect("unpin again");
}
