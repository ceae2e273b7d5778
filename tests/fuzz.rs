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
                prop_assert!(sluice::verify::verify_block(&section.cid, &section.data).is_ok());
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

// HAMT-sharded directories: names after the slot prefix and the shapes of
// shards are untrusted. Through the real router, listing, the entity CAR
// and path lookup always answer, and never with a 500.

mod hamt {
    use super::*;
    use ipld_dagpb::{PbLink, PbNode};
    use prost::Message;
    use sluice::unixfs::{Data, DataType};

    const FILE: &[u8] = b"entry\n";

    pub struct Dag {
        pub store: MemoryStore,
        pub file: Cid,
    }

    impl Dag {
        pub fn new() -> Dag {
            let store = MemoryStore::default();
            let file = Cid::new_v1(0x55, Code::Sha2_256.digest(FILE));
            store.insert(file, Bytes::from_static(FILE));
            Dag { store, file }
        }

        pub fn put_pb(&self, links: Vec<PbLink>, data: Vec<u8>) -> Cid {
            let bytes = Bytes::from(
                PbNode {
                    links,
                    data: Some(Bytes::from(data)),
                }
                .into_bytes(),
            );
            let cid = Cid::new_v1(0x70, Code::Sha2_256.digest(&bytes));
            self.store.insert(cid, bytes);
            cid
        }

        pub fn shard(&self, fanout: u64, links: Vec<(String, Cid)>) -> Cid {
            let data = Data {
                r#type: DataType::HamtShard as i32,
                data: None,
                filesize: None,
                blocksizes: Vec::new(),
                hash_type: Some(0x22),
                fanout: Some(fanout),
            }
            .encode_to_vec();
            let links = links
                .into_iter()
                .map(|(name, cid)| PbLink {
                    cid,
                    name: Some(name),
                    size: Some(10),
                })
                .collect();
            self.put_pb(links, data)
        }

        pub fn router(self) -> axum::Router {
            let blocks = BlockService::new(1 << 20, vec![Arc::new(self.store)], None);
            let config = Config::default();
            router(Gateway::new(
                blocks,
                config.gateway,
                config.hints,
                config.limits,
            ))
        }
    }

    fn width(fanout: u64) -> usize {
        format!("{:X}", fanout.saturating_sub(1)).len()
    }

    fn slot(name: &str, depth: usize, bits: usize) -> Option<u64> {
        let hash = murmur3::murmur3_x64_128(&mut name.as_bytes(), 0).unwrap() as u64;
        let start = depth * bits;
        (start + bits <= 64).then(|| (hash << start) >> (64 - bits))
    }

    /// A well-formed HAMT of `names`, each an entry linking to the file.
    pub fn build(dag: &Dag, names: &[String], fanout: u64, depth: usize) -> Cid {
        let bits = fanout.trailing_zeros() as usize;
        let w = width(fanout);
        let mut slots: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for name in names {
            if let Some(s) = slot(name, depth, bits) {
                slots.entry(s).or_default().push(name.clone());
            }
        }
        let links = slots
            .into_iter()
            .map(|(s, in_slot)| {
                if in_slot.len() == 1 {
                    (format!("{s:0w$X}{}", in_slot[0]), dag.file)
                } else {
                    (format!("{s:0w$X}"), build(dag, &in_slot, fanout, depth + 1))
                }
            })
            .collect();
        dag.shard(fanout, links)
    }

    /// How a link's slot prefix is written.
    #[derive(Debug, Clone)]
    pub enum Prefix {
        Slot(u16),
        LowerSlot(u16),
        Text(String),
    }

    #[derive(Debug, Clone)]
    pub enum Target {
        File,
        Shard(Shape),
        PlainDirectory,
        Missing,
    }

    /// A shard of any shape, sound or not.
    #[derive(Debug, Clone)]
    pub struct Shape {
        /// `None`: the parent's fanout.
        pub fanout: Option<u64>,
        pub links: Vec<(Prefix, String, Target)>,
    }

    pub fn build_shape(dag: &Dag, shape: &Shape, parent_fanout: u64) -> Cid {
        let fanout = shape.fanout.unwrap_or(parent_fanout);
        let w = width(fanout);
        let links = shape
            .links
            .iter()
            .map(|(prefix, rest, target)| {
                let prefix = match prefix {
                    Prefix::Slot(s) => format!("{:0w$X}", u64::from(*s) % fanout.max(1)),
                    Prefix::LowerSlot(s) => format!("{:0w$x}", u64::from(*s) % fanout.max(1)),
                    Prefix::Text(t) => t.clone(),
                };
                let cid = match target {
                    Target::File => dag.file,
                    Target::Shard(child) => build_shape(dag, child, fanout),
                    Target::PlainDirectory => dag.put_pb(
                        vec![],
                        sluice::unixfs::encode_data(DataType::Directory, None, None, vec![]),
                    ),
                    Target::Missing => Cid::new_v1(0x70, Code::Sha2_256.digest(rest.as_bytes())),
                };
                (format!("{prefix}{rest}"), cid)
            })
            .collect();
        dag.shard(fanout, links)
    }

