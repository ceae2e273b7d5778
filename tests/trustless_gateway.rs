// Covers 8 of 8 path_gateway_raw cases (TestGatewayBlock: 6; TestGatewayBlockMultiRangeRequest: probe + follow-up).
// Covers 5 of 5 t0117_gateway_block cases (legacy; 4 folded into the path_gateway_raw checks, 1 on its own).
// Covers 5 of 5 trustless_gateway_raw cases.
// Covers 59 of 59 trustless_gateway_car cases of gateway-conformance v0.13 (25 base cases × {?format=car, Accept}
// + 7 order/dups cases, 2 of them IPIP-0523's car-* query precedence, + 2 TestTrustlessCarFormatPrecedence).
// Covers 5 of 5 t0118_gateway_car cases (legacy), on the trustless_gateway_car fixtures: t0118's own CARs are not local.
//
//! Raw blocks and CARs, as the gateway-conformance suite checks them:
//! every test starts the gateway on the conformance fixtures and talks to
//! it over HTTP. Expected blocks and CIDs are computed from the fixture
//! CARs, the way the suite's fixture helpers compute them.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use cid::Cid;
use common::{block_from_car, header, parse_car, TestGateway};
use ipld_core::ipld::Ipld;

const DAG_PB: u64 = 0x70;

// gateway-raw-block.car (the suite's t0117-gateway-block.car)
const RAW_BLOCK_CAR: &str = "gateway-raw-block.car";
const RAW_ROOT: &str = "bafybeie72edlprgtlwwctzljf6gkn2wnlrddqjbkxo3jomh4n7omwblxly";

// trustless_gateway_car/
const TWO_FILES_CAR: &str = "trustless_gateway_car/subdir-with-two-single-block-files.car";
const MIXED_FILES_CAR: &str = "trustless_gateway_car/subdir-with-mixed-block-files.car";
const HAMT_CAR: &str = "trustless_gateway_car/single-layer-hamt-with-multi-block-files.car";
const DAG_CBOR_LINKS_CAR: &str = "trustless_gateway_car/dir-with-dag-cbor-with-links.car";
const MISSING_BLOCK_CAR: &str = "trustless_gateway_car/file-3k-and-3-blocks-missing-block.car";
const DUPLICATE_FILES_CAR: &str = "trustless_gateway_car/dir-with-duplicate-files.car";
/// The blocks of the missing-block file that the gateway has, fixed by the
/// fixture's recipe (the middle one is missing).
const MISSING_BLOCK_FIRST_LEAF: &str = "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF";
const MISSING_BLOCK_LAST_LEAF: &str = "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV";
/// An identity CID: its data is inside the CID, never a block.
const IDENTITY_CID: &str = "bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa";

fn fixture(name: &str) -> PathBuf {
    common::fixtures().expect("fixtures are present").join(name)
}

/// One fixture CAR's blocks, with the lookups the suite's fixture helpers
/// (`MustGetCid`, `MustGetDescendantsCids`, `MustGetCidsInHAMT`, …) do.
struct Dag {
    root: String,
    blocks: HashMap<String, Vec<u8>>,
}

impl Dag {
    fn open(name: &str) -> Dag {
        let (roots, blocks) = parse_car(&std::fs::read(fixture(name)).unwrap());
        Dag {
            root: roots[0].to_string(),
            blocks: blocks
                .into_iter()
                .map(|(cid, data)| (cid.to_string(), data))
                .collect(),
        }
    }

    /// The named links of a dag-pb node, in order (none for other codecs).
    fn links(&self, cid: &str) -> Vec<(String, String)> {
        if Cid::try_from(cid).unwrap().codec() != DAG_PB {
            return Vec::new();
        }
        let block = self
            .blocks
            .get(cid)
            .unwrap_or_else(|| panic!("{cid} is not in the fixture"));
        let node = ipld_dagpb::PbNode::from_bytes(block.clone().into()).unwrap();
        node.links
            .into_iter()
            .map(|link| (link.name.unwrap_or_default(), link.cid.to_string()))
            .collect()
    }

    /// `MustGetCid(path…)`: the CID at a path of plain directories.
    fn cid(&self, path: &[&str]) -> String {
        path.iter().fold(self.root.clone(), |cid, name| {
            let links = self.links(&cid);
            let (_, child) = links
                .into_iter()
                .find(|(link, _)| link == name)
                .unwrap_or_else(|| panic!("no link {name} in {cid}"));
            child
        })
    }

    /// `MustGetDescendantsCids`: every node below `cid`, depth-first in link
    /// order, repeats included.
    fn descendants(&self, cid: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (_, child) in self.links(cid) {
            out.push(child.clone());
            if self.blocks.contains_key(&child) {
                out.extend(self.descendants(&child));
            }
        }
        out
    }

