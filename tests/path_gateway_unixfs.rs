//! Path gateway for UnixFS content, checked the way the gateway-conformance
//! suite checks it (path_gateway_unixfs, t0113 symlinks, t0115 listings,
//! t0116 cache headers, CORS).
//!
//! Covers the 32 path_gateway_unixfs cases without names and the 5 of
//! TestGatewayCacheWithIPNS (the suite's current file), 3 of 3 symlink
//! cases, 2 of 2 CORS cases.

mod common;

use common::{header, header_lines, TestGateway};

const LISTING_ROOT: &str = "bafybeig6ka5mlwkl4subqhaiatalkcleo4jgnr3hqwvpmsqfca27cijp3i";
const CACHE_R1: &str = "bafybeib3ffl2teiqdncv3mkz4r23b5ctrwkzrrhctdbne6iboayxuxk5ui";
const CACHE_R2: &str = "bafybeih2w7hjocxjg6g2ku25hvmd53zj7og4txpby3vsusfefw5rrg5sii";
const CACHE_R3: &str = "bafybeiawdvhmjcz65x5egzx4iukxc72hg4woks6v6fvgyupiyt3oczk5ja";
const CACHE_R4: &str = "bafybeifq2rzpqnqrsdupncmkmhs3ckxxjhuvdcbvydkgvch3ms24k5lo7q";
const CACHE_INDEX: &str = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";
const FILES_ROOT: &str = "bafybeihchr7vmgjaasntayyatmp5sv6xza57iy2h4xj7g46bpjij6yhrmy";
const MISSING_BLOCK_FILE: &str = "QmYhmPjhFjYFyaoiuNzYv8WGavpSRDwdHWe5B4M5du5Rtk";
const SYMLINK_ROOT: &str = "QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt";
const IMMUTABLE: &str = "public, max-age=29030400, immutable";

