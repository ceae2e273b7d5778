// Covers 80 of 80 path_gateway_dag cases of gateway-conformance v0.13 (TestGatewayJsonCbor 3, TestCodecMismatchReturns406 6,
// TestPlainCodec 18, TestPathing 6, TestNativeDag 39, TestGatewayJSONCborAndIPNS 8 through the fixture IPNS records).
// The legacy suite's conversion cases (TestDagPbConversion 12, the dag-* reading of plain codecs 6, dag-cbor to
// dag-json 3, the v0.9 HEAD ?format=dag-json of the cbor row) run on a gateway with allow_codec_conversion = true.
// Covers 50 of 50 t0123_gateway_json_cbor cases (legacy), folded into the same tests (its conversions in the
// allow_codec_conversion tests); its 4 no-op cases
// want Content-Type exactly `text/plain`, where the newer suite wants it to contain `text/plain`:
// those follow the newer file.
//
//! IPLD codecs on the path gateway (dag-json, dag-cbor, json, cbor), as the
//! gateway-conformance suite checks them: every test starts the gateway on
//! the conformance fixtures and talks to it over HTTP. Expected bodies are
//! computed from the fixture blocks: dag-json is compared as JSON values,
//! dag-cbor byte for byte.

mod common;

use std::path::PathBuf;

use cid::Cid;
use common::{block_from_car, header, parse_car, TestGateway};
use ipld_core::ipld::Ipld;
use serde_json::Value;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
const JSON: u64 = 0x0200;
const DAG_JSON: u64 = 0x0129;

const JSON_CBOR_CAR: &str = "path_gateway_dag/gateway-json-cbor.car";
const IMMUTABLE: &str = "public, max-age=29030400, immutable";
const REMAINDER_NOT_IMPLEMENTED: &str =
    "reading IPLD Kinds other than Links (CBOR Tag 42) is not implemented";

fn fixture(name: &str) -> PathBuf {
    common::fixtures().expect("fixtures are present").join(name)
}

/// The root CID of a fixture CAR and its block.
fn car_root(name: &str) -> (Cid, Vec<u8>) {
    let (roots, _) = parse_car(&std::fs::read(fixture(name)).unwrap());
    let block = block_from_car(&fixture(name), &roots[0].to_string());
    (roots[0], block)
}

/// `MustGetNode(path…)` in a fixture of plain UnixFS directories.
fn node_at(name: &str, path: &[&str]) -> (Cid, Vec<u8>) {
    path.iter().fold(car_root(name), |(cid, block), segment| {
        let node = ipld_dagpb::PbNode::from_bytes(block.into()).unwrap();
        let link = node
            .links
            .into_iter()
            .find(|link| link.name.as_deref() == Some(*segment))
            .unwrap_or_else(|| panic!("no link {segment} in {cid}"));
        (
            link.cid,
            block_from_car(&fixture(name), &link.cid.to_string()),
        )
    })
}

/// The IPLD data model of a block, as the suite's `Formatted` sees it: the
/// dag-pb logical form, raw bytes, or the decoded (dag-)cbor.
fn data_model(cid: &Cid, block: &[u8]) -> Ipld {
    match cid.codec() {
        RAW => Ipld::Bytes(block.to_vec()),
        DAG_PB => {
            let node = ipld_dagpb::PbNode::from_bytes(block.to_vec().into()).unwrap();
            let links = node
                .links
                .into_iter()
                .map(|link| {
                    let mut entry = std::collections::BTreeMap::from([(
                        "Hash".to_string(),
                        Ipld::Link(link.cid),
                    )]);
                    if let Some(name) = link.name {
                        entry.insert("Name".into(), Ipld::String(name));
                    }
                    if let Some(size) = link.size {
                        entry.insert("Tsize".into(), Ipld::Integer(size.into()));
                    }
                    Ipld::Map(entry)
                })
                .collect();
            let mut map =
                std::collections::BTreeMap::from([("Links".to_string(), Ipld::List(links))]);
            if let Some(data) = node.data {
                map.insert("Data".into(), Ipld::Bytes(data.to_vec()));
            }
            Ipld::Map(map)
        }
        _ => serde_ipld_dagcbor::from_slice(block).unwrap(),
    }
}

