// Covers the gateway-conformance v0.13 subdomain cases that need no DNS:
// TestGatewaySubdomains (21 of 21), TestUnixFSDirectoryListingOnSubdomainGateway
// (3 of 3), TestGatewaySubdomainAndIPNS (9 of 9), TestSubdomainGatewayDNSLinkInlining
// (its 2 redirect cases and the ipns:// URI router case, of 9; the 6 that
// resolve DNSLink are in dnslink_gateway.rs), TestProxyGatewaySubdomains (3 of 3). The CONNECT
// tunnel cases (TestProxyTunnelGatewaySubdomains, 3) are not served.
//
//! The subdomain gateway, as the conformance suite checks it: path-form
//! requests on a subdomain host move to `<cid>.ipfs.<host>` (CIDv1 base32,
//! keys in base36), sites are served from the host name, a CID too long
//! for a DNS label is a 400, `X-Forwarded-*` count only when trusted, and
//! an absolute-form (proxy) request is served by its URL's host. Expected
//! CIDs and bytes come from the fixture CARs.

mod common;

use std::path::{Path, PathBuf};

use cid::Cid;
use common::{fixture_cid, header, raw_request as raw, TestGateway};

fn base32(cid: &Cid) -> String {
    Cid::new_v1(cid.codec(), *cid.hash())
        .to_string_of_base(multibase::Base::Base32Lower)
        .unwrap()
}

fn fixture(dir: &Path, group: &str, car: &str) -> PathBuf {
    dir.join(group).join(car)
}

/// The gateway with every fixture, serving `localhost` as its subdomain
/// host (the default) and, where a test says so, trusting forwarded headers.
async fn gateway(trust_forwarded: bool) -> Option<(TestGateway, PathBuf)> {
    let dir = common::fixtures()?;
    let gw = TestGateway::with_fixtures_and(move |c| {
        c.gateway.trust_forwarded_headers = trust_forwarded;
        // No DNS server here: other host names are the path gateway.
        c.gateway.dnslink = false;
    })
    .await?;
    Some((gw, dir))
}

