// Covers, on the path gateway (/ipns/<domain>/…), what the gateway-conformance
// dnslink_ipns group checks through the Host header (TestDNSLinkGatewayIPNS:
// DNSLink -> IPNS key in base58 and in base36, 2 cases); the Host-header form
// itself is the DNSLink gateway's.
//
//! DNSLink names on the path gateway, answered by a real DNS server
//! (Debian's dnsmasq on loopback) serving the fixtures' `dnslink.yml`
//! records, with the fixture IPNS records provisioned as for the IPNS tests:
//! `/ipns/<domain>/…` serves what the DNSLink points at, through IPNS names
//! too, with `max-age` from the smallest TTL on the way; bad answers, loops,
//! chains past `[names] max_recursion`, malformed names and missing records
//! each get a clear status and message, and nothing is cached from a bad
//! answer.

mod common;

use std::time::Duration;

use common::dns::{fixture_dnslinks, gateway_asking, Dnsmasq};
use common::{block_from_car, fixtures, header, TestGateway};

/// The CID of "hello\n" (raw leaves, CIDv1): `hello-CIDv1` in
/// subdomain_gateway/fixtures.car, where the fixture IPNS key points.
const HELLO: &str = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";
/// The TTL dnsmasq answers with in these tests.
const TTL: u32 = 123;

fn records(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect()
}

fn max_age(response: &reqwest::Response) -> u64 {
    let value = header(response, "cache-control");
    value
        .strip_prefix("public, max-age=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control: {value:?}"))
}

#[tokio::test]
async fn fixture_dnslinks_are_served_under_ipns() {
    let Some(dir) = fixtures() else { return };
    let Some(dns) = Dnsmasq::start_with(&fixture_dnslinks(&dir), TTL, None) else {
        return;
    };
    let Some(gw) = gateway_asking(&dns).await else {
        return;
    };
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);

    // DNSLink -> /ipfs/<cid>.
    let resp = gw.get("/ipns/dnslink-test.example.org").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-ipfs-path"),
        "/ipns/dnslink-test.example.org"
    );
    assert_eq!(max_age(&resp), u64::from(TTL));
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);

    // dnslink_ipns: DNSLink -> /ipns/<base58 peer ID> and -> /ipns/<base36
    // CIDv1>, both the fixture Ed25519 key whose record points at hello.
    for domain in [
        "dnslink-over-ipns.example.org",
        "dnslink-over-ipns-cidv1.example.org",
    ] {
        let resp = gw.get(&format!("/ipns/{domain}/")).await;
        assert_eq!(resp.status(), 200, "{domain}");
        assert_eq!(header(&resp, "x-ipfs-path"), format!("/ipns/{domain}/"));
        // The smaller of the DNS TTL and the record's.
        assert!(max_age(&resp) <= u64::from(TTL), "{domain}");
        assert_eq!(resp.bytes().await.unwrap().to_vec(), hello, "{domain}");
    }

    // A DNSLink with a sub-path, then the request's path inside it.
    let resp = gw
        .get("/ipns/dnslink-subpath.example.org/root3/root4/index.html")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello\n");

    // A directory: its listing, at a mixed-case name (DNS is case-blind).
    let resp = gw.get("/ipns/DNSLink-Dir-Listing.example.org/").await;
    assert_eq!(resp.status(), 200);
    let listing = resp.text().await.unwrap();
    assert!(listing.contains("Index of"), "{listing}");

    // A domain name is served as it is (only base58 keys are redirected).
    let resp = gw.get("/ipns/dnslink-test.example.org.").await;
    assert_eq!(resp.status(), 200);

    // A DNSLink has no IPNS record to hand out.
    let resp = gw
        .get("/ipns/dnslink-test.example.org?format=ipns-record")
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("DNSLink name"));
}

#[tokio::test]
async fn a_good_answer_is_cached_for_its_ttl() {
    let Some(dir) = fixtures() else { return };
    let link = format!("dnslink=/ipfs/{HELLO}");
    let Some(dns) = Dnsmasq::start_with(&records(&[("cached.example.org", &link)]), TTL, None)
    else {
        return;
    };
    let Some(gw) = gateway_asking(&dns).await else {
        return;
    };
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);
    let resp = gw.get("/ipns/cached.example.org").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(max_age(&resp), u64::from(TTL));
    // The DNS server is gone: the answer comes from the cache, its max-age
    // counting down.
    drop(dns);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = gw.get("/ipns/cached.example.org").await;
    assert_eq!(resp.status(), 200);
    assert!(max_age(&resp) < u64::from(TTL));
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);
}