/// An IPLD value as the JSON value of its dag-json form.
fn dag_json_value(ipld: &Ipld) -> Value {
    match ipld {
        Ipld::Null => Value::Null,
        Ipld::Bool(b) => Value::Bool(*b),
        Ipld::Integer(i) => Value::from(i64::try_from(*i).unwrap()),
        Ipld::Float(f) => Value::from(*f),
        Ipld::String(s) => Value::String(s.clone()),
        Ipld::Bytes(bytes) => {
            let base64 = multibase::encode(multibase::Base::Base64, bytes);
            serde_json::json!({ "/": { "bytes": base64[1..] } })
        }
        Ipld::List(items) => Value::Array(items.iter().map(dag_json_value).collect()),
        Ipld::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), dag_json_value(v)))
                .collect(),
        ),
        Ipld::Link(cid) => serde_json::json!({ "/": cid.to_string() }),
    }
}

/// `Formatted("dag-json")`, as a JSON value.
fn formatted_dag_json(cid: &Cid, block: &[u8]) -> Value {
    match cid.codec() {
        JSON | DAG_JSON => serde_json::from_slice(block).unwrap(),
        _ => dag_json_value(&data_model(cid, block)),
    }
}

/// `Formatted("dag-cbor")`: the canonical dag-cbor bytes.
fn formatted_dag_cbor(cid: &Cid, block: &[u8]) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(&data_model(cid, block)).unwrap()
}

fn assert_json_eq(body: &[u8], expected: &Value, what: &str) {
    let actual: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
    assert_eq!(&actual, expected, "{what}");
}

/// The suite's per-row payload check: JSON-equal for json rows, exact
/// bytes for cbor rows.
fn assert_formatted(fmt: &str, body: &[u8], cid: &Cid, block: &[u8], what: &str) {
    match fmt {
        "json" => assert_json_eq(body, &formatted_dag_json(cid, block), what),
        _ => assert_eq!(body, formatted_dag_cbor(cid, block), "{what}"),
    }
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A CID that is in no fixture.
fn missing_cid() -> Cid {
    use sha2::Digest;
    let seed = format!("sluice missing block {:?}", std::time::SystemTime::now());
    let digest = sha2::Sha256::digest(seed.as_bytes());
    Cid::new_v1(
        0x71,
        cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap(),
    )
}

fn allow_conversion(config: &mut sluice::config::Config) {
    config.gateway.allow_codec_conversion = true;
}

async fn body(resp: reqwest::Response) -> Vec<u8> {
    resp.bytes().await.unwrap().to_vec()
}

/// A base check the range cases repeat on every response.
type BaseCheck<'a> = &'a dyn Fn(&reqwest::Response, &str);

fn no_base_check(_: &reqwest::Response, _: &str) {}

/// RangeTestTransform: the single-range (`bytes=7-9`) and multi-range
/// (`bytes=7-9,1-3`) cases derived from one request, each with the base
/// checks. `full` is the whole body, `content_type` its exact type.
async fn check_range_cases(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    full: &[u8],
    content_type: &str,
    base: BaseCheck<'_>,
    name: &str,
) {
    let len = full.len();

    // - single range: 206 with bytes 7-9, or 200 with everything.
    let what = format!("{name} - single range");
    let mut single = headers.to_vec();
    single.extend([("Content-Type", content_type), ("Range", "bytes=7-9")]);
    let resp = gw.get_with(path, &single).await;
    base(&resp, &what);
    match resp.status().as_u16() {
        206 => {
            assert_eq!(
                header(&resp, "content-range"),
                format!("bytes 7-9/{len}"),
                "{what}"
            );
            assert_eq!(body(resp).await, full[7..=9], "{what}");
        }
        200 => assert_eq!(body(resp).await, full, "{what}"),
        other => panic!("{what}: status {other}"),
    }

    // - multi range: everything, the first range alone, or both as
    // multipart/byteranges (every part checked, not just the first).
    let what = format!("{name} - multi range");
    let mut multi = headers.to_vec();
    multi.push(("Range", "bytes=7-9,1-3"));
    let resp = gw.get_with(path, &multi).await;
    base(&resp, &what);
    let got_type = header(&resp, "content-type");
    let got_range = header(&resp, "content-range");
    let status = resp.status().as_u16();
    let body = body(resp).await;
    match status {
        200 => {
            assert_eq!(got_type, content_type, "{what}");
            assert_eq!(body, full, "{what}");
        }
        206 if got_type.contains("multipart/byteranges") => {
            let type_line = format!("Content-Type: {content_type}");
            let first = format!("Content-Range: bytes 7-9/{len}");
            let second = format!("Content-Range: bytes 1-3/{len}");
            for part in [
                type_line.as_bytes(),
                first.as_bytes(),
                &full[7..=9],
                second.as_bytes(),
                &full[1..=3],
            ] {
                assert!(
                    contains_bytes(&body, part),
                    "{what}: multipart body lacks {:?}",
                    String::from_utf8_lossy(part)
                );
            }
        }
        206 => {
            assert_eq!(got_type, content_type, "{what}");
            assert_eq!(got_range, format!("bytes 7-9/{len}"), "{what}");
            assert_eq!(body, full[7..=9], "{what}");
        }
        other => panic!("{what}: status {other}"),
    }
}

/// IncludeRangeTests: the full request (200, the whole body), then the two
/// range cases.
async fn check_full_and_range_cases(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    full: &[u8],
    content_type: &str,
    base: BaseCheck<'_>,
    name: &str,
) {
    let what = format!("{name} - full request");
    let mut with_type = headers.to_vec();
    with_type.push(("Content-Type", content_type));
    let resp = gw.get_with(path, &with_type).await;
    base(&resp, &what);
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(body(resp).await, full, "{what}");
    check_range_cases(gw, path, headers, full, content_type, base, name).await;
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn test_gateway_json_cbor() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (t_json, data) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);
    let path = format!("/ipfs/{t_json}");

    // GET UnixFS file with JSON bytes is returned with application/json
    // Content-Type - without headers / - with headers (t0123: both with).
    for (what, headers) in [
        ("without headers", &[][..]),
        ("with headers", &[("Accept", "application/json")][..]),
    ] {
        let resp = gw.get_with(&path, headers).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(header(&resp, "content-type"), "application/json", "{what}");
        assert_eq!(body(resp).await, data, "{what}");
    }

    // GET raw block with JSON bytes prefers format over Accept header
    // (IPIP-0523: format=json wins over Accept: application/vnd.ipld.raw).
    let what = "?format=json with Accept: application/vnd.ipld.raw";
    let resp = gw
        .get_with(
            &format!("{path}?format=json"),
            &[("Accept", "application/vnd.ipld.raw")],
        )
        .await;
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(header(&resp, "content-type"), "application/json", "{what}");
    assert_eq!(body(resp).await, data, "{what}");
}