    /// `MustGetCidsInHAMT`: the shard nodes below a HAMT root, depth-first
    /// (a shard's link name is its two-hex-digit bucket alone).
    fn hamt_shards(&self, cid: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (name, child) in self.links(cid) {
            if name.len() == 2 {
                out.push(child.clone());
                out.extend(self.hamt_shards(&child));
            }
        }
        out
    }

    /// `MustGetCIDsInHAMTTraversal` plus `MustGetCid(name)`: the shards
    /// walked to reach entry `name` of HAMT `cid`, then the entry itself.
    fn hamt_lookup(&self, cid: &str, name: &str) -> Option<Vec<String>> {
        for (link, child) in self.links(cid) {
            if link.len() > 2 && &link[2..] == name {
                return Some(vec![child]);
            }
            if link.len() == 2 {
                if let Some(mut rest) = self.hamt_lookup(&child, name) {
                    rest.insert(0, child);
                    return Some(rest);
                }
            }
        }
        None
    }
}

/// The value under `key` of an IPLD map.
fn map_get<'a>(map: &'a Ipld, key: &str) -> &'a Ipld {
    match map {
        Ipld::Map(entries) => entries.get(key).unwrap_or_else(|| panic!("no key {key}")),
        other => panic!("not a map: {other:?}"),
    }
}

/// `v` with repeated entries dropped (CAR `dups=n`).
fn without_duplicates(v: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.iter()
        .filter(|cid| seen.insert(cid.to_string()))
        .cloned()
        .collect()
}

fn concat(parts: &[&[String]]) -> Vec<String> {
    parts.concat()
}

fn one(cid: &str) -> Vec<String> {
    vec![cid.to_string()]
}

/// The conformance suite's Cache-Control check for immutable content:
/// `public`, `immutable` and a `max-age` of at least 29030400.
fn assert_immutable_cache_control(value: &str) {
    let directives: HashMap<&str, &str> = value
        .split(',')
        .map(str::trim)
        .map(|d| d.split_once('=').unwrap_or((d, "")))
        .collect();
    assert!(
        directives.contains_key("public"),
        "Cache-Control {value:?} is not public"
    );
    assert!(
        directives.contains_key("immutable"),
        "Cache-Control {value:?} is not immutable"
    );
    let max_age: u64 = directives
        .get("max-age")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control {value:?} has no numeric max-age"));
    assert!(
        max_age >= 29030400,
        "Cache-Control {value:?}: max-age too short"
    );
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A CAR response: checks what every CAR must carry (the suite's standard
/// CAR headers, in their exact form) and returns its roots and block CIDs.
async fn car_response(
    resp: reqwest::Response,
    terminal: &str,
    dups: &str,
    what: &str,
) -> (Vec<String>, Vec<String>) {
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(
        header(&resp, "content-type"),
        format!("application/vnd.ipld.car; version=1; order=dfs; dups={dups}"),
        "{what}"
    );
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(&resp, "accept-ranges"), "none", "{what}");
    assert_eq!(
        header(&resp, "content-disposition"),
        format!("attachment; filename=\"{terminal}.car\""),
        "{what}"
    );
    assert!(
        resp.headers().get("content-length").is_none(),
        "{what}: a streamed CAR has no Content-Length"
    );
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: CAR body did not complete: {e}"));
    let (roots, blocks) = parse_car(&body);
    (
        roots.iter().map(Cid::to_string).collect(),
        blocks.iter().map(|(cid, _)| cid.to_string()).collect(),
    )
}

/// One base case of a StandardCARTestTransforms group.
struct CarCase {
    name: &'static str,
    /// `/ipfs/<root>/…`, without a query.
    path: String,
    /// Query parameters other than `format`, e.g. `dag-scope=block`.
    params: &'static str,
    /// The CID at the end of the path (the CAR's file name).
    terminal: String,
    blocks: Vec<String>,
}

impl CarCase {
    fn root(&self) -> &str {
        self.path
            .trim_start_matches("/ipfs/")
            .split('/')
            .next()
            .unwrap()
    }

    /// The two requests the suite derives from a case: `?format=car`, and
    /// `Accept: application/vnd.ipld.car` with the other parameters kept.
    fn requests(&self) -> [(String, String, Option<&'static str>); 2] {
        let with_format = if self.params.is_empty() {
            format!("{}?format=car", self.path)
        } else {
            format!("{}?format=car&{}", self.path, self.params)
        };
        let with_accept = if self.params.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.params)
        };
        [
            (format!("{} (format=car)", self.name), with_format, None),
            (
                format!("{} (Accept Header)", self.name),
                with_accept,
                Some("application/vnd.ipld.car"),
            ),
        ]
    }
}

