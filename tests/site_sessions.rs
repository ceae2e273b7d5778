//! A site is one family of sessions (`[sessions] fork`): a request under a
//! root whose first request's session lives, or ended lately, starts from
//! a copy of it — its providers, rankings and routing lookups — and says
//! so in `Server-Timing`; other roots, an expired family and a gateway with
//! forking off start afresh.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::routing::{peer_record, routing_server, RoutingTable};
use common::{assert_body, header, TestGateway};
use sluice::unixfs::builder::{build_directory, Built};

/// A directory of `files` files of `size` bytes each (`f0` …), every block
/// by CID, and each file's bytes and CID.
struct Site {
    root: Cid,
    blocks: HashMap<Cid, Bytes>,
    files: Vec<(Cid, Vec<u8>)>,
}

fn site(sizes: &[usize], seed: u8) -> Site {
    let mut blocks = HashMap::new();
    let mut entries: Vec<(String, Built)> = Vec::new();
    let mut contents = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let (cid, data, file_blocks) =
            common::generated_file(*size, seed.wrapping_mul(16) + i as u8, 64 * 1024);
        let built = Built {
            cid,
            file_size: data.len() as u64,
            dag_size: file_blocks.values().map(|b| b.len() as u64).sum(),
        };
        blocks.extend(file_blocks);
        contents.push((cid, data));
        entries.push((format!("f{i}"), built));
    }
    let root = build_directory(entries, false, &mut |b| {
        blocks.insert(b.cid, b.data);
    });
    Site {
        root: root.cid,
        blocks,
        files: contents,
    }
}

/// A routing server naming `peers` for every CID.
async fn router(peers: &[&TestPeer]) -> (RoutingTable, String) {
    let table = RoutingTable {
        every_cid: Arc::new(peers.iter().map(|p| peer_record(p)).collect()),
        ..Default::default()
    };
    let endpoint = routing_server(table.clone()).await;
    (table, endpoint)
}

/// The session id a `Server-Timing` header says the request forked from.
fn forked_from(timing: &str) -> Option<u64> {
    let at = timing.find("fork;desc=\"from session ")?;
    let rest = &timing[at + "fork;desc=\"from session ".len()..];
    rest.split('"').next()?.parse().ok()
}

/// `GET /ipfs/<root>/<file>`, its body checked; the `Server-Timing` header.
async fn fetch(gw: &TestGateway, site: &Site, file: usize, hints: &[&str]) -> String {
    let path = format!("/ipfs/{}/f{file}", site.root);
    let headers: Vec<(&str, &str)> = hints.iter().map(|h| ("x-ipfs-provider", *h)).collect();
    let response = gw.get_with(&path, &headers).await;
    assert_eq!(response.status(), 200, "{path}");
    let timing = header(&response, "server-timing");
    assert_body(response, &site.files[file].1).await;
    timing
}

