//! What `/ipns/` adds to a content response: the name's record itself
//! (`?format=ipns-record`), and caching for as long as the name, never
//! `immutable`.

use std::time::SystemTime;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::errors::GatewayError;
use super::headers::{value, X_IPFS_PATH};
use super::request::{ContentRequest, IPNS_RECORD};
use crate::names::{cache_lifetime, ipns, NameError, Resolver};

/// The verified record of `name`, as it was received.
pub async fn record_response(
    names: &Resolver,
    name: &str,
    request: &ContentRequest,
) -> Result<Response, GatewayError> {
    let peer = ipns::parse_name(name).map_err(NameError::BadName)?;
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
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    cache_for(&mut response, ttl);
    Ok(response)
}

/// `Cache-Control: public, max-age=<ttl>` on a response about a name (a
/// name can point elsewhere tomorrow: never `immutable`); errors keep
/// theirs.
pub fn cache_for(response: &mut Response, ttl: std::time::Duration) {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        let value = value(&format!("public, max-age={}", ttl.as_secs()));
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
}
