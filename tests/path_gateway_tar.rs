//! TAR responses (`?format=tar`, `Accept: application/x-tar`), checked the
//! way the gateway-conformance suite checks them (path_gateway_tar, t0122):
//! the served archive is read with the `tar` crate and with GNU tar, and
//! every entry compared with what the fixture CAR holds (computed here
//! from its blocks with a dag-pb decoder and a few lines of protobuf, not
//! with sluice's UnixFS reader) and with the contents the fixtures' READMEs
//! state.
//!
//! Covers the 6 of 6 path_gateway_tar cases: a file by `?format=tar` and by
//! `Accept`, a directory, `?filename=`, relative paths outside the root (a
//! 4xx) and inside it; beyond them HEAD, `If-None-Match`, non-UnixFS
//! roots, symlinks, multi-block files, a HAMT, a bad name met after the
//! status (a cut body), and names through a symlink.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cid::Cid;
use common::{header, parse_car, TestGateway};
use multihash_codetable::{Code, MultihashDigest};
use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_directory, build_file, Built, FileLayout};

const DIR_CID: &str = "bafybeig6ka5mlwkl4subqhaiatalkcleo4jgnr3hqwvpmsqfca27cijp3i";
const FILE_CID: &str = "bafkreialihlqnf5uwo4byh4n3cmwlntwqzxxs2fg5vanqdi3d7tb2l5xkm";
const FILE_TEXT: &[u8] = b"I am a txt file on path with utf8\n";
/// The roots the suite names in its comments.
const OUTSIDE_ROOT_CID: &str = "bafybeicaj7kvxpcv4neaqzwhrqqmdstu4dhrwfpknrgebq6nzcecfucvyu";
const INSIDE_ROOT_CID: &str = "bafybeibfevfxlvxp5vxobr5oapczpf7resxnleb7tkqmdorc4gl5cdva3y";
const SYMLINK_ROOT: &str = "QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Directory,
    File,
    Symlink,
}

/// One entry of an archive: its path, kind, and bytes (a symlink's target).
type Entry = (String, Kind, Vec<u8>);

/// Reads a whole archive with the `tar` crate.
fn read_tar(body: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(body);
    archive
        .entries()
        .expect("a TAR")
        .map(|entry| {
            let mut entry = entry.expect("a well-formed entry");
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let kind = match entry.header().entry_type() {
                tar::EntryType::Directory => Kind::Directory,
                tar::EntryType::Regular => Kind::File,
                tar::EntryType::Symlink => Kind::Symlink,
                other => panic!("{path}: unexpected entry type {other:?}"),
            };
            let mut data = Vec::new();
            if kind == Kind::Symlink {
                data = entry.link_name_bytes().unwrap().into_owned();
            } else {
                entry.read_to_end(&mut data).unwrap();
            }
            (path, kind, data)
        })
        .collect()
}

/// The fields of a protobuf message: (field number, varint or bytes).
fn protobuf_fields(mut bytes: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        match key & 7 {
            0 => fields.push((key >> 3, Ok(varint(&mut bytes)))),
            2 => {
                let len = varint(&mut bytes) as usize;
                fields.push((key >> 3, Err(bytes[..len].to_vec())));
                bytes = &bytes[len..];
            }
            other => panic!("wire type {other} in UnixFS data"),
        }
    }
    fields
}

/// A dag-pb node's links and its UnixFS type and data.
fn pb_node(block: &[u8]) -> (Vec<ipld_dagpb::PbLink>, u64, Vec<u8>) {
    let node = ipld_dagpb::PbNode::from_bytes(Bytes::copy_from_slice(block)).unwrap();
    let fields = protobuf_fields(node.data.as_deref().unwrap_or_default());
    let kind = fields
        .iter()
        .find_map(|(n, v)| (*n == 1).then(|| *v.as_ref().unwrap()))
        .expect("a UnixFS type");
    let data = fields
        .iter()
        .find_map(|(n, v)| (*n == 2).then(|| v.clone().unwrap_err()))
        .unwrap_or_default();
    (node.links, kind, data)
}

