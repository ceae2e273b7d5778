//! The URI router: `/ipfs/?uri=ipfs://<cid>/path` and
//! `/ipns/?uri=ipns://<name>/path` answer with a 301 to the content path,
//! as browsers ask once the gateway is registered as the handler of the
//! `ipfs:` and `ipns:` schemes (`navigator.registerProtocolHandler` sends
//! the whole URI in one query parameter). A pure rule, [`target`], and the
//! response.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cid::Cid;

use super::errors::GatewayError;
use super::headers::value;

/// Where a namespace root request with a `uri` parameter goes: `None` for
/// any other request (they are content requests), else the content path and
/// query the URI names, or a 400 saying what is wrong with it.
pub fn target(path: &str, query: Option<&str>) -> Option<Result<String, GatewayError>> {
    if !matches!(path, "/ipfs" | "/ipfs/" | "/ipns" | "/ipns/") {
        return None;
    }
    let uri = url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "uri")
        .map(|(_, uri)| uri.into_owned())?;
    Some(content_path_of(&uri))
}

fn content_path_of(uri: &str) -> Result<String, GatewayError> {
    let bad = |why: &str| {
        GatewayError::BadRequest(format!(
            "uri={:?} {why}: expected ipfs://<cid>[/path][?query] or ipns://<name>[/path][?query]",
            shortened(uri)
        ))
    };
    let parsed = url::Url::parse(uri).map_err(|_| bad("is not a URI"))?;
    let scheme = parsed.scheme();
    if scheme != "ipfs" && scheme != "ipns" {
        return Err(bad("is not an ipfs:// or ipns:// URI"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.port().is_some() {
        return Err(bad(
            "has a user or a port, which ipfs:// and ipns:// URIs do not",
        ));
    }
    let root = parsed.host_str().unwrap_or("");
    if root.is_empty() {
        return Err(bad("names no CID or name after the scheme"));
    }
    // A CID, a libp2p-key name or a DNSLink domain: nothing else may reach
    // the Location header.
    if !root
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad("has characters no CID or name has"));
    }
    if scheme == "ipfs" && Cid::try_from(root).is_err() {
        return Err(bad("does not start with a valid CID"));
    }
    // The parser has percent-encoded the path and query and removed dot
    // segments, so they can follow the root as they are.
    let mut location = format!("/{scheme}/{root}");
    let path = parsed.path();
    if path != "/" {
        location.push_str(path);
    }
    if let Some(query) = parsed.query() {
        location.push('?');
        location.push_str(query);
    }
    Ok(location)
}

fn shortened(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The router's answer to `uri`, if it is a router request.
pub fn redirect(uri: &Uri) -> Option<Result<Response, GatewayError>> {
    let location = target(uri.path(), uri.query())?;
    Some(location.map(|location| {
        (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, value(&location))],
        )
            .into_response()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafybeiaysi4s6lnjev27ln5icwm6tueaw2vdykrtjkwiphwekaywqhcjze";

    fn routed(path: &str, query: &str) -> Result<String, GatewayError> {
        target(path, Some(query)).expect("a router request")
    }

    #[test]
    fn maps_uris_to_content_paths() {
        let q = |uri: &str| format!("uri={}", urlencoding(uri));
        assert_eq!(
            routed(
                "/ipfs/",
                &q(&format!("ipfs://{CID}/wiki/Diego_Maradona.html"))
            )
            .unwrap(),
            format!("/ipfs/{CID}/wiki/Diego_Maradona.html")
        );
        assert_eq!(
            routed("/ipns/", &q("ipns://en.wikipedia-on-ipfs.org")).unwrap(),
            "/ipns/en.wikipedia-on-ipfs.org"
        );
        assert_eq!(
            routed("/ipfs", &q(&format!("ipfs://{CID}"))).unwrap(),
            format!("/ipfs/{CID}")
        );
        // The query is kept, the fragment dropped, dot segments removed.
        assert_eq!(
            routed("/ipfs/", &q(&format!("ipfs://{CID}/a/../b c?x=1&y=2#top"))).unwrap(),
            format!("/ipfs/{CID}/b%20c?x=1&y=2")
        );
        // Either root routes either scheme: one registered handler URL.
        assert_eq!(
            routed("/ipfs/", &q("ipns://example.org/x")).unwrap(),
            "/ipns/example.org/x"
        );
        // CIDv0 keeps its case (ipfs: is not a special scheme).
        let v0 = "QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN";
        assert_eq!(
            routed("/ipfs/", &q(&format!("ipfs://{v0}"))).unwrap(),
            format!("/ipfs/{v0}")
        );
    }

    #[test]
    fn refuses_what_is_not_an_ipfs_uri() {
        for uri in [
            "",
            "not a uri",
            "https://example.org/",
            "javascript:alert(1)",
            "ipfs:///path",
            "ipfs://notacid/x",
            "ipfs://user@bafkqaaa",
            "ipfs://bafkqaaa:8080",
            "ipns://exa%0Amp%0Dle.org",
            "ipfs://%2F%2Fevil.example/",
        ] {
            let err = routed("/ipfs/", &format!("uri={}", urlencoding(uri))).unwrap_err();
            assert!(matches!(err, GatewayError::BadRequest(_)), "{uri}: {err:?}");
            assert!(err.to_string().contains("expected ipfs://"), "{uri}: {err}");
        }
    }

    #[test]
    fn leaves_other_requests_alone() {
        assert!(target(&format!("/ipfs/{CID}"), Some("uri=ipfs://x")).is_none());
        assert!(target("/ipfs/", None).is_none());
        assert!(target("/ipfs/", Some("format=raw")).is_none());
        assert!(target("/", Some("uri=ipfs://x")).is_none());
    }

    fn urlencoding(text: &str) -> String {
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}
