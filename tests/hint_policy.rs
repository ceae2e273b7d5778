//! Provider hints by IPIP-0504's gateway rules, over HTTP: under `[hints]
//! policy = "parallel"` a routing lookup starts while the hinted provider
//! is still holding its answer, and a router that never answers does not
//! hold the hinted content up; under `"first"` not before
//! `routing_delay_ms`; hints past the per-client and total dial limits
//! are ignored (the client is the TCP peer, never `X-Forwarded-For`), the
//! request still served by the provider routing names (a real Helia
//! peer), and counted in `sluice_hints_ignored_total`.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::peers::Provider;
use common::routing::{record_of, routing_server, RoutingTable};
use common::{assert_body, TestGateway};
use sluice::routing::HintPolicy;

const HOLD: Duration = Duration::from_secs(4);
const ROUTING_DELAY_MS: u64 = 2500;

/// A request hinted to a peer that holds every answer for [`HOLD`], with a
/// routing server beside it: when each routing request came, after the
/// gateway request began, and how many blocks the peer had sent by then.
async fn hinted_request_to_a_slow_peer(policy: HintPolicy, seed: u8) -> Vec<(Duration, usize)> {
    let (root, data, blocks) = common::generated_file(200_000, seed, 256 * 1024);
    let slow = TestPeer::start(blocks, Behaviour::Slow(HOLD)).await;
    let router = RoutingTable::default();
    *router.watched.lock().unwrap() = Some(slow.blocks_sent.clone());
    let endpoint = routing_server(router.clone()).await;
    let gw = TestGateway::start_with(Vec::new(), move |c| {
        c.routing.endpoints = vec![endpoint];
        c.retrieval.routing_delay_ms = ROUTING_DELAY_MS;
        c.retrieval.block_timeout_secs = 20;
        c.hints.policy = policy;
    })
    .await;
    let started = Instant::now();
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &slow.hint()).await;
    assert_body(response, &data).await;
    assert!(
        started.elapsed() >= HOLD && slow.blocks_sent.load(Ordering::SeqCst) > 0,
        "the body came from the slow peer, once it stopped holding"
    );
    router
        .seen()
        .into_iter()
        .map(|(at, sent)| (at.saturating_duration_since(started), sent))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_asks_routing_while_the_hinted_provider_holds_its_answer() {
    let seen = hinted_request_to_a_slow_peer(HintPolicy::Parallel, 41).await;
    let (after, sent_by_then) = *seen.first().expect("routing was asked");
    assert_eq!(
        sent_by_then, 0,
        "routing was asked before the hinted peer answered"
    );
    assert!(
        after < Duration::from_millis(ROUTING_DELAY_MS),
        "routing asked {after:?} in: beside the hints, not after routing_delay_ms"
    );
    assert_eq!(seen.len(), 1, "one lookup for the session: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_asks_routing_only_after_routing_delay_ms() {
    let seen = hinted_request_to_a_slow_peer(HintPolicy::First, 42).await;
    let (after, sent_by_then) = *seen
        .first()
        .expect("routing is asked once routing_delay_ms is over");
    assert!(
        after >= Duration::from_millis(ROUTING_DELAY_MS),
        "routing asked {after:?} in, before routing_delay_ms ({ROUTING_DELAY_MS} ms)"
    );
    assert_eq!(
        sent_by_then, 0,
        "the hinted peer was still holding its answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_routing_that_hangs_does_not_hold_up_the_hints() {
    // The lookup runs beside the wants: were the fetch to wait for it, the
    // router's silence (past the block timeout) would make this a 504.
    let (root, data, blocks) = common::generated_file(2 * 1024 * 1024, 43, 256 * 1024);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let router = RoutingTable {
        hang: true,
        ..Default::default()
    };
    let endpoint = routing_server(router.clone()).await;
    let gw = TestGateway::start_with(Vec::new(), move |c| {
        c.routing.endpoints = vec![endpoint];
        c.routing.lookup_timeout_ms = 60_000;
        c.retrieval.block_timeout_secs = 10;
        c.hints.policy = HintPolicy::Parallel;
    })
    .await;
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &peer.hint()).await;
    assert_body(response, &data).await;
    assert_eq!(
        router.seen().len(),
        1,
        "routing was asked, and is still silent"
    );
}

/// A client of the gateway whose connections come from `ip` (any
/// 127.0.0.0/8 address is loopback on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Four 300 KiB files on a Helia peer that a routing server names, and
/// three hintable test peers that have none of them (they say DONT_HAVE,
/// and record every want).
struct Setup {
    _dir: tempfile::TempDir,
    _helia: Provider,
    roots: Vec<String>,
    data: Vec<Vec<u8>>,
    hinted: Vec<TestPeer>,
    endpoint: String,
}

async fn setup(seed: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let mut data = Vec::new();
    for i in 0..4u8 {
        let (_, bytes, _) = common::generated_file(300 * 1024, 60 + i, 256 * 1024);
        let path = dir.path().join(format!("f{i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        inputs.push(format!("f{i}={}", path.display()));
        data.push(bytes);
    }
    let helia = Provider::start("helia", seed, &[], &inputs);
    let roots: Vec<String> = (0..4).map(|i| helia.root(&format!("f{i}"))).collect();
    let router = RoutingTable::default();
    for root in &roots {
        router.name(root, record_of(&helia.hint));
    }
    let endpoint = routing_server(router).await;
    let mut hinted = Vec::new();
    for _ in 0..3 {
        hinted.push(TestPeer::start(HashMap::<Cid, _>::new(), Behaviour::Honest).await);
    }
    Setup {
        _dir: dir,
        _helia: helia,
        roots,
        data,
        hinted,
        endpoint,
    }
}

fn asked(peer: &TestPeer) -> usize {
    let seen = peer.seen.lock().unwrap();
    seen.want_blocks.len() + seen.want_haves.len()
}

fn asked_for(peer: &TestPeer, root: &str) -> bool {
    let root: Cid = root.parse().unwrap();
    let seen = peer.seen.lock().unwrap();
    seen.want_blocks.contains(&root) || seen.want_haves.contains(&root)
}

async fn get_from(
    client: &reqwest::Client,
    gw: &TestGateway,
    root: &str,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut request = client.get(gw.url(&format!("/ipfs/{root}")));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn ignored(gw: &TestGateway, reason: &str) -> f64 {
    gw.metric_sum(
        "sluice_hints_ignored_total",
        &[&format!("reason=\"{reason}\"")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_past_the_per_client_dial_limit_are_ignored_and_counted() {
    let s = setup("sluice-hint-client-limit").await;
    let endpoint = s.endpoint.clone();
    let gw = TestGateway::start_with(Vec::new(), move |c| {
        c.routing.endpoints = vec![endpoint];
        c.hints.max_dials_per_minute_per_client = 2;
        c.hints.max_dials_per_minute = 100;
    })
    .await;
    let (one, other) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let [h1, h2, h3] = [&s.hinted[0], &s.hinted[1], &s.hinted[2]];
    let provider = |peers: &[&TestPeer]| {
        let hints: Vec<String> = peers.iter().map(|p| p.hint()).collect();
        ("x-ipfs-provider", hints.join(","))
    };

    // Two new providers: the client's whole minute.
    let response = get_from(&one, &gw, &s.roots[0], &[provider(&[h1, h2])]).await;
    assert_body(response, &s.data[0]).await;
    assert!(asked_for(h1, &s.roots[0]) && asked_for(h2, &s.roots[0]));

    // A third is past it, whatever X-Forwarded-For claims: the hint is
    // ignored, and the file still comes through routing (from Helia).
    let before = ignored(&gw, "client_rate").await;
    let response = get_from(
        &one,
        &gw,
        &s.roots[1],
        &[provider(&[h3]), ("x-forwarded-for", "127.0.0.9".into())],
    )
    .await;
    assert_body(response, &s.data[1]).await;
    assert_eq!(asked(h3), 0, "an ignored hint is never dialled nor asked");
    assert_eq!(ignored(&gw, "client_rate").await - before, 1.0);

    // Naming a provider again within the minute is free.
    let response = get_from(&one, &gw, &s.roots[2], &[provider(&[h1])]).await;
    assert_body(response, &s.data[2]).await;
    assert!(asked_for(h1, &s.roots[2]), "a repeated hint is used");

    // Another client has its own minute.
    let response = get_from(&other, &gw, &s.roots[3], &[provider(&[h3])]).await;
    assert_body(response, &s.data[3]).await;
    assert!(asked_for(h3, &s.roots[3]), "another client's hint is used");
    assert_eq!(ignored(&gw, "client_rate").await - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_past_the_total_dial_limit_are_ignored_and_counted() {
    let s = setup("sluice-hint-total-limit").await;
    let endpoint = s.endpoint.clone();
    let gw = TestGateway::start_with(Vec::new(), move |c| {
        c.routing.endpoints = vec![endpoint];
        c.hints.max_dials_per_minute_per_client = 100;
        c.hints.max_dials_per_minute = 2;
    })
    .await;
    let clients = [
        client_from("127.0.0.1"),
        client_from("127.0.0.2"),
        client_from("127.0.0.3"),
    ];
    let before = ignored(&gw, "total_rate").await;
    for (i, client) in clients.iter().enumerate() {
        let hint = ("x-ipfs-provider", s.hinted[i].hint());
        let response = get_from(client, &gw, &s.roots[i], &[hint]).await;
        assert_body(response, &s.data[i]).await;
    }
    assert!(asked_for(&s.hinted[0], &s.roots[0]));
    assert!(asked_for(&s.hinted[1], &s.roots[1]));
    assert_eq!(
        asked(&s.hinted[2]),
        0,
        "the third client's hint is past the total: ignored, served through routing"
    );
    assert_eq!(ignored(&gw, "total_rate").await - before, 1.0);
}
