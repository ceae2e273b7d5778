//! Hints naming the gateway's own listening addresses are refused even
//! where private addresses are allowed, and a name that resolves to the
//! gateway is refused on the connected socket, so the gateway never sends
//! requests to itself. Its own binary: it counts every request the process
//! answers, and the metrics registry is process-wide.

mod common;

use cid::Cid;
use common::TestGateway;
use multihash_codetable::{Code, MultihashDigest};

const PEER: &str = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d";

fn absent_cid(seed: u8) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(&[seed; 37]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_naming_the_gateway_itself_are_refused() {
    // Even where private addresses are allowed (as on a LAN).
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.retrieval.block_timeout_secs = 2;
    })
    .await;
    let own = gw.base.trim_start_matches("http://").to_string();
    let own_port = own.rsplit(':').next().unwrap().to_string();
    let control = gw.control.trim_start_matches("http://").to_string();
    let before = gw.metric_sum("sluice_http_requests_total", &[]).await;
    let mut requests = 0.0;
    for (i, hint) in [
        format!("http://{own}"),
        format!("http://127.1:{own_port}"),
        format!("http://0x7f000001:{own_port}"),
        format!("http://[::ffff:127.0.0.1]:{own_port}"),
        format!("http://0.0.0.0:{own_port}"),
        format!("http://{control}"),
        format!("/ip4/127.0.0.1/tcp/{own_port}/http"),
        format!("/ip4/127.0.0.1/tcp/{own_port}/p2p/{PEER}"),
    ]
    .iter()
    .enumerate()
    {
        let response = gw
            .get_hinted(&format!("/ipfs/{}?format=raw", absent_cid(i as u8)), hint)
            .await;
        requests += 1.0;
        assert_eq!(response.status(), 400, "hint {hint}");
        let body = response.text().await.unwrap();
        assert!(body.contains("own listening address"), "{hint}: {body}");
    }
    // A name that resolves to this gateway is refused on the connected
    // socket, before a request is written: the gateway sees no request of
    // its own.
    let response = gw
        .get_hinted(
            &format!("/ipfs/{}?format=raw", absent_cid(99)),
            &format!("http://localhost:{own_port}"),
        )
        .await;
    requests += 1.0;
    assert!(matches!(response.status().as_u16(), 502 | 504));
    let own_refusals = gw
        .metric_sum("sluice_dials_refused_total", &["reason=\"own_listener\""])
        .await;
    assert!(own_refusals >= 1.0, "{own_refusals}");
    let after = gw.metric_sum("sluice_http_requests_total", &[]).await;
    assert_eq!(
        after - before,
        requests,
        "the gateway answered requests it sent to itself"
    );
}
