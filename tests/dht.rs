//! Finding content through a DHT of real Kubo 0.22 nodes (their LAN DHT,
//! `/ipfs/lan/kad/1.0.0`, on loopback), with no hints and no delegated
//! routing: the content is provided by a node that is not among sluice's
//! bootstrap peers, so it can be found only by walking the DHT.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::dht::{eight_keys, random_bytes, KuboDht};
use common::{parse_car, sha256_hex, TestGateway};

/// A gateway that knows only `bootstrap` of the DHT, keeping its state in
/// `data_dir`.
async fn sluice(dht: &KuboDht, bootstrap: &[usize], data_dir: &Path) -> TestGateway {
    let bootstrap: Vec<String> = bootstrap
        .iter()
        .map(|&i| dht.node(i).multiaddr().to_string())
        .collect();
    let data_dir = data_dir.to_path_buf();
    let gateway = TestGateway::start_with(Vec::new(), move |c| {
        c.store.data_dir = data_dir;
        c.dht.mode = sluice::p2p::DhtMode::Client;
        c.dht.protocol = "/ipfs/lan/kad/1.0.0".into();
        c.dht.bootstrap = bootstrap;
        c.dht.lookup_timeout_ms = 5000;
        c.retrieval.block_timeout_secs = 60;
    })
    .await;
    wait_joined(&gateway).await;
    gateway
}

async fn wait_joined(gateway: &TestGateway) {
    wait_joined_at(&gateway.client, &gateway.control).await;
}