/// A file's bytes: its own data, then its children's, in link order.
fn file_bytes(blocks: &HashMap<Cid, Vec<u8>>, cid: &Cid) -> Vec<u8> {
    let block = &blocks[cid];
    if cid.codec() == 0x55 {
        return block.clone();
    }
    let (links, _, mut data) = pb_node(block);
    for link in links {
        data.extend(file_bytes(blocks, &link.cid));
    }
    data
}

/// `parent/name` with `.` and `..` resolved.
fn join(parent: &str, name: &str) -> String {
    let mut parts: Vec<&str> = parent.split('/').collect();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Every entry a TAR of the DAG at `cid` holds, depth-first in link order
/// (HAMT entries in shard order), from the blocks alone.
fn expected_tree(blocks: &HashMap<Cid, Vec<u8>>, cid: &Cid, path: &str, out: &mut Vec<Entry>) {
    if cid.codec() == 0x55 {
        out.push((path.to_string(), Kind::File, blocks[cid].clone()));
        return;
    }
    let (links, kind, data) = pb_node(&blocks[cid]);
    match kind {
        0 | 2 => out.push((path.to_string(), Kind::File, file_bytes(blocks, cid))),
        4 => out.push((path.to_string(), Kind::Symlink, data)),
        1 => {
            out.push((format!("{path}/"), Kind::Directory, Vec::new()));
            for link in links {
                let name = link.name.unwrap();
                expected_tree(blocks, &link.cid, &join(path, &name), out);
            }
        }
        5 => {
            out.push((format!("{path}/"), Kind::Directory, Vec::new()));
            hamt_entries(blocks, links, path, out);
        }
        other => panic!("UnixFS type {other}"),
    }
}

/// A HAMT shard's entries: a link named by its two-digit slot alone is a
/// child shard, a longer name an entry (256-wide shards, as the fixture's).
fn hamt_entries(
    blocks: &HashMap<Cid, Vec<u8>>,
    links: Vec<ipld_dagpb::PbLink>,
    path: &str,
    out: &mut Vec<Entry>,
) {
    for link in links {
        let name = link.name.unwrap();
        if name.len() == 2 {
            let (children, kind, _) = pb_node(&blocks[&link.cid]);
            assert_eq!(kind, 5, "child shard");
            hamt_entries(blocks, children, path, out);
        } else {
            expected_tree(blocks, &link.cid, &join(path, &name[2..]), out);
        }
    }
}

fn car_blocks(path: &Path) -> (Vec<Cid>, HashMap<Cid, Vec<u8>>) {
    let (roots, blocks) = parse_car(&std::fs::read(path).unwrap());
    (roots, blocks.into_iter().collect())
}

/// The archive a TAR of the CAR's root must be.
fn expected_for_car(path: &Path) -> (Cid, Vec<Entry>) {
    let (roots, blocks) = car_blocks(path);
    let mut entries = Vec::new();
    expected_tree(&blocks, &roots[0], &roots[0].to_string(), &mut entries);
    (roots[0], entries)
}

async fn tar_of(gw: &TestGateway, path: &str) -> Vec<Entry> {
    let response = gw.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(header(&response, "content-type"), "application/x-tar");
    read_tar(&response.bytes().await.unwrap())
}

fn assert_same(got: &[Entry], expected: &[Entry]) {
    let names = |entries: &[Entry]| entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(expected));
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(got, expected, "entry {}", expected.0);
    }
}

#[tokio::test]
async fn a_file_by_format_and_by_accept() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let by_query = gw.get(&format!("/ipfs/{FILE_CID}?format=tar")).await;
    assert_eq!(by_query.status(), 200);
    assert_eq!(
        header(&by_query, "content-disposition"),
        format!("attachment; filename=\"{FILE_CID}.tar\"")
    );
    assert_eq!(header(&by_query, "etag"), format!("W/\"{FILE_CID}.x-tar\""));
    assert_eq!(header(&by_query, "content-type"), "application/x-tar");
    assert_eq!(header(&by_query, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&by_query, "cache-control"),
        "public, max-age=29030400, immutable"
    );
    let body = by_query.bytes().await.unwrap();
    assert_eq!(body.len() % 512, 0);
    assert_eq!(
        read_tar(&body),
        vec![(FILE_CID.to_string(), Kind::File, FILE_TEXT.to_vec())]
    );

    let by_accept = gw
        .get_with(
            &format!("/ipfs/{FILE_CID}"),
            &[("accept", "application/x-tar")],
        )
        .await;
    assert_eq!(by_accept.status(), 200);
    assert!(header(&by_accept, "content-disposition").starts_with("attachment;"));
    assert_eq!(
        header(&by_accept, "etag"),
        format!("W/\"{FILE_CID}.x-tar\"")
    );
    assert_eq!(header(&by_accept, "content-type"), "application/x-tar");
    assert_eq!(
        header(&by_accept, "content-location"),
        format!("/ipfs/{FILE_CID}?format=tar")
    );
    assert_eq!(read_tar(&by_accept.bytes().await.unwrap()).len(), 1);
}

