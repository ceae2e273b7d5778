// Covers the gateway-conformance v0.13 cases served by Host through DNSLink:
// TestDNSLinkGatewayUnixFSDirectoryListing (3 of 3), TestDNSLinkGatewayWithSubpath
// (1 of 1), TestDNSLinkGatewayIPNS (2 of 2), TestSubdomainGatewayDNSLinkInlining
// (the 6 cases that resolve DNSLink, of its 9), TestRedirectsFileSupportWithDNSLink
// (2 of 2), TestRedirectsFileWithIfNoneMatchHeader/SubdomainIPNS and /DNSLinkGateway
// (4 of 4).
//
//! The DNSLink gateway and DNSLink names on subdomains, answered by a
//! real DNS server (Debian's dnsmasq on loopback) serving the fixtures'
//! `dnslink.yml` records, with the fixture IPNS records provisioned: a
//! request whose Host has a DNSLink record is that site (listings linked
//! on its origin, a DNSLink value's sub-path, DNSLink to IPNS keys,
//! `_redirects` with the name's caching), inlined and plain DNSLink names
//! on a subdomain host, and a host without a record is the path gateway.

mod common;

use common::dns::{fixture_dnslinks, gateway_asking, Dnsmasq};
use common::{fixture_cid, fixtures, header, TestGateway};

const HELLO: &str = "hello\n";

async fn start() -> Option<(TestGateway, Dnsmasq, std::path::PathBuf)> {
    let dir = fixtures()?;
    let dns = Dnsmasq::start(&fixture_dnslinks(&dir))?;
    let gw = gateway_asking(&dns).await?;
    Some((gw, dns, dir))
}

async fn on(gw: &TestGateway, host: &str, path: &str) -> reqwest::Response {
    gw.get_with(path, &[("Host", host)]).await
}