async fn get_maybe_accept(gw: &TestGateway, url: &str, accept: Option<&str>) -> reqwest::Response {
    match accept {
        Some(accept) => gw.get_with(url, &[("Accept", accept)]).await,
        None => gw.get(url).await,
    }
}

/// Runs every case both ways; the CAR must hold exactly the expected blocks
/// in order, under the request's root CID.
async fn run_car_cases(gw: &TestGateway, cases: &[CarCase]) {
    for case in cases {
        for (what, url, accept) in case.requests() {
            let resp = get_maybe_accept(gw, &url, accept).await;
            let (roots, cids) = car_response(resp, &case.terminal, "n", &what).await;
            assert_eq!(roots, one(case.root()), "{what}: CAR roots");
            assert_eq!(cids, case.blocks, "{what}: CAR blocks");
        }
    }
}

// ---------------------------------------------------------------------------
// path_gateway_raw (and the legacy t0117 checks folded into it)

#[tokio::test]
async fn test_gateway_block() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dag = Dag::open(RAW_BLOCK_CAR);
    assert_eq!(dag.root, RAW_ROOT);
    let dir_cid = dag.cid(&["dir"]);
    let ascii_cid = dag.cid(&["dir", "ascii.txt"]);
    let dir_block = block_from_car(&fixture(RAW_BLOCK_CAR), &dir_cid);
    let ascii_block = block_from_car(&fixture(RAW_BLOCK_CAR), &ascii_cid);
    assert_eq!(dir_block.len(), 57);
    let raw = [("Accept", "application/vnd.ipld.raw")];

    // GET with format=raw param returns a raw block
    let resp = gw.get(&format!("/ipfs/{RAW_ROOT}/dir?format=raw")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), dir_block);

    // GET with application/vnd.ipld.raw header returns a raw block
    let resp = gw.get_with(&format!("/ipfs/{RAW_ROOT}/dir"), &raw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), dir_block);

    // GET with application/vnd.ipld.raw with single range request includes correct bytes
    let resp = gw
        .get_with(
            &format!("/ipfs/{RAW_ROOT}/dir"),
            &[raw[0], ("Range", "bytes=6-16")],
        )
        .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(header(&resp, "content-type"), "application/vnd.ipld.raw");
    assert_eq!(header(&resp, "content-range"), "bytes 6-16/57");
    assert_eq!(resp.bytes().await.unwrap(), dir_block[6..17]);

    // GET with application/vnd.ipld.raw header returns expected response headers
    // (t0117 and the older suite: the file name is "<cid>.bin")
    let resp = gw
        .get_with(&format!("/ipfs/{RAW_ROOT}/dir/ascii.txt"), &raw)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/vnd.ipld.raw");
    assert_eq!(
        header(&resp, "content-length"),
        ascii_block.len().to_string()
    );
    assert_eq!(
        header(&resp, "content-disposition"),
        format!("attachment; filename=\"{ascii_cid}.bin\"")
    );
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(resp.bytes().await.unwrap(), ascii_block);

    // GET with application/vnd.ipld.raw header and filename param returns
    // expected Content-Disposition header with custom filename (one line)
    let resp = gw
        .get_with(
            &format!("/ipfs/{RAW_ROOT}/dir/ascii.txt?filename=foobar.bin"),
            &raw,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-disposition"),
        "attachment; filename=\"foobar.bin\""
    );

    // GET with application/vnd.ipld.raw header returns expected caching headers
    // (t0117 and the older suite: the Etag is "<cid>.raw")
    let resp = gw
        .get_with(&format!("/ipfs/{RAW_ROOT}/dir/ascii.txt"), &raw)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "etag"), format!("\"{ascii_cid}.raw\""));
    assert_eq!(
        header(&resp, "x-ipfs-path"),
        format!("/ipfs/{RAW_ROOT}/dir/ascii.txt")
    );
    assert!(header(&resp, "x-ipfs-roots").contains(RAW_ROOT));
    assert_eq!(
        header(&resp, "x-ipfs-roots"),
        format!("{RAW_ROOT},{dir_cid},{ascii_cid}")
    );
    assert_immutable_cache_control(&header(&resp, "cache-control"));
}

