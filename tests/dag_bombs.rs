//! DAG bombs: small DAGs whose every node links to its child twice, so
//! they have few distinct blocks but 2^depth paths. Every walk (CAR scopes,
//! file ranges, HAMT listings, path resolution) must prune what it has
//! already sent when duplicates are not asked for, and end cleanly at the
//! block cap when they are (`dups=y`, where the spec wants every repeat)
//! or when the answer is a tree of every path (a TAR).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use ipld_core::ipld::Ipld;
use ipld_dagpb::{PbLink, PbNode};
use multihash_codetable::{Code, MultihashDigest};
use prost::Message;
use sluice::car::{CarReader, CarWriter};
use sluice::unixfs::{encode_data, DataType};

use common::{parse_car, TestGateway};

/// Levels of links above the bottom block: 31 distinct blocks, 2^30 paths.
const LEVELS: usize = 30;
/// Bytes of the file bomb's one leaf: 2^30 copies make 128 GiB, over the
/// default 64 GiB a request may read.
const LEAF_BYTES: usize = 128;
/// The tests' block cap: a walk that does not prune meets it long before
/// 2^30 visits, and the assertions tell that apart from a complete answer.
const BLOCK_CAP: u64 = 20_000;
/// A guard against hangs only (none of these answers needs more than a
/// fraction of a second): generous for a loaded 2-core machine.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn cid_of(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(data))
}

struct Bomb {
    root: Cid,
    /// Every distinct block, root first.
    blocks: Vec<(Cid, Bytes)>,
}

impl Bomb {
    fn write_car(&self, path: &Path) -> PathBuf {
        let mut car = CarWriter::new(std::fs::File::create(path).unwrap(), &[self.root]).unwrap();
        for (cid, data) in &self.blocks {
            car.write_block(cid, data).unwrap();
        }
        car.finish().unwrap();
        path.to_path_buf()
    }
}

/// A UnixFS file: one raw leaf, then `LEVELS` dag-pb nodes each listing its
/// child twice with consistent block sizes (the file is 2^30 leaves long).
fn file_bomb() -> Bomb {
    let leaf_data = vec![b'x'; LEAF_BYTES];
    let mut child = cid_of(0x55, &leaf_data);
    let mut size = LEAF_BYTES as u64;
    let mut blocks = vec![(child, Bytes::from(leaf_data))];
    for _ in 0..LEVELS {
        let data = encode_data(DataType::File, None, Some(size * 2), vec![size, size]);
        let link = PbLink {
            cid: child,
            name: Some(String::new()),
            size: Some(size),
        };
        let node = PbNode {
            links: vec![link.clone(), link],
            data: Some(Bytes::from(data)),
        }
        .into_bytes();
        child = cid_of(0x70, &node);
        size *= 2;
        blocks.push((child, Bytes::from(node)));
    }
    blocks.reverse();
    Bomb {
        root: child,
        blocks,
    }
}

/// dag-cbor: `{"a": child, "b": child}` over `LEVELS` levels.
fn cbor_bomb() -> Bomb {
    let leaf = serde_ipld_dagcbor::to_vec(&Ipld::String("bottom".into())).unwrap();
    let mut child = cid_of(0x71, &leaf);
    let mut blocks = vec![(child, Bytes::from(leaf))];
    for _ in 0..LEVELS {
        let node = Ipld::Map(
            [
                ("a".to_string(), Ipld::Link(child)),
                ("b".to_string(), Ipld::Link(child)),
            ]
            .into(),
        );
        let bytes = serde_ipld_dagcbor::to_vec(&node).unwrap();
        child = cid_of(0x71, &bytes);
        blocks.push((child, Bytes::from(bytes)));
    }
    blocks.reverse();
    Bomb {
        root: child,
        blocks,
    }
}