    pub fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("é".to_string()),
            Just("éx".to_string()),
            Just("x".to_string()),
            Just("日本語.txt".to_string()),
            "\\PC{1,8}",
            "[a-zA-Z0-9._-]{1,12}",
        ]
    }

    pub fn fanout() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => prop_oneof![Just(2u64), Just(4), Just(16), Just(256), Just(1024)],
            1 => prop_oneof![Just(0u64), Just(1), Just(3), Just(2048)],
        ]
    }

    fn prefix() -> impl Strategy<Value = Prefix> {
        prop_oneof![
            4 => any::<u16>().prop_map(Prefix::Slot),
            1 => any::<u16>().prop_map(Prefix::LowerSlot),
            1 => prop_oneof![
                Just(String::new()),
                Just("0".to_string()),
                Just("é".to_string()),
                Just("0é".to_string()),
                Just("ZZ".to_string()),
                Just("+1".to_string()),
                "\\PC{0,3}",
            ]
            .prop_map(Prefix::Text),
        ]
    }

    pub fn shape() -> impl Strategy<Value = Shape> {
        let leaf = prop_oneof![
            4 => Just(Target::File),
            1 => Just(Target::PlainDirectory),
            1 => Just(Target::Missing),
        ];
        let target = leaf.prop_recursive(4, 24, 4, |inner| {
            let child = (
                prop_oneof![3 => Just(None), 1 => fanout().prop_map(Some)],
                proptest::collection::vec((prefix(), name(), inner), 0..4),
            )
                .prop_map(|(fanout, links)| Shape { fanout, links });
            prop_oneof![2 => child.prop_map(Target::Shard), 1 => Just(Target::File)]
        });
        (
            fanout().prop_map(Some),
            proptest::collection::vec((prefix(), name(), target), 0..6),
        )
            .prop_map(|(fanout, links)| Shape { fanout, links })
    }
}

/// Sends `GET uri` (with `accept`) and reads the whole body: the status,
/// and the body if it ended cleanly. Panics on a hang.
fn answer(router: &axum::Router, uri: &str, accept: &str) -> (u16, Option<Bytes>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = Request::get(uri)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap();
    runtime.block_on(async {
        let response =
            tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
                .await
                .expect("no hang")
                .unwrap();
        let status = response.status().as_u16();
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            axum::body::to_bytes(response.into_body(), 1 << 24),
        )
        .await
        .expect("no hang");
        (status, body.ok())
    })
}

fn encode_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn hamt_entry_with_a_multibyte_character_after_the_prefix_is_an_error_not_a_panic() {
    let dag = hamt::Dag::new();
    let file = dag.file;
    // "0éx": the prefix of a 256-wide shard is two bytes, the second one
    // half of "é".
    let root = dag.shard(256, vec![("0éx".into(), file), ("0Aok".into(), file)]);
    let router = dag.router();
    let (status, body) = answer(&router, &format!("/ipfs/{root}/"), "text/html");
    assert_eq!(status, 502);
    let body = String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains(&root.to_string()) && body.contains("0éx"),
        "the error names the directory and the entry: {body}"
    );
    // A CAR has its status sent before the walk meets the bad name: its
    // body ends with an error, so it cannot pass for a complete CAR.
    let uri = format!("/ipfs/{root}?format=car&dag-scope=entity");
    let (status, body) = answer(&router, &uri, "*/*");
    assert!(
        status == 502 || (status == 200 && body.is_none()),
        "{uri}: {status} {body:?}"
    );
    // dag-scope=all follows links by CID, not by name: every block ships.
    let uri = format!("/ipfs/{root}?format=car&dag-scope=all");
    let (status, body) = answer(&router, &uri, "*/*");
    assert!(status == 200 && body.is_some(), "{uri}: {status}");
    // A sound entry whose name starts with a multi-byte character is listed.
    let dag = hamt::Dag::new();
    let file = dag.file;
    let root = dag.shard(256, vec![("0Aéx".into(), file)]);
    let (status, body) = answer(&dag.router(), &format!("/ipfs/{root}/"), "text/html");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("éx"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn sound_hamts_of_any_names_list_and_resolve(
        names in proptest::collection::btree_set(hamt::name().prop_filter("a name", |n| !n.is_empty()), 1..40),
        fanout in prop_oneof![Just(2u64), Just(4), Just(16), Just(256)],
    ) {
        let names: Vec<String> = names.into_iter().collect();
        let dag = hamt::Dag::new();
        let root = hamt::build(&dag, &names, fanout, 0);
        let router = dag.router();
        let (status, _) = answer(&router, &format!("/ipfs/{root}/"), "text/html");
        prop_assert_eq!(status, 200);
        let (status, body) = answer(&router, &format!("/ipfs/{root}?format=car&dag-scope=entity"), "*/*");
        prop_assert_eq!(status, 200);
        prop_assert!(body.is_some());
        for name in names.iter().filter(|n| !n.contains('/') && *n != "." && *n != "..") {
            let uri = format!("/ipfs/{root}/{}", encode_segment(name));
            let (status, body) = answer(&router, &uri, "*/*");
            prop_assert_eq!(status, 200, "{}", uri);
            prop_assert_eq!(body.as_deref(), Some(b"entry\n".as_slice()), "{}", uri);
        }
    }

    #[test]
    fn hamts_of_any_shape_always_answer_and_never_500(
        shape in hamt::shape(),
        lookups in proptest::collection::vec(hamt::name(), 0..3),
    ) {
        let dag = hamt::Dag::new();
        let root = hamt::build_shape(&dag, &shape, 256);
        let router = dag.router();
        let mut uris = vec![
            (format!("/ipfs/{root}/"), "text/html"),
            (format!("/ipfs/{root}?format=car&dag-scope=entity"), "*/*"),
            (format!("/ipfs/{root}?format=car"), "*/*"),
        ];
        for name in shape.links.iter().map(|(_, n, _)| n).chain(&lookups) {
            uris.push((format!("/ipfs/{root}/{}", encode_segment(name)), "*/*"));
        }
        for (uri, accept) in uris {
            let (status, _) = answer(&router, &uri, accept);
            prop_assert_ne!(status, 500, "{}", uri);
        }
    }
}