/// TestCodecMismatchReturns406 (IPIP-0524): a format that is not the
/// block's own codec is a 406 (the default, `allow_codec_conversion` off).
#[tokio::test]
async fn test_codec_mismatch_returns_406() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (file, _) = node_at(JSON_CBOR_CAR, &["ą", "ę", "file-źł.txt"]);
    let (dag_json, _) = car_root("path_gateway_dag/dag-json-traversal.car");
    let (dag_cbor, _) = car_root("path_gateway_dag/dag-cbor-traversal.car");
    let accept_dag_json = [("Accept", "application/vnd.ipld.dag-json")];
    for (what, path, headers) in [
        (
            "UnixFS (dag-pb) file with format=dag-json",
            format!("/ipfs/{file}?format=dag-json"),
            &[][..],
        ),
        (
            "UnixFS (dag-pb) file with format=dag-cbor",
            format!("/ipfs/{file}?format=dag-cbor"),
            &[][..],
        ),
        (
            "UnixFS (dag-pb) file with Accept: application/vnd.ipld.dag-json",
            format!("/ipfs/{file}"),
            &accept_dag_json[..],
        ),
        (
            "DAG-JSON block with format=dag-cbor",
            format!("/ipfs/{dag_json}?format=dag-cbor"),
            &[][..],
        ),
        (
            "DAG-CBOR block with format=dag-json",
            format!("/ipfs/{dag_cbor}?format=dag-json"),
            &[][..],
        ),
        (
            "DAG-CBOR block with Accept: application/vnd.ipld.dag-json",
            format!("/ipfs/{dag_cbor}"),
            &accept_dag_json[..],
        ),
    ] {
        assert_eq!(gw.get_with(&path, headers).await.status(), 406, "{what}");
    }
}