async fn body(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

#[tokio::test]
async fn path_requests_on_a_subdomain_host_move_to_their_subdomain() {
    let Some((gw, dir)) = gateway(false).await else {
        return;
    };
    let car = fixture(&dir, "subdomain_gateway", "fixtures.car");
    let v1 = fixture_cid(&car, &["hello-CIDv1"]);
    let v0 = fixture_cid(&car, &["hello-CIDv0"]);
    let v0to1 = fixture_cid(&car, &["hello-CIDv0to1"]);
    let dir_cid = fixture_cid(&car, &["testdirlisting"]);
    assert_eq!(v0.version(), cid::Version::V0);
    let host = [("Host", "localhost")];
    for (path, expected) in [
        (
            format!("/ipfs/{v1}/"),
            format!("http://{v1}.ipfs.localhost/"),
        ),
        (
            format!("/ipfs/{dir_cid}/"),
            format!("http://{dir_cid}.ipfs.localhost/"),
        ),
        // CIDv0 becomes CIDv1 in base32 (the fixture's own conversion).
        (
            format!("/ipfs/{v0}/"),
            format!("http://{}.ipfs.localhost/", base32(&v0to1)),
        ),
        // The query string is kept.
        (
            format!("/ipfs/{v1}?download=true"),
            format!("http://{v1}.ipfs.localhost/?download=true"),
        ),
    ] {
        let response = gw.get_with(&path, &host).await;
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(header(&response, "location"), expected, "{path}");
        // The redirect is content-adjacent: CORS headers too.
        assert_eq!(header(&response, "access-control-allow-origin"), "*");
    }
    // The path remainder is kept exactly as it was sent.
    let encoded_dir = fixture_cid(
        &fixture(
            &dir,
            "path_gateway_unixfs",
            "dir-with-percent-encoded-filename.car",
        ),
        &[],
    );
    let response = gw
        .get_with(
            &format!("/ipfs/{encoded_dir}/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt"),
            &host,
        )
        .await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        header(&response, "location"),
        format!(
            "http://{}.ipfs.localhost/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt",
            base32(&encoded_dir)
        )
    );
    let response = gw
        .get_with("/ipns/en.wikipedia-on-ipfs.example.org/wiki/", &host)
        .await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        header(&response, "location"),
        "http://en-wikipedia--on--ipfs-example-org.ipns.localhost/wiki/"
    );
    // The URI router answers on the subdomain host's path form too.
    let response = gw
        .get_with(
            "/ipfs/?uri=ipfs%3A%2F%2FQmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco%2Fwiki%2FDiego_Maradona.html",
            &host,
        )
        .await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        header(&response, "location"),
        "/ipfs/QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco/wiki/Diego_Maradona.html"
    );
    let response = gw
        .get_with(
            "/ipns/?uri=ipns%3A%2F%2Fen.wikipedia-on-ipfs.example.org",
            &host,
        )
        .await;
    assert_eq!(
        header(&response, "location"),
        "/ipns/en.wikipedia-on-ipfs.example.org"
    );
    // An invalid CID is an error that names the path, before any redirect.
    let response = gw.get_with("/ipfs/QmInvalidCID", &host).await;
    assert_eq!(response.status(), 400);
    assert!(body(response)
        .await
        .contains("invalid path \"/ipfs/QmInvalidCID\""));
    // A CID too long for a DNS label: the spec's error, on either form.
    let too_long = fixture_cid(&car, &["hello-CIDv1_TOO_LONG"]);
    let response = gw.get_with(&format!("/ipfs/{too_long}/"), &host).await;
    assert_eq!(response.status(), 400);
    assert!(body(response)
        .await
        .contains("CID incompatible with DNS label length limit of 63"));
    let subdomain = format!("{}.ipfs.localhost", base32(&too_long));
    let response = gw.get_with("/", &[("Host", &subdomain)]).await;
    assert_eq!(response.status(), 400);
    assert!(body(response)
        .await
        .contains("CID incompatible with DNS label length limit of 63"));
    // Trustless clients are not sent to an origin: a CAR is served here.
    let response = gw.get_with(&format!("/ipfs/{v1}?format=car"), &host).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("application/vnd.ipld.car"));
    // An IP address is the path gateway only.
    let response = gw.get(&format!("/ipfs/{v1}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, "hello\n");
}

#[tokio::test]
async fn sites_are_served_from_the_host_name() {
    let Some((gw, dir)) = gateway(false).await else {
        return;
    };
    let car = fixture(&dir, "subdomain_gateway", "fixtures.car");
    let v1 = fixture_cid(&car, &["hello-CIDv1"]);
    let dir_cid = fixture_cid(&car, &["testdirlisting"]);
    let hello_host = format!("{v1}.ipfs.localhost");
    let dir_host = format!("{dir_cid}.ipfs.localhost");
    let response = gw.get_with("/", &[("Host", &hello_host)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ipfs-path"), format!("/ipfs/{v1}/"));
    assert_eq!(body(response).await, "hello\n");
    // /ipfs/ is not mounted on a site...
    let response = gw
        .get_with(&format!("/ipfs/{v1}/"), &[("Host", &hello_host)])
        .await;
    assert_eq!(response.status(), 404);
    // ...but a directory of the site named ipfs is its own.
    let response = gw.get_with("/ipfs/file.txt", &[("Host", &dir_host)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, "I am a txt file\n");
    let response = gw.get_with("/ipfs/ipns/bar", &[("Host", &dir_host)]).await;
    assert_eq!(body(response).await, "text-file-content\n");
    // The listing links stay on the site's origin; breadcrumbs and CIDs
    // point at the path gateway on the parent host.
    let listing = body(gw.get_with("/", &[("Host", &dir_host)]).await).await;
    assert!(
        listing.contains(r#"<a href="/hello">hello</a>"#),
        "{listing}"
    );
    assert!(listing.contains(r#"<a href="/ipfs">ipfs</a>"#));
    let listing = body(gw.get_with("/ipfs/ipns/", &[("Host", &dir_host)]).await).await;
    assert!(
        listing.contains(r#"<a href="/ipfs/ipns/..">..</a>"#),
        "{listing}"
    );
    assert!(listing.contains(r#"<a href="/ipfs/ipns/bar">bar</a>"#));
    assert!(listing.contains(&format!(
        r#"/ipfs/<a href="//localhost/ipfs/{dir_cid}">{dir_cid}</a>/<a href="//localhost/ipfs/{dir_cid}/ipfs">ipfs</a>/<a href="//localhost/ipfs/{dir_cid}/ipfs/ipns">ipns</a>"#
    )));
    // A host that is not the configured one is the path gateway.
    let response = gw
        .get_with(&format!("/ipfs/{v1}"), &[("Host", "fake.domain.com")])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn directory_listing_on_a_subdomain() {
    let Some((gw, dir)) = gateway(false).await else {
        return;
    };
    let car = fixture(&dir, "dir_listing", "fixtures.car");
    let root = fixture_cid(&car, &[]);
    let file = fixture_cid(&car, &["ą", "ę", "file-źł.txt"]);
    let host = format!("{}.ipfs.localhost", base32(&root));
    let root_text = base32(&root);
    let listing = body(gw.get_with("/", &[("Host", &host)]).await).await;
    assert!(listing.contains("Index of"));
    assert!(
        !listing.contains(r#"<a href="/">..</a>"#),
        "no way up from the root"
    );
    let response = gw.get_with("/%C4%85/%C4%99", &[("Host", &host)]).await;
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/%C4%85/%C4%99/");
    let response = gw.get_with("/%C4%85/%C4%99/", &[("Host", &host)]).await;
    assert!(header(&response, "etag").contains("\"DirIndex-"));
    let listing = body(response).await;
    for expected in [
        r#"<a href="/%C4%85/%C4%99/..">..</a>"#.to_string(),
        format!(
            r#"/ipfs/<a href="//localhost/ipfs/{root_text}">{root_text}</a>/<a href="//localhost/ipfs/{root_text}/%C4%85">ą</a>/<a href="//localhost/ipfs/{root_text}/%C4%85/%C4%99">ę</a>"#
        ),
        r#"<a href="/%C4%85/%C4%99/file-%C5%BA%C5%82.txt">file-źł.txt</a>"#.to_string(),
        format!(
            r#"<a class="ipfs-hash" translate="no" href="//localhost/ipfs/{file}?filename=file-%25C5%25BA%25C5%2582.txt">"#
        ),
    ] {
        assert!(listing.contains(&expected), "{expected}\n{listing}");
    }
}

#[tokio::test]
async fn forwarded_headers_only_when_trusted() {
    let Some((trusting, dir)) = gateway(true).await else {
        return;
    };
    let car = fixture(&dir, "subdomain_gateway", "fixtures.car");
    let v1 = fixture_cid(&car, &["hello-CIDv1"]);
    let path = format!("/ipfs/{v1}/");
    for proto in ["https", "http"] {
        let response = trusting
            .get_with(
                &path,
                &[("Host", "localhost"), ("X-Forwarded-Proto", proto)],
            )
            .await;
        assert_eq!(response.status(), 301);
        assert_eq!(
            header(&response, "location"),
            format!("{proto}://{v1}.ipfs.localhost/")
        );
        let response = trusting
            .get_with(
                &format!("/ipfs/{v1}"),
                &[
                    ("Host", "fake.domain.com"),
                    ("X-Forwarded-Host", "localhost"),
                    ("X-Forwarded-Proto", proto),
                ],
            )
            .await;
        assert_eq!(response.status(), 301);
        assert_eq!(
            header(&response, "location"),
            format!("{proto}://{v1}.ipfs.localhost/")
        );
    }
    // DNSLink names are inlined into one label, for a wildcard certificate.
    let response = trusting
        .get_with(
            "/ipns/en.wikipedia-on-ipfs.example.org/wiki/",
            &[("Host", "localhost"), ("X-Forwarded-Proto", "https")],
        )
        .await;
    assert_eq!(
        header(&response, "location"),
        "https://en-wikipedia--on--ipfs-example-org.ipns.localhost/wiki/"
    );
    // Without trust, a client cannot pick its origin with a header.
    let Some((plain, _)) = gateway(false).await else {
        return;
    };
    let response = plain
        .get_with(
            &format!("/ipfs/{v1}"),
            &[
                ("Host", "fake.domain.com"),
                ("X-Forwarded-Host", "localhost"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = plain
        .get_with(
            &path,
            &[("Host", "localhost"), ("X-Forwarded-Proto", "https")],
        )
        .await;
    assert_eq!(
        header(&response, "location"),
        format!("http://{v1}.ipfs.localhost/")
    );
}

#[tokio::test]
async fn ipns_keys_on_subdomains() {
    let Some((gw, dir)) = gateway(false).await else {
        return;
    };
    let hello = "hello\n";
    for record in [
        "QmVujd5Vb7moysJj8itnGufN7MEtPRCNHkKpNuA4onsRa3",
        "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d",
    ] {
        assert!(dir
            .join("subdomain_gateway")
            .join(format!("{record}.ipns-record"))
            .exists());
        let peer: libp2p::PeerId = record.parse().unwrap();
        let key_cid = Cid::new_v1(0x72, *peer.as_ref());
        let base36 = key_cid
            .to_string_of_base(multibase::Base::Base36Lower)
            .unwrap();
        let expected = format!("http://{base36}.ipns.localhost/");
        // The peer ID (CIDv0 form) and the CIDv1 form both move to base36.
        for name in [record.to_string(), key_cid.to_string()] {
            let response = gw
                .get_with(&format!("/ipns/{name}"), &[("Host", "localhost")])
                .await;
            assert_eq!(response.status(), 301, "{name}");
            assert_eq!(header(&response, "location"), expected, "{name}");
        }
        let site = format!("{base36}.ipns.localhost");
        let response = gw.get_with("/", &[("Host", &site)]).await;
        assert_eq!(response.status(), 200, "{site}");
        assert!(header(&response, "cache-control").starts_with("public, max-age="));
        assert_eq!(body(response).await, hello);
        // The legacy dag-pb CID of a key moves to its libp2p-key form.
        let dag_pb = Cid::new_v1(0x70, *peer.as_ref())
            .to_string_of_base(multibase::Base::Base36Lower)
            .unwrap();
        let response = gw
            .get_with("/", &[("Host", &format!("{dag_pb}.ipns.localhost"))])
            .await;
        assert_eq!(response.status(), 301);
        assert_eq!(header(&response, "location"), expected);
    }
}

#[tokio::test]
async fn absolute_form_requests_are_served_by_their_host() {
    let Some((gw, dir)) = gateway(false).await else {
        return;
    };
    let car = fixture(&dir, "subdomain_gateway", "fixtures.car");
    let v1 = fixture_cid(&car, &["hello-CIDv1"]);
    let v0 = fixture_cid(&car, &["hello-CIDv0"]);
    let dir_cid = fixture_cid(&car, &["testdirlisting"]);
    let (status, text) = raw(
        &gw,
        &format!("GET http://{v1}.ipfs.localhost/ HTTP/1.1"),
        &[&format!("Host: {v1}.ipfs.localhost")],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("hello\n"));
    let (status, text) = raw(
        &gw,
        &format!("GET http://localhost/ipfs/{v0}/ HTTP/1.1"),
        &["Host: localhost"],
    )
    .await;
    assert_eq!(status, 301);
    let v0to1 = base32(&fixture_cid(&car, &["hello-CIDv0to1"]));
    assert!(
        text.contains(&format!("location: http://{v0to1}.ipfs.localhost/")),
        "{text}"
    );
    // The target's host wins over the Host header.
    let (status, text) = raw(
        &gw,
        &format!("GET http://{dir_cid}.ipfs.localhost/ipfs/file.txt HTTP/1.1"),
        &["Host: 127.0.0.1"],
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.ends_with("I am a txt file\n"));
}

#[tokio::test]
async fn odd_hosts_are_clear_errors() {
    let Some((gw, _)) = gateway(false).await else {
        return;
    };
    let long_label = "a".repeat(64);
    for (host, expected) in [
        ("exa_mple .com", "is not a host name"),
        ("localhost:99999", "is not a host name"),
        ("notacid.ipfs.localhost", "invalid CID"),
        (
            &format!("{long_label}.ipns.localhost") as &str,
            "DNS label length limit",
        ),
        ("-x-.ipns.localhost", "neither a libp2p key nor"),
        ("a..b.ipns.localhost", "not a DNS name"),
    ] {
        let (status, text) = raw(&gw, "GET / HTTP/1.1", &[&format!("Host: {host}")]).await;
        assert_eq!(status, 400, "{host}: {text}");
        assert!(text.contains(expected), "{host}: {text}");
    }
    // Not a host at all, and a missing one: the path gateway still answers.
    let (status, _) = raw(&gw, "GET /ipfs/bafkqaaa HTTP/1.1", &["Host: localhost"]).await;
    assert_eq!(status, 301);
    let (status, _) = raw(&gw, "GET /ipfs/bafkqaaa HTTP/1.0", &[]).await;
    assert_eq!(status, 200);
}