#[tokio::test]
async fn test_gateway_block_multi_range_request() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dag = Dag::open(RAW_BLOCK_CAR);
    let ascii = block_from_car(&fixture(RAW_BLOCK_CAR), &dag.cid(&["dir", "ascii.txt"]));
    let headers = [
        ("Accept", "application/vnd.ipld.raw"),
        ("Range", "bytes=6-16,0-4"),
    ];

    // The probe: 206 with some Content-Type.
    let resp = gw
        .get_with(&format!("/ipfs/{RAW_ROOT}/dir/ascii.txt"), &headers)
        .await;
    assert_eq!(resp.status(), 206);
    let content_type = header(&resp, "content-type");
    let content_range = header(&resp, "content-range");
    let body = resp.bytes().await.unwrap();

    // The follow-up the probe selects: the first range alone, or all of
    // them as multipart/byteranges. (Sending the whole block as a 206
    // with no Content-Range, which the suite tolerates, is not HTTP.)
    if content_type == "application/vnd.ipld.raw" {
        assert_eq!(content_range, "bytes 6-16/31");
        assert_eq!(body, ascii[6..17]);
    } else {
        assert!(
            content_type.starts_with("multipart/byteranges"),
            "Content-Type {content_type:?}"
        );
        for part in [
            &b"Content-Range: bytes 6-16/31"[..],
            b"Content-Type: application/vnd.ipld.raw",
            &ascii[6..17],
            b"Content-Range: bytes 0-4/31",
            &ascii[0..5],
        ] {
            assert!(
                contains_bytes(&body, part),
                "multipart body lacks {:?}",
                String::from_utf8_lossy(part)
            );
        }
    }
}

/// The one t0117 case not already among the path_gateway_raw checks.
#[tokio::test]
async fn t0117_gateway_block_file_without_accept() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dag = Dag::open(RAW_BLOCK_CAR);
    let ascii = block_from_car(&fixture(RAW_BLOCK_CAR), &dag.cid(&["dir", "ascii.txt"]));

    // GET with application/vnd.ipld.raw header returns expected response &
    // headers (the case sends no Accept and only checks 200): the file.
    let resp = gw.get(&format!("/ipfs/{RAW_ROOT}/dir/ascii.txt")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), ascii);
}

// ---------------------------------------------------------------------------
// trustless_gateway_raw

#[tokio::test]
async fn test_trustless_raw() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dag = Dag::open(RAW_BLOCK_CAR);
    let dir_cid = dag.cid(&["dir"]);
    let ascii_cid = dag.cid(&["dir", "ascii.txt"]);
    let dir_block = block_from_car(&fixture(RAW_BLOCK_CAR), &dir_cid);
    let ascii_block = block_from_car(&fixture(RAW_BLOCK_CAR), &ascii_cid);
    let raw = [("Accept", "application/vnd.ipld.raw")];

    // GET with format=raw param returns a raw block
    let resp = gw.get(&format!("/ipfs/{dir_cid}?format=raw")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), dir_block);

    // GET with application/vnd.ipld.raw header returns a raw block
    let resp = gw.get_with(&format!("/ipfs/{dir_cid}"), &raw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), dir_block);

    // GET with application/vnd.ipld.raw header returns expected response headers
    let resp = gw.get_with(&format!("/ipfs/{ascii_cid}"), &raw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/vnd.ipld.raw");
    assert_eq!(
        header(&resp, "content-length"),
        ascii_block.len().to_string()
    );
    assert_eq!(
        header(&resp, "content-disposition"),
        format!("attachment; filename=\"{ascii_cid}.bin\"")
    );
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(resp.bytes().await.unwrap(), ascii_block);

    // GET with application/vnd.ipld.raw header and filename param returns
    // expected Content-Disposition header with custom filename
    let resp = gw
        .get_with(&format!("/ipfs/{ascii_cid}?filename=foobar.bin"), &raw)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-disposition"),
        "attachment; filename=\"foobar.bin\""
    );

    // GET with application/vnd.ipld.raw header returns expected caching headers
    let resp = gw.get_with(&format!("/ipfs/{ascii_cid}"), &raw).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "etag"), format!("\"{ascii_cid}.raw\""));
    assert_eq!(header(&resp, "x-ipfs-path"), format!("/ipfs/{ascii_cid}"));
    assert_eq!(header(&resp, "x-ipfs-roots"), ascii_cid);
    assert_immutable_cache_control(&header(&resp, "cache-control"));
}

// ---------------------------------------------------------------------------
// trustless_gateway_car