/// Waits (60 s at most) until the control address at `control` says the
/// DHT is joined (connection errors count as not yet).
async fn wait_joined_at(client: &reqwest::Client, control: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = match client.get(format!("{control}/readyz")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        if ready.contains("dht: joined") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not join the DHT in 60 s: /readyz says {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(gateway: &TestGateway, path: &str) -> reqwest::Response {
    gateway.client.get(gateway.url(path)).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_a_listing_and_a_car_are_found_through_the_dht_alone() {
    let dht = KuboDht::start_with(&eight_keys()).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("big.bin");
    let data = random_bytes(16 * 1024 * 1024 + 4321);
    std::fs::write(&file, &data).unwrap();
    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.txt"), b"hello from a DHT\n").unwrap();
    std::fs::write(site.join("notes.md"), random_bytes(3000)).unwrap();
    // Nodes 5 (RSA) and 6 provide; sluice is told only of nodes 0 and 1.
    let file_cid = dht.add(5, &file).await;
    let site_cid = dht.add(6, &site).await;
    let state = tempfile::tempdir().unwrap();
    let gateway = sluice(&dht, &[0, 1], state.path()).await;

    let response = get(&gateway, &format!("/ipfs/{file_cid}")).await;
    assert_eq!(response.status(), 200);
    let timing = common::header(&response, "server-timing");
    assert!(timing.contains("lookup-dht"), "Server-Timing: {timing}");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), data.len());
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    let response = gateway
        .client
        .get(gateway.url(&format!("/ipfs/{site_cid}/")))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listing = response.text().await.unwrap();
    for name in ["index.txt", "notes.md"] {
        assert!(listing.contains(name), "{name} not in the listing");
    }
    let response = get(&gateway, &format!("/ipfs/{site_cid}/index.txt")).await;
    assert_eq!(response.bytes().await.unwrap(), "hello from a DHT\n");

    let response = get(&gateway, &format!("/ipfs/{site_cid}?format=car")).await;
    assert_eq!(response.status(), 200);
    let car = response.bytes().await.unwrap();
    let (roots, blocks) = parse_car(&car);
    assert_eq!(roots[0].to_string(), site_cid);
    assert!(blocks.len() >= 3, "{} blocks in the CAR", blocks.len());

    let found = gateway
        .metric_sum(
            "sluice_router_lookups_total",
            &["source=\"dht\"", "outcome=\"found\""],
        )
        .await;
    assert!(found >= 2.0, "{found} DHT lookups found providers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cid_nobody_has_fails_before_the_block_timeout_naming_each_phase() {
    let dht = KuboDht::start(8).await;
    let state = tempfile::tempdir().unwrap();
    let gateway = sluice(&dht, &[0], state.path()).await;
    let missing = {
        use multihash_codetable::{Code, MultihashDigest};
        cid::Cid::new_v1(0x55, Code::Sha2_256.digest(&random_bytes(64)))
    };
    let started = Instant::now();
    let response = get(&gateway, &format!("/ipfs/{missing}")).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let timing = common::header(&response, "server-timing");
    let body = response.text().await.unwrap();
    assert!(status == 502 || status == 504, "{status}: {body}");
    assert!(body.contains("routing: dht: "), "{body}");
    assert!(
        body.contains("connecting: ") && body.contains("retrieval: "),
        "{body}"
    );
    assert!(timing.contains("lookup-dht"), "Server-Timing: {timing}");
    // The DHT lookup has a 5 s deadline and the block 60 s: an answer well
    // before the block timeout shows the lookup ended on its own.
    assert!(took < Duration::from_secs(40), "answered after {took:?}");
}

/// The `sluice` binary on a config that knows only `bootstrap` of the DHT;
/// returns it with its gateway and control base URLs.
async fn sluice_process(
    dht: &KuboDht,
    bootstrap: &[usize],
    data_dir: &Path,
) -> (common::binary::Running, String, String) {
    let (port, control) = (common::binary::free_port(), common::binary::free_port());
    let bootstrap: Vec<String> = bootstrap
        .iter()
        .map(|&i| format!("{:?}", dht.node(i).multiaddr().to_string()))
        .collect();
    let config = data_dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nlisten = \"127.0.0.1:{control}\"\n\
             [store]\ndata_dir = {:?}\n[p2p]\nlisten = []\n[hints]\nallow_private = true\n\
             [dht]\nprotocol = \"/ipfs/lan/kad/1.0.0\"\nbootstrap = [{}]\n",
            data_dir.display().to_string(),
            bootstrap.join(", ")
        ),
    )
    .unwrap();
    let child = std::process::Command::new(common::binary::SLUICE)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = common::binary::listening(child);
    let control = format!("http://127.0.0.1:{control}");
    wait_joined_at(&reqwest::Client::new(), &control).await;
    (running, format!("http://127.0.0.1:{port}"), control)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_every_bootstrap_peer_down_joins_through_the_remembered_table() {
    let mut dht = KuboDht::start(8).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f.bin");
    let data = random_bytes(2 * 1024 * 1024);
    std::fs::write(&file, &data).unwrap();
    let cid = dht.add(6, &file).await;
    let state = tempfile::tempdir().unwrap();

    let (first, _, _) = sluice_process(&dht, &[0], state.path()).await;
    let remembered = state.path().join("dht-peers.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let peers = std::fs::read_to_string(&remembered)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["peers"].as_array().map(Vec::len))
            .unwrap_or(0);
        if peers >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the routing table was not remembered in 60 s ({peers} peers in {})",
            remembered.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(first);

    // Its only bootstrap peer is gone; the config still names it.
    dht.stop(0);
    let (_second, base, control) = sluice_process(&dht, &[0], state.path()).await;
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{control}/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ready.contains("dht: joined"), "{ready}");
    let response = client
        .get(format!("{base}/ipfs/{cid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        sha256_hex(&data)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_found_at_a_stale_address_is_fetched_where_it_is_now() {
    let mut dht = KuboDht::start(8).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f.bin");
    let data = random_bytes(3 * 1024 * 1024);
    std::fs::write(&file, &data).unwrap();
    let cid = dht.add(6, &file).await;
    let old_port = dht.node(6).port();
    // Node 6 comes back on a new port knowing nobody: every provider record
    // names its old address. Then it rejoins through node 2 alone, so only
    // node 2 (and whom it tells) learns where it is now.
    dht.restart_with(6, &[]).await;
    assert_ne!(dht.node(6).port(), old_port);
    dht.connect(6, 2).await;

    let state = tempfile::tempdir().unwrap();
    let gateway = sluice(&dht, &[0, 1], state.path()).await;
    let response = get(&gateway, &format!("/ipfs/{cid}")).await;
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sha256_hex(&body), sha256_hex(&data));
    let refinds = gateway.metric_sum("sluice_dht_refinds_total", &[]).await;
    eprintln!("re-finds after failed dials: {refinds}");
}

async fn dht_status(gateway: &TestGateway) -> serde_json::Value {
    let text = gateway
        .client
        .get(format!("{}/debug/dht", gateway.control))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accelerated_mode_crawls_the_dht_then_answers_from_the_first_hop() {
    const NODES: usize = 30;
    let dht = KuboDht::start(NODES).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f.bin");
    let data = random_bytes(1024 * 1024 + 7);
    std::fs::write(&file, &data).unwrap();
    let cid = dht.add(21, &file).await;

    let state = tempfile::tempdir().unwrap();
    let bootstrap = dht.node(0).multiaddr().to_string();
    let data_dir = state.path().to_path_buf();
    let gateway = TestGateway::start_with(Vec::new(), move |c| {
        c.store.data_dir = data_dir;
        c.dht.mode = sluice::p2p::DhtMode::Accelerated;
        c.dht.protocol = "/ipfs/lan/kad/1.0.0".into();
        c.dht.bootstrap = vec![bootstrap];
        c.dht.crawl_parallelism = 4;
        c.dht.crawl_quiet_lookups = 8;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        let status = dht_status(&gateway).await;
        if status["crawl"]["crawls_done"].as_u64().unwrap_or(0) >= 1 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no crawl finished in 180 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["mode"], "accelerated");
    let table = status["routing_table_peers"].as_u64().unwrap();
    // Every other node, give or take two a walk did not reach.
    assert!(
        table >= (NODES - 3) as u64,
        "the crawl found {table} of the {} other nodes: {status}",
        NODES - 1
    );

    let response = get(&gateway, &format!("/ipfs/{cid}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        sha256_hex(&data)
    );
    // The first provider came with the first hop: the lookup had sent no
    // more requests than it sends at once (20).
    let lookups = gateway
        .metric_sum("sluice_dht_requests_to_first_provider_count", &[])
        .await;
    let first_hop = gateway
        .metric_sum(
            "sluice_dht_requests_to_first_provider_bucket",
            &["le=\"20.0\""],
        )
        .await;
    assert!(lookups >= 1.0, "no provider lookup was counted");
    assert_eq!(
        first_hop, lookups,
        "{lookups} lookups, {first_hop} answered within the first hop's 20 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipns_name_published_in_the_dht_is_served_under_ipns() {
    let dht = KuboDht::start_with(&eight_keys()).await;
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.txt"), b"named content\n").unwrap();
    let site_cid = dht.add(6, &site).await;
    // Node 2 signs a record for its own name and stores it in the DHT.
    let name = dht.publish_ipns(2, &site_cid).await;
    let state = tempfile::tempdir().unwrap();
    let gateway = sluice(&dht, &[0], state.path()).await;

    // The name as the CIDv1 libp2p-key in base36 (a base58 peer ID is
    // redirected there).
    let peer: libp2p::PeerId = name.parse().unwrap();
    let base36 = cid::Cid::new_v1(0x72, *peer.as_ref())
        .to_string_of_base(multibase::Base::Base36Lower)
        .unwrap();
    let response = get(&gateway, &format!("/ipns/{name}/index.txt")).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        common::header(&response, "location"),
        format!("/ipns/{base36}/index.txt")
    );
    let response = get(&gateway, &format!("/ipns/{base36}/index.txt")).await;
    assert_eq!(response.status(), 200);
    let cache = common::header(&response, "cache-control");
    assert_eq!(
        cache, "public, max-age=60",
        "the record's TTL, not immutable"
    );
    assert_eq!(
        common::header(&response, "x-ipfs-path"),
        format!("/ipns/{base36}/index.txt")
    );
    assert!(common::header(&response, "x-ipfs-roots").contains(&site_cid));
    assert_eq!(response.bytes().await.unwrap(), "named content\n");
    let response = get(&gateway, &format!("/ipns/{base36}/")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("index.txt"));

    // The record itself, as Kubo stored it and as it verifies.
    let response = get(&gateway, &format!("/ipns/{base36}?format=ipns-record")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        common::header(&response, "content-type"),
        "application/vnd.ipfs.ipns-record"
    );
    let record = response.bytes().await.unwrap();
    assert_eq!(
        common::dht::ipns_verified_value(&peer, &record).unwrap(),
        format!("/ipfs/{site_cid}")
    );

    // A name nobody published: an error that says no record was found.
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let nobody = cid::Cid::new_v1(0x72, *nobody.as_ref())
        .to_string_of_base(multibase::Base::Base36Lower)
        .unwrap();
    let response = get(&gateway, &format!("/ipns/{nobody}/")).await;
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("no IPNS record") && body.contains("dht"),
        "{body}"
    );
    let response = get(&gateway, "/ipns/not-a-name/").await;
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_no_bootstrap_peer_answers() {
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    // A loopback port nothing listens on.
    let dead = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{nobody}",
        common::binary::free_port()
    );
    let gateway = TestGateway::start_with(Vec::new(), move |c| {
        c.dht.mode = sluice::p2p::DhtMode::Client;
        c.dht.protocol = "/ipfs/lan/kad/1.0.0".into();
        c.dht.bootstrap = vec![dead];
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = gateway
            .client
            .get(format!("{}/readyz", gateway.control))
            .send()
            .await
            .unwrap();
        // Still ready: local content and hints work without the DHT.
        assert_eq!(ready.status(), 200);
        let text = ready.text().await.unwrap();
        if text.contains("dht: not joined: no bootstrap peer answered (1 in [dht] bootstrap") {
            break;
        }
        assert!(!text.contains("dht: joined"), "{text}");
        assert!(Instant::now() < deadline, "/readyz says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
