//! Broadcast discipline: with hundreds of connected peers (as a DHT node
//! has), a session that widens its search asks only a few of them, those
//! that delivered before first, and a CID nobody has fails with an error
//! that names each phase of the search.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use common::bitswap_peer::{Behaviour, TestPeer};
use common::TestGateway;
use multihash_codetable::{Code, MultihashDigest};

fn raw_block(seed: u8) -> (Cid, Bytes) {
    let data = Bytes::from(vec![seed; 2048]);
    (Cid::new_v1(0x55, Code::Sha2_256.digest(&data)), data)
}

fn asked_for(peer: &TestPeer, cid: &Cid) -> bool {
    let seen = peer.seen.lock().unwrap();
    seen.want_haves.contains(cid) || seen.want_blocks.contains(cid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widening_search_asks_a_bounded_few_and_who_delivered_before_first() {
    const PEERS: usize = 200;
    let port = common::binary::free_port();
    let gateway = TestGateway::start_with(Vec::new(), |c| {
        c.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        c.p2p.max_connections = 1024;
        c.retrieval.block_timeout_secs = 10;
    })
    .await;
    let key = std::fs::read(gateway.data_dir.path().join("identity.key")).unwrap();
    let sluice = libp2p::identity::Keypair::from_protobuf_encoding(&key)
        .unwrap()
        .public()
        .to_peer_id();
    let sluice_addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();

    // One peer holds a block; the other 199 hold nothing. All dial the gateway.
    let (known, known_data) = raw_block(1);
    let holder = TestPeer::start(
        HashMap::from([(known, known_data.clone())]),
        Behaviour::Honest,
    )
    .await;
    let mut peers = vec![holder];
    for _ in 1..PEERS {
        peers.push(TestPeer::start(HashMap::new(), Behaviour::Honest).await);
    }
    // In batches: the gateway accepts at most `[p2p] max_pending_connections`
    // (128) handshakes at once and refuses the rest.
    for batch in peers.chunks(32) {
        for peer in batch {
            peer.node
                .as_ref()
                .unwrap()
                .dial(sluice, vec![sluice_addr.clone()]);
        }
        for peer in batch {
            peer.node
                .as_ref()
                .unwrap()
                .connect(sluice, Duration::from_secs(60))
                .await
                .expect("test peer connects to the gateway");
        }
    }

    // The holder delivers once (named by a hint), so the peer book knows it.
    let response = gateway
        .client
        .get(gateway.url(&format!("/ipfs/{known}?format=raw")))
        .header("X-Ipfs-Provider", peers[0].hint())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), known_data);
    // The session hands what it learned to the peer book when it ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = gateway
            .client
            .get(format!("{}/debug/sessions", gateway.control))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let live: serde_json::Value = serde_json::from_str(&text).unwrap();
        if live.as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "sessions still live: {live}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Nobody has this one: the search widens to connected peers.
    let (missing, _) = raw_block(2);
    let before = gateway
        .metric_sum("sluice_broadcast_wants_total", &[])
        .await;
    let response = gateway
        .client
        .get(gateway.url(&format!("/ipfs/{missing}?format=raw")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(status == 502 || status == 504, "{status}: {body}");
    for phase in ["routing: ", "connecting: ", "retrieval: "] {
        assert!(body.contains(phase), "no {phase:?} phase in {body:?}");
    }
    assert!(
        body.contains("no source configured"),
        "the routing phase says why no source was asked: {body:?}"
    );

    let bound = sluice::fetch::RetrievalConfig::default().max_broadcast_peers;
    let asked: Vec<usize> = (0..PEERS)
        .filter(|i| asked_for(&peers[*i], &missing))
        .collect();
    assert!(!asked.is_empty(), "the search never widened");
    assert!(
        asked.len() <= bound,
        "{} of {PEERS} connected peers were asked (bound {bound})",
        asked.len()
    );
    assert!(
        asked.contains(&0),
        "the peer that delivered before was not among the {} asked",
        asked.len()
    );
    let broadcast = gateway
        .metric_sum("sluice_broadcast_wants_total", &[])
        .await
        - before;
    assert!(
        broadcast >= 1.0 && broadcast <= bound as f64,
        "{broadcast} broadcast WANT_HAVEs counted"
    );
}
