//! The Kubo DHT harness (tests/common/dht.rs) gives a working DHT of
//! third-party nodes, checked without sluice: provider records found through
//! the DHT from a node that was not told where the content is, the bytes
//! fetched by Kubo itself, IPNS records stored and served by Kubo, and a
//! restarted node found again.

mod common;

use std::time::{Duration, Instant};

use common::dht::{
    eight_keys, ipns_key, ipns_record, random_bytes, tcp_port, KuboDht, LAN_KAD, WAN_KAD,
};
use common::sha256_hex;

/// A CIDv0 of bytes nobody has.
fn random_cid() -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(random_bytes(64));
    let hash = multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    cid::Cid::new_v0(hash).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_added_at_one_node_is_found_and_fetched_at_another_and_after_a_restart() {
    let mut dht = KuboDht::start_with(&eight_keys()).await;
    eprintln!(
        "8 Kubo DHT nodes up in {:?}, {} MiB RSS, {} MiB PSS in all",
        dht.started_in,
        dht.rss_bytes() >> 20,
        dht.pss_bytes() >> 20
    );
    assert!(dht.node(5).is_rsa() && dht.node(5).peer_id().to_base58().starts_with("Qm"));
    let three = dht.node(3).peer_id();

    // Kubo serves its LAN DHT on loopback and keeps the Amino one a client.
    assert_eq!(dht.multiaddrs().len(), 8);
    let client = dht.client().clone();
    assert!(client.speaks(&dht.dht_peer(3), LAN_KAD).await.unwrap());
    assert!(!client.speaks(&dht.dht_peer(3), WAN_KAD).await.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("random.bin");
    let data = random_bytes(3 << 19); // 1.5 MiB: six 256 KiB chunks
    std::fs::write(&file, &data).unwrap();
    let t = Instant::now();
    let cid = dht.add(3, &file).await;
    eprintln!(
        "added {cid} at node 3; provider record found from node 4 after {:?}",
        t.elapsed()
    );
    assert!(cid.starts_with("Qm"), "Kubo's default CIDv0, got {cid}");

    // findprovs from node 7: a lookup that knows only node 7 at first.
    let connected = dht.connected_peers(7).await.contains(&three);
    eprintln!("node 7 connected to node 3 before the lookup: {connected}");
    let found = dht.find_providers(7, &cid, None).await;
    let provider = found
        .provider(&three)
        .unwrap_or_else(|| panic!("node 3 not among the providers of {cid}: {found:?}"));
    let mut addr3 = dht.node(3).multiaddr();
    addr3.pop();
    assert!(
        provider.addrs.contains(&addr3),
        "provider record for node 3 without its address {addr3}: {:?}",
        provider.addrs
    );
    eprintln!(
        "lookup from node 7: {} requests, providers {:?}",
        found.requests,
        found.providers.iter().map(|p| p.id).collect::<Vec<_>>()
    );

    // The same lookup for content nobody has finds no provider: the check
    // above is not an artefact of the lookup.
    let absent = random_cid();
    let none = dht.find_providers(7, &absent, None).await;
    assert!(
        none.providers.is_empty(),
        "providers for {absent}: {none:?}"
    );
    assert!(
        none.requests >= 3,
        "the lookup asked {} nodes",
        none.requests
    );

    // Kubo at node 7 fetches it: its own DHT client finds the provider.
    let t = Instant::now();
    let body = dht.cat(7, &cid, Duration::from_secs(120)).await;
    eprintln!("node 7 fetched {} bytes in {:?}", body.len(), t.elapsed());
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    // Node 3 goes down: its provider record stays, with its old address,
    // which no longer answers.
    let old_port = dht.node(3).port();
    dht.stop(3);
    let found = dht.find_providers(7, &cid, None).await;
    let stale = found
        .provider(&three)
        .unwrap_or_else(|| panic!("node 3's record gone while it is down: {found:?}"))
        .clone();
    let ports: Vec<u16> = stale.addrs.iter().filter_map(tcp_port).collect();
    assert_eq!(ports, [old_port], "addresses of node 3 while it is down");
    assert!(client.speaks(&stale, LAN_KAD).await.is_err());

    // Back alone on a new port (same identity, same repo): the DHT still
    // points at the old one until node 3 talks to somebody.
    dht.restart_with(3, &[]).await;
    let new_port = dht.node(3).port();
    assert_ne!(old_port, new_port);
    assert_eq!(dht.node(3).peer_id(), three);
    let found = dht.find_providers(7, &cid, None).await;
    let ports: Vec<u16> = found
        .provider(&three)
        .map(|p| p.addrs.iter().filter_map(tcp_port).collect())
        .unwrap_or_default();
    assert_eq!(ports, [old_port], "node 3 back alone on {new_port}");

    // It dials node 0; the others learn the new address as it rejoins.
    let t = Instant::now();
    dht.connect(3, 0).await;
    let limit = Duration::from_secs(180);
    loop {
        let found = dht.find_providers(7, &cid, None).await;
        let ports: Vec<u16> = found
            .provider(&three)
            .map(|p| p.addrs.iter().filter_map(tcp_port).collect())
            .unwrap_or_default();
        if ports.contains(&new_port) {
            eprintln!("lookups from node 7 give node 3's new port {:?} after it rejoined (ports {ports:?})", t.elapsed());
            break;
        }
        assert!(
            t.elapsed() < limit,
            "node 3's new port {new_port} not in its provider records {limit:?} after it rejoined (ports {ports:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // restart() (bootstrapped, waits for the routing table) heals at once.
    let before = dht.node(3).port();
    let t = Instant::now();
    dht.restart(3).await;
    let after = dht.node(3).port();
    let found = dht.find_providers(7, &cid, None).await;
    let ports: Vec<u16> = found
        .provider(&three)
        .map(|p| p.addrs.iter().filter_map(tcp_port).collect())
        .unwrap_or_default();
    eprintln!(
        "restart(3): port {before} -> {after} in {:?}; node 7's lookup then gives {ports:?}",
        t.elapsed()
    );
    assert!(
        found.provider(&three).is_some(),
        "node 3 not found after restart(): {found:?}"
    );

    // A node that never had the content fetches it after the restart.
    let body = dht.cat(6, &cid, Duration::from_secs(120)).await;
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipns_name_published_at_one_node_resolves_at_another() {
    let dht = KuboDht::start_with(&eight_keys()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.txt");
    std::fs::write(&file, random_bytes(1000)).unwrap();
    let cid = dht.add(2, &file).await;

    let name = dht.publish_ipns(2, &cid).await;
    assert_eq!(name, dht.node(2).peer_id().to_string());
    let resolved = dht.resolve_ipns(5, &dht.node(2).peer_id()).await;
    assert_eq!(resolved.as_deref(), Some(format!("/ipfs/{cid}").as_str()));

    // Kubo checks what it stores: the same name signed by another node's
    // key is refused, so a stored record is one Kubo found valid.
    let forged = ipns_record(
        &dht.node(3).keypair(),
        &format!("/ipfs/{}", random_cid()),
        u64::MAX / 2,
        Duration::from_secs(3600),
    );
    let key = ipns_key(&dht.node(2).peer_id());
    let refused = dht
        .client()
        .put_value(&dht.dht_peer(5), &key, &forged)
        .await;
    assert!(
        refused.is_err(),
        "Kubo stored a record signed by the wrong key"
    );
    let resolved = dht.resolve_ipns(5, &dht.node(2).peer_id()).await;
    assert_eq!(resolved.as_deref(), Some(format!("/ipfs/{cid}").as_str()));

    // ... while a new record from the right key replaces the old one (for
    // a directory added at another node this time).
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), random_bytes(300)).unwrap();
    std::fs::write(site.join("data.bin"), random_bytes(5000)).unwrap();
    let cid2 = dht.add(4, &site).await;
    assert_ne!(cid2, cid);
    assert_eq!(dht.publish_ipns(2, &cid2).await, name);
    let resolved = dht.resolve_ipns(5, &dht.node(2).peer_id()).await;
    assert_eq!(resolved.as_deref(), Some(format!("/ipfs/{cid2}").as_str()));
}