#[tokio::test]
async fn a_directory_with_every_entry_and_its_headers() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();
    let (root, expected) = expected_for_car(&dir.join("path_gateway_tar/fixtures.car"));
    assert_eq!(root.to_string(), DIR_CID);
    // What the fixture's recipe wrote, whatever the CAR says.
    let stated: [(&str, &[u8]); 4] = [
        ("api/file.txt", b"I am a txt file in confusing /api dir\n"),
        ("ipfs/file.txt", b"I am a txt file in confusing /ipfs dir\n"),
        ("ipns/file.txt", b"I am a txt file in confusing /ipns dir\n"),
        ("ą/ę/file-źł.txt", FILE_TEXT),
    ];
    let got = tar_of(&gw, &format!("/ipfs/{DIR_CID}?format=tar")).await;
    for (path, content) in stated {
        let path = format!("{DIR_CID}/{path}");
        assert!(
            got.contains(&(path.clone(), Kind::File, content.to_vec())),
            "{path} missing or different"
        );
    }
    assert_same(&got, &expected);
    assert_eq!(got[0], (format!("{DIR_CID}/"), Kind::Directory, vec![]));

    // No redirect for the missing slash; with it, the same archive.
    assert_same(
        &tar_of(&gw, &format!("/ipfs/{DIR_CID}/?format=tar")).await,
        &expected,
    );
    // A path inside: the archive of the directory it names.
    let inner = tar_of(&gw, &format!("/ipfs/{DIR_CID}/%C4%85?format=tar")).await;
    let sub = inner[0].0.trim_end_matches('/').to_string();
    assert_eq!(
        inner.last().unwrap(),
        &(
            format!("{sub}/ę/file-źł.txt"),
            Kind::File,
            FILE_TEXT.to_vec()
        )
    );

    let named = gw
        .get(&format!(
            "/ipfs/{DIR_CID}?filename=test%D1%82%D0%B5%D1%81%D1%82.tar&format=tar"
        ))
        .await;
    assert_eq!(named.status(), 200);
    assert_eq!(
        header(&named, "content-disposition"),
        "attachment; filename=\"test____.tar\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.tar"
    );

    let head = gw
        .head_with(&format!("/ipfs/{DIR_CID}?format=tar"), &[])
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "etag"), format!("W/\"{DIR_CID}.x-tar\""));
    assert_eq!(header(&head, "content-type"), "application/x-tar");
    assert!(head.bytes().await.unwrap().is_empty());

    for tag in [
        format!("W/\"{DIR_CID}.x-tar\""),
        format!("\"{DIR_CID}.x-tar\""),
    ] {
        let cached = gw
            .get_with(
                &format!("/ipfs/{DIR_CID}?format=tar"),
                &[("if-none-match", &tag)],
            )
            .await;
        assert_eq!(cached.status(), 304, "{tag}");
    }
}