#[tokio::test]
async fn a_dnslink_host_is_its_site() {
    let Some((gw, _dns, dir)) = start().await else {
        return;
    };
    let host = "dnslink-dir-listing.example.org";
    let listing = on(&gw, host, "/").await.text().await.unwrap();
    assert!(listing.contains("Index of"), "{listing}");
    assert!(!listing.contains(r#"<a href="/">..</a>"#));
    let response = on(&gw, host, "/%C4%85/%C4%99").await;
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/%C4%85/%C4%99/");
    let response = on(&gw, host, "/%C4%85/%C4%99/").await;
    assert!(header(&response, "etag").contains("\"DirIndex-"));
    assert_eq!(
        header(&response, "x-ipfs-path"),
        format!("/ipns/{host}/%C4%85/%C4%99/")
    );
    let listing = response.text().await.unwrap();
    let file = fixture_cid(
        &dir.join("dir_listing/fixtures.car"),
        &["ą", "ę", "file-źł.txt"],
    );
    for expected in [
        r#"<a href="/%C4%85/%C4%99/..">..</a>"#.to_string(),
        format!(
            r#"/ipns/<a href="//{host}/">{host}</a>/<a href="//{host}/%C4%85">ą</a>/<a href="//{host}/%C4%85/%C4%99">ę</a>"#
        ),
        r#"<a href="/%C4%85/%C4%99/file-%C5%BA%C5%82.txt">file-źł.txt</a>"#.to_string(),
        format!(
            r#"<a class="ipfs-hash" translate="no" href="https://cid.ipfs.tech/#{file}" target="_blank" rel="noreferrer noopener">"#
        ),
    ] {
        assert!(listing.contains(&expected), "{expected}\n{listing}");
    }
    // A DNSLink value with a sub-path: the request's path goes under it.
    let response = on(
        &gw,
        "dnslink-subpath.example.org",
        "/root3/root4/index.html",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), HELLO);
    // DNSLink to an IPNS key, as a peer ID and as a CIDv1.
    for domain in [
        "dnslink-over-ipns.example.org",
        "dnslink-over-ipns-cidv1.example.org",
    ] {
        let response = on(&gw, domain, "/").await;
        assert_eq!(response.status(), 200, "{domain}");
        assert!(header(&response, "cache-control").starts_with("public, max-age="));
        assert_eq!(response.text().await.unwrap(), HELLO, "{domain}");
    }
    // A host with no DNSLink record is the path gateway.
    let hello_cid = fixture_cid(
        &dir.join("subdomain_gateway/fixtures.car"),
        &["hello-CIDv1"],
    );
    let response = on(&gw, "fake.domain.com", &format!("/ipfs/{hello_cid}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), HELLO);
}

#[tokio::test]
async fn dnslink_names_on_subdomains() {
    let Some((gw, _dns, _dir)) = start().await else {
        return;
    };
    for host in [
        "dnslink-test.example.org.ipns.localhost",
        "dnslink--test-example-org.ipns.localhost",
        "dnslink-over-ipns.example.org.ipns.localhost",
        "dnslink--over--ipns-example-org.ipns.localhost",
        "dnslink-over-ipns-cidv1.example.org.ipns.localhost",
        "dnslink--over--ipns--cidv1-example-org.ipns.localhost",
    ] {
        let response = on(&gw, host, "/").await;
        assert_eq!(response.status(), 200, "{host}");
        assert_eq!(response.text().await.unwrap(), HELLO, "{host}");
    }
}

#[tokio::test]
async fn redirects_on_dnslink_sites() {
    let Some((gw, _dns, dir)) = start().await else {
        return;
    };
    let host = "dnslink-redirects-examples.example.org";
    let response = on(&gw, host, "/redirect-one").await;
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/one.html");
    let response = on(&gw, host, "/not-found/has-no-redirects-entry").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        header(&response, "etag"),
        "\"Qmd9GD7Bauh6N2ZLfNnYS3b7QVAijbud83b8GE8LPMNBBP\""
    );
    let cache = header(&response, "cache-control");
    assert!(
        !cache.contains("immutable"),
        "cached as the name is: {cache}"
    );
    assert!(!header(&response, "date").is_empty());
    assert!(response.text().await.unwrap().contains("my 404"));

    // A single-page app through a DNSLink name, on its host and on a
    // subdomain, with conditional requests.
    let spa = fixture_cid(
        &dir.join("redirects_file/redirects-spa.car"),
        &["index.html"],
    );
    for host in [
        "dnslink-enabled-with-spa.example.org",
        "dnslink--enabled--with--spa-example-org.ipns.localhost",
    ] {
        let headers = [("Host", host), ("Accept", "text/html")];
        let response = gw.get_with("/missing-page", &headers).await;
        assert_eq!(response.status(), 200, "{host}");
        let etag = header(&response, "etag");
        assert_eq!(etag, format!("\"{spa}\""));
        assert_eq!(response.text().await.unwrap(), "hello world\n");
        let response = gw
            .get_with(
                "/missing-page",
                &[headers[0], headers[1], ("If-None-Match", &etag)],
            )
            .await;
        assert_eq!(response.status(), 304, "{host}");
    }
}

#[tokio::test]
async fn broken_dnslink_sites_show_their_error() {
    let Some(dir) = fixtures() else {
        return;
    };
    let mut records = fixture_dnslinks(&dir);
    records.push((
        "loop-a.example.org".into(),
        "dnslink=/ipns/loop-b.example.org".into(),
    ));
    records.push((
        "loop-b.example.org".into(),
        "dnslink=/ipns/loop-a.example.org".into(),
    ));
    records.push((
        "bad-value.example.org".into(),
        "dnslink=/ipfs/not-a-cid".into(),
    ));
    let Some(dns) = Dnsmasq::start(&records) else {
        return;
    };
    let Some(gw) = gateway_asking(&dns).await else {
        return;
    };
    let response = on(&gw, "loop-a.example.org", "/").await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(
        (400..600).contains(&status) && status != 500,
        "{status} {text}"
    );
    assert!(text.contains("loop"), "{text}");
    let response = on(&gw, "bad-value.example.org", "/").await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(
        (400..600).contains(&status) && status != 500,
        "{status} {text}"
    );
    assert!(text.contains("not-a-cid"), "{text}");
}

/// The DNSLink lookup of a host runs before the request is admitted, so it
/// holds one of the request slots meanwhile: made-up hosts cannot start
/// more lookups than `[limits] max_concurrent_requests`.
#[tokio::test]
async fn host_lookups_take_a_request_slot() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let nameserver = silent.local_addr().unwrap().to_string();
    let gw = TestGateway::start_with(Vec::new(), move |c| {
        c.dns.nameservers = vec![nameserver];
        c.dns.timeout_ms = 2_000;
        c.limits.max_concurrent_requests = 1;
    })
    .await;
    let client = gw.client.clone();
    let url = gw.url("/");
    let first = tokio::spawn(async move {
        client
            .get(url)
            .header("Host", "made-up-one.example.org")
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = on(&gw, "made-up-two.example.org", "/").await;
    assert_eq!(second.status(), 429);
    assert!(second.text().await.unwrap().contains("requests in flight"));
    // The first lookup times out: no DNSLink site, so the path gateway's page.
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    drop(silent);
}
