//! The gateway specs as they stand today (IPIP-0523, IPIP-0524,
//! gateway-conformance v0.13), driven over HTTP against the conformance
//! fixtures: `?format=` and `car-*` query parameters win over `Accept`; no
//! codec conversion unless `[gateway] allow_codec_conversion`, with a 406
//! that names what exists; `Service-Worker: script` on a content root is a
//! 400; the `?uri=` router; 304s with `Etag` and `Cache-Control`; `Vary:
//! Accept`; and the landing page at `/`. Expected bytes come from the
//! fixture CARs.

mod common;

use std::path::PathBuf;

use cid::Cid;
use common::{block_from_car, car_cids, header, header_lines, parse_car, TestGateway};

const JSON_CBOR_CAR: &str = "path_gateway_dag/gateway-json-cbor.car";
const DAG_JSON_CAR: &str = "path_gateway_dag/dag-json-traversal.car";
const DAG_CBOR_CAR: &str = "path_gateway_dag/dag-cbor-traversal.car";
const DUPLICATE_FILES_CAR: &str = "trustless_gateway_car/dir-with-duplicate-files.car";
/// The fixture IPNS name whose record points at the dag-json root.
const DAG_JSON_NAME: &str = "k51qzi5uqu5dhjghbwdvbo6mi40htrq6e2z4pwgp15pgv3ho1azvidttzh8yy2";

fn fixture(name: &str) -> PathBuf {
    common::fixtures().expect("fixtures are present").join(name)
}

/// The root CID of a fixture CAR and its block.
fn car_root(name: &str) -> (Cid, Vec<u8>) {
    let (roots, _) = parse_car(&std::fs::read(fixture(name)).unwrap());
    (
        roots[0],
        block_from_car(&fixture(name), &roots[0].to_string()),
    )
}

/// The node at `path` under a fixture's root, through named dag-pb links.
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

fn vary_names_accept(response: &reqwest::Response) -> bool {
    header_lines(response, "vary")
        .iter()
        .flat_map(|line| line.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("accept"))
}

/// The 406 of a conversion: its text says what was asked, what the node
/// is and how to get it.
async fn assert_refused(response: reqwest::Response, asked: &str, what: &str) {
    assert_eq!(response.status(), 406, "{what}");
    assert!(vary_names_accept(&response), "{what}: Vary");
    let text = response.text().await.unwrap();
    let refusal = format!("not converted to {asked}");
    for part in [
        refusal.as_str(),
        "allow_codec_conversion",
        "?format=raw",
        "?format=car",
    ] {
        assert!(text.contains(part), "{what}: {part:?} not in {text:?}");
    }
}