#[tokio::test]
async fn relative_paths_inside_the_root_work_and_outside_it_fail() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();

    let inside_car = dir.join("path_gateway_tar/inside-root.car");
    let (inside, expected) = expected_for_car(&inside_car);
    assert_eq!(inside.to_string(), INSIDE_ROOT_CID);
    let got = tar_of(&gw, &format!("/ipfs/{inside}?format=tar")).await;
    // foobar/directory/../file is foobar/file.
    let (_, blocks) = car_blocks(&inside_car);
    let raw: Vec<&Vec<u8>> = blocks
        .iter()
        .filter(|(cid, _)| cid.codec() == 0x55)
        .map(|(_, data)| data)
        .collect();
    assert_eq!(raw.len(), 1);
    assert!(got.contains(&(format!("{inside}/foobar/file"), Kind::File, raw[0].clone())));
    assert_same(&got, &expected);

    let (outside, _) = car_blocks(&dir.join("path_gateway_tar/outside-root.car"));
    assert_eq!(outside[0].to_string(), OUTSIDE_ROOT_CID);
    let refused = gw.get(&format!("/ipfs/{}?format=tar", outside[0])).await;
    assert_eq!(refused.status(), 400);
    let message = refused.text().await.unwrap();
    assert!(
        message.contains("relative UnixFS paths outside the root are not allowed")
            && message.contains("\"../foo\""),
        "{message}"
    );
}

#[tokio::test]
async fn symlinks_multi_block_files_and_a_hamt() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();

    let (root, expected) = expected_for_car(&dir.join("path_gateway_unixfs/symlink.car"));
    assert_eq!(root.to_string(), SYMLINK_ROOT);
    let got = tar_of(&gw, &format!("/ipfs/{root}?format=tar")).await;
    // The recipe: foo holds "content", bar links to foo.
    assert_eq!(
        got,
        vec![
            (format!("{root}/"), Kind::Directory, vec![]),
            (format!("{root}/bar"), Kind::Symlink, b"foo".to_vec()),
            (format!("{root}/foo"), Kind::File, b"content\n".to_vec()),
        ]
    );
    assert_same(&got, &expected);
    // A symlink on its own is an archive of one symlink.
    let link = tar_of(&gw, &format!("/ipfs/{root}/bar?format=tar")).await;
    assert_eq!(link.len(), 1);
    assert_eq!((link[0].1, &link[0].2[..]), (Kind::Symlink, &b"foo"[..]));

    let files_car = dir.join("path_gateway_unixfs/dir-with-files.car");
    let (files_root, expected) = expected_for_car(&files_car);
    let got = tar_of(&gw, &format!("/ipfs/{files_root}?format=tar")).await;
    assert_same(&got, &expected);
    // multiblock.txt: the recipe's text (in 256-byte chunks).
    let readme = std::fs::read_to_string(dir.join("path_gateway_unixfs/README.md")).unwrap();
    let text = readme
        .split_once("TEXT=$(cat <<-EOF \n")
        .unwrap()
        .1
        .split_once("\nEOF")
        .unwrap()
        .0;
    let multiblock = got
        .iter()
        .find(|e| e.0.ends_with("/multiblock.txt"))
        .unwrap();
    assert!(multiblock.2.len() > 256, "more than one block");
    assert_eq!(multiblock.2, text.as_bytes());

    let hamt_car = dir.join("trustless_gateway_car/single-layer-hamt-with-multi-block-files.car");
    let (hamt_root, expected) = expected_for_car(&hamt_car);
    let got = tar_of(&gw, &format!("/ipfs/{hamt_root}?format=tar")).await;
    assert!(expected.len() > 100, "{} entries", expected.len());
    assert_same(&got, &expected);
}

#[tokio::test]
async fn content_that_is_not_unixfs_is_refused() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();
    for car in ["dag-cbor-traversal.car", "dag-json-traversal.car"] {
        let (roots, _) = car_blocks(&dir.join("path_gateway_dag").join(car));
        let response = gw.get(&format!("/ipfs/{}?format=tar", roots[0])).await;
        assert_eq!(response.status(), 400, "{car}");
        let message = response.text().await.unwrap();
        assert!(message.contains("not UnixFS"), "{car}: {message}");
        let head = gw
            .head_with(&format!("/ipfs/{}?format=tar", roots[0]), &[])
            .await;
        assert_eq!(head.status(), 400, "HEAD {car}");
    }
}