#[tokio::test]
async fn directory_listing() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };

    let root = gw.get(&format!("/ipfs/{LISTING_ROOT}/")).await;
    assert_eq!(root.status(), 200);
    let body = root.text().await.unwrap();
    assert!(body.contains("Index of"));
    assert!(
        !body.contains(&format!("<a href=\"/ipfs/{LISTING_ROOT}/\">..</a>")),
        "no backlink on the root"
    );

    let redirect = gw.get(&format!("/ipfs/{LISTING_ROOT}/%C4%85/%C4%99")).await;
    assert_eq!(redirect.status(), 301);
    assert_eq!(
        header(&redirect, "location"),
        format!("/ipfs/{LISTING_ROOT}/%C4%85/%C4%99/")
    );

    let listing = gw
        .get(&format!("/ipfs/{LISTING_ROOT}/%C4%85/%C4%99/"))
        .await;
    assert_eq!(listing.status(), 200);
    assert!(header(&listing, "etag").contains("\"DirIndex-"));
    assert!(header(&listing, "content-type").starts_with("text/html"));
    let body = listing.text().await.unwrap();
    for expected in [
        "Index of".to_string(),
        format!(
            "/ipfs/<a href=\"/ipfs/{LISTING_ROOT}\">{LISTING_ROOT}</a>/<a href=\"/ipfs/{LISTING_ROOT}/%C4%85\">ą</a>/<a href=\"/ipfs/{LISTING_ROOT}/%C4%85/%C4%99\">ę</a>"
        ),
        format!("<a href=\"/ipfs/{LISTING_ROOT}/%C4%85/%C4%99/..\">..</a>"),
        format!("<a href=\"/ipfs/{LISTING_ROOT}/%C4%85/%C4%99/file-%C5%BA%C5%82.txt\">file-źł.txt</a>"),
        "<a class=\"ipfs-hash\" translate=\"no\" href=\"/ipfs/bafkreialihlqnf5uwo4byh4n3cmwlntwqzxxs2fg5vanqdi3d7tb2l5xkm?filename=file-%25C5%25BA%25C5%2582.txt\"".to_string(),
        "34 B".to_string(),
    ] {
        assert!(body.contains(&expected), "listing lacks {expected}\n{body}");
    }

    assert_eq!(
        gw.get(&format!("/ipfs/{LISTING_ROOT}/i-do-not-exist"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn cache_headers_and_conditional_requests() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let dir3 = format!("/ipfs/{CACHE_R1}/root2/root3/");
    let dir4 = format!("/ipfs/{CACHE_R1}/root2/root3/root4/");
    let file = format!("/ipfs/{CACHE_R1}/root2/root3/root4/index.html");

    let listing = gw.get(&dir3).await;
    assert_eq!(listing.status(), 200);
    assert_eq!(header(&listing, "x-ipfs-path"), dir3);
    assert_eq!(
        header(&listing, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3}")
    );
    let listing_etag = header(&listing, "etag");
    assert!(
        listing_etag.contains("DirIndex-") && listing_etag.ends_with(&format!("_CID-{CACHE_R3}\""))
    );
    assert_eq!(
        header(&listing, "cache-control"),
        "",
        "a listing is not immutable"
    );

    let index = gw.get(&dir4).await;
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "cache-control"), IMMUTABLE);
    assert_eq!(header(&index, "x-ipfs-path"), dir4);
    assert_eq!(
        header(&index, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3},{CACHE_R4}")
    );
    assert_eq!(header(&index, "etag"), format!("\"{CACHE_R4}\""));
    assert!(header(&index, "content-type").starts_with("text/html"));
    assert_eq!(index.text().await.unwrap(), "hello\n");

    let file_response = gw.get(&file).await;
    assert_eq!(file_response.status(), 200);
    assert_eq!(header(&file_response, "cache-control"), IMMUTABLE);
    assert_eq!(header(&file_response, "x-ipfs-path"), file);
    assert_eq!(
        header(&file_response, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3},{CACHE_R4},{CACHE_INDEX}")
    );
    assert_eq!(header(&file_response, "etag"), format!("\"{CACHE_INDEX}\""));

    for format in ["raw", "json"] {
        let served = gw.get(&format!("{dir4}?format={format}")).await;
        assert_eq!(served.status(), 200, "{format}");
        assert_eq!(header(&served, "cache-control"), IMMUTABLE);
    }
    // dag-json of a dag-pb directory is a conversion: 406 since IPIP-0524
    // (t0116 asked it when gateways converted by default).
    let refused = gw.get(&format!("{dir4}?format=dag-json")).await;
    assert_eq!(refused.status(), 406);
    let raw = gw
        .get(&format!("{dir4}?format=raw"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.len(), 58);

    // only-if-cached: local content answers, anything else is 412.
    let cached = [("cache-control", "only-if-cached")];
    assert_eq!(
        gw.head_with(&format!("{dir4}?format=raw"), &cached)
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.get_with(&format!("{dir4}?format=raw"), &cached)
            .await
            .status(),
        200
    );
    let absent = "/ipfs/QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN";
    assert_eq!(gw.head_with(absent, &cached).await.status(), 412);
    assert_eq!(gw.get_with(absent, &cached).await.status(), 412);

    // If-None-Match: strong, listed, weak and wildcard forms.
    for tag in [
        format!("\"{CACHE_INDEX}\""),
        format!("\"fakeEtag1\", \"fakeEtag2\", \"{CACHE_INDEX}\""),
        format!("W/\"{CACHE_INDEX}\""),
        "*".to_string(),
    ] {
        let response = gw.get_with(&file, &[("if-none-match", &tag)]).await;
        assert_eq!(response.status(), 304, "If-None-Match: {tag}");
    }
    assert_eq!(
        gw.get_with(&file, &[("if-none-match", "\"other\"")])
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.get_with(&dir4, &[("if-none-match", &format!("\"{CACHE_R4}\""))])
            .await
            .status(),
        304
    );
    assert_eq!(
        gw.get_with(&dir3, &[("if-none-match", &format!("W/\"{CACHE_R3}\""))])
            .await
            .status(),
        304
    );

    // The listing's own Etag is stable and matches strongly and weakly.
    assert_eq!(header(&gw.get(&dir3).await, "etag"), listing_etag);
    assert_eq!(
        gw.get_with(&dir3, &[("if-none-match", &listing_etag)])
            .await
            .status(),
        304
    );
    assert_eq!(
        gw.get_with(&dir3, &[("if-none-match", &format!("W/{listing_etag}"))])
            .await
            .status(),
        304
    );
}

#[tokio::test]
async fn symlinks_are_not_followed() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let listing = gw
        .get(&format!("/ipfs/{SYMLINK_ROOT}/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(listing.contains(">foo<") && listing.contains(">bar<"));

    let raw = gw.get(&format!("/ipfs/{SYMLINK_ROOT}?format=raw")).await;
    assert_eq!(raw.status(), 200, "no redirect for a raw block");
    assert_eq!(raw.bytes().await.unwrap().len(), 94);

    let link = gw.get(&format!("/ipfs/{SYMLINK_ROOT}/bar")).await;
    assert_eq!(link.status(), 200);
    assert_eq!(link.text().await.unwrap(), "foo");
}

#[tokio::test]
async fn file_ranges() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let path = format!("/ipfs/{FILES_ROOT}/ascii.txt");
    let full = b"hello application/vnd.ipld.car\n";

    let whole = gw.get(&path).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(header(&whole, "content-length"), "31");
    assert_eq!(whole.bytes().await.unwrap(), &full[..]);

    let single = gw.get_with(&path, &[("range", "bytes=6-16")]).await;
    assert_eq!(single.status(), 206);
    assert!(header(&single, "content-type").contains("text/plain"));
    assert_eq!(header(&single, "content-range"), "bytes 6-16/31");
    assert_eq!(single.bytes().await.unwrap(), &full[6..17]);

    let suffix = gw.get_with(&path, &[("range", "bytes=-3")]).await;
    assert_eq!(suffix.status(), 206);
    assert_eq!(header(&suffix, "content-range"), "bytes 28-30/31");
    assert_eq!(suffix.bytes().await.unwrap(), &full[28..]);

    let multi = gw.get_with(&path, &[("range", "bytes=6-16,0-4")]).await;
    assert_eq!(multi.status(), 206);
    let content_type = header(&multi, "content-type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("several ranges are sent as multipart/byteranges")
        .to_string();
    let length: usize = header(&multi, "content-length").parse().unwrap();
    let body = multi.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let expected = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 6-16/31\r\n\r\napplication\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-4/31\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);

    let unsatisfiable = gw.get_with(&path, &[("range", "bytes=100-200")]).await;
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(header(&unsatisfiable, "content-range"), "bytes */31");

    // The middle block of this file is missing: ranges on either side of it
    // must still be served, without touching it.
    let missing = format!("/ipfs/{MISSING_BLOCK_FILE}");
    let before = gw.get_with(&missing, &[("range", "bytes=997-1000")]).await;
    assert_eq!(before.status(), 206);
    assert_eq!(header(&before, "content-range"), "bytes 997-1000/3072");
    assert_eq!(before.bytes().await.unwrap().len(), 4);
    let after = gw.get_with(&missing, &[("range", "bytes=2200-2201")]).await;
    assert_eq!(after.status(), 206);
    assert_eq!(header(&after, "content-range"), "bytes 2200-2201/3072");
    assert_eq!(after.bytes().await.unwrap().len(), 2);
    // The whole file cannot be served: the stream stops at the missing
    // block instead of sending wrong bytes.
    // (Whether the headers got out before the stream broke depends on
    // buffering; either way the client must see a failure.)
    let whole = gw.client.get(gw.url(&missing)).send().await;
    let complete = match whole {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!complete, "a truncated body must not look complete");
}

#[tokio::test]
async fn head_matches_get_without_body() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let path = format!("/ipfs/{FILES_ROOT}/multiblock.txt");
    let head = gw.head_with(&path, &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), "1026");
    assert_eq!(
        header(&head, "etag"),
        "\"bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa\""
    );
    let get = gw.get(&path).await;
    assert_eq!(get.bytes().await.unwrap().len(), 1026);
}