#[tokio::test]
async fn test_trustless_car_pathing() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let two = Dag::open(TWO_FILES_CAR);
    let hamt = Dag::open(HAMT_CAR);
    let cbor = Dag::open(DAG_CBOR_LINKS_CAR);
    let (s2, h) = (&two.root, &hamt.root);
    let hamt_path = hamt
        .hamt_lookup(h, "685.txt")
        .expect("685.txt is in the HAMT");
    let hamt_file = hamt_path.last().unwrap().clone();
    let document = cbor.cid(&["document"]);
    let document_ipld: Ipld = serde_ipld_dagcbor::from_slice(&cbor.blocks[&document]).unwrap();
    let Ipld::Link(single) = map_get(map_get(&document_ipld, "files"), "single") else {
        panic!("document/files/single is not a link")
    };
    let single = single.to_string();

    run_car_cases(
        &gw,
        &[
            CarCase {
                name: "GET default CAR response with pathing through UnixFS Directory",
                path: format!("/ipfs/{s2}/subdir/ascii.txt"),
                params: "",
                terminal: two.cid(&["subdir", "ascii.txt"]),
                blocks: vec![
                    s2.clone(),
                    two.cid(&["subdir"]),
                    two.cid(&["subdir", "ascii.txt"]),
                ],
            },
            CarCase {
                name:
                    "GET default CAR response of UnixFS file on a path with HAMT-sharded directory",
                path: format!("/ipfs/{h}/685.txt"),
                params: "",
                terminal: hamt_file.clone(),
                blocks: concat(&[&one(h), &hamt_path, &hamt.descendants(&hamt_file)]),
            },
            CarCase {
                name: "GET default CAR response of UnixFS file on a path with DAG-CBOR as root CID",
                path: format!("/ipfs/{document}/files/single"),
                params: "",
                terminal: single.clone(),
                blocks: vec![document.clone(), single.clone()],
            },
        ],
    )
    .await;

    // GET default CAR response for non-existing file: the suite allows a
    // partial CAR or a 404; sluice checks the path first and answers 404.
    let missing = CarCase {
        name: "GET default CAR response for non-existing file",
        path: format!("/ipfs/{s2}/subdir/i-do-not-exist"),
        params: "",
        terminal: String::new(),
        blocks: Vec::new(),
    };
    for (what, url, accept) in missing.requests() {
        let resp = get_maybe_accept(&gw, &url, accept).await;
        assert_eq!(resp.status(), 404, "{what}");
    }
}