/// TestCodecMismatchReturns406 and the rest of IPIP-0524: a format that is
/// not the block's own codec is a 406 naming the representations that exist;
/// raw blocks and CARs of the same nodes are served.
#[tokio::test]
async fn codec_mismatch_is_406_naming_what_exists() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (file, file_block) = node_at(JSON_CBOR_CAR, &["ą", "ę", "file-źł.txt"]);
    let (dag_json, dag_json_block) = car_root(DAG_JSON_CAR);
    let (dag_cbor, dag_cbor_block) = car_root(DAG_CBOR_CAR);

    // UnixFS as dag-json / dag-cbor, by ?format= and by Accept.
    for (path, headers, asked) in [
        (format!("/ipfs/{file}?format=dag-json"), vec![], "dag-json"),
        (format!("/ipfs/{file}?format=dag-cbor"), vec![], "dag-cbor"),
        (
            format!("/ipfs/{file}"),
            vec![("Accept", "application/vnd.ipld.dag-json")],
            "dag-json",
        ),
    ] {
        let response = gw.get_with(&path, &headers).await;
        let what = format!("{path} {headers:?}");
        assert_refused(response, asked, &what).await;
    }
    let text = gw
        .get(&format!("/ipfs/{file}?format=dag-json"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("the file itself (no format)"), "{text}");
    assert!(text.contains(&file.to_string()), "{text}");

    // dag-json <-> dag-cbor, and (IPIP-0524's own example) plain cbor of a
    // dag-json block, plain json of a dag-cbor one.
    for (cid, path, headers, asked) in [
        (dag_json, "?format=dag-cbor", vec![], "dag-cbor"),
        (dag_json, "?format=cbor", vec![], "cbor"),
        (dag_cbor, "?format=dag-json", vec![], "dag-json"),
        (dag_cbor, "?format=json", vec![], "json"),
        (
            dag_cbor,
            "",
            vec![("Accept", "application/vnd.ipld.dag-json")],
            "dag-json",
        ),
    ] {
        let response = gw.get_with(&format!("/ipfs/{cid}{path}"), &headers).await;
        let what = format!("{cid}{path} {headers:?}");
        assert_refused(response, asked, &what).await;
    }
    let text = gw
        .get(&format!("/ipfs/{dag_json}?format=dag-cbor"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("application/vnd.ipld.dag-json (?format=dag-json)"),
        "the block's own codec is offered: {text}"
    );

    // HEAD is refused the same way, without a body.
    let head = gw
        .head_with(&format!("/ipfs/{dag_cbor}?format=dag-json"), &[])
        .await;
    assert_eq!(head.status(), 406);

    // ?format=raw and ?format=car of every one of them are still served.
    for (cid, block) in [
        (file, &file_block),
        (dag_json, &dag_json_block),
        (dag_cbor, &dag_cbor_block),
    ] {
        let raw = gw.get(&format!("/ipfs/{cid}?format=raw")).await;
        common::assert_body(raw, block).await;
        let car = gw.get(&format!("/ipfs/{cid}?format=car")).await;
        assert_eq!(car.status(), 200, "{cid} as CAR");
        let cids = car_cids(&car.bytes().await.unwrap());
        assert_eq!(cids.first(), Some(&cid.to_string()), "{cid} as CAR");
    }
    // ... and each block in its own codec, as stored.
    let own = gw.get(&format!("/ipfs/{dag_json}?format=dag-json")).await;
    common::assert_body(own, &dag_json_block).await;
    let own = gw.get(&format!("/ipfs/{dag_cbor}?format=dag-cbor")).await;
    common::assert_body(own, &dag_cbor_block).await;
}

/// `[gateway] allow_codec_conversion = true` brings the conversions back.
#[tokio::test]
async fn conversions_are_served_when_allowed() {
    let Some(gw) =
        TestGateway::with_fixtures_and(|c| c.gateway.allow_codec_conversion = true).await
    else {
        return;
    };
    let (file, _) = node_at(JSON_CBOR_CAR, &["ą", "ę", "file-źł.txt"]);
    let (dag_cbor, dag_cbor_block) = car_root(DAG_CBOR_CAR);

    let response = gw.get(&format!("/ipfs/{file}?format=dag-json")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/vnd.ipld.dag-json"
    );
    let converted: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(converted.is_object(), "{converted}");

    // dag-cbor as dag-json: the same data model, compared as JSON values
    // (decoded from the fixture block independently of the gateway's
    // encoder).
    let response = gw.get(&format!("/ipfs/{dag_cbor}?format=dag-json")).await;
    assert_eq!(response.status(), 200);
    let converted: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let model: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(&dag_cbor_block).unwrap();
    let ipld_core::ipld::Ipld::Map(fields) = model else {
        panic!("the fixture root is a map");
    };
    let object = converted.as_object().expect("a JSON object");
    let mut keys: Vec<_> = object.keys().cloned().collect();
    keys.sort();
    let mut expected: Vec<_> = fields.keys().cloned().collect();
    expected.sort();
    assert_eq!(keys, expected);
}

/// IPIP-0523: `?format=` wins over `Accept` (TestTrustlessCarFormatPrecedence,
/// TestGatewayJsonCbor's "prefers format over Accept header").
#[tokio::test]
async fn format_query_wins_over_accept() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let raw_car = fixture("gateway-raw-block.car");
    let (roots, _) = parse_car(&std::fs::read(&raw_car).unwrap());
    let root = roots[0];
    let root_block = block_from_car(&raw_car, &root.to_string());

    let response = gw
        .get_with(
            &format!("/ipfs/{root}?format=raw"),
            &[("Accept", "application/vnd.ipld.car")],
        )
        .await;
    assert_eq!(
        header(&response, "content-type"),
        "application/vnd.ipld.raw"
    );
    common::assert_body(response, &root_block).await;

    let response = gw
        .get_with(
            &format!("/ipfs/{root}?format=car"),
            &[("Accept", "application/vnd.ipld.raw")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("application/vnd.ipld.car"));
    let (car_roots, _) = parse_car(&response.bytes().await.unwrap());
    assert_eq!(car_roots, vec![root]);

    let (t_json, data) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);
    let response = gw
        .get_with(
            &format!("/ipfs/{t_json}?format=json"),
            &[("Accept", "application/vnd.ipld.raw")],
        )
        .await;
    assert_eq!(header(&response, "content-type"), "application/json");
    common::assert_body(response, &data).await;
}