/// The legacy TestDagPbConversion (gateway-conformance up to v0.9, t0123):
/// UnixFS converted to dag-json / dag-cbor. Since v0.10 (IPIP-0524) these
/// are 406s by default; they run here on a gateway with
/// `[gateway] allow_codec_conversion = true`, the opt-in that brings them back.
#[tokio::test]
async fn test_dag_pb_conversion_when_allowed() {
    let Some(gw) = TestGateway::with_fixtures_and(allow_conversion).await else {
        return;
    };
    let (dir, dir_block) = car_root(JSON_CBOR_CAR);
    let (file, file_block) = node_at(JSON_CBOR_CAR, &["ą", "ę", "file-źł.txt"]);
    assert_eq!(file.codec(), RAW);

    for (fmt, disposition) in [("json", "inline"), ("cbor", "attachment")] {
        let dag_type = format!("application/vnd.ipld.dag-{fmt}");
        let plain_type = format!("application/{fmt}");
        let check_payload = |body: &[u8], cid: &Cid, block: &[u8], what: &str| match fmt {
            "json" => assert_json_eq(body, &formatted_dag_json(cid, block), what),
            _ => assert_eq!(body, formatted_dag_cbor(cid, block), "{what}"),
        };

        // GET UnixFS file / directory as DAG-{fmt} with format=dag-{fmt}
        // converts to the expected Content-Type
        for (cid, block) in [(&file, &file_block), (&dir, &dir_block)] {
            let what = format!("{cid}?format=dag-{fmt}");
            let resp = gw.get(&format!("/ipfs/{cid}?format=dag-{fmt}")).await;
            assert_eq!(resp.status(), 200, "{what}");
            assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
            assert!(
                !header(&resp, "content-type").contains(&plain_type),
                "{what}"
            );
            assert!(
                header(&resp, "content-disposition")
                    .contains(&format!("{disposition}; filename=\"{cid}.{fmt}\"")),
                "{what}: {}",
                header(&resp, "content-disposition")
            );
            check_payload(&body(resp).await, cid, block, &what);
        }

        // GET UnixFS as DAG-{fmt} with 'Accept: application/vnd.ipld.dag-{fmt}'
        // converts to the expected Content-Type
        let what = format!("Accept: {dag_type}");
        let resp = gw
            .get_with(&format!("/ipfs/{file}"), &[("Accept", &dag_type)])
            .await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
        assert!(
            header(&resp, "content-disposition")
                .contains(&format!("{disposition}; filename=\"{file}.{fmt}\"")),
            "{what}"
        );
        check_payload(&body(resp).await, &file, &file_block, &what);

        // ... with 'Accept: foo, application/vnd.ipld.dag-{fmt},bar'
        let accept = format!("foo, {dag_type},bar");
        let resp = gw
            .get_with(&format!("/ipfs/{file}"), &[("Accept", &accept)])
            .await;
        assert_eq!(resp.status(), 200, "Accept: {accept}");
        assert_eq!(header(&resp, "content-type"), dag_type, "Accept: {accept}");

        // GET UnixFS with format={fmt} / 'Accept: application/{fmt}' (not
        // dag-{fmt}) is no-op (no conversion): the file as it is.
        for (what, path, headers) in [
            (
                format!("?format={fmt}"),
                format!("/ipfs/{file}?format={fmt}"),
                vec![],
            ),
            (
                format!("Accept: {plain_type}"),
                format!("/ipfs/{file}"),
                vec![("Accept", plain_type.as_str())],
            ),
        ] {
            let resp = gw.get_with(&path, &headers).await;
            assert_eq!(resp.status(), 200, "{what}");
            let content_type = header(&resp, "content-type");
            assert!(
                content_type.contains("text/plain"),
                "{what}: {content_type}"
            );
            assert!(
                !content_type.contains(&plain_type),
                "{what}: {content_type}"
            );
            assert!(!content_type.contains(&dag_type), "{what}: {content_type}");
            assert_eq!(body(resp).await, file_block, "{what}");
        }
    }
}