#[tokio::test]
async fn test_trustless_car_dag_scope_block() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let two = Dag::open(TWO_FILES_CAR);
    let hamt = Dag::open(HAMT_CAR);
    let (s2, h) = (&two.root, &hamt.root);
    let hamt_path = hamt.hamt_lookup(h, "1.txt").expect("1.txt is in the HAMT");

    run_car_cases(
        &gw,
        &[
            CarCase {
                name: "GET CAR with dag-scope=block of UnixFS directory on a path",
                path: format!("/ipfs/{s2}/subdir"),
                params: "dag-scope=block",
                terminal: two.cid(&["subdir"]),
                blocks: vec![s2.clone(), two.cid(&["subdir"])],
            },
            CarCase {
                name: "GET CAR with dag-scope=block of UnixFS file on a path",
                path: format!("/ipfs/{s2}/subdir/ascii.txt"),
                params: "dag-scope=block",
                terminal: two.cid(&["subdir", "ascii.txt"]),
                blocks: vec![
                    s2.clone(),
                    two.cid(&["subdir"]),
                    two.cid(&["subdir", "ascii.txt"]),
                ],
            },
            CarCase {
                // The multi-block file's root only, not its leaves.
                name:
                    "GET CAR with dag-scope=block of UnixFS file on a path with sharded directory",
                path: format!("/ipfs/{h}/1.txt"),
                params: "dag-scope=block",
                terminal: hamt_path.last().unwrap().clone(),
                blocks: concat(&[&one(h), &hamt_path]),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn test_trustless_car_dag_scope_entity() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let two = Dag::open(TWO_FILES_CAR);
    let hamt = Dag::open(HAMT_CAR);
    let mixed = Dag::open(MIXED_FILES_CAR);
    let cbor = Dag::open(DAG_CBOR_LINKS_CAR);
    let (sm, h) = (&mixed.root, &hamt.root);
    let subdir = mixed.cid(&["subdir"]);
    let multiblock = mixed.cid(&["subdir", "multiblock.txt"]);
    // 229 shards under the root and 7 below those (243 blocks: the root,
    // 236 shards, and one 6-block file), loaded depth-first like
    // go-unixfsnode's preload.
    let hamt_shards = hamt.hamt_shards(h);
    assert_eq!(hamt_shards.len(), 236);

    run_car_cases(
        &gw,
        &[
            CarCase {
                name: "GET CAR with dag-scope=entity of a UnixFS directory",
                path: format!("/ipfs/{}", two.root),
                params: "dag-scope=entity",
                terminal: two.root.clone(),
                blocks: one(&two.root),
            },
            CarCase {
                name: "GET CAR with dag-scope=entity of a UnixFS sharded directory",
                path: format!("/ipfs/{h}"),
                params: "dag-scope=entity",
                terminal: h.clone(),
                blocks: concat(&[&one(h), &hamt_shards]),
            },
            CarCase {
                name: "GET CAR with dag-scope=entity of a UnixFS file",
                path: format!("/ipfs/{sm}/subdir/ascii.txt"),
                params: "dag-scope=entity",
                terminal: mixed.cid(&["subdir", "ascii.txt"]),
                blocks: vec![
                    sm.clone(),
                    subdir.clone(),
                    mixed.cid(&["subdir", "ascii.txt"]),
                ],
            },
            CarCase {
                name: "GET CAR with dag-scope=entity of a chunked UnixFS file",
                path: format!("/ipfs/{sm}/subdir/multiblock.txt"),
                params: "dag-scope=entity",
                terminal: multiblock.clone(),
                blocks: concat(&[
                    &[sm.clone(), subdir.clone(), multiblock.clone()],
                    &mixed.descendants(&multiblock),
                ]),
            },
            CarCase {
                // The document's IPLD links are not followed.
                name: "GET CAR with dag-scope=entity of DAG-CBOR with Links",
                path: format!("/ipfs/{}/document", cbor.root),
                params: "dag-scope=entity",
                terminal: cbor.cid(&["document"]),
                blocks: vec![cbor.root.clone(), cbor.cid(&["document"])],
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn test_trustless_car_dag_scope_all() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let mixed = Dag::open(MIXED_FILES_CAR);
    let sm = &mixed.root;
    let subdir = mixed.cid(&["subdir"]);
    let multiblock = mixed.cid(&["subdir", "multiblock.txt"]);

    run_car_cases(
        &gw,
        &[
            CarCase {
                name: "GET CAR with dag-scope=all of UnixFS directory with multiple files",
                path: format!("/ipfs/{sm}/subdir"),
                params: "dag-scope=all",
                terminal: subdir.clone(),
                blocks: concat(&[&[sm.clone(), subdir.clone()], &mixed.descendants(&subdir)]),
            },
            CarCase {
                name: "GET CAR with dag-scope=all of a chunked UnixFS file",
                path: format!("/ipfs/{sm}/subdir/multiblock.txt"),
                params: "dag-scope=all",
                terminal: multiblock.clone(),
                blocks: concat(&[
                    &[sm.clone(), subdir.clone(), multiblock.clone()],
                    &mixed.descendants(&multiblock),
                ]),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn test_trustless_car_entity_bytes() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let hamt = Dag::open(HAMT_CAR);
    let mixed = Dag::open(MIXED_FILES_CAR);
    let missing = Dag::open(MISSING_BLOCK_CAR);
    let (sm, h, m) = (&mixed.root, &hamt.root, &missing.root);
    let subdir = mixed.cid(&["subdir"]);
    let mb = mixed.cid(&["subdir", "multiblock.txt"]);
    // The leaves of multiblock.txt: 4 × 256 bytes, then 2 (1026 bytes).
    let leaves = mixed.descendants(&mb);
    assert_eq!(leaves.len(), 5);
    let file_range = |name: &'static str, params: &'static str, leaves: &[String]| CarCase {
        name,
        path: format!("/ipfs/{mb}"),
        params,
        terminal: mb.clone(),
        blocks: concat(&[&one(&mb), leaves]),
    };

    run_car_cases(
        &gw,
        &[
            // The suite checks these two as unordered sets; the CAR declares
            // order=dfs, so the order is checked too.
            CarCase {
                name: "GET CAR with entity-bytes succeeds even if the gateway is missing a block after the requested range",
                path: format!("/ipfs/{m}"),
                params: "dag-scope=entity&entity-bytes=0:1000",
                terminal: m.clone(),
                blocks: vec![m.clone(), MISSING_BLOCK_FIRST_LEAF.to_string()],
            },
            CarCase {
                name: "GET CAR with entity-bytes succeeds even if the gateway is missing a block before the requested range",
                path: format!("/ipfs/{m}"),
                params: "dag-scope=entity&entity-bytes=2200:*",
                terminal: m.clone(),
                blocks: vec![m.clone(), MISSING_BLOCK_LAST_LEAF.to_string()],
            },
            CarCase {
                name: "GET CAR with entity-bytes of a full UnixFS file",
                path: format!("/ipfs/{sm}/subdir/multiblock.txt"),
                params: "dag-scope=entity&entity-bytes=0:*",
                terminal: mb.clone(),
                blocks: concat(&[&[sm.clone(), subdir.clone(), mb.clone()], &leaves]),
            },
            CarCase {
                // entity-bytes means nothing for a directory.
                name: "GET CAR with entity-bytes of a UnixFS directory",
                path: format!("/ipfs/{h}"),
                params: "dag-scope=entity&entity-bytes=0:*",
                terminal: h.clone(),
                blocks: concat(&[&one(h), &hamt.hamt_shards(h)]),
            },
            file_range(
                "GET CAR with entity-bytes equivalent to a HTTP Range Request from the middle of a file to the end",
                "dag-scope=entity&entity-bytes=512:*",
                &leaves[2..],
            ),
            file_range(
                "GET CAR with entity-bytes equivalent to a HTTP Range Request for the middle of a file",
                "dag-scope=entity&entity-bytes=512:1023",
                &leaves[2..4],
            ),
            file_range(
                "GET CAR with entity-bytes equivalent to a HTTP Range Request for the middle of a file (negative ending)",
                "dag-scope=entity&entity-bytes=512:-256",
                &leaves[2..4],
            ),
            file_range(
                "GET CAR with entity-bytes equivalent to HTTP Suffix Range Request for part of a file",
                "dag-scope=entity&entity-bytes=-5:*",
                &leaves[3..],
            ),
            file_range(
                "GET CAR with entity-bytes requesting a negative range bigger than the length of a file",
                "dag-scope=entity&entity-bytes=-9999:*",
                &leaves,
            ),
            file_range(
                "GET CAR with entity-bytes requesting a range from the end of a file that is bigger than a file itself",
                "dag-scope=entity&entity-bytes=-9999:-3",
                &leaves[..4],
            ),
            file_range(
                "GET CAR with entity-bytes requesting only the blocks for the first byte of a file",
                "dag-scope=entity&entity-bytes=0:0",
                &leaves[..1],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn test_trustless_car_order_and_duplicates() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dup = Dag::open(DUPLICATE_FILES_CAR);
    let d = &dup.root;
    // Links in order: ascii-copy.txt, ascii.txt (the same CID), hello.txt,
    // multiblock.txt (a root and 5 leaves).
    let with_dups = concat(&[&one(d), &dup.descendants(d)]);
    assert_eq!(with_dups.len(), 10);
    let no_dups = without_duplicates(&with_dups);
    assert_eq!(no_dups.len(), 9);
    let path = format!("/ipfs/{d}");

    // GET CAR with order=dfs and dups=y of UnixFS Directory With Duplicate Files
    let what = "order=dfs; dups=y";
    let resp = gw
        .get_with(
            &path,
            &[(
                "Accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=y",
            )],
        )
        .await;
    let (roots, cids) = car_response(resp, d, "y", what).await;
    assert_eq!(roots, one(d), "{what}");
    assert_eq!(cids, with_dups, "{what}");

    // GET CAR with order=dfs and dups=n of UnixFS Directory With Duplicate Files
    let what = "order=dfs; dups=n";
    let resp = gw
        .get_with(
            &path,
            &[(
                "Accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=n",
            )],
        )
        .await;
    let (roots, cids) = car_response(resp, d, "n", what).await;
    assert_eq!(roots, one(d), "{what}");
    assert_eq!(cids, no_dups, "{what}");

    // GET CAR smoke-test with order=unk of UnixFS Directory: any explicit
    // order in the answer, and every block; an answer that says order=dfs
    // must then be in that order.
    let what = "order=unk";
    let resp = gw
        .get_with(
            &path,
            &[("Accept", "application/vnd.ipld.car; version=1; order=unk")],
        )
        .await;
    assert_eq!(resp.status(), 200, "{what}");
    let content_type = header(&resp, "content-type");
    assert!(
        content_type.contains("application/vnd.ipld.car"),
        "{what}: {content_type}"
    );
    assert!(content_type.contains("order="), "{what}: {content_type}");
    let body = resp.bytes().await.unwrap();
    let cids: Vec<String> = parse_car(&body)
        .1
        .iter()
        .map(|(cid, _)| cid.to_string())
        .collect();
    for cid in &no_dups {
        assert!(cids.contains(cid), "{what}: {cid} is missing");
    }
    if content_type.contains("order=dfs") {
        let expected = if content_type.contains("dups=y") {
            &with_dups
        } else {
            &no_dups
        };
        assert_eq!(&cids, expected, "{what}: Content-Type {content_type}");
    }

    // GET CAR with order=dfs and dups=y of identity CID: no block at all.
    let what = "identity CID, dups=y";
    let resp = gw
        .get_with(
            &format!("/ipfs/{IDENTITY_CID}"),
            &[("Accept", "application/vnd.ipld.car; dups=y")],
        )
        .await;
    let (roots, cids) = car_response(resp, IDENTITY_CID, "y", what).await;
    assert_eq!(roots, one(IDENTITY_CID), "{what}");
    assert!(
        cids.is_empty(),
        "{what}: identity blocks are never written: {cids:?}"
    );

    // GET CAR with Accept and ?format, specific Accept header is prioritized
    let what = "?format=car with Accept order=dfs; dups=y";
    let resp = gw
        .get_with(
            &format!("{path}?format=car"),
            &[(
                "Accept",
                "application/vnd.ipld.car; version=1; order=dfs; dups=y",
            )],
        )
        .await;
    let (roots, cids) = car_response(resp, d, "y", what).await;
    assert_eq!(roots, one(d), "{what}");
    assert_eq!(cids, with_dups, "{what}");

    // GET CAR with ?car-order=dfs takes precedence over order=unk in Accept
    // (IPIP-0523)
    let what = "?car-order=dfs with Accept order=unk";
    let resp = gw
        .get_with(
            &format!("{path}?format=car&car-order=dfs"),
            &[("Accept", "application/vnd.ipld.car; order=unk")],
        )
        .await;
    let (_, cids) = car_response(resp, d, "n", what).await;
    assert_eq!(cids, no_dups, "{what}");

    // GET CAR with ?car-dups=y takes precedence over dups=n in Accept
    let what = "?car-dups=y with Accept dups=n";
    let resp = gw
        .get_with(
            &format!("{path}?format=car&car-dups=y"),
            &[("Accept", "application/vnd.ipld.car; dups=n")],
        )
        .await;
    let (_, cids) = car_response(resp, d, "y", what).await;
    assert_eq!(cids, with_dups, "{what}");
}

/// TestTrustlessCarFormatPrecedence (IPIP-0523): `?format=` wins over a
/// different format in `Accept`.
#[tokio::test]
async fn test_trustless_car_format_precedence() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dag = Dag::open(RAW_BLOCK_CAR);
    let dir = dag.cid(&["dir"]);
    let dir_block = block_from_car(&fixture(RAW_BLOCK_CAR), &dir);

    // GET with format=car query parameter takes precedence over Accept header
    let what = "?format=car with Accept: application/vnd.ipld.raw";
    let resp = gw
        .get_with(
            &format!("/ipfs/{dir}?format=car"),
            &[("Accept", "application/vnd.ipld.raw")],
        )
        .await;
    assert_eq!(resp.status(), 200, "{what}");
    assert!(
        header(&resp, "content-type").contains("application/vnd.ipld.car"),
        "{what}"
    );

    // GET with format=raw query parameter takes precedence over Accept header
    let what = "?format=raw with Accept: application/vnd.ipld.car";
    let resp = gw
        .get_with(
            &format!("/ipfs/{dir}?format=raw"),
            &[("Accept", "application/vnd.ipld.car")],
        )
        .await;
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(
        header(&resp, "content-type"),
        "application/vnd.ipld.raw",
        "{what}"
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), dir_block, "{what}");
}

// ---------------------------------------------------------------------------
// t0118_gateway_car (legacy), on the trustless_gateway_car fixtures

#[tokio::test]
async fn t0118_gateway_car() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let two = Dag::open(TWO_FILES_CAR);
    let mixed = Dag::open(MIXED_FILES_CAR);
    let (s2, sm) = (&two.root, &mixed.root);
    let subdir = mixed.cid(&["subdir"]);
    let mb = mixed.cid(&["subdir", "multiblock.txt"]);

    // GET response for application/vnd.ipld.car: the CAR is named after the
    // path's terminal CID, its root is the request's root CID.
    let what = "Accept: application/vnd.ipld.car";
    let ascii = two.cid(&["subdir", "ascii.txt"]);
    let resp = gw
        .get_with(
            &format!("/ipfs/{s2}/subdir/ascii.txt"),
            &[("Accept", "application/vnd.ipld.car")],
        )
        .await;
    let (roots, cids) = car_response(resp, &ascii, "n", what).await;
    assert_eq!(roots, one(s2), "{what}");
    assert_eq!(
        cids,
        vec![s2.clone(), two.cid(&["subdir"]), ascii],
        "{what}"
    );

    // ?format=car&dag-scope=block|entity|all on a file in a directory.
    let scopes = [
        ("block", vec![sm.clone(), subdir.clone(), mb.clone()]),
        (
            "entity",
            concat(&[
                &[sm.clone(), subdir.clone(), mb.clone()],
                &mixed.descendants(&mb),
            ]),
        ),
        (
            "all",
            concat(&[
                &[sm.clone(), subdir.clone(), mb.clone()],
                &mixed.descendants(&mb),
            ]),
        ),
    ];
    for (scope, expected) in scopes {
        let what = format!("dag-scope={scope}");
        let resp = gw
            .get(&format!(
                "/ipfs/{sm}/subdir/multiblock.txt?format=car&dag-scope={scope}"
            ))
            .await;
        let (roots, cids) = car_response(resp, &mb, "n", &what).await;
        assert_eq!(roots, one(sm), "{what}");
        assert_eq!(cids, expected, "{what}");
    }

    // GET with ?format=car returns same response as dag-scope=all.
    let all = gw
        .get(&format!("/ipfs/{sm}?format=car&dag-scope=all"))
        .await;
    let (_, all_cids) = car_response(all, sm, "n", "dag-scope=all of the root").await;
    assert_eq!(all_cids, concat(&[&one(sm), &mixed.descendants(sm)]));
    let default = gw.get(&format!("/ipfs/{sm}?format=car")).await;
    let (roots, default_cids) = car_response(default, sm, "n", "no dag-scope").await;
    assert_eq!(roots, one(sm));
    assert_eq!(default_cids, all_cids);
}
