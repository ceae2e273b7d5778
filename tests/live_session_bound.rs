//! The bound on live sessions. Its own test binary: the session registry is
//! process-wide, so sessions of tests running beside it would count too.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::bitswap_peer::{Behaviour, TestPeer};
use common::{header, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_live_session_bound_requests_get_429() {
    let (root, _, _) = common::generated_file(1000, 7, 64 * 1024);
    let silent = TestPeer::start(HashMap::new(), Behaviour::Silent).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.limits.max_live_sessions = 1;
        c.retrieval.block_timeout_secs = 3;
    })
    .await;
    let hanging = gw
        .client
        .get(gw.url(&format!("/ipfs/{root}")))
        .header("x-ipfs-provider", silent.hint())
        .send();
    let hanging = tokio::spawn(hanging);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = gw.get("/ipfs/bafkqaaa").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert!(refused.text().await.unwrap().contains("max_live_sessions"));
    assert_eq!(hanging.await.unwrap().unwrap().status(), 504);
    assert_eq!(gw.get("/ipfs/bafkqaaa").await.status(), 200);
}