#[tokio::test]
async fn test_plain_codec() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };

    for (fmt, disposition) in [("json", "inline"), ("cbor", "attachment")] {
        let (plain, plain_block) = car_root(&format!("path_gateway_dag/plain-{fmt}.car"));
        let (pod, _) = car_root(&format!(
            "path_gateway_dag/plain-cbor-that-can-be-dag-{fmt}.car"
        ));
        let plain_type = format!("application/{fmt}");
        let plain_disposition = format!("{disposition}; filename=\"{plain}.{fmt}\"");
        // Every plain response: its Content-Disposition, and (t0123) its
        // Content-Type.
        let plain_checks = |resp: &reqwest::Response, what: &str| {
            assert_eq!(
                header(resp, "content-disposition"),
                plain_disposition,
                "{what}"
            );
            if resp.status() == 200 {
                assert_eq!(header(resp, "content-type"), plain_type, "{what}");
            }
        };

        // GET plain {fmt} codec without Accept or format= / with ?format= /
        // with Accept has expected Content-Type and body as-is (each: full,
        // single range, multi range).
        let path = format!("/ipfs/{plain}");
        let with_query = format!("/ipfs/{plain}?format={fmt}");
        for (name, path, headers) in [
            ("without Accept or format=", &path, vec![]),
            ("with ?format=", &with_query, vec![]),
            ("with Accept", &path, vec![("Accept", plain_type.as_str())]),
        ] {
            let name = format!("GET plain {fmt} codec {name}");
            check_full_and_range_cases(
                &gw,
                path,
                &headers,
                &plain_block,
                &plain_type,
                &plain_checks,
                &name,
            )
            .await;
        }

        // Asking a plain {fmt} block for dag-{fmt} is a conversion: 406 by
        // default (the case below is the legacy suite's, with conversions on).
        let refused = gw.get(&format!("/ipfs/{pod}?format=dag-{fmt}")).await;
        assert_eq!(refused.status(), 406, "{pod}?format=dag-{fmt}");
    }
}

/// The legacy TestPlainCodec cases (gateway-conformance up to v0.9) that
/// read a plain json / cbor block as its dag-* variant: conversions, so run
/// with `allow_codec_conversion = true`.
#[tokio::test]
async fn test_plain_codec_as_dag_when_allowed() {
    let Some(gw) = TestGateway::with_fixtures_and(allow_conversion).await else {
        return;
    };
    for (fmt, disposition) in [("json", "inline"), ("cbor", "attachment")] {
        let (pod, pod_block) = car_root(&format!(
            "path_gateway_dag/plain-cbor-that-can-be-dag-{fmt}.car"
        ));
        let dag_type = format!("application/vnd.ipld.dag-{fmt}");
        let pod_disposition = format!("{disposition}; filename=\"{pod}.{fmt}\"");
        // GET plain {fmt} codec with format=dag-{fmt} interprets {fmt} as
        // dag-* variant and produces expected Content-Type and body.
        let what = format!("{pod}?format=dag-{fmt}");
        let dag_path = format!("/ipfs/{pod}?format=dag-{fmt}");
        let resp = gw.get(&dag_path).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            header(&resp, "content-disposition"),
            pod_disposition,
            "{what}"
        );
        assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
        let dag_body = body(resp).await;
        assert_formatted(fmt, &dag_body, &pod, &pod_block, &what);

        // ... with single range request (single and multi range), over the
        // body just served.
        let pod_checks = |resp: &reqwest::Response, what: &str| {
            assert_eq!(
                header(resp, "content-disposition"),
                pod_disposition,
                "{what}"
            );
        };
        let name = format!("GET plain {fmt} codec with format=dag-{fmt}");
        check_range_cases(
            &gw,
            &dag_path,
            &[],
            &dag_body,
            &dag_type,
            &pod_checks,
            &name,
        )
        .await;
    }
}

#[tokio::test]
async fn test_pathing() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };

    for fmt in ["json", "cbor"] {
        let (root, _) = car_root(&format!("path_gateway_dag/dag-{fmt}-traversal.car"));

        // GET DAG-{fmt} traversal returns 501 if there is path remainder
        let what = format!("dag-{fmt} /foo");
        let resp = gw.get(&format!("/ipfs/{root}/foo?format=dag-{fmt}")).await;
        assert_eq!(resp.status(), 501, "{what}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(REMAINDER_NOT_IMPLEMENTED), "{what}: {text}");

        // GET DAG-{fmt} traverses multiple links (each row in its own codec,
        // as v0.13 asks; the legacy suite asked dag-json of both)
        let what = format!("dag-{fmt} /foo/link/bar");
        let resp = gw
            .get(&format!("/ipfs/{root}/foo/link/bar?format=dag-{fmt}"))
            .await;
        assert_eq!(resp.status(), 200, "{what}");
        let got = body(resp).await;
        match fmt {
            "json" => assert_json_eq(
                &got,
                &serde_json::json!({ "hello": "this is not a link" }),
                &what,
            ),
            // The suite's bytes: dag-cbor of {"hello": "this is not a link"}.
            _ => {
                let mut expected = vec![0xa1, 0x65];
                expected.extend(b"hello");
                expected.push(0x72);
                expected.extend(b"this is not a link");
                assert_eq!(got, expected, "{what}");
            }
        }

        // GET DAG-{fmt} returns 404 on non-existing link
        let resp = gw.get(&format!("/ipfs/{root}/foo/i-do-not-exist")).await;
        assert_eq!(resp.status(), 404, "dag-{fmt} /foo/i-do-not-exist");
    }
}

