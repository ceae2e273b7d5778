// Covers the gateway-conformance path_gateway_ipns cases: TestGatewayIPNSPath (6),
// TestRedirectCanonicalIPNS (2), TestGatewayIPNSRecordWithSubpath (2).
//
//! IPNS on the path gateway, as the gateway-conformance suite checks it,
//! with the suite's own record fixtures (made by boxo) provisioned into the
//! gateway's data directory: V1-only records, a broken V2 signature and a
//! V1 value that disagrees with the signed data fail with a 5xx; V1+V2,
//! V2-only and a broken V1 signature alone resolve; base58 names redirect
//! to their base36 form; a record whose value has a sub-path is followed.

mod common;

use common::{header, TestGateway};

/// The bytes an identity CID (`/ipfs/<cid>`) holds.
fn inline_bytes(path: &str) -> Vec<u8> {
    let cid: cid::Cid = path.trim_start_matches("/ipfs/").parse().unwrap();
    assert_eq!(cid.hash().code(), 0, "an identity CID");
    cid.hash().digest().to_vec()
}

#[tokio::test]
async fn test_gateway_ipns_path() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    for (name, what) in [
        (
            "k51qzi5uqu5dm4tm0wt8srkg9h9suud4wuiwjimndrkydqm81cqtlb5ak6p7ku",
            "V1-only signature",
        ),
        (
            "k51qzi5uqu5dlmit2tuwdvnx4sbnyqgmvbxftl0eo3f33wwtb9gr7yozae9kpw",
            "V1-vs-V2 value mismatch",
        ),
        (
            "k51qzi5uqu5diamp7qnnvs1p1gzmku3eijkeijs3418j23j077zrkok63xdm8c",
            "valid V1 and broken V2 signature",
        ),
    ] {
        let resp = gw.get_with(&format!("/ipns/{name}"), &[]).await;
        assert!(resp.status().is_server_error(), "{what}: {}", resp.status());
        // Refused for what is wrong with it, not missed.
        let body = resp.text().await.unwrap();
        assert!(body.contains("no valid IPNS record"), "{what}: {body}");
    }
    for (name, value, what) in [
        (
            "k51qzi5uqu5dilgf7gorsh9vcqqq4myo6jd4zmqkuy9pxyxi5fua3uf7axph4y",
            "/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi",
            "valid V2 and broken V1 signature",
        ),
        (
            "k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w",
            "/ipfs/bafkqaddwgevxmmraojswg33smq",
            "valid V1+V2 signatures",
        ),
        (
            "k51qzi5uqu5dit2ku9mutlfgwyz8u730on38kd10m97m36bjt66my99hb6103f",
            "/ipfs/bafkqadtwgiww63tmpeqhezldn5zgi",
            "valid V2-only signature",
        ),
    ] {
        let resp = gw.get_with(&format!("/ipns/{name}"), &[]).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            resp.bytes().await.unwrap().to_vec(),
            inline_bytes(value),
            "{what}"
        );
    }
}

#[tokio::test]
async fn test_redirect_canonical_ipns() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    for (from, to) in [
        (
            "/ipns/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/root2/",
            "/ipns/k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8/root2/",
        ),
        (
            "/ipns/QmcJM7PRfkSbcM5cf1QugM5R37TLRKyJGgBEhXjLTB8uA2/root2/",
            "/ipns/k2k4r8ol4m8kkcqz509c1rcjwunebj02gcnm5excpx842u736nja8ger/root2/",
        ),
    ] {
        let resp = gw.get_with(from, &[]).await;
        assert_eq!(resp.status(), 302, "{from}");
        assert_eq!(header(&resp, "location"), to);
    }
}

#[tokio::test]
async fn test_gateway_ipns_record_with_subpath() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    // Value = /ipfs/<root of gateway-cache/fixtures.car>/root2.
    let name = "k51qzi5uqu5djokp3m1keo36hoxtd6u3a1d2rg1camf6al7p3huy63dojlm57c";
    let resp = gw.get_with(&format!("/ipns/{name}/"), &[]).await;
    assert_eq!(resp.status(), 200);
    let listing = resp.text().await.unwrap();
    assert!(
        listing.contains("Index of") && listing.contains("root3"),
        "{listing}"
    );
    let resp = gw
        .get_with(&format!("/ipns/{name}/root3/root4/index.html"), &[])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello\n");
}