/// IPIP-0523 for CAR parameters: `car-dups` and `car-order` in the query win
/// over `dups` and `order` in `Accept`.
#[tokio::test]
async fn car_query_parameters_win_over_accept() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (dir, _) = car_root(DUPLICATE_FILES_CAR);
    let repeats = |cids: &[String]| {
        let mut distinct = cids.to_vec();
        distinct.sort();
        distinct.dedup();
        cids.len() - distinct.len()
    };
    for (query, accept, dups) in [
        ("&car-dups=y", "application/vnd.ipld.car; dups=n", "y"),
        ("&car-dups=n", "application/vnd.ipld.car; dups=y", "n"),
        ("", "application/vnd.ipld.car; dups=y", "y"),
    ] {
        let what = format!("{query} with Accept {accept}");
        let response = gw
            .get_with(
                &format!("/ipfs/{dir}?format=car{query}"),
                &[("Accept", accept)],
            )
            .await;
        assert_eq!(response.status(), 200, "{what}");
        let content_type = header(&response, "content-type");
        assert!(
            content_type.contains(&format!("dups={dups}")),
            "{what}: {content_type}"
        );
        let cids = car_cids(&response.bytes().await.unwrap());
        // ascii.txt and ascii-copy.txt are one block: sent twice with dups.
        match dups {
            "y" => assert!(repeats(&cids) > 0, "{what}: {cids:?}"),
            _ => assert_eq!(repeats(&cids), 0, "{what}: {cids:?}"),
        }
    }
    let response = gw
        .get_with(
            &format!("/ipfs/{dir}?format=car&car-order=dfs"),
            &[("Accept", "application/vnd.ipld.car; order=unk")],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").contains("order=dfs"));
}

/// The path gateway spec's Service-Worker rule: no registration for a whole
/// content root.
#[tokio::test]
async fn service_worker_registration_on_a_root_is_400() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (dir, _) = car_root(JSON_CBOR_CAR);
    let worker = [("Service-Worker", "script")];
    for root in [format!("/ipfs/{dir}"), format!("/ipns/{DAG_JSON_NAME}")] {
        let response = gw.get_with(&root, &worker).await;
        assert_eq!(response.status(), 400, "{root}");
        let text = response.text().await.unwrap();
        assert!(text.contains("Service-Worker"), "{root}: {text}");
    }
    // Under the root's slash the scope is the root's own: served.
    let response = gw.get_with(&format!("/ipfs/{dir}/"), &worker).await;
    assert_eq!(response.status(), 200);
    let (t_json, data) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);
    let response = gw
        .get_with(&format!("/ipfs/{dir}/ą/ę/t.json"), &worker)
        .await;
    common::assert_body(response, &data).await;
    // Without the header the root is served as always (here: the redirect
    // to its slash).
    assert_eq!(gw.get(&format!("/ipfs/{dir}")).await.status(), 301);
    assert_eq!(
        gw.get_with(&format!("/ipfs/{t_json}"), &worker)
            .await
            .status(),
        400
    );
}

fn query_encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The URI router (subdomain_gateway_ipfs/ipns "?uri=" cases, on the path
/// gateway): a 301 to the content path, which then serves the content.
#[tokio::test]
async fn uri_router_redirects_to_the_content_path() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (dir, _) = car_root(JSON_CBOR_CAR);
    let (_, data) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);

    let uri = format!("ipfs://{dir}/ą/ę/t.json?filename=x.json");
    let response = gw.get(&format!("/ipfs/?uri={}", query_encoded(&uri))).await;
    assert_eq!(response.status(), 301);
    let location = header(&response, "location");
    assert_eq!(
        location,
        format!("/ipfs/{dir}/%C4%85/%C4%99/t.json?filename=x.json")
    );
    let followed = gw.get(&location).await;
    assert!(header(&followed, "content-disposition").contains("x.json"));
    common::assert_body(followed, &data).await;

    let uri = format!("ipns://{DAG_JSON_NAME}");
    let response = gw.get(&format!("/ipns/?uri={}", query_encoded(&uri))).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        header(&response, "location"),
        format!("/ipns/{DAG_JSON_NAME}")
    );
    let (_, dag_json_block) = car_root(DAG_JSON_CAR);
    let followed = gw.get(&header(&response, "location")).await;
    common::assert_body(followed, &dag_json_block).await;

    for bad in ["https://example.org/", "ipfs://notacid", "", "ipfs://"] {
        let response = gw.get(&format!("/ipfs/?uri={}", query_encoded(bad))).await;
        assert_eq!(response.status(), 400, "uri={bad:?}");
        let text = response.text().await.unwrap();
        assert!(text.contains("expected ipfs://"), "uri={bad:?}: {text}");
    }
    // Without a uri, the namespace root is no content path.
    assert_eq!(gw.get("/ipfs/").await.status(), 400);
}