#[tokio::test]
async fn nothing_is_cached_from_a_bad_answer() {
    let Some(dir) = fixtures() else { return };
    let domain = "fixed-later.example.org";
    let Some(bad) = Dnsmasq::start(&records(&[(domain, "dnslink=/ipfs/notacid")])) else {
        return;
    };
    let port = bad.addr.port();
    let Some(gw) = gateway_asking(&bad).await else {
        return;
    };
    let resp = gw.get(&format!("/ipns/{domain}")).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(header(&resp, "cache-control"), "no-cache");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("dnslink=/ipfs/notacid") && body.contains("not a CID"),
        "{body}"
    );
    // The owner fixes the record: the next request sees it.
    drop(bad);
    let link = format!("dnslink=/ipfs/{HELLO}");
    let _good = Dnsmasq::start_with(&records(&[(domain, &link)]), TTL, Some(port)).unwrap();
    let resp = gw.get(&format!("/ipns/{domain}")).await;
    assert_eq!(resp.status(), 200);
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);
}

#[tokio::test]
async fn bad_answers_and_names_get_a_clear_error() {
    let Some(_) = fixtures() else { return };
    let link = format!("dnslink=/ipfs/{HELLO}");
    let mut list: Vec<(String, String)> = records(&[
        ("loop-a.example.org", "dnslink=/ipns/loop-b.example.org"),
        ("loop-b.example.org", "dnslink=/ipns/loop-a.example.org"),
        ("self.example.org", "dnslink=/ipns/self.example.org/x"),
        ("two.example.org", &link),
        (
            "two.example.org",
            "dnslink=/ipns/k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam",
        ),
        ("not-dnslink.example.org", "v=spf1 -all"),
        ("other-namespace.example.org", "dnslink=/foo/bar"),
        ("empty.example.org", "dnslink="),
        ("bad-name.example.org", "dnslink=/ipns/not a name"),
    ]);
    // chain-0 -> chain-1 -> ... -> chain-33 -> /ipfs/hello: 34 names.
    for i in 0..33 {
        list.push((
            format!("chain-{i}.example.org"),
            format!("dnslink=/ipns/chain-{}.example.org", i + 1),
        ));
    }
    list.push(("chain-33.example.org".into(), link.clone()));
    // Answers too large for UDP (1232 bytes): truncated, then asked over TCP.
    let filler = |i: usize| format!("filler-{i:02}-{}", "x".repeat(90));
    for i in 0..40 {
        list.push(("many.example.org".into(), filler(i)));
    }
    for i in 0..20 {
        list.push(("big.example.org".into(), filler(i)));
    }
    list.push(("big.example.org".into(), link.clone()));
    let Some(dns) = Dnsmasq::start(&list) else {
        return;
    };
    let Some(gw) = gateway_asking(&dns).await else {
        return;
    };
    let label64 = "a".repeat(64);
    let long_name = format!("{}.example.org", vec!["abcdefghi"; 25].join("."));
    for (path, status, says) in [
        (
            "/ipns/loop-a.example.org/".to_string(),
            502,
            "loop: loop-a.example.org -> loop-b.example.org -> loop-a.example.org",
        ),
        ("/ipns/self.example.org".into(), 502, "loop"),
        (
            "/ipns/two.example.org".into(),
            502,
            "2 different DNSLink paths",
        ),
        (
            "/ipns/not-dnslink.example.org".into(),
            404,
            "has no DNSLink",
        ),
        (
            "/ipns/other-namespace.example.org".into(),
            404,
            "has no DNSLink",
        ),
        ("/ipns/empty.example.org".into(), 502, "\"dnslink=\""),
        ("/ipns/bad-name.example.org".into(), 502, "not an IPNS name"),
        (
            "/ipns/nowhere.example.org".into(),
            404,
            "_dnslink.nowhere.example.org does not exist",
        ),
        // The domain exists (it has _dnslink below it) but has no TXT of its own.
        (
            "/ipns/_dnslink.two.example.org".into(),
            404,
            "does not exist",
        ),
        ("/ipns/chain-0.example.org".into(), 502, "max_recursion"),
        (
            "/ipns/many.example.org".into(),
            502,
            "_dnslink.many.example.org has 40 TXT records, more than the 32 read",
        ),
        ("/ipns/a..example.org".into(), 400, "empty label"),
        (format!("/ipns/{label64}.example.org"), 400, "63-byte limit"),
        (format!("/ipns/{long_name}"), 400, "253-byte limit"),
        ("/ipns/exa%20mple.org".into(), 400, "only ASCII letters"),
        (
            "/ipns/-bad.example.org".into(),
            400,
            "starts or ends with '-'",
        ),
        ("/ipns/notakey".into(), 400, "not an IPNS name"),
    ] {
        let resp = gw.get(&path).await;
        assert_eq!(resp.status(), status, "{path}");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(says), "{path}: {body}");
    }
    // 21 records, over 2 KB: the TCP answer is read whole.
    let resp = gw.get("/ipns/big.example.org").await;
    assert_eq!(resp.status(), 200);
    // Four names fewer, within the bound: followed to the end.
    let resp = gw.get("/ipns/chain-2.example.org").await;
    assert_eq!(resp.status(), 200);
    // Those names were cached by the request before: their TTL counts down.
    let age = max_age(&resp);
    let ttl = u64::from(common::dns::DEFAULT_TTL);
    assert!(age <= ttl && age + 60 > ttl, "max-age={age}");
}