#[tokio::test]
async fn percent_encoded_file_names() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let response = gw
        .get("/ipfs/bafybeig675grnxcmshiuzdaz2xalm6ef4thxxds6o6ypakpghm5kghpc34/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "hello from a percent encoded filename\n"
    );
}

#[tokio::test]
async fn filename_and_download_dispositions() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let path = format!("/ipfs/{FILES_ROOT}/hello.txt");
    let inline = gw.get(&format!("{path}?filename=greeting.txt")).await;
    assert_eq!(
        header(&inline, "content-disposition"),
        "inline; filename=\"greeting.txt\""
    );
    let download = gw
        .get(&format!("{path}?filename=greeting.txt&download=true"))
        .await;
    assert_eq!(
        header(&download, "content-disposition"),
        "attachment; filename=\"greeting.txt\""
    );
    let unicode = gw
        .get(&format!("{path}?filename=%C5%BC%C3%B3%C5%82w.txt"))
        .await;
    assert_eq!(
        header(&unicode, "content-disposition"),
        "inline; filename=\"___w.txt\"; filename*=UTF-8''%C5%BC%C3%B3%C5%82w.txt"
    );
    // The name also picks the type.
    let typed = gw.get(&format!("{path}?filename=page.html")).await;
    assert_eq!(header(&typed, "content-type"), "text/html; charset=utf-8");
}

