//! Response headers shared by every content response: caching, the
//! `X-Ipfs-*` headers, Content-Disposition. Etags and conditional requests
//! are [`super::etag`].

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use cid::Cid;

use super::request::ContentRequest;

/// Content under `/ipfs/` never changes.
pub const IMMUTABLE: &str = "public, max-age=29030400, immutable";

pub const X_IPFS_PATH: HeaderName = HeaderName::from_static("x-ipfs-path");
pub const X_IPFS_ROOTS: HeaderName = HeaderName::from_static("x-ipfs-roots");

/// Headers every successful content response carries.
pub fn content_headers(request: &ContentRequest, roots: &[Cid], etag: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, value(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(X_IPFS_PATH, value(&request.url_path));
    let roots = roots
        .iter()
        .map(Cid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    headers.insert(X_IPFS_ROOTS, value(&roots));
    // The same URL answers with different bodies depending on Accept.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    // A format chosen by Accept also has a URL of its own: name it, so a
    // cache or a browser can refer to this representation directly.
    if let (true, Some(format)) = (request.format_from_accept, request.format) {
        let query = request
            .query
            .as_deref()
            .map(|q| format!("?{q}&"))
            .unwrap_or_else(|| "?".into());
        let location = format!("{}{query}format={}", request.public_path, format.name());
        headers.insert(header::CONTENT_LOCATION, value(&location));
    }
    headers
}

/// Adds `Accept` to `Vary` unless it is there: every answer to a content
/// request (redirects and errors too) depends on what `Accept` asks for.
pub fn vary_on_accept(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .collect();
    if listed
        .iter()
        .any(|token| token == "*" || token.eq_ignore_ascii_case("accept"))
    {
        return;
    }
    let mut tokens = vec!["Accept".to_string()];
    tokens.extend(listed);
    headers.insert(header::VARY, value(&tokens.join(", ")));
}

/// A header value from text the gateway built; anything not visible ASCII
/// is percent-encoded rather than dropped.
pub fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| {
        let encoded =
            percent_encoding::utf8_percent_encode(text, percent_encoding::CONTROLS).to_string();
        HeaderValue::from_str(&encoded.replace(|c: char| !c.is_ascii(), ""))
            .unwrap_or(HeaderValue::from_static(""))
    })
}

/// What RFC 8187 `filename*` values percent-encode: all but its
/// `attr-char`s (letters, digits and ``!#$&+-.^_`|~``), so `.tar` stays
/// `.tar` as the conformance suite expects.
const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` for `name`: ASCII names quoted, others also as
/// RFC 5987 `filename*`.
pub fn content_disposition(kind: &str, name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    if ascii == name {
        value(&format!("{kind}; filename=\"{ascii}\""))
    } else {
        let encoded = percent_encoding::utf8_percent_encode(name, NOT_ATTR_CHAR);
        value(&format!(
            "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
        ))
    }
}

/// The disposition the request asked for with `?filename=` / `?download=`.
pub fn requested_disposition(request: &ContentRequest) -> Option<HeaderValue> {
    let name = request.filename.as_deref()?;
    let kind = if request.download {
        "attachment"
    } else {
        "inline"
    };
    Some(content_disposition(kind, name))
}

/// `X-Content-Type-Options: nosniff`, for responses whose type must not be
/// second-guessed by a browser.
pub fn nosniff() -> (header::HeaderName, HeaderValue) {
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_names_accept_once() {
        let vary = |existing: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for v in existing {
                headers.append(header::VARY, HeaderValue::from_static(v));
            }
            vary_on_accept(&mut headers);
            let lines: Vec<_> = headers
                .get_all(header::VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            lines
        };
        assert_eq!(vary(&[]), ["Accept"]);
        assert_eq!(
            vary(&["Accept, Accept-Encoding"]),
            ["Accept, Accept-Encoding"]
        );
        assert_eq!(vary(&["accept"]), ["accept"]);
        assert_eq!(vary(&["Accept-Encoding"]), ["Accept, Accept-Encoding"]);
        assert_eq!(
            vary(&["Origin", "Accept-Encoding"]),
            ["Accept, Origin, Accept-Encoding"]
        );
        assert_eq!(vary(&["*"]), ["*"]);
    }

    #[test]
    fn disposition_encodes_unicode() {
        let v = content_disposition("attachment", "żółw.txt");
        assert_eq!(
            v.to_str().unwrap(),
            "attachment; filename=\"___w.txt\"; filename*=UTF-8''%C5%BC%C3%B3%C5%82w.txt"
        );
    }
}
