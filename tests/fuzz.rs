//! Property tests over untrusted input: URL paths, query strings and hint
//! headers through the real router; CAR, dag-pb, UnixFS and CBOR/JSON
//! decoding. The properties: no panic, no hang, no 500.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};
use proptest::prelude::*;
use sluice::blocks::{BlockService, MemoryStore};
use sluice::car::{encode_header, encode_section, CarReader};
use sluice::config::Config;
use sluice::dag::{links_of, Node};
use sluice::gateway::{router, Gateway};
use sluice::unixfs::UnixfsNode;
use tower::ServiceExt;

fn gateway() -> axum::Router {
    let store = MemoryStore::default();
    let data = Bytes::from_static(b"hello fuzz\n");
    store.insert(Cid::new_v1(0x55, Code::Sha2_256.digest(&data)), data);
    let blocks = BlockService::new(1 << 20, vec![Arc::new(store)], None);
    let config = Config::default();
    router(Gateway::new(
        blocks,
        config.gateway,
        config.hints,
        config.limits,
    ))
}

const KNOWN: &str = "bafkreicuhnyi3tgbu6vq4mysylsukjoemn6ocb7tjrpzdhngtv3fmq6fay";

fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%00".to_string()),
        Just("%".to_string()),
        Just("%ff%fe".to_string()),
        Just(KNOWN.to_string()),
        "[a-zA-Z0-9._~%-]{0,12}",
        "\\PC{0,6}".prop_map(|s| percent_encoding::utf8_percent_encode(
            &s,
            percent_encoding::NON_ALPHANUMERIC
        )
        .to_string()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("format"),
        Just("dag-scope"),
        Just("entity-bytes"),
        Just("car-dups"),
        Just("car-version"),
        Just("filename"),
        Just("download"),
        Just("provider"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("car".to_string()),
        Just("raw".to_string()),
        Just("dag-json".to_string()),
        Just("-1:*".to_string()),
        Just("99999999999999999999:1".to_string()),
        "[a-z0-9:*%/-]{0,16}",
    ];
    proptest::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(
            "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
                .to_string()
        ),
        Just("http://[::1".to_string()),
        Just("https://".to_string()),
        Just("/dns4//tcp/1/https".to_string()),
        "[ -~]{0,64}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn requests_never_panic_or_500(
        segments in proptest::collection::vec(path_segment(), 0..5),
        cid in prop_oneof![Just(KNOWN.to_string()), Just("bafkqaaa".to_string()), "[a-zA-Z0-9]{0,60}"],
        query in query(),
        hint in header_value(),
        range in "[ -~]{0,24}",
        accept in prop_oneof![Just("application/vnd.ipld.car; dups=y".to_string()), Just("text/html".to_string()), "[ -~]{0,40}"],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut uri = format!("/ipfs/{cid}");
        for s in &segments {
            uri.push('/');
            uri.push_str(s);
        }
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query);
        }
        let Ok(request) = Request::get(uri.as_str())
            .header("x-ipfs-provider", hint.as_str())
            .header("range", range.as_str())
            .header("accept", accept.as_str())
            .body(Body::empty())
        else {
            return Ok(()); // not even a valid HTTP request: the server never sees it
        };
        let status = runtime.block_on(async {
            let response = tokio::time::timeout(Duration::from_secs(10), gateway().oneshot(request)).await.expect("no hang").unwrap();
            let status = response.status();
            let _ = tokio::time::timeout(Duration::from_secs(10), axum::body::to_bytes(response.into_body(), 1 << 24)).await.expect("no hang");
            status
        });
        prop_assert_ne!(status.as_u16(), 500, "{}", uri);
    }

    #[test]
    fn car_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(mut reader) = CarReader::new(&bytes[..]) {
            for _ in 0..1000 {
                match reader.next_section() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }

    #[test]
    fn tampered_cars_are_rejected_or_verified(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..4)) {
        let blocks: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let cids: Vec<Cid> = blocks.iter().map(|b| Cid::new_v1(0x55, Code::Sha2_256.digest(b))).collect();
        let mut car = encode_header(&cids[..1]).to_vec();
        for (cid, block) in cids.iter().zip(&blocks) {
            car.extend_from_slice(&encode_section(cid, block));
        }
        for (at, xor) in flips {
            let at = at % car.len();
            car[at] ^= xor;
        }
        if let Ok(mut reader) = CarReader::new(&car[..]) {
            while let Ok(Some(section)) = reader.next_section() {
                // Whatever gets through is exactly a block that hashes to its CID.
                prop_assert!(sluice::blocks::verify_block(&section.cid, &section.data).is_ok());
            }
        }
    }

    #[test]
    fn node_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024), codec in prop_oneof![Just(0x70u64), Just(0x71), Just(0x0129), Just(0x55), Just(0x51), Just(0x0200)]) {
        let cid = Cid::new_v1(codec, Code::Sha2_256.digest(&bytes));
        let _ = Node::decode(&cid, Bytes::from(bytes.clone()));
        let _ = links_of(&cid, &bytes);
        let _ = UnixfsNode::decode(&bytes);
    }

    #[test]
    fn hint_parsing_never_panics(values in proptest::collection::vec(header_value(), 0..12), allow in any::<bool>()) {
        let _ = sluice::routing::parse_hints(values.iter().map(String::as_str), 8, &sluice::dial::AddressPolicy::new(allow));
    }
}