#[tokio::test]
async fn hamt_sharded_directory() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let root = "bafybeidbclfqleg2uojchspzd4bob56dqetqjsj27gy2cq3klkkgxtpn4i";
    let file = gw.get(&format!("/ipfs/{root}/685.txt")).await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        header(&file, "x-ipfs-roots"),
        format!("{root},bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa")
    );
    assert_eq!(file.bytes().await.unwrap().len(), 1026);
    assert_eq!(
        gw.get(&format!("/ipfs/{root}/no-such-name.txt"))
            .await
            .status(),
        404
    );

    let listing = gw.get(&format!("/ipfs/{root}/")).await;
    assert_eq!(listing.status(), 200);
    let body = listing.text().await.unwrap();
    for name in ["1.txt", "685.txt", "999.txt"] {
        assert!(
            body.contains(&format!(">{name}</a>")),
            "listing lacks {name}"
        );
    }
    // Every entry of the sharded directory is listed once.
    assert_eq!(body.matches("class=\"ipfs-hash\"").count(), 1000);
}

#[tokio::test]
async fn cors_headers_on_every_response() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let path = "/ipfs/bafkqabtimvwgy3yk/";
    let get = gw.get(path).await;
    let options = gw
        .client
        .request(reqwest::Method::OPTIONS, gw.url(path))
        .send()
        .await
        .unwrap();
    for response in [&get, &options] {
        assert_eq!(header(response, "access-control-allow-origin"), "*");
        assert_eq!(
            header_lines(response, "access-control-allow-methods"),
            ["GET", "HEAD", "OPTIONS"]
        );
        let allowed = header_lines(response, "access-control-allow-headers");
        for h in ["Content-Type", "Range", "User-Agent", "X-Requested-With"] {
            assert!(allowed.contains(&h.to_string()), "allow-headers lacks {h}");
        }
        let exposed = header_lines(response, "access-control-expose-headers");
        for h in [
            "Content-Range",
            "Content-Length",
            "X-Ipfs-Path",
            "X-Ipfs-Roots",
            "X-Chunked-Output",
            "X-Stream-Output",
        ] {
            assert!(exposed.contains(&h.to_string()), "expose-headers lacks {h}");
        }
    }
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.text().await.unwrap(),
        "hello\n",
        "identity CIDs are served inline"
    );
}

