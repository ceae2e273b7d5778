//! What an operator relies on: request limits, metrics that move, the live
//! session view, health checks, and graceful shutdown.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::{header, sha256_hex, TestGateway};

fn file(size: usize, seed: u8) -> (Cid, Vec<u8>, HashMap<Cid, Bytes>) {
    common::generated_file(size, seed, 64 * 1024)
}

async fn scrape(gw: &TestGateway) -> String {
    gw.text(&format!("{}/debug/metrics/prometheus", gw.control))
        .await
}

/// The value of the metric line that starts with `prefix`, or 0.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_cap_requests_get_429() {
    let (root, _, _) = file(1000, 1);
    let silent = TestPeer::start(HashMap::new(), Behaviour::Silent).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.limits.max_concurrent_requests = 1;
        c.retrieval.block_timeout_secs = 5;
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
    assert_eq!(hanging.await.unwrap().unwrap().status(), 504);
    assert_eq!(
        gw.get("/ipfs/bafkqaaa").await.status(),
        200,
        "the slot is free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reads_no_more_blocks_or_bytes_than_its_cap() {
    // 1 MiB in 64 KiB leaves: 16 leaves and a root.
    let (root, data, blocks) = file(1024 * 1024, 8);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let hint = peer.hint();
    let path = format!("/ipfs/{root}");

    let bytes_capped = TestGateway::start_with(Vec::new(), |c| {
        c.limits.max_bytes_per_request = 512 * 1024;
    })
    .await;
    let refused = bytes_capped.get_hinted(&path, &hint).await;
    assert_eq!(refused.status(), 403);
    let message = refused.text().await.unwrap();
    assert!(message.contains("max_bytes_per_request"), "{message}");
    assert!(message.contains("byte range"), "{message}");
    // Part of the file is within the cap.
    let part = bytes_capped
        .get_with(
            &path,
            &[("x-ipfs-provider", &hint), ("range", "bytes=100000-299999")],
        )
        .await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), data[100000..300000]);

    // A cap on blocks ends a body that would read more (the status was sent).
    let blocks_capped = TestGateway::start_with(Vec::new(), |c| {
        c.limits.max_blocks_per_request = 6;
    })
    .await;
    let cut = blocks_capped.get_hinted(&path, &hint).await;
    assert_eq!(cut.status(), 200);
    assert!(cut.bytes().await.is_err(), "the body must end abnormally");
    let small = blocks_capped
        .get_with(
            &path,
            &[("x-ipfs-provider", &hint), ("range", "bytes=0-99")],
        )
        .await;
    assert_eq!(small.status(), 206);
    assert_eq!(small.bytes().await.unwrap(), data[..100]);
    // A CAR of the whole DAG needs 17 blocks: cut off, its status still sent.
    let car = blocks_capped
        .get_hinted(&format!("{path}?format=car"), &hint)
        .await;
    assert_eq!(car.status(), 200);
    assert!(
        car.bytes().await.is_err(),
        "a 17-block CAR passed a 6-block cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_wants_past_the_bound_wait_for_a_slot() {
    let (stuck_root, _, _) = file(1000, 9);
    let (root, data, blocks) = file(1000, 10);
    let silent = TestPeer::start(HashMap::new(), Behaviour::Silent).await;
    let honest = TestPeer::start(blocks, Behaviour::Honest).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.retrieval.max_pending_wants = 1;
        c.retrieval.block_timeout_secs = 2;
    })
    .await;
    let stuck = gw
        .client
        .get(gw.url(&format!("/ipfs/{stuck_root}")))
        .header("x-ipfs-provider", silent.hint())
        .send();
    let stuck = tokio::spawn(async move {
        let status = stuck.await.unwrap().status();
        (status, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The only slot is held by the stuck want until it times out; this one
    // waits for it, then is served.
    let waiting = gw
        .get_hinted(&format!("/ipfs/{root}"), &honest.hint())
        .await;
    let served_at = Instant::now();
    assert_eq!(waiting.status(), 200);
    assert_eq!(waiting.bytes().await.unwrap(), data);
    let (stuck_status, stuck_at) = stuck.await.unwrap();
    assert_eq!(stuck_status, 504);
    assert!(
        served_at >= stuck_at - Duration::from_millis(100),
        "served before the slot was free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_provider_gives_504_before_the_first_byte_and_ends_a_stalled_body() {
    let (root, _, blocks) = file(2 * 1024 * 1024, 2);
    let silent = TestPeer::start(HashMap::new(), Behaviour::Silent).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.limits.first_byte_timeout_secs = 2;
        c.limits.stall_timeout_secs = 2;
        c.retrieval.block_timeout_secs = 60;
    })
    .await;
    let started = Instant::now();
    let response = gw
        .get_hinted(&format!("/ipfs/{root}"), &silent.hint())
        .await;
    assert_eq!(response.status(), 504);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("retrieval timed out"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A provider that sends the first blocks and then nothing: the body is
    // ended once it has stalled, not left hanging.
    let staller = TestPeer::start(blocks, Behaviour::StallAfter(4)).await;
    let started = Instant::now();
    let response = gw
        .get_hinted(&format!("/ipfs/{root}"), &staller.hint())
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the stalled body must end abnormally"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn oversized_headers_and_urls_are_refused() {
    let gw = TestGateway::start(Vec::new()).await;
    let big = "x".repeat(20 * 1024);
    let response = gw.get_with("/ipfs/bafkqaaa", &[("x-padding", &big)]).await;
    assert_eq!(response.status(), 431);
    assert!(response.text().await.unwrap().contains("16384 byte limit"));
    let response = gw
        .get(&format!("/ipfs/bafkqaaa/{}", "a".repeat(9000)))
        .await;
    assert_eq!(response.status(), 414);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_requests_are_served() {
    let (root, data, blocks) = file(300_000, 3);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let gw = TestGateway::start(Vec::new()).await;
    let before = scrape(&gw).await;
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &peer.hint()).await;
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        sha256_hex(&data)
    );
    assert_eq!(gw.get("/ipfs/not-a-cid").await.status(), 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = scrape(&gw).await;
    let moved = |prefix: &str| metric(&after, prefix) - metric(&before, prefix);
    assert!(
        moved("sluice_http_requests_total{response_type=\"File\",status=\"200\"}") >= 1.0,
        "{after}"
    );
    assert!(moved("sluice_http_requests_total{response_type=\"Error\",status=\"400\"}") >= 1.0);
    assert!(moved("sluice_blocks_total{source=\"Bitswap\",outcome=\"Ok\"}") >= 6.0);
    assert!(moved("sluice_block_bytes_total{source=\"Bitswap\"}") >= data.len() as f64);
    assert!(moved("sluice_http_time_to_first_byte_seconds_count{response_type=\"File\"}") >= 1.0);
    for name in [
        "sluice_sessions_live",
        "sluice_peers_connected",
        "sluice_cache_size_bytes",
        "sluice_cache_hits_total",
        "sluice_routing_lookups_total",
        "sluice_retrieval_timeouts_total",
        "sluice_http_in_flight_requests",
    ] {
        assert!(after.contains(name), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_are_visible_while_a_slow_transfer_runs() {
    let (root, data, blocks) = file(1024 * 1024, 4);
    let slow = TestPeer::start(blocks, Behaviour::Slow(Duration::from_millis(150))).await;
    let gw = TestGateway::start(Vec::new()).await;
    let request = gw
        .client
        .get(gw.url(&format!("/ipfs/{root}")))
        .header("x-ipfs-provider", slow.hint())
        .send();
    let transfer = tokio::spawn(async move { request.await.unwrap().bytes().await.unwrap() });
    let peer_id = slow.peer_id.to_string();
    let sessions_url = format!("{}/debug/sessions", gw.control);
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let text = gw.text(&sessions_url).await;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ours = json
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["providers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["id"] == peer_id.as_str())
            })
            .cloned();
        if let Some(view) = ours {
            break view;
        }
        assert!(Instant::now() < deadline, "the session never showed up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let provider = view["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == peer_id.as_str())
        .unwrap();
    assert_eq!(provider["stats"]["source"], "hint");
    assert!(provider["cost"].as_f64().is_some());
    let html = gw
        .client
        .get(&sessions_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("live session") && html.contains(&peer_id),
        "{html}"
    );

    assert_eq!(sha256_hex(&transfer.await.unwrap()), sha256_hex(&data));
    // Once the response is done its session ends and leaves the view.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = gw.text(&sessions_url).await;
        if !text.contains(&peer_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its response"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let gw = TestGateway::start(Vec::new()).await;
    for url in [
        gw.url("/healthz"),
        format!("{}/healthz", gw.control),
        format!("{}/readyz", gw.control),
    ] {
        let response = gw.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_response_in_flight_finish() {
    let (root, data, blocks) = file(1024 * 1024, 5);
    let slow = TestPeer::start(blocks, Behaviour::Slow(Duration::from_millis(100))).await;
    let mut gw = TestGateway::start(Vec::new()).await;
    let mut response = gw.get_hinted(&format!("/ipfs/{root}"), &slow.hint()).await;
    assert_eq!(response.status(), 200);
    let stopped = gw.shut_down();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(
        sha256_hex(&body),
        sha256_hex(&data),
        "the response in flight completed"
    );
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // New connections are refused once it has stopped.
    assert!(gw.client.get(gw.url("/healthz")).send().await.is_err());
}