/// A HAMT directory of fanout 2 whose every shard links both its slots to
/// the same sub-shard, `LEVELS` deep; the bottom shard holds `hello.txt`
/// in both slots.
fn hamt_bomb() -> (Bomb, Cid) {
    let shard_data = || {
        sluice::unixfs::Data {
            r#type: DataType::HamtShard as i32,
            data: Some(Bytes::from_static(&[0b11])),
            filesize: None,
            blocksizes: vec![],
            hash_type: Some(0x22),
            fanout: Some(2),
        }
        .encode_to_vec()
    };
    let file = b"hello from the bottom\n".to_vec();
    let file_cid = cid_of(0x55, &file);
    let entry = |slot: &str| PbLink {
        cid: file_cid,
        name: Some(format!("{slot}hello.txt")),
        size: Some(file.len() as u64),
    };
    let bottom = PbNode {
        links: vec![entry("0"), entry("1")],
        data: Some(Bytes::from(shard_data())),
    }
    .into_bytes();
    let mut child = cid_of(0x70, &bottom);
    let mut blocks = vec![(file_cid, Bytes::from(file)), (child, Bytes::from(bottom))];
    for _ in 0..LEVELS {
        let link = |slot: &str| PbLink {
            cid: child,
            name: Some(slot.to_string()),
            size: Some(1),
        };
        let node = PbNode {
            links: vec![link("0"), link("1")],
            data: Some(Bytes::from(shard_data())),
        }
        .into_bytes();
        child = cid_of(0x70, &node);
        blocks.push((child, Bytes::from(node)));
    }
    blocks.reverse();
    (
        Bomb {
            root: child,
            blocks,
        },
        file_cid,
    )
}

async fn gateway_for(bombs: &[&Bomb]) -> (TestGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cars = bombs
        .iter()
        .enumerate()
        .map(|(i, b)| b.write_car(&dir.path().join(format!("bomb{i}.car"))))
        .collect();
    let gw = TestGateway::start_with(cars, |config| {
        config.limits.max_blocks_per_request = BLOCK_CAP;
    })
    .await;
    (gw, dir)
}

/// The whole body, or the bytes received before it ended abnormally.
async fn body_of(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(_) => return (body, false),
        }
    }
    (body, true)
}

async fn get_car(gw: &TestGateway, path: &str) -> (u16, Vec<u8>, bool) {
    tokio::time::timeout(HANG_GUARD, async {
        let response = gw
            .get_with(path, &[("accept", "application/vnd.ipld.car")])
            .await;
        let status = response.status().as_u16();
        let (body, complete) = body_of(response).await;
        (status, body, complete)
    })
    .await
    .unwrap_or_else(|_| panic!("{path} did not answer within {HANG_GUARD:?}"))
}