#[tokio::test]
async fn test_native_dag() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let missing = missing_cid();

    for (fmt, disposition) in [("json", "inline"), ("cbor", "attachment")] {
        let (t, block) = car_root(&format!("path_gateway_dag/dag-{fmt}-traversal.car"));
        let dag_type = format!("application/vnd.ipld.dag-{fmt}");
        let plain_type = format!("application/{fmt}");
        let path = format!("/ipfs/{t}");
        let accept_dag = [("Accept", dag_type.as_str())];

        // GET from /ipfs without explicit format / with format=dag-{fmt} /
        // with Accept: application/vnd.ipld.dag-{fmt}: the same payload as
        // the raw block.
        for (what, path, headers) in [
            ("no format", path.clone(), &[][..]),
            ("format=dag", format!("{path}?format=dag-{fmt}"), &[][..]),
            ("Accept dag", path.clone(), &accept_dag[..]),
        ] {
            let what = format!("{fmt}: {what}");
            let resp = gw.get_with(&path, headers).await;
            assert_eq!(resp.status(), 200, "{what}");
            assert_formatted(fmt, &body(resp).await, &t, &block, &what);
        }

        // GET with format={fmt} / Accept: application/{fmt} returns the same
        // payload but with plain Content-Type
        for (what, path, headers) in [
            ("format=plain", format!("{path}?format={fmt}"), vec![]),
            (
                "Accept plain",
                path.clone(),
                vec![("Accept", plain_type.as_str())],
            ),
        ] {
            let what = format!("{fmt}: {what}");
            let resp = gw.get_with(&path, &headers).await;
            assert_eq!(resp.status(), 200, "{what}");
            assert_eq!(header(&resp, "content-type"), plain_type, "{what}");
            assert_formatted(fmt, &body(resp).await, &t, &block, &what);
        }

        // GET response for application/vnd.ipld.dag-{fmt} has expected Content-Type
        let what = format!("{fmt}: response headers");
        let resp = gw.get_with(&path, &accept_dag).await;
        assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
        assert_eq!(
            header(&resp, "content-length"),
            block.len().to_string(),
            "{what}"
        );
        assert_eq!(
            header(&resp, "content-disposition"),
            format!("{disposition}; filename=\"{t}.{fmt}\""),
            "{what}"
        );
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{what}");

        // GET for application/vnd.ipld.dag-{fmt} with query filename
        // includes Content-Disposition with custom filename
        let resp = gw
            .get_with(&format!("{path}?filename=foobar.{fmt}"), &accept_dag)
            .await;
        assert_eq!(
            header(&resp, "content-disposition"),
            format!("{disposition}; filename=\"foobar.{fmt}\""),
            "{fmt}: ?filename"
        );

        // ... with ?download=true forces Content-Disposition: attachment
        let resp = gw
            .get_with(
                &format!("{path}?download=true&filename=foobar.{fmt}"),
                &accept_dag,
            )
            .await;
        assert_eq!(
            header(&resp, "content-disposition"),
            format!("attachment; filename=\"foobar.{fmt}\""),
            "{fmt}: ?download=true"
        );

        // Cache control HTTP headers
        let what = format!("{fmt}: caching headers");
        let resp = gw.get_with(&path, &accept_dag).await;
        assert_eq!(
            header(&resp, "etag"),
            format!("\"{t}.dag-{fmt}\""),
            "{what}"
        );
        assert_eq!(header(&resp, "x-ipfs-path"), path, "{what}");
        assert_eq!(header(&resp, "x-ipfs-roots"), t.to_string(), "{what}");
        assert_eq!(header(&resp, "cache-control"), IMMUTABLE, "{what}");

        // HEAD with no explicit format returns HTTP 200
        let what = format!("{fmt}: HEAD");
        let resp = gw.head_with(&path, &[]).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
        assert_eq!(
            header(&resp, "content-length"),
            block.len().to_string(),
            "{what}"
        );

        // HEAD with an explicit format returns HTTP 200 (v0.10+: the row's
        // own dag-{fmt}; the legacy suite asked dag-json of both rows, a
        // conversion for the cbor one, checked in
        // test_dag_cbor_conversion_when_allowed)
        let what = format!("{fmt}: HEAD ?format=dag-{fmt}");
        let resp = gw.head_with(&format!("{path}?format=dag-{fmt}"), &[]).await;
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            header(&resp, "etag"),
            format!("\"{t}.dag-{fmt}\""),
            "{what}"
        );
        assert_eq!(header(&resp, "content-type"), dag_type, "{what}");
        assert_eq!(
            header(&resp, "content-length"),
            block.len().to_string(),
            "{what}"
        );

        // HEAD with only-if-cached for missing block returns HTTP 412
        let resp = gw
            .head_with(
                &format!("/ipfs/{missing}"),
                &[("Cache-Control", "only-if-cached")],
            )
            .await;
        assert_eq!(
            resp.status(),
            412,
            "{fmt}: HEAD only-if-cached of {missing}"
        );

        // GET on /ipfs with Accept: text/html returns HTML (dag-index-html)
        let what = format!("{fmt}: Accept text/html");
        let resp = gw
            .get_with(&format!("{path}/"), &[("Accept", "text/html")])
            .await;
        assert!(header(&resp, "etag").contains("DagIndex-"), "{what}");
        assert!(
            header(&resp, "content-type").contains("text/html"),
            "{what}"
        );
        assert!(
            resp.headers().get("content-disposition").is_none(),
            "{what}"
        );
        assert!(resp.headers().get("cache-control").is_none(), "{what}");
        assert!(resp.text().await.unwrap().contains("</html>"), "{what}");

        // GET on /ipfs with no explicit header / with dag content headers /
        // with non-dag content headers (single and multi range each)
        let slash = format!("{path}/");
        for (name, headers, content_type) in [
            ("no explicit header", vec![], &dag_type),
            (
                "dag content headers",
                vec![("Accept", dag_type.as_str())],
                &dag_type,
            ),
            (
                "non-dag content headers",
                vec![("Accept", plain_type.as_str())],
                &plain_type,
            ),
        ] {
            let name = format!("{fmt}: GET on /ipfs with {name}");
            check_range_cases(
                &gw,
                &slash,
                &headers,
                &block,
                content_type,
                &no_base_check,
                &name,
            )
            .await;
        }
    }

    // GET DAG-CBOR with Accept: text/html returns HTML preview (v0.10+;
    // the legacy "Convert application/vnd.ipld.dag-cbor to text/html", with
    // its range cases: a stable page, so that ranges of it can be checked
    // against the first response)
    let (cbor, _) = car_root("path_gateway_dag/dag-cbor-traversal.car");
    let path = format!("/ipfs/{cbor}/");
    let accept_html = [("Accept", "text/html")];
    let html = body(gw.get_with(&path, &accept_html).await).await;
    assert!(
        String::from_utf8_lossy(&html).contains("</html>"),
        "dag-cbor as text/html"
    );
    let name = "Convert dag-cbor to text/html with range request includes correct bytes";
    check_range_cases(
        &gw,
        &path,
        &accept_html,
        &html,
        "text/html",
        &no_base_check,
        name,
    )
    .await;
}