/// A 304 carries the Etag and Cache-Control its 200 carries (and no body),
/// for every kind of response with a validator.
#[tokio::test]
async fn not_modified_carries_etag_and_cache_control() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (dir, _) = car_root(JSON_CBOR_CAR);
    let (t_json, _) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);
    let (dag_json, _) = car_root(DAG_JSON_CAR);
    for (path, headers) in [
        (format!("/ipfs/{t_json}"), vec![]),
        (format!("/ipfs/{t_json}?format=raw"), vec![]),
        (format!("/ipfs/{dir}?format=car"), vec![]),
        (format!("/ipfs/{dag_json}"), vec![]),
        (format!("/ipfs/{dag_json}?format=json"), vec![]),
        (
            format!("/ipfs/{dag_json}"),
            vec![("Accept", "application/vnd.ipld.dag-json")],
        ),
        (format!("/ipns/{DAG_JSON_NAME}"), vec![]),
        // Generated pages: their 200 has no Cache-Control, nor has the 304.
        (format!("/ipfs/{dir}/"), vec![]),
        (format!("/ipfs/{dag_json}/"), vec![("Accept", "text/html")]),
    ] {
        let what = format!("{path} {headers:?}");
        let full = gw.get_with(&path, &headers).await;
        assert_eq!(full.status(), 200, "{what}");
        let etag = header(&full, "etag");
        let cache_control = header(&full, "cache-control");
        assert!(!etag.is_empty(), "{what}: no Etag");
        let mut conditional = headers.clone();
        conditional.push(("If-None-Match", etag.as_str()));
        let response = gw.get_with(&path, &conditional).await;
        assert_eq!(response.status(), 304, "{what}");
        assert_eq!(header(&response, "etag"), etag, "{what}");
        assert_eq!(header(&response, "cache-control"), cache_control, "{what}");
        assert!(vary_names_accept(&response), "{what}: Vary");
        assert!(response.bytes().await.unwrap().is_empty(), "{what}: body");
    }
    // The immutable and the name's caching, as the 200s above had them.
    let named = gw.get(&format!("/ipns/{DAG_JSON_NAME}")).await;
    let name_cache = header(&named, "cache-control");
    assert!(name_cache.starts_with("public, max-age="), "{name_cache}");
    let immutable = gw.get(&format!("/ipfs/{t_json}")).await;
    assert_eq!(
        header(&immutable, "cache-control"),
        "public, max-age=29030400, immutable"
    );
}

/// Every answer to a content request depends on Accept and says so.
#[tokio::test]
async fn content_negotiated_responses_vary_on_accept() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let (dir, _) = car_root(JSON_CBOR_CAR);
    let (t_json, _) = node_at(JSON_CBOR_CAR, &["ą", "ę", "t.json"]);
    let (dag_cbor, _) = car_root(DAG_CBOR_CAR);
    for (path, headers, status) in [
        (format!("/ipfs/{t_json}"), vec![], 200),
        (format!("/ipfs/{dir}/"), vec![], 200),
        (format!("/ipfs/{dir}"), vec![], 301),
        (format!("/ipfs/{dir}?format=raw"), vec![], 200),
        (
            format!("/ipfs/{dir}"),
            vec![("Accept", "application/vnd.ipld.car")],
            200,
        ),
        (format!("/ipfs/{dag_cbor}"), vec![], 200),
        (
            format!("/ipfs/{dag_cbor}/"),
            vec![("Accept", "text/html")],
            200,
        ),
        (format!("/ipfs/{dag_cbor}?format=dag-json"), vec![], 406),
        (format!("/ipfs/{dir}/missing"), vec![], 404),
        (format!("/ipns/{DAG_JSON_NAME}"), vec![], 200),
    ] {
        let what = format!("{path} {headers:?}");
        let response = gw.get_with(&path, &headers).await;
        assert_eq!(response.status(), status, "{what}");
        assert!(
            vary_names_accept(&response),
            "{what}: Vary {:?}",
            header_lines(&response, "vary")
        );
    }
}