/// Asserts a complete CAR rooted at `root` holding exactly `expected`, in
/// that order, each block once (parse_car verifies every block's hash).
fn assert_car_holds(body: &[u8], complete: bool, root: Cid, expected: &[Cid], what: &str) {
    assert!(
        complete,
        "{what}: the CAR ended abnormally after {} bytes",
        body.len()
    );
    let (roots, blocks) = parse_car(body);
    assert_eq!(roots, vec![root], "{what}: roots");
    let cids: Vec<Cid> = blocks.iter().map(|(cid, _)| *cid).collect();
    assert_eq!(cids, expected, "{what}: blocks");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_bomb_car_walks_prune_repeated_subtrees() {
    let bomb = file_bomb();
    let (gw, _dir) = gateway_for(&[&bomb]).await;
    let all: Vec<Cid> = bomb.blocks.iter().map(|(cid, _)| *cid).collect();
    assert_eq!(all.len(), LEVELS + 1);
    let root = bomb.root;
    for (scope, expected) in [
        ("block", &all[..1]),
        ("entity", &all[..]),
        ("all", &all[..]),
    ] {
        let path = format!("/ipfs/{root}?format=car&dag-scope={scope}&car-dups=n");
        let (status, body, complete) = get_car(&gw, &path).await;
        assert_eq!(status, 200, "{path}");
        assert_car_holds(&body, complete, root, expected, &path);
    }
    // A byte range of the entity: only the blocks on the paths to those
    // bytes (the first and last leaf share every block with the rest).
    let path = format!("/ipfs/{root}?format=car&dag-scope=entity&entity-bytes=0:1000&car-dups=n");
    let (status, body, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    assert_car_holds(&body, complete, root, &all, &path);
}

/// With `dups=y` the spec wants every repeat, so the honest answer to a
/// bomb is the repeats up to the block cap, then an abnormal end (the
/// status is already sent); never a hang, and never more than the cap.
#[tokio::test(flavor = "multi_thread")]
async fn bomb_with_duplicates_ends_at_the_block_cap() {
    let (file, cbor) = (file_bomb(), cbor_bomb());
    let (gw, _dir) = gateway_for(&[&file, &cbor]).await;
    for (root, scope) in [
        (file.root, "entity"),
        (file.root, "all"),
        (cbor.root, "all"),
    ] {
        let path = format!("/ipfs/{root}?format=car&dag-scope={scope}&car-dups=y");
        let (status, body, complete) = get_car(&gw, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !complete,
            "{path}: 2^30 repeats cannot complete under the cap ({} bytes)",
            body.len()
        );
        // Count the sections that arrived whole before the end.
        let mut reader = CarReader::new(&body[..]).unwrap();
        let mut sections = 0u64;
        while let Ok(Some(_)) = reader.next_section() {
            sections += 1;
        }
        eprintln!("{path}: {sections} whole sections before the end");
        // The cap counts the blocks read ahead and not yet sent too (a few
        // dozen here); 1,000 is a wide margin for them.
        assert!(
            sections > BLOCK_CAP - 1_000 && sections <= BLOCK_CAP,
            "{path}: {sections} sections (repeats are sent, up to the cap of {BLOCK_CAP})"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_bomb_car_walks_prune_repeated_subtrees() {
    let bomb = cbor_bomb();
    let (gw, _dir) = gateway_for(&[&bomb]).await;
    let all: Vec<Cid> = bomb.blocks.iter().map(|(cid, _)| *cid).collect();
    let root = bomb.root;
    for (scope, expected) in [
        ("block", &all[..1]),
        ("entity", &all[..1]),
        ("all", &all[..]),
    ] {
        let path = format!("/ipfs/{root}?format=car&dag-scope={scope}&car-dups=n");
        let (status, body, complete) = get_car(&gw, &path).await;
        assert_eq!(status, 200, "{path}");
        assert_car_holds(&body, complete, root, expected, &path);
    }
    // A path down one side of the bomb, then everything under its end.
    let path = format!("/ipfs/{root}/a/b/a?format=car&dag-scope=all&car-dups=n");
    let (status, body, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    assert_car_holds(&body, complete, root, &all, &path);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_bomb_is_refused_whole_and_served_by_range() {
    let bomb = file_bomb();
    let (gw, _dir) = gateway_for(&[&bomb]).await;
    let path = format!("/ipfs/{}", bomb.root);
    let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let text = response.text().await.unwrap();
    assert!(text.contains("max_bytes_per_request"), "{text}");

    let size = LEAF_BYTES as u64 * (1 << LEVELS);
    for (range, from, to) in [
        ("bytes=0-999".to_string(), 0, 1000),
        ("bytes=-300".to_string(), size - 300, size),
        (
            format!("bytes={}-{}", size / 2 - 100, size / 2 + 99),
            size / 2 - 100,
            size / 2 + 100,
        ),
    ] {
        let response = tokio::time::timeout(HANG_GUARD, gw.get_with(&path, &[("range", &range)]))
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            common::header(&response, "content-range"),
            format!("bytes {from}-{}/{size}", to - 1)
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len() as u64, to - from, "{range}");
        assert!(body.iter().all(|b| *b == b'x'), "{range}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hamt_bomb_lists_and_walks_each_shard_once() {
    let (bomb, file_cid) = hamt_bomb();
    let (gw, _dir) = gateway_for(&[&bomb]).await;
    let root = bomb.root;
    // The shards, root first; the file is last.
    let shards: Vec<Cid> = bomb.blocks[..=LEVELS].iter().map(|(cid, _)| *cid).collect();

    let path = format!("/ipfs/{root}/");
    let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let listing = response.text().await.unwrap();
    assert!(listing.contains("hello.txt"), "{listing}");

    let path = format!("/ipfs/{root}?format=car&dag-scope=entity&car-dups=n");
    let (status, body, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    assert_car_holds(&body, complete, root, &shards, &path);

    let path = format!("/ipfs/{root}?format=car&dag-scope=all&car-dups=n");
    let (status, body, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    let mut everything = shards.clone();
    everything.push(file_cid);
    assert_car_holds(&body, complete, root, &everything, &path);

    // Path resolution follows one slot per level: prompt through any bomb.
    let path = format!("/ipfs/{root}/hello.txt");
    let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.text().await.unwrap(), "hello from the bottom\n");
}

/// A TAR of a bomb: the 128 GiB file is refused at its header (403, as
/// the file response is), the HAMT lists each shard once, the dag-cbor one
/// is not UnixFS; each answered promptly.
#[tokio::test(flavor = "multi_thread")]
async fn tar_of_a_bomb_is_refused_or_pruned() {
    let (file, cbor) = (file_bomb(), cbor_bomb());
    let (hamt, _) = hamt_bomb();
    let (gw, _dir) = gateway_for(&[&file, &cbor, &hamt]).await;
    for (root, status, mentions) in [
        (file.root, 403, "max_bytes_per_request"),
        (cbor.root, 400, "not UnixFS"),
    ] {
        let path = format!("/ipfs/{root}?format=tar");
        let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(mentions), "{path}: {text}");
    }
    let path = format!("/ipfs/{}?format=tar", hamt.root);
    let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let (body, complete) = body_of(response).await;
    assert!(complete, "{path}");
    let mut archive = tar::Archive::new(&body[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    // The bottom shard is listed once: its two slots, both `hello.txt`.
    let root = hamt.root;
    assert_eq!(
        names,
        [
            format!("{root}/"),
            format!("{root}/hello.txt"),
            format!("{root}/hello.txt")
        ]
    );

    // Directories linking their child twice: a TAR is a tree, so every
    // path is an entry (2^30 of them), until the block cap ends the body.
    let mut blocks = Vec::new();
    let mut emit = |b: sluice::unixfs::builder::Block| blocks.push((b.cid, b.data));
    let leaf = sluice::unixfs::builder::build_file(
        &b"x"[..],
        sluice::unixfs::builder::FileLayout::MODERN,
        &mut emit,
    )
    .unwrap();
    let mut child = leaf;
    for _ in 0..LEVELS {
        child = sluice::unixfs::builder::build_directory(
            vec![("a".to_string(), child), ("b".to_string(), child)],
            false,
            &mut emit,
        );
    }
    blocks.reverse();
    let dirs = Bomb {
        root: child.cid,
        blocks,
    };
    let (gw, _dir) = gateway_for(&[&dirs]).await;
    let path = format!("/ipfs/{}?format=tar", dirs.root);
    let response = tokio::time::timeout(HANG_GUARD, gw.get(&path))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let (body, complete) = tokio::time::timeout(HANG_GUARD, body_of(response))
        .await
        .unwrap();
    assert!(!complete, "{path}: ends at the block cap");
    let text = String::from_utf8_lossy(&body[body.len().saturating_sub(400)..]);
    assert!(text.contains("max_blocks_per_request"), "{text}");
    // At most a PAX header, a header and a block of data per block read.
    assert!(
        body.len() < (BLOCK_CAP as usize + 10) * 2048,
        "{}",
        body.len()
    );
}

/// dag-cbor nodes in a chain, each also linking `width` distinct identity
/// CIDs (inline data, nothing to fetch), the next node first: a walk holds
/// every node's other links while it goes down the chain.
fn wide_chain(nodes: usize, width: usize) -> Bomb {
    let mut blocks = Vec::new();
    let mut next: Option<Cid> = None;
    for level in 0..nodes {
        let mut links: Vec<Ipld> = next.map(Ipld::Link).into_iter().collect();
        links.extend((0..width).map(|i| {
            let digest = [level as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let hash = cid::multihash::Multihash::<64>::wrap(0x00, &digest).unwrap();
            Ipld::Link(Cid::new_v1(0x55, hash))
        }));
        let bytes = serde_ipld_dagcbor::to_vec(&Ipld::List(links)).unwrap();
        let cid = cid_of(0x71, &bytes);
        blocks.push((cid, Bytes::from(bytes)));
        next = Some(cid);
    }
    blocks.reverse();
    Bomb {
        root: blocks[0].0,
        blocks,
    }
}

/// The links a walk holds to visit later are bounded (2^18): a chain of
/// wide nodes that piles up more ends the CAR, one that stays under it is
/// walked whole.
#[tokio::test(flavor = "multi_thread")]
async fn wide_walks_are_bounded() {
    let (under, over) = (wide_chain(5, 40_000), wide_chain(7, 40_000));
    let dir = tempfile::tempdir().unwrap();
    let cars = vec![
        under.write_car(&dir.path().join("under.car")),
        over.write_car(&dir.path().join("over.car")),
    ];
    let gw = TestGateway::start(cars).await;

    let path = format!("/ipfs/{}?format=car&dag-scope=all", under.root);
    let (status, body, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    // Identity blocks are left out of CARs: the chain's nodes are all.
    let expected: Vec<Cid> = under.blocks.iter().map(|(cid, _)| *cid).collect();
    assert_car_holds(&body, complete, under.root, &expected, &path);

    let path = format!("/ipfs/{}?format=car&dag-scope=all", over.root);
    let (status, _, complete) = get_car(&gw, &path).await;
    assert_eq!(status, 200, "{path}");
    assert!(!complete, "{path}: 280,000 pending links must end the walk");
}

/// A file whose every inner node lists the next inner node first, then
/// `width` copies of a 1-byte leaf: a read holds every level's children
/// while it goes down to the first leaf.
fn wide_file(levels: usize, width: usize) -> Bomb {
    let leaf = Bytes::from_static(b"w");
    let leaf_cid = cid_of(0x55, &leaf);
    let mut blocks = vec![(leaf_cid, leaf)];
    let (mut child, mut size) = (leaf_cid, 1u64);
    for _ in 0..levels {
        let mut sizes = vec![size];
        sizes.extend(std::iter::repeat_n(1, width));
        let total = sizes.iter().sum();
        let mut links = vec![PbLink {
            cid: child,
            name: None,
            size: Some(size),
        }];
        links.extend(std::iter::repeat_n(
            PbLink {
                cid: leaf_cid,
                name: None,
                size: Some(1),
            },
            width,
        ));
        let node = PbNode {
            links,
            data: Some(Bytes::from(encode_data(
                DataType::File,
                None,
                Some(total),
                sizes,
            ))),
        }
        .into_bytes();
        assert!(node.len() <= 2 << 20, "a block of {} bytes", node.len());
        child = cid_of(0x70, &node);
        size = total;
        blocks.push((child, Bytes::from(node)));
    }
    blocks.reverse();
    Bomb {
        root: child,
        blocks,
    }
}

/// The children a file read holds queued are bounded (2^18) too: over it
/// the GET is refused before its status, with the reason; under it the
/// file is served whole.
#[tokio::test(flavor = "multi_thread")]
async fn wide_files_are_bounded() {
    let (under, over) = (wide_file(2, 40_000), wide_file(7, 40_000));
    let dir = tempfile::tempdir().unwrap();
    let cars = vec![
        under.write_car(&dir.path().join("under.car")),
        over.write_car(&dir.path().join("over.car")),
    ];
    let gw = TestGateway::start(cars).await;

    let response = tokio::time::timeout(HANG_GUARD, gw.get(&format!("/ipfs/{}", under.root)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), 1 + 2 * 40_000);
    assert!(body.iter().all(|b| *b == b'w'));

    let response = tokio::time::timeout(HANG_GUARD, gw.get(&format!("/ipfs/{}", over.root)))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut text = response.text().await.unwrap();
    text.truncate(300);
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("links not yet visited"), "{text}");
}