#[tokio::test]
async fn a_format_chosen_by_accept_names_its_content_location() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let path = format!("/ipfs/{FILES_ROOT}/hello.txt");
    let raw = [("accept", "application/vnd.ipld.raw")];
    let by_accept = gw.get_with(&path, &raw).await;
    assert_eq!(
        header(&by_accept, "content-location"),
        format!("{path}?format=raw")
    );
    let with_query = gw.get_with(&format!("{path}?filename=x.bin"), &raw).await;
    assert_eq!(
        header(&with_query, "content-location"),
        format!("{path}?filename=x.bin&format=raw")
    );
    let car = gw
        .get_with(&path, &[("accept", "application/vnd.ipld.car")])
        .await;
    assert_eq!(
        header(&car, "content-location"),
        format!("{path}?format=car")
    );
    // Asked for by URL, the URL is already the location.
    let by_query = gw.get(&format!("{path}?format=raw")).await;
    assert_eq!(header(&by_query, "content-location"), "");

    // The trustless gateway probe: the empty identity block.
    let probe = gw.get_with("/ipfs/bafkqaaa", &raw).await;
    assert_eq!(probe.status(), 200);
    assert_eq!(header(&probe, "content-type"), "application/vnd.ipld.raw");
    assert!(probe.bytes().await.unwrap().is_empty());
}

/// TestGatewayCacheWithIPNS: the gateway-cache fixture through the IPNS
/// name of its fixture record (pointing at its root): the same paths,
/// roots and Etags as under `/ipfs/`, never immutable caching.
#[tokio::test]
async fn cache_headers_with_ipns() {
    let Some(gw) = TestGateway::with_fixtures().await else {
        return;
    };
    let key = "k51qzi5uqu5dlxdsdu5fpuu7h69wu4ohp32iwm9pdt9nq3y5rpn3ln9j12zfhe";
    let name_cache = |resp: &reqwest::Response| {
        let cache = header(resp, "cache-control");
        assert!(
            cache.is_empty() || cache.starts_with("public, max-age="),
            "{cache}"
        );
        assert!(!cache.contains("immutable"), "{cache}");
    };

    let dir3 = format!("/ipns/{key}/root2/root3/");
    let listing = gw.get(&dir3).await;
    assert_eq!(listing.status(), 200);
    assert_eq!(header(&listing, "x-ipfs-path"), dir3);
    assert_eq!(
        header(&listing, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3}")
    );
    let etag = header(&listing, "etag");
    assert!(etag.contains("DirIndex-") && etag.contains(&format!("_CID-{CACHE_R3}")));
    name_cache(&listing);

    let dir4 = format!("/ipns/{key}/root2/root3/root4/");
    let index = gw.get(&dir4).await;
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "x-ipfs-path"), dir4);
    assert_eq!(
        header(&index, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3},{CACHE_R4}")
    );
    assert_eq!(header(&index, "etag"), format!("\"{CACHE_R4}\""));
    name_cache(&index);

    let file = format!("/ipns/{key}/root2/root3/root4/index.html");
    let response = gw.get(&file).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ipfs-path"), file);
    assert_eq!(
        header(&response, "x-ipfs-roots"),
        format!("{CACHE_R1},{CACHE_R2},{CACHE_R3},{CACHE_R4},{CACHE_INDEX}")
    );
    assert_eq!(header(&response, "etag"), format!("\"{CACHE_INDEX}\""));
    name_cache(&response);

    let raw = gw.get(&format!("{dir4}?format=raw")).await;
    assert_eq!(raw.status(), 200);
    name_cache(&raw);
    let expected: &[u8] = &[
        0x12, 0x34, 0x0a, 0x24, 0x01, 0x55, 0x12, 0x20, 0x58, 0x91, 0xb5, 0xb5, 0x22, 0xd5, 0xdf,
        0x08, 0x6d, 0x0f, 0xf0, 0xb1, 0x10, 0xfb, 0xd9, 0xd2, 0x1b, 0xb4, 0xfc, 0x71, 0x63, 0xaf,
        0x34, 0xd0, 0x82, 0x86, 0xa2, 0xe8, 0x46, 0xf6, 0xbe, 0x03, 0x12, 0x0a, 0x69, 0x6e, 0x64,
        0x65, 0x78, 0x2e, 0x68, 0x74, 0x6d, 0x6c, 0x18, 0x06, 0x0a, 0x02, 0x08, 0x01,
    ];
    assert_eq!(raw.bytes().await.unwrap().as_ref(), expected);

    let not_modified = gw
        .get_with(&file, &[("If-None-Match", &format!("\"{CACHE_INDEX}\""))])
        .await;
    assert_eq!(not_modified.status(), 304);
}
