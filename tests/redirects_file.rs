// Covers the gateway-conformance v0.13 redirects_file cases on subdomain
// origins: TestRedirectsFileSupport (15 of 15) and
// TestRedirectsFileWithIfNoneMatchHeader/SubdomainIPFS (2 of 2). The DNSLink
// origin cases are in dnslink_gateway.rs.
//
//! `_redirects` on a site's own origin, as the conformance suite checks
//! it with its own fixture sites: redirects with each status, placeholders
//! and splats, rewrites, custom 404/410/451 pages with their status and
//! immutable caching, first match wins, files that exist are not
//! intercepted, a broken or too large file is a 500 naming `_redirects`,
//! and nothing of it on the path gateway. Expected bytes are read from the
//! fixture CAR.

mod common;

use std::path::{Path, PathBuf};

use cid::Cid;
use common::{fixture_cid, header, parse_car, TestGateway};

fn car_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("redirects_file").join(name)
}

fn block(car: &Path, cid: &Cid) -> Vec<u8> {
    let (_, blocks) = parse_car(&std::fs::read(car).unwrap());
    blocks.into_iter().find(|(c, _)| c == cid).unwrap().1
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// The bytes of a one-block file: a raw block, or the `Data` field (2) of
/// the UnixFS message in a dag-pb node, read without the gateway's code.
fn file_bytes(car: &Path, cid: &Cid) -> Vec<u8> {
    let bytes = block(car, cid);
    if cid.codec() == 0x55 {
        return bytes;
    }
    let node = ipld_dagpb::PbNode::from_bytes(bytes.into()).unwrap();
    assert!(node.links.is_empty(), "a one-block file");
    let data = node.data.unwrap();
    let mut at = 0;
    while at < data.len() {
        let key = varint(&data, &mut at);
        match key & 7 {
            0 => {
                varint(&data, &mut at);
            }
            2 => {
                let len = varint(&data, &mut at) as usize;
                if key >> 3 == 2 {
                    return data[at..at + len].to_vec();
                }
                at += len;
            }
            other => panic!("wire type {other}"),
        }
    }
    Vec::new()
}

fn site(cid: &Cid) -> String {
    let label = Cid::new_v1(cid.codec(), *cid.hash())
        .to_string_of_base(multibase::Base::Base32Lower)
        .unwrap();
    format!("{label}.ipfs.localhost")
}

async fn on(gw: &TestGateway, host: &str, path: &str) -> reqwest::Response {
    gw.get_with(path, &[("Host", host)]).await
}

async fn gateway() -> Option<(TestGateway, PathBuf)> {
    let dir = common::fixtures()?;
    let gw = TestGateway::with_fixtures_and(|c| c.gateway.dnslink = false).await?;
    Some((gw, dir))
}

#[tokio::test]
async fn rules_of_the_examples_site() {
    let Some((gw, dir)) = gateway().await else {
        return;
    };
    let car = car_path(&dir, "redirects.car");
    let host = site(&fixture_cid(&car, &["examples"]));
    for (path, status, location) in [
        ("/redirect-one", 301, "/one.html"),
        ("/301-redirect-one", 301, "/one.html"),
        ("/302-redirect-two", 302, "/two.html"),
        (
            "/posts/2022/01/01/hello-world",
            301,
            "/articles/2022/01/01/hello-world",
        ),
        ("/splat/one.html", 301, "/redirected-splat/one.html"),
    ] {
        let response = on(&gw, &host, path).await;
        if response.status() != status {
            panic!(
                "{path}: {} {}",
                response.status(),
                response.text().await.unwrap()
            );
        }
        assert_eq!(header(&response, "location"), location, "{path}");
    }
    // The query string goes along.
    let response = gw
        .get_with("/redirect-one?lang=pt", &[("Host", &host)])
        .await;
    assert_eq!(header(&response, "location"), "/one.html?lang=pt");
    let index = file_bytes(&car, &fixture_cid(&car, &["examples", "index.html"]));
    for path in ["/200-index", "/catch-all"] {
        let response = on(&gw, &host, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.bytes().await.unwrap(), index, "{path}");
    }
    for (path, status, page) in [
        ("/not-found/has-no-redirects-entry", 404, "404.html"),
        ("/gone/has-no-redirects-entry", 410, "410.html"),
        ("/unavail/has-no-redirects-entry", 451, "451.html"),
    ] {
        let page_cid = fixture_cid(&car, &["examples", page]);
        let response = on(&gw, &host, path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=29030400, immutable"
        );
        assert_eq!(header(&response, "etag"), format!("\"{page_cid}\""));
        assert_eq!(
            response.bytes().await.unwrap(),
            file_bytes(&car, &page_cid),
            "{path}"
        );
    }
    // A file that exists is served, never intercepted by the catch-all.
    let one = file_bytes(&car, &fixture_cid(&car, &["examples", "one.html"]));
    let response = on(&gw, &host, "/one.html").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), one);
}

