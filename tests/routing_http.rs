//! Content routing and trustless HTTP providers: providers found with no
//! hint, a session mixing a Bitswap peer (Helia) with an HTTP gateway,
//! back-off on 429, bounded block requests per gateway, a routing server
//! that hangs, and private addresses from routing never dialled.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header as h, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::peers::Provider;
use common::routing::{peer_record, routing_server, RoutingTable};
use common::{assert_body, TestGateway};
use multihash_codetable::{Code, MultihashDigest};
use sluice::session::{PeerBook, ProviderId};

fn file(size: usize, seed: u8) -> (Cid, Vec<u8>, HashMap<Cid, Bytes>) {
    common::generated_file(size, seed, 256 * 1024)
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A trustless gateway's `/ipfs/{cid}` route, served on loopback.
async fn serve_blocks(route: axum::routing::MethodRouter) -> String {
    serve(axum::Router::new().route("/ipfs/{cid}", route)).await
}

/// Blocks keyed by their CID's string form, as gateway paths name them.
fn by_name(blocks: HashMap<Cid, Bytes>) -> Arc<HashMap<String, Bytes>> {
    Arc::new(
        blocks
            .into_iter()
            .map(|(c, d)| (c.to_string(), d))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_found_with_no_hint_and_lookups_are_coalesced() {
    let (root, data, blocks) = file(1024 * 1024, 1);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let table = RoutingTable {
        ndjson: true,
        ..Default::default()
    };
    table
        .records
        .lock()
        .unwrap()
        .insert(root.to_string(), vec![peer_record(&peer)]);
    let endpoint = routing_server(table.clone()).await;
    let endpoint_again = endpoint.clone();
    let gw = TestGateway::start_with(Vec::new(), |c| c.routing.endpoints = vec![endpoint]).await;

    let path = format!("/ipfs/{root}");
    let (a, b) = tokio::join!(gw.get(&path), gw.get(&path));
    for response in [a, b] {
        assert_body(response, &data).await;
    }
    assert_eq!(
        table.requests.load(Ordering::SeqCst),
        1,
        "one lookup for two concurrent requests"
    );
    // The answer is cached for its max-age (the server sends 300 s): asking
    // the routing client again does not reach the server.
    let config = sluice::routing::RoutingConfig {
        endpoints: vec![endpoint_again],
        ..Default::default()
    };
    let routing =
        sluice::routing::Routing::new(config, sluice::dial::AddressPolicy::new(true)).unwrap();
    let before = table.requests.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(routing.find_providers(&root).await.providers.len(), 1);
    }
    assert_eq!(
        table.requests.load(Ordering::SeqCst),
        before + 1,
        "answers are cached"
    );
    assert_eq!(routing.lookups(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_addresses_that_are_private_are_never_dialled() {
    let (root, _, blocks) = file(300_000, 2);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let table = RoutingTable::default();
    table
        .records
        .lock()
        .unwrap()
        .insert(root.to_string(), vec![peer_record(&peer)]);
    let endpoint = routing_server(table.clone()).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.routing.endpoints = vec![endpoint];
        c.hints.allow_private = false;
        c.retrieval.block_timeout_secs = 3;
    })
    .await;
    let response = gw.get(&format!("/ipfs/{root}")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        table.requests.load(Ordering::SeqCst),
        1,
        "routing was asked"
    );
    let seen = peer.seen.lock().unwrap();
    assert!(
        seen.want_blocks.is_empty() && seen.want_haves.is_empty(),
        "the private address was dialled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_routing_server_does_not_hold_up_hinted_content() {
    let (root, data, blocks) = file(600_000, 3);
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let endpoint = routing_server(RoutingTable {
        hang: true,
        ..Default::default()
    })
    .await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.routing.endpoints = vec![endpoint];
        c.routing.lookup_timeout_ms = 1000;
        c.retrieval.routing_delay_ms = 0;
        c.retrieval.block_timeout_secs = 10;
    })
    .await;
    let started = Instant::now();
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &peer.hint()).await;
    assert_body(response, &data).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A trustless gateway serving raw blocks that answers 429 (Retry-After: 1)
/// to the first request for each block.
#[derive(Clone, Default)]
struct Flaky {
    blocks: Arc<HashMap<String, Bytes>>,
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

async fn flaky_block(
    State(flaky): State<Flaky>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Response {
    assert_eq!(headers.get(h::ACCEPT).unwrap(), "application/vnd.ipld.raw");
    let count = {
        let mut seen = flaky.seen.lock().unwrap();
        let n = seen.entry(cid.clone()).or_default();
        *n += 1;
        *n
    };
    if count == 1 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(h::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response();
    }
    match flaky.blocks.get(&cid) {
        Some(data) => (
            [(h::CONTENT_TYPE, "application/vnd.ipld.raw")],
            data.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_provider_answering_429_then_200() {
    let (root, data, blocks) = file(100_000, 4);
    assert_eq!(blocks.len(), 1, "one block, so one back-off");
    let flaky = Flaky {
        blocks: by_name(blocks),
        ..Default::default()
    };
    let base = serve_blocks(axum::routing::get(flaky_block).with_state(flaky.clone())).await;
    let gw = TestGateway::start_with(Vec::new(), |c| c.retrieval.block_timeout_secs = 10).await;
    let started = Instant::now();
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &base).await;
    assert_body(response, &data).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was respected"
    );
    assert_eq!(flaky.seen.lock().unwrap().get(&root.to_string()), Some(&2));
}

/// A trustless gateway that takes a while per block and records how many
/// block requests it was serving at once, and in what order they came.
#[derive(Clone, Default)]
struct Counting {
    blocks: Arc<HashMap<String, Bytes>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    arrived: Arc<Mutex<Vec<String>>>,
}

async fn counting_block(
    State(gateway): State<Counting>,
    method: axum::http::Method,
    Path(cid): Path<String>,
) -> Response {
    // `bafkqaaa` (the empty identity block) is the reachability probe.
    let data = match gateway.blocks.get(&cid) {
        Some(data) => data.clone(),
        None if cid == "bafkqaaa" => Bytes::new(),
        None => return StatusCode::NOT_FOUND.into_response(),
    };
    if method == axum::http::Method::GET {
        gateway.arrived.lock().unwrap().push(cid.clone());
        let now = gateway.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        gateway.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        gateway.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    ([(h::CONTENT_TYPE, "application/vnd.ipld.raw")], data).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_requests_to_one_gateway_are_bounded() {
    // Sixteen blocks read ahead must not become sixteen transfers sharing
    // one link: the first block would come last.
    let (root, data, blocks) = common::generated_file(24 * 512 * 1024, 12, 512 * 1024);
    let gateway = Counting {
        blocks: by_name(blocks),
        ..Default::default()
    };
    let base = serve_blocks(axum::routing::get(counting_block).with_state(gateway.clone())).await;
    let gw = TestGateway::start_with(Vec::new(), |c| c.retrieval.block_timeout_secs = 10).await;
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &base).await;
    assert_body(response, &data).await;
    let most = gateway.most_in_flight.load(Ordering::SeqCst);
    // 2 MiB of expected block bytes: 8 of the assumed 256 KiB at first,
    // 4 once its blocks are known to be 512 KiB.
    assert!((1..=8).contains(&most), "{most} block requests at once");
    // And they start in the order the body reads them: a leaf is never
    // asked for before one a whole bound (8) earlier in the file.
    let arrived = gateway.arrived.lock().unwrap().clone();
    let position = |i: usize| {
        let chunk = &data[i * 512 * 1024..(i + 1) * 512 * 1024];
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(chunk)).to_string();
        arrived
            .iter()
            .position(|c| *c == cid)
            .expect("every leaf asked")
    };
    for i in 0..24 - 8 {
        assert!(
            position(i) < position(i + 8),
            "leaf {} asked before leaf {i}: arrival positions by leaf {:?}",
            i + 8,
            (0..24).map(position).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_mixes_a_helia_peer_and_an_http_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, _) = file(64 * 1024 * 1024, 5);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let helia = Provider::start(
        "helia",
        "sluice-mix",
        &[],
        &[format!("big={}", dir.path().join("big.bin").display())],
    );
    let root = helia.root("big");

    // The HTTP provider is a second sluice serving a CAR of Helia's DAG.
    let exporter = TestGateway::start(Vec::new()).await;
    let car = exporter
        .get_with(
            &format!("/ipfs/{root}?format=car"),
            &[("x-ipfs-provider", helia.hint.as_str())],
        )
        .await;
    assert_eq!(car.status(), 200);
    let car_path = dir.path().join("big.car");
    std::fs::write(&car_path, car.bytes().await.unwrap()).unwrap();
    let http_provider = TestGateway::start(vec![car_path]).await;

    let gw = TestGateway::start_with(Vec::new(), |c| c.retrieval.block_timeout_secs = 20).await;
    let hints = format!("{},{}", helia.hint, http_provider.base);
    let response = gw.get_hinted(&format!("/ipfs/{root}"), &hints).await;
    assert_body(response, &data).await;
    // When the session ends, what each provider delivered goes into the
    // process-wide peer book: both must have delivered blocks.
    let delivered = |provider: ProviderId| PeerBook::global().blocks_delivered(&provider) > 0;
    let helia_peer: libp2p::PeerId = helia.hint.rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(delivered(ProviderId::Peer(helia_peer))
        && delivered(ProviderId::Http(http_provider.base.clone())))
    {
        assert!(
            Instant::now() < deadline,
            "both providers should have delivered blocks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_timeout_holds_while_a_provider_is_silent_and_routing_hangs() {
    // A silent hinted peer and a router that never answers within the
    // block timeout: the 504 comes at `block_timeout_secs`, not after the
    // lookups the fetch waited on (they used to add 5 s each).
    let (root, _, _) = file(1000, 9);
    let silent = TestPeer::start(HashMap::new(), Behaviour::Silent).await;
    let endpoint = routing_server(RoutingTable {
        hang: true,
        ..Default::default()
    })
    .await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.routing.endpoints = vec![endpoint];
        c.routing.lookup_timeout_ms = 10_000;
        c.retrieval.routing_delay_ms = 100;
        c.retrieval.block_timeout_secs = 3;
    })
    .await;
    let started = Instant::now();
    let response = gw
        .get_hinted(&format!("/ipfs/{root}"), &silent.hint())
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    // 10% over the documented timeout, plus scheduling slack on a busy machine.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3300 + 700),
        "504 after {took:?} with block_timeout_secs = 3"
    );
}
