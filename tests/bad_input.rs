//! Bad input from clients: every case gets a clear 4xx that names what was
//! wrong, never a panic, a hang or a 5xx.

mod common;

use common::{header, TestGateway};

const FILE: &str = "/ipfs/bafybeihchr7vmgjaasntayyatmp5sv6xza57iy2h4xj7g46bpjij6yhrmy/ascii.txt";

async fn expect_error(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    mentions: &str,
) {
    let response = gw.get_with(path, headers).await;
    assert_eq!(response.status(), status, "{path} {headers:?}");
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let body = response.text().await.unwrap();
    assert!(
        body.contains(mentions),
        "{path}: error {body:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn malformed_paths_and_cids() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    expect_error(
        &gw,
        "/ipfs/not-a-cid",
        &[],
        400,
        "invalid CID \"not-a-cid\"",
    )
    .await;
    expect_error(&gw, "/ipfs/bafyINVALID", &[], 400, "invalid CID").await;
    expect_error(&gw, "/ipfs/", &[], 400, "missing CID").await;
    for dots in ["/../ascii.txt", "/%2E%2E/x", "/./x"] {
        let (status, body) = common::raw_get(&gw, &format!("{FILE}{dots}")).await;
        assert_eq!(status, 400, "{dots}");
        assert!(body.contains("is not allowed in a content path"), "{body}");
    }
    expect_error(&gw, &format!("{FILE}%00"), &[], 400, "NUL").await;
    expect_error(&gw, &format!("{FILE}/%FF"), &[], 400, "not valid UTF-8").await;
    expect_error(&gw, "/ipfs/bafkqaaa/a//b", &[], 400, "empty segment").await;
    let deep = format!("/ipfs/bafkqaaa/{}", "a/".repeat(300));
    expect_error(&gw, &deep, &[], 400, "more than 256 segments").await;
    let long = format!("/ipfs/bafkqaaa/{}", "a".repeat(10_000));
    expect_error(&gw, &long, &[], 414, "longer than the 8192 byte limit").await;
    expect_error(
        &gw,
        "/nothing-here",
        &[],
        404,
        "content is served under /ipfs/",
    )
    .await;
}

#[tokio::test]
async fn malformed_parameters() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    expect_error(
        &gw,
        &format!("{FILE}?format=zip"),
        &[],
        400,
        "unknown format \"zip\"",
    )
    .await;
    // A TAR of content that is not UnixFS (the fixtures' dag-cbor root).
    expect_error(
        &gw,
        "/ipfs/bafyreibs4utpgbn7uqegmd2goqz4bkyflre2ek2iwv743fhvylwi4zeeim?format=tar",
        &[],
        400,
        "(IPLD node) is not UnixFS",
    )
    .await;
    expect_error(
        &gw,
        &format!("{FILE}?format=car&dag-scope=most"),
        &[],
        400,
        "invalid dag-scope \"most\"",
    )
    .await;
    for bad in ["abc", "10", "5:2", "1:x", "-1:-5"] {
        expect_error(
            &gw,
            &format!("{FILE}?format=car&entity-bytes={bad}"),
            &[],
            400,
            "invalid entity-bytes",
        )
        .await;
    }
    expect_error(
        &gw,
        &format!("{FILE}?format=car&car-dups=maybe"),
        &[],
        400,
        "invalid CAR dups",
    )
    .await;
    expect_error(
        &gw,
        FILE,
        &[("accept", "application/vnd.ipld.car; version=2")],
        406,
        "CAR version 2",
    )
    .await;
    expect_error(
        &gw,
        &format!("{FILE}?filename=a%0Ab"),
        &[],
        400,
        "control character",
    )
    .await;
}

#[tokio::test]
async fn bogus_ranges() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    expect_error(
        &gw,
        FILE,
        &[("range", "bytes=abc")],
        400,
        "invalid Range header",
    )
    .await;
    expect_error(&gw, FILE, &[("range", "bytes=9-2")], 416, "not satisfiable").await;
    expect_error(
        &gw,
        FILE,
        &[("range", "bytes=31-40")],
        416,
        "not satisfiable",
    )
    .await;
    let many = format!(
        "bytes={}",
        (0..20)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    expect_error(&gw, FILE, &[("range", &many)], 416, "more than 16 ranges").await;
    // A unit other than bytes is ignored, as HTTP says.
    let other_unit = gw.get_with(FILE, &[("range", "items=0-1")]).await;
    assert_eq!(other_unit.status(), 200);
}

#[tokio::test]
async fn unknown_content_is_not_a_server_error() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    // Valid CID, not held anywhere and nothing to fetch it from.
    let response = gw
        .get("/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
        .await;
    assert_eq!(response.status(), 502);
    assert!(header(&response, "retry-after").parse::<u32>().is_ok());
    assert!(response.text().await.unwrap().contains("no provider"));
    // A codec the gateway cannot read is still served as a raw block.
    let browser = gw
        .get_with(
            "/ipfs/not-a-cid",
            &[("accept", "text/html,application/xhtml+xml")],
        )
        .await;
    assert_eq!(browser.status(), 400);
    assert!(header(&browser, "content-type").starts_with("text/html"));
    let page = browser.text().await.unwrap();
    assert!(page.contains("400 Bad Request") && page.contains("invalid CID"));
}