/// The legacy TestNativeDag cases (gateway-conformance up to v0.9) that
/// converted dag-cbor to dag-json: with `allow_codec_conversion = true`.
#[tokio::test]
async fn test_dag_cbor_conversion_when_allowed() {
    let Some(gw) = TestGateway::with_fixtures_and(allow_conversion).await else {
        return;
    };
    let (cbor, cbor_block) = car_root("path_gateway_dag/dag-cbor-traversal.car");

    // HEAD {cbor} with an explicit DAG-JSON format returns HTTP 200, with
    // the Content-Length of the body a GET gets.
    let what = "cbor: HEAD ?format=dag-json";
    let resp = gw
        .head_with(&format!("/ipfs/{cbor}?format=dag-json"), &[])
        .await;
    assert_eq!(resp.status(), 200, "{what}");
    assert_eq!(
        header(&resp, "etag"),
        format!("\"{cbor}.dag-json\""),
        "{what}"
    );
    assert_eq!(
        header(&resp, "content-type"),
        "application/vnd.ipld.dag-json",
        "{what}"
    );
    let content_length = header(&resp, "content-length");
    let get_body = body(gw.get(&format!("/ipfs/{cbor}?format=dag-json")).await).await;
    assert_eq!(content_length, get_body.len().to_string(), "{what}");

    // Convert application/vnd.ipld.dag-cbor to application/vnd.ipld.dag-json
    let path = format!("/ipfs/{cbor}/");
    let accept_json = [("Accept", "application/vnd.ipld.dag-json")];
    let converted = body(gw.get_with(&path, &accept_json).await).await;
    assert_json_eq(
        &converted,
        &formatted_dag_json(&cbor, &cbor_block),
        "dag-cbor as dag-json",
    );
    let name = "Convert dag-cbor to dag-json with range request includes correct bytes";
    check_range_cases(
        &gw,
        &path,
        &accept_json,
        &converted,
        "application/vnd.ipld.dag-json",
        &no_base_check,
        name,
    )
    .await;
}

