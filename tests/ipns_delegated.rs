//! IPNS names resolved through delegated routing (`GET
//! /routing/v1/ipns/{name}`, IPIP-379) from routers on loopback: the
//! highest valid sequence across routers wins, names pointing at names are
//! followed, and a broken record is never used: the error says what was
//! wrong with it.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cid::Cid;
use common::dht::{ipns_record, wire};
use common::TestGateway;
use libp2p::identity::Keypair;
use libp2p::PeerId;
use prost::Message as _;

type Records = Arc<HashMap<String, Vec<u8>>>;

async fn record(State(records): State<Records>, Path(name): Path<String>) -> Response {
    match records.get(&name) {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "application/vnd.ipfs.ipns-record")],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A router serving `records`, keyed by the name as the gateway asks for
/// it (a CIDv1 libp2p-key in base36).
async fn router(records: Vec<(PeerId, Vec<u8>)>) -> String {
    let records: Records = Arc::new(
        records
            .into_iter()
            .map(|(peer, bytes)| (base36(&peer), bytes))
            .collect(),
    );
    let app = axum::Router::new()
        .route("/routing/v1/ipns/{name}", axum::routing::get(record))
        .with_state(records);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn base36(peer: &PeerId) -> String {
    Cid::new_v1(0x72, *peer.as_ref())
        .to_string_of_base(multibase::Base::Base36Lower)
        .unwrap()
}

/// An identity CID holding `text`: content every gateway has.
fn inline(text: &str) -> String {
    let hash = multihash::Multihash::<64>::wrap(0, text.as_bytes()).unwrap();
    format!("/ipfs/{}", Cid::new_v1(0x55, hash))
}

async fn gateway(routers: Vec<String>) -> TestGateway {
    TestGateway::start_with(Vec::new(), move |c| c.routing.endpoints = routers).await
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn the_highest_valid_sequence_across_routers_wins() {
    let key = Keypair::generate_ed25519();
    let name = key.public().to_peer_id();
    let old = router(vec![(name, ipns_record(&key, &inline("old"), 1, DAY))]).await;
    let new = router(vec![(name, ipns_record(&key, &inline("new"), 2, DAY))]).await;
    // A forged record with a higher sequence, signed by someone else.
    let forger = Keypair::generate_ed25519();
    let forged = router(vec![(
        name,
        ipns_record(&forger, &inline("forged"), 9, DAY),
    )])
    .await;
    let gateway = gateway(vec![old, forged, new]).await;
    // A base58 name is sent to its canonical base36 form first.
    let response = gateway
        .client
        .get(gateway.url(&format!("/ipns/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(
        common::header(&response, "location"),
        format!("/ipns/{}", base36(&name))
    );
    let response = gateway
        .client
        .get(gateway.url(&format!("/ipns/{}", base36(&name))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        common::header(&response, "cache-control"),
        "public, max-age=60"
    );
    assert_eq!(response.text().await.unwrap(), "new");
}

#[tokio::test]
async fn a_name_pointing_at_a_name_is_followed() {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (na, nb) = (a.public().to_peer_id(), b.public().to_peer_id());
    let routing = router(vec![
        (na, ipns_record(&a, &format!("/ipns/{nb}"), 1, DAY)),
        (nb, ipns_record(&b, &inline("at the end"), 1, DAY)),
    ])
    .await;
    let gateway = gateway(vec![routing]).await;
    let response = gateway
        .client
        .get(gateway.url(&format!("/ipns/{}", base36(&na))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "at the end");
}

#[tokio::test]
async fn a_broken_record_is_never_used_and_the_error_says_why() {
    let key = Keypair::generate_ed25519();
    let name = key.public().to_peer_id();
    let forger = Keypair::generate_ed25519();
    let forged = ipns_record(&forger, &inline("forged"), 1, DAY);
    // A V1-only record: the V2 signature and data stripped.
    let other_key = Keypair::generate_ed25519();
    let other = other_key.public().to_peer_id();
    let mut v1_only =
        wire::IpnsEntry::decode(&ipns_record(&other_key, &inline("v1"), 1, DAY)[..]).unwrap();
    v1_only.signature_v2 = None;
    v1_only.data = None;
    let oversized = vec![0x0a; 11 * 1024];
    let third = Keypair::generate_ed25519().public().to_peer_id();
    let routing = router(vec![
        (name, forged),
        (other, v1_only.encode_to_vec()),
        (third, oversized),
    ])
    .await;
    let gateway = gateway(vec![routing]).await;
    for (name, says) in [
        (name, "does not verify"),
        (other, "V1-only"),
        (third, "over the 10240-byte limit"),
    ] {
        let response = gateway
            .client
            .get(gateway.url(&format!("/ipns/{}", base36(&name))))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        let body = response.text().await.unwrap();
        assert!(
            body.contains("no valid IPNS record") && body.contains(says),
            "{name}: {body}"
        );
    }
    // An /ipfs/ path has no record to give.
    let response = gateway
        .client
        .get(gateway.url(&format!("{}?format=ipns-record", inline("x"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