/// GNU tar, which nobody here wrote, extracts what the suite's sharness
/// tests extracted with it.
#[tokio::test]
async fn gnu_tar_extracts_the_archives() {
    let Some(_) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    for root in [DIR_CID, INSIDE_ROOT_CID, SYMLINK_ROOT, FILE_CID] {
        let body = gw
            .get(&format!("/ipfs/{root}?format=tar"))
            .await
            .bytes()
            .await
            .unwrap();
        extract(&body, out.path());
    }
    let at = |path: &str| out.path().join(path);
    assert_eq!(
        std::fs::read(at(&format!("{DIR_CID}/ą/ę/file-źł.txt"))).unwrap(),
        FILE_TEXT
    );
    assert_eq!(std::fs::read(at(FILE_CID)).unwrap(), FILE_TEXT);
    assert_eq!(
        std::fs::read(at(&format!("{INSIDE_ROOT_CID}/foobar/file"))).unwrap(),
        b"Hello, world!\n"
    );
    assert_eq!(
        std::fs::read_link(at(&format!("{SYMLINK_ROOT}/bar"))).unwrap(),
        PathBuf::from("foo")
    );
}

fn extract(body: &[u8], into: &Path) {
    use std::io::Write;
    let mut tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("GNU tar (Debian's essential tar package)");
    tar.stdin.take().unwrap().write_all(body).unwrap();
    let output = tar.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "tar -x: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Blocks of a DAG built here, and a CAR of them.
struct Dag {
    blocks: Vec<(Cid, Bytes)>,
}

impl Dag {
    fn file(&mut self, data: &[u8]) -> Built {
        let layout = FileLayout {
            chunk_size: 16 * 1024,
            ..FileLayout::MODERN
        };
        build_file(data, layout, &mut |b| self.blocks.push((b.cid, b.data))).unwrap()
    }

    fn dir(&mut self, entries: Vec<(&str, Built)>) -> Built {
        let entries = entries
            .into_iter()
            .map(|(name, built)| (name.to_string(), built))
            .collect();
        build_directory(entries, false, &mut |b| self.blocks.push((b.cid, b.data)))
    }

    fn symlink(&mut self, target: &str) -> Built {
        let data = sluice::unixfs::encode_data(
            sluice::unixfs::DataType::Symlink,
            Some(Bytes::copy_from_slice(target.as_bytes())),
            None,
            vec![],
        );
        let block = Bytes::from(
            ipld_dagpb::PbNode {
                links: vec![],
                data: Some(Bytes::from(data)),
            }
            .into_bytes(),
        );
        let cid = Cid::new_v1(0x70, Code::Sha2_256.digest(&block));
        let len = block.len() as u64;
        self.blocks.push((cid, block));
        Built {
            cid,
            file_size: 0,
            dag_size: len,
        }
    }

    fn car(&self, root: &Built, into: &Path) -> PathBuf {
        let path = into.join(format!("{}.car", root.cid));
        let file = std::fs::File::create(&path).unwrap();
        let mut car = CarWriter::new(file, &[root.cid]).unwrap();
        for (cid, data) in &self.blocks {
            car.write_block(cid, data).unwrap();
        }
        car.finish().unwrap();
        path
    }
}

/// A bad name met after the first 64 KiB: the status is sent, so the body
/// says why and ends abnormally; the archive is never delivered whole.
#[tokio::test]
async fn a_bad_name_after_the_status_cuts_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut dag = Dag { blocks: Vec::new() };
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let big_file = dag.file(&big);
    let small = dag.file(b"escaped\n");
    let inner = dag.dir(vec![("../../escape", small)]);
    let root = dag.dir(vec![("a-big.bin", big_file), ("z", inner)]);
    let car = dag.car(&root, dir.path());
    let gw = TestGateway::start(vec![car]).await;

    let response = gw.get(&format!("/ipfs/{}?format=tar", root.cid)).await;
    assert_eq!(response.status(), 200, "the bad name lies past the window");
    let (received, ended) = read_all(response).await;
    assert!(ended.is_err(), "the body must end abnormally");
    let tail = String::from_utf8_lossy(&received[received.len().saturating_sub(400)..]);
    assert!(
        tail.contains("relative UnixFS paths outside the root are not allowed"),
        "{tail}"
    );
    assert!(received.len() > 200_000, "the big file was sent before");
    assert!(
        !received.windows(8).any(|w| w == b"escaped\n"),
        "the escaping entry's bytes were not sent"
    );

    // Within the window the same DAG is a 400 before any byte.
    let mut small_dag = Dag { blocks: Vec::new() };
    let small = small_dag.file(b"escaped\n");
    let inner = small_dag.dir(vec![("../../escape", small)]);
    let first = small_dag.file(b"first\n");
    let root = small_dag.dir(vec![("a", first), ("z", inner)]);
    let car = small_dag.car(&root, dir.path());
    let gw = TestGateway::start(vec![car]).await;
    let refused = gw.get(&format!("/ipfs/{}?format=tar", root.cid)).await;
    assert_eq!(refused.status(), 400);
}