#[tokio::test]
async fn broken_and_odd_files() {
    let Some((gw, dir)) = gateway().await else {
        return;
    };
    let car = car_path(&dir, "redirects.car");
    let get = |names: &[&str], path: &str| (site(&fixture_cid(&car, names)), path.to_string());
    let (host, path) = get(&["forced"], "/not-found");
    let response = on(&gw, &host, &path).await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(text.contains("could not parse _redirects:"), "{text}");
    assert!(text.contains("line "), "names the line: {text}");
    let (host, path) = get(&["too-large"], "/not-found");
    let response = on(&gw, &host, &path).await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(text.contains("could not parse _redirects:"), "{text}");
    assert!(text.contains("redirects file size cannot exceed"), "{text}");
    // \r\n line endings.
    let (host, path) = get(&["newlines"], "/redirect-one");
    let response = on(&gw, &host, &path).await;
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/one.html");
    let (host, path) = get(&["good-codes"], "/a301");
    let response = on(&gw, &host, &path).await;
    assert_eq!(response.status(), 301);
    assert_eq!(header(&response, "location"), "/b301");
    // Bad rules are only read for a missing path.
    let (host, path) = get(&["bad-codes"], "/found.html");
    let response = on(&gw, &host, &path).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("my found") && !text.contains("unsupported redirect status"));
}

#[tokio::test]
async fn single_page_app_and_conditional_requests() {
    let Some((gw, dir)) = gateway().await else {
        return;
    };
    let car = car_path(&dir, "redirects-spa.car");
    let host = site(&fixture_cid(&car, &[]));
    let headers = [("Host", host.as_str()), ("Accept", "text/html")];
    let response = gw.get_with("/missing-page", &headers).await;
    assert_eq!(response.status(), 200);
    let etag = header(&response, "etag");
    assert!(!etag.is_empty());
    let index = file_bytes(&car, &fixture_cid(&car, &["index.html"]));
    assert_eq!(response.bytes().await.unwrap(), index);
    let response = gw
        .get_with(
            "/missing-page",
            &[headers[0], headers[1], ("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(response.status(), 304);
    // Deep links too.
    let response = gw.get_with("/app/users/42", &headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), index);
}

#[tokio::test]
async fn never_on_the_path_gateway() {
    let Some((gw, dir)) = gateway().await else {
        return;
    };
    let car = car_path(&dir, "redirects.car");
    let examples = fixture_cid(&car, &["examples"]);
    let response = gw.get(&format!("/ipfs/{examples}/redirect-one")).await;
    assert_eq!(response.status(), 404);
    let response = gw.get(&format!("/ipfs/{examples}/catch-all")).await;
    assert_eq!(response.status(), 404);
}

/// A site whose `_redirects` has a million lines (20 MB): refused by
/// its size before a line is read, quickly, and the site's files still served.
#[tokio::test]
async fn a_million_line_file_is_refused_by_its_size() {
    use sluice::car::CarWriter;
    use sluice::unixfs::builder::{build_directory, build_file, FileLayout};
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = Vec::new();
    let rules = "/from/:a /to/:a 301\n".repeat(1_000_000);
    let mut entry = |name: &str, text: &[u8]| {
        let built = build_file(text, FileLayout::MODERN, &mut |b| blocks.push(b)).unwrap();
        (name.to_string(), built)
    };
    let entries = vec![
        entry("_redirects", rules.as_bytes()),
        entry("index.html", b"home\n"),
    ];
    let root = build_directory(entries, false, &mut |b| blocks.push(b));
    let car = dir.path().join("site.car");
    let mut writer = CarWriter::new(std::fs::File::create(&car).unwrap(), &[root.cid]).unwrap();
    for block in &blocks {
        writer.write_block(&block.cid, &block.data).unwrap();
    }
    writer.finish().unwrap();
    let gw = TestGateway::start_with(vec![car], |c| c.gateway.dnslink = false).await;
    let host = site(&root.cid);
    let started = std::time::Instant::now();
    let response = on(&gw, &host, "/from/x").await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("could not parse _redirects: redirects file size cannot exceed 65536 bytes"),
        "{text}"
    );
    assert!(
        text.contains(&rules.len().to_string()),
        "names the size: {text}"
    );
    eprintln!("refused in {:?}", started.elapsed());
    let response = on(&gw, &host, "/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "home\n");
}
