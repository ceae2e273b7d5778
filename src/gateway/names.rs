//! What `/ipns/` adds to a content response: the name's record itself
//! (`?format=ipns-record`), and caching for as long as the name, never
//! `immutable`.

use std::time::SystemTime;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::errors::GatewayError;
use super::headers::{value, X_IPFS_PATH};
use super::request::{ContentRequest, IPNS_RECORD};
use crate::names::{cache_lifetime, ipns, Name, Resolver};

/// A name given as a base58 peer ID is redirected (302) to its canonical
/// form, the CIDv1 `libp2p-key` in base36, which fits in a DNS label and
/// is case-insensitive (the path gateway spec); other forms are served.
pub fn canonical_location(name: &str, request: &ContentRequest) -> Option<Response> {
    let peer: libp2p::PeerId = name.parse().ok()?;
    let base36 = ipns::canonical_name(&peer);
    let rest = request.url_path.strip_prefix("/ipns/")?;
    let rest = &rest[rest.find('/').unwrap_or(rest.len())..];
    let query = request
        .query
        .as_deref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!("/ipns/{base36}{rest}{query}");
    let mut response = axum::http::StatusCode::FOUND.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, value(&location));
    Some(response)
}

/// The verified record of `name`, as it was received.
pub async fn record_response(
    names: &Resolver,
    name: &str,
    request: &ContentRequest,
) -> Result<Response, GatewayError> {
    let peer = match crate::names::parse_name(name)? {
        Name::Key(peer) => peer,
        Name::Domain(domain) => {
            return Err(GatewayError::BadRequest(format!(
                "{domain} is a DNSLink name, which has no IPNS record: records are asked for by IPNS name (/ipns/<key>?format=ipns-record)"
            )))
        }
    };
    let record = names.record(&peer).await?;
    let ttl = cache_lifetime(&record, SystemTime::now());
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(IPNS_RECORD)),
            (
                header::CONTENT_DISPOSITION,
                value(&format!("attachment; filename=\"{peer}.ipns-record\"")),
            ),
        ],
        record.bytes,
    )
        .into_response();
    response
        .headers_mut()
        .insert(X_IPFS_PATH, value(&request.url_path));
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::CACHE_CONTROL,
        value(&format!("public, max-age={}", ttl.as_secs())),
    );
    Ok(response)
}

/// `Cache-Control: public, max-age=<ttl>` instead of the immutable caching
/// of `/ipfs/` content (a name can point elsewhere tomorrow). Responses
/// that carry no caching under `/ipfs/` either (listings and HTML views,
/// which are the gateway's rendering) and errors are left as they are.
pub fn cache_for(response: &mut Response, ttl: std::time::Duration) {
    if response.headers().contains_key(header::CACHE_CONTROL) {
        let value = value(&format!("public, max-age={}", ttl.as_secs()));
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
}