#[tokio::test]
async fn a_silent_dns_server_is_a_timeout() {
    let Some(_) = fixtures() else { return };
    // Takes queries, never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let Some(gw) = TestGateway::with_fixtures_and(move |c| {
        c.dns.nameservers = vec![addr];
        c.dns.timeout_ms = 500;
    })
    .await
    else {
        return;
    };
    let started = std::time::Instant::now();
    let resp = gw.get("/ipns/silent.example.org").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("[dns] timeout_ms"), "{body}");
    assert!(body.contains("_dnslink.silent.example.org"), "{body}");
    drop(silent);
}

#[tokio::test]
async fn ipns_names_and_domains_point_at_each_other() {
    use libp2p::identity::Keypair;
    let Some(dir) = fixtures() else { return };
    let (to_domain, to_loop) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let to_domain_name = to_domain.public().to_peer_id();
    let to_loop_name = sluice::names::ipns::canonical_name(&to_loop.public().to_peer_id());
    let link = format!("dnslink=/ipfs/{HELLO}");
    let Some(dns) = Dnsmasq::start_with(
        &records(&[
            ("target.example.org", &link),
            (
                "mixed-loop.example.org",
                &format!("dnslink=/ipns/{to_loop_name}"),
            ),
        ]),
        TTL,
        None,
    ) else {
        return;
    };
    let nameserver = dns.nameserver();
    let day = Duration::from_secs(86_400);
    // Records of 60 s TTL: IPNS -> DNSLink, and IPNS -> the domain that
    // points back at it.
    let files = [
        (
            to_domain_name.to_string(),
            common::dht::ipns_record(&to_domain, "/ipns/target.example.org", 1, day),
        ),
        (
            to_loop_name.clone(),
            common::dht::ipns_record(&to_loop, "/ipns/mixed-loop.example.org/x", 1, day),
        ),
    ];
    let Some(gw) = TestGateway::with_fixtures_and(move |c| {
        c.dns.nameservers = vec![nameserver];
        let into = c.store.data_dir.join("ipns");
        std::fs::create_dir_all(&into).unwrap();
        for (name, record) in &files {
            std::fs::write(into.join(format!("{name}.ipns-record")), record).unwrap();
        }
    })
    .await
    else {
        return;
    };
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);
    let base36 = sluice::names::ipns::canonical_name(&to_domain_name);
    let resp = gw.get(&format!("/ipns/{base36}")).await;
    assert_eq!(resp.status(), 200);
    // The record's 60 s, not the DNS answer's 123.
    let age = max_age(&resp);
    assert!(age <= 60 && age > 50, "max-age={age}");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);

    let resp = gw.get("/ipns/mixed-loop.example.org").await;
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains(&format!(
            "loop: mixed-loop.example.org -> {} -> mixed-loop.example.org",
            to_loop.public().to_peer_id()
        )),
        "{body}"
    );
}

/// A UDP DNS relay to `upstream` that holds each query `delay` before
/// passing it on: its address, and how many queries it passed.
async fn slow_relay(
    upstream: std::net::SocketAddr,
    delay: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 65_535];
        while let Ok((n, client)) = socket.recv_from(&mut buf).await {
            let (query, socket, counted) = (buf[..n].to_vec(), socket.clone(), counted.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                counted.fetch_add(1, Ordering::SeqCst);
                let out = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                out.send_to(&query, upstream).await.unwrap();
                let mut answer = vec![0; 65_535];
                if let Ok(n) = out.recv(&mut answer).await {
                    let _ = socket.send_to(&answer[..n], client).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn concurrent_requests_share_one_lookup() {
    let Some(dir) = fixtures() else { return };
    let link = format!("dnslink=/ipfs/{HELLO}");
    let Some(dns) = Dnsmasq::start(&records(&[("herd.example.org", &link)])) else {
        return;
    };
    // Slow enough that every request arrives while the first lookup waits.
    let (relay, relayed) = slow_relay(dns.addr, Duration::from_millis(1_000)).await;
    let Some(gw) = TestGateway::with_fixtures_and(move |c| {
        c.dns.nameservers = vec![relay];
        // Nothing cached: what is shared is the lookup in flight (hickory's).
        c.dns.max_ttl_secs = 0;
    })
    .await
    else {
        return;
    };
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);
    let started = std::time::Instant::now();
    let requests = (0..20).map(|_| gw.get("/ipns/herd.example.org"));
    for resp in futures::future::join_all(requests).await {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    // One (two if a request came late on a loaded machine), not twenty.
    let queries = relayed.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&queries), "{queries} queries");
    assert_eq!(dns.queries("_dnslink.herd.example.org"), queries);
    // Later, a new lookup (TTL 0: nothing was kept).
    let resp = gw.get("/ipns/herd.example.org").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(max_age(&resp), 0);
    assert!(relayed.load(std::sync::atomic::Ordering::SeqCst) > queries);
}