/// TestGatewayJSONCborAndIPNS: the same DAG-JSON and DAG-CBOR roots as
/// above, through the IPNS names of the fixture records; the payload is the
/// same as under `/ipfs/`, the caching headers are the name's.
#[tokio::test]
async fn test_gateway_json_cbor_and_ipns() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    for (format, name) in [
        (
            "json",
            "k51qzi5uqu5dhjghbwdvbo6mi40htrq6e2z4pwgp15pgv3ho1azvidttzh8yy2",
        ),
        (
            "cbor",
            "k51qzi5uqu5dghjous0agrwavl8vzl64xckoqzwqeqwudfr74kfd11zcyk3b7l",
        ),
    ] {
        let (cid, _) = car_root(&format!("path_gateway_dag/dag-{format}-traversal.car"));
        // GET {name} from /ipns without explicit format returns the same payload as /ipfs.
        let ipfs = gw.get_with(&format!("/ipfs/{cid}"), &[]).await;
        let ipns = gw.get_with(&format!("/ipns/{name}"), &[]).await;
        assert_eq!(ipns.status(), 200, "{format}: /ipns/ without format");
        assert_eq!(body(ipfs).await, body(ipns).await, "{format}: same payload");
        // ... with explicit format returns the same payload as /ipfs.
        let query = format!("?format=dag-{format}");
        let ipfs = gw.get_with(&format!("/ipfs/{cid}{query}"), &[]).await;
        let ipns = gw.get_with(&format!("/ipns/{name}{query}"), &[]).await;
        assert_eq!(ipns.status(), 200, "{format}: /ipns/ with format");
        assert_eq!(
            body(ipfs).await,
            body(ipns).await,
            "{format}: same payload, format="
        );
        // ... with explicit application/vnd.ipld.dag-{format} has expected headers.
        let media = format!("application/vnd.ipld.dag-{format}");
        let resp = gw
            .get_with(&format!("/ipns/{name}"), &[("Accept", &media)])
            .await;
        assert_eq!(header(&resp, "content-type"), media);
        assert_eq!(header(&resp, "etag"), format!("\"{cid}.dag-{format}\""));
        assert!(!header(&resp, "x-ipfs-path").is_empty());
        assert!(!header(&resp, "x-ipfs-roots").is_empty());
        assert!(
            !header(&resp, "cache-control").contains("immutable"),
            "a name is not immutable"
        );
        // ... on /ipns with Accept: text/html returns HTML (dag-index-html).
        let resp = gw
            .get_with(&format!("/ipns/{name}/"), &[("Accept", "text/html")])
            .await;
        assert!(header(&resp, "etag").contains("DagIndex-"), "{format}");
        assert!(header(&resp, "content-type").contains("text/html"));
        assert!(header(&resp, "content-disposition").is_empty());
        assert!(header(&resp, "cache-control").is_empty());
        assert!(String::from_utf8_lossy(&body(resp).await).contains("</html>"));
    }
}