/// A name that lies through a symlink written before it (`link`, then
/// `link/passwd`) would make an extractor write outside the root.
#[tokio::test]
async fn names_through_an_earlier_symlink_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut dag = Dag { blocks: Vec::new() };
    let link = dag.symlink("/etc");
    let file = dag.file(b"root::0:0::/:/bin/sh\n");
    let root = dag.dir(vec![("link", link), ("link/passwd", file)]);
    let car = dag.car(&root, dir.path());
    let gw = TestGateway::start(vec![car]).await;
    let refused = gw.get(&format!("/ipfs/{}?format=tar", root.cid)).await;
    assert_eq!(refused.status(), 400);
    let message = refused.text().await.unwrap();
    assert!(message.contains("through the symlink"), "{message}");

    // A symlink pointing anywhere is written as it is (never followed).
    let mut dag = Dag { blocks: Vec::new() };
    let link = dag.symlink("/etc");
    let root = dag.dir(vec![("link", link)]);
    let car = dag.car(&root, dir.path());
    let gw = TestGateway::start(vec![car]).await;
    let got = tar_of(&gw, &format!("/ipfs/{}?format=tar", root.cid)).await;
    assert_eq!(
        got[1],
        (
            format!("{}/link", root.cid),
            Kind::Symlink,
            b"/etc".to_vec()
        )
    );
}

/// What the walk meets below the root is checked as it is met: a dag-cbor
/// entry in a UnixFS directory, a missing block (there is no network
/// here), both within the status window: an error status, never a 200
/// with a well-formed archive missing them.
#[tokio::test]
async fn a_non_unixfs_entry_or_a_missing_block_below_the_root_is_an_error() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let gw = TestGateway::with_fixtures().await.unwrap();
    let (roots, _) =
        car_blocks(&dir.join("trustless_gateway_car/dir-with-dag-cbor-with-links.car"));
    let response = gw.get(&format!("/ipfs/{}?format=tar", roots[0])).await;
    assert_eq!(response.status(), 400);
    let message = response.text().await.unwrap();
    assert!(message.contains("not UnixFS"), "{message}");

    let (roots, _) =
        car_blocks(&dir.join("trustless_gateway_car/file-3k-and-3-blocks-missing-block.car"));
    let response = gw.get(&format!("/ipfs/{}?format=tar", roots[0])).await;
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("not available"));
}

/// The walk's bounds: directories nested deeper than content paths may be
/// long (met past the status window: a cut body), and paths longer than
/// an extractor can create (met within it: a 400).
#[tokio::test]
async fn too_deep_or_too_long_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (levels, name, status, mentions) in [
        (300, "d".to_string(), 200, "deeper than 256"),
        (30, "n".repeat(200), 400, "longer than 4096 bytes"),
    ] {
        let mut dag = Dag { blocks: Vec::new() };
        let mut at = dag.file(b"deep\n");
        for _ in 0..levels {
            at = dag.dir(vec![(name.as_str(), at)]);
        }
        let car = dag.car(&at, dir.path());
        let gw = TestGateway::start(vec![car]).await;
        let response = gw.get(&format!("/ipfs/{}?format=tar", at.cid)).await;
        assert_eq!(response.status(), status, "{levels} levels");
        let (received, ended) = read_all(response).await;
        assert_eq!(
            ended.is_err(),
            status == 200,
            "a cut body, or an error page"
        );
        let tail = String::from_utf8_lossy(&received[received.len().saturating_sub(300)..]);
        assert!(tail.contains(mentions), "{tail}");
    }
}

/// Every byte of a body, and whether it ended normally.
async fn read_all(mut response: reqwest::Response) -> (Vec<u8>, Result<(), reqwest::Error>) {
    let mut received = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => return (received, Ok(())),
            Err(e) => return (received, Err(e)),
        }
    }
}