/// Waits until the gateway has no session alive (the last response's body
/// was finished, so its session ended).
async fn sessions_ended(gw: &TestGateway) {
    for _ in 0..100 {
        if gw.metric_sum("sluice_sessions_live", &[]).await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sessions did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_under_a_root_starts_from_the_first_ones_providers() {
    let site = site(&[200_000; 3], 1);
    let fast = TestPeer::start(site.blocks.clone(), Behaviour::Honest).await;
    let slow = TestPeer::start(
        site.blocks.clone(),
        Behaviour::Slow(Duration::from_millis(300)),
    )
    .await;
    let (router, endpoint) = router(&[&slow, &fast]).await;
    let gw = TestGateway::start_with(Vec::new(), |c| c.routing.endpoints = vec![endpoint]).await;

    let first = fetch(&gw, &site, 0, &[]).await;
    assert_eq!(forked_from(&first), None, "{first}");
    let looked_up = router.lookups();
    assert!(
        looked_up >= 1,
        "the first request found its providers by routing"
    );
    sessions_ended(&gw).await;
    let slow_before = slow.seen.lock().unwrap().want_blocks.len();

    let second = fetch(&gw, &site, 1, &[]).await;
    assert!(forked_from(&second).is_some(), "{second}");
    assert_eq!(
        router.lookups(),
        looked_up,
        "the fork looked the root up again"
    );
    let file = site.files[1].0;
    assert!(
        fast.seen.lock().unwrap().want_blocks.contains(&file),
        "the provider the first request ranked best was not asked"
    );
    assert_eq!(
        slow.seen.lock().unwrap().want_blocks.len(),
        slow_before,
        "the slower provider got a WANT_BLOCK"
    );
    // Process-wide, and the other tests here fork too.
    assert!(gw.metric_sum("sluice_sessions_forked_total", &[]).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_sessions_names_a_live_forks_parent() {
    let site = site(&[50_000, 16 << 20], 2);
    let peer = TestPeer::start(site.blocks.clone(), Behaviour::Honest).await;
    let gw = TestGateway::start(Vec::new()).await;
    let hint = peer.hint();
    let first = fetch(&gw, &site, 0, &[&hint]).await;
    assert_eq!(forked_from(&first), None);

    // A response not read holds its session (16 MiB cannot all be written
    // ahead into the socket), so `/debug/sessions` shows it.
    let path = format!("/ipfs/{}/f1", site.root);
    let held = gw.get(&path).await;
    assert_eq!(held.status(), 200);
    let parent = forked_from(&header(&held, "server-timing")).expect("forked");
    let sessions: Vec<serde_json::Value> =
        serde_json::from_str(&gw.text(&format!("{}/debug/sessions", gw.control)).await).unwrap();
    assert!(
        sessions.iter().any(|s| s["parent"] == parent),
        "no live session names parent {parent}: {sessions:?}"
    );
    assert_body(held, &site.files[1].1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_root_an_expired_family_and_forking_off_start_afresh() {
    let one = site(&[50_000; 2], 3);
    let other = site(&[50_000; 2], 4);
    let mut blocks = one.blocks.clone();
    blocks.extend(other.blocks.clone());
    let peer = TestPeer::start(blocks, Behaviour::Honest).await;
    let (router, endpoint) = router(&[&peer]).await;
    let endpoints = vec![endpoint];

    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.routing.endpoints = endpoints.clone();
        c.sessions.fork_ttl_secs = 1;
    })
    .await;
    fetch(&gw, &one, 0, &[]).await;
    let looked_up = router.lookups();
    let elsewhere = fetch(&gw, &other, 0, &[]).await;
    assert_eq!(
        forked_from(&elsewhere),
        None,
        "forked across roots: {elsewhere}"
    );
    assert!(router.lookups() > looked_up, "another root is looked up");

    sessions_ended(&gw).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let late = fetch(&gw, &one, 1, &[]).await;
    assert_eq!(forked_from(&late), None, "forked past the TTL: {late}");

    let off = TestGateway::start_with(Vec::new(), |c| {
        c.routing.endpoints = endpoints.clone();
        c.sessions.fork = false;
    })
    .await;
    fetch(&off, &one, 0, &[]).await;
    let unforked = fetch(&off, &one, 1, &[]).await;
    assert_eq!(forked_from(&unforked), None, "forked while off: {unforked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forks_own_hints_are_added_to_it() {
    let site = site(&[50_000; 2], 5);
    // The first provider has the root and the first file; only the second,
    // named by the second request's hint, has the second file.
    let first_file: HashMap<Cid, Bytes> = site
        .blocks
        .iter()
        .filter(|(cid, _)| **cid != site.files[1].0)
        .map(|(c, b)| (*c, b.clone()))
        .collect();
    let a = TestPeer::start(first_file, Behaviour::Honest).await;
    let b = TestPeer::start(site.blocks.clone(), Behaviour::Honest).await;
    let gw = TestGateway::start(Vec::new()).await;
    fetch(&gw, &site, 0, &[&a.hint()]).await;
    let second = fetch(&gw, &site, 1, &[&b.hint()]).await;
    assert!(forked_from(&second).is_some(), "{second}");
    assert!(b
        .seen
        .lock()
        .unwrap()
        .want_blocks
        .contains(&site.files[1].0));
}
