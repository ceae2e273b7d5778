//! Etags and conditional requests: whether `If-None-Match` matches, the
//! 304 answer, and the
//! stable hash Etags (and CAR boundaries) are derived with. A leaf of the
//! gateway: it depends on no other gateway module, so templates and
//! handlers can all use it without an import loop.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

/// True if `If-None-Match` names `etag` (weak comparison) or is `*`.
pub fn not_modified(request_headers: &HeaderMap, etag: &str) -> bool {
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let ours = strip(etag);
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || strip(tag) == ours)
}

/// FNV-1a: a small hash that is stable across builds and platforms (unlike
/// `DefaultHasher`), for Etags and boundaries derived from request data.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf29ce484222325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3)
    })
}

/// A 304 with the headers a cache needs to refresh its copy.
pub fn not_modified_response(mut headers: HeaderMap) -> Response {
    headers.remove(header::CONTENT_LENGTH);
    (axum::http::StatusCode::NOT_MODIFIED, headers).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn if_none_match_weak_and_lists() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"b\""));
        assert!(not_modified(&h, "\"a\""));
        assert!(!not_modified(&h, "\"c\""));
    }
}