/// `/`: a page saying what this is and how to use it, HTML for a browser
/// and text for anyone else; HEAD alike without the body.
#[tokio::test]
async fn landing_page_for_browsers_and_other_clients() {
    let gw = TestGateway::start(Vec::new()).await;
    let port = gw.base.rsplit(':').next().unwrap().to_string();
    let metrics = format!("{}/debug/metrics/prometheus", gw.control);
    let facts = [
        "/ipfs/",
        "/ipns/",
        &format!(".ipfs.localhost:{port}/"),
        "X-Ipfs-Provider",
        "?provider=",
        "?format=car",
        &metrics,
    ];

    let html = gw.get_with("/", &[("Accept", "text/html,*/*;q=0.8")]).await;
    assert_eq!(html.status(), 200);
    assert!(header(&html, "content-type").starts_with("text/html"));
    assert!(vary_names_accept(&html));
    let page = html.text().await.unwrap();
    assert!(page.contains("</html>"), "{page}");
    assert!(
        !page.contains("/ipfs/<cid>"),
        "placeholders are escaped: {page}"
    );
    // As a browser shows it.
    let page = [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#x2f;", "/"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(page, |page, (entity, text)| page.replace(entity, text));
    assert!(page.contains("/ipfs/<cid>"), "{page}");
    for fact in facts {
        assert!(page.contains(fact), "HTML page lacks {fact:?}");
    }

    let text = gw.get("/").await;
    assert_eq!(text.status(), 200);
    assert!(header(&text, "content-type").starts_with("text/plain"));
    let body = text.text().await.unwrap();
    assert!(!body.contains("<html"), "{body}");
    assert!(body.contains("/ipfs/<cid>"), "{body}");
    for fact in facts {
        assert!(body.contains(fact), "text page lacks {fact:?}");
    }

    for accept in ["text/html", "*/*"] {
        let head = gw.head_with("/", &[("Accept", accept)]).await;
        assert_eq!(head.status(), 200, "HEAD {accept}");
        let expected = if accept == "text/html" {
            "text/html"
        } else {
            "text/plain"
        };
        assert!(
            header(&head, "content-type").starts_with(expected),
            "HEAD {accept}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {accept}");
    }

    // The metrics the page points at are there.
    let scraped = gw.text(&metrics).await;
    assert!(scraped.contains("sluice_"), "{scraped}");
    // Other paths are still a 404 naming the content routes.
    let missing = gw.get("/nothing-here").await;
    assert_eq!(missing.status(), 404);
}

/// A dag-pb node with links and no UnixFS data has no deserialized form
/// of its own: no format is a 406 (naming the HTML view, raw and CAR), a
/// browser gets the HTML view, and with conversions on it is dag-json.
#[tokio::test]
async fn dag_pb_without_unixfs_data() {
    use ipld_dagpb::{PbLink, PbNode};
    use multihash_codetable::{Code, MultihashDigest};

    let leaf = b"leaf bytes".to_vec();
    let leaf_cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&leaf));
    let node = PbNode {
        links: vec![PbLink {
            cid: leaf_cid,
            name: Some("leaf".into()),
            size: Some(leaf.len() as u64),
        }],
        data: None,
    }
    .into_bytes();
    let node_cid = Cid::new_v1(0x70, Code::Sha2_256.digest(&node));
    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("plain-dag-pb.car");
    let mut car =
        sluice::car::CarWriter::new(std::fs::File::create(&car_path).unwrap(), &[node_cid])
            .unwrap();
    car.write_block(&node_cid, &node).unwrap();
    car.write_block(&leaf_cid, &leaf).unwrap();
    car.finish().unwrap();
    let path = format!("/ipfs/{node_cid}");

    let gw = TestGateway::start(vec![car_path.clone()]).await;
    let response = gw.get(&path).await;
    assert_eq!(response.status(), 406);
    let text = response.text().await.unwrap();
    for part in [
        "a dag-pb node without UnixFS data",
        "no deserialized form of its own",
        "an HTML view (Accept: text/html)",
        "?format=raw",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    let refused = gw.get(&format!("{path}?format=dag-json")).await;
    assert_refused(refused, "dag-json", "dag-json of plain dag-pb").await;
    let html = gw.get_with(&path, &[("Accept", "text/html")]).await;
    assert_eq!(html.status(), 200);
    assert!(header(&html, "content-type").starts_with("text/html"));
    let page = html.text().await.unwrap();
    assert!(
        page.contains(&leaf_cid.to_string()),
        "the page links the leaf"
    );
    common::assert_body(gw.get(&format!("{path}?format=raw")).await, &node).await;

    let converting = TestGateway::start_with(vec![car_path], |c| {
        c.gateway.allow_codec_conversion = true;
    })
    .await;
    let response = converting.get(&path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/vnd.ipld.dag-json"
    );
    let json: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        json["Links"][0]["Hash"]["/"],
        serde_json::Value::String(leaf_cid.to_string()),
        "{json}"
    );
    assert_eq!(json["Links"][0]["Name"], "leaf", "{json}");
}
