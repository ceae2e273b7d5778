//! Whether the gateway has room for a request: a cap on content requests
//! answered at once and on live retrieval sessions (429 with
//! `Retry-After`), and on the size of the request headers (431).

use axum::extract::Request;
use axum::response::Response;

use super::super::errors::GatewayError;
use super::super::limits::header_bytes;
use super::super::request::wants_html;
use super::super::state::Gateway;
use super::response::{failed, keep_until_body_ends};
use crate::session;

/// Refuses a request when `[limits] max_concurrent_requests` are in flight
/// or `max_live_sessions` sessions are live; otherwise holds a concurrency
/// slot until the response body ends.
pub async fn admit<F, Fut>(gateway: &Gateway, request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Ok(permit) = gateway.concurrency.clone().try_acquire_owned() else {
        let limit = gateway.limits.max_concurrent_requests;
        return GatewayError::Overloaded(format!(
            "more than {limit} requests in flight; try again shortly"
        ))
        .into_response_for(wants_html(request.headers()));
    };
    // Sessions normally end with their request; this bounds the ones that
    // outlive it (background fetches) so they cannot pile up.
    let live = session::live_count();
    if live >= gateway.limits.max_live_sessions {
        return GatewayError::Overloaded(format!(
            "{live} retrieval sessions are live, the most allowed ([limits] max_live_sessions); try again shortly"
        ))
        .into_response_for(wants_html(request.headers()));
    }
    let response = inner(request).await;
    keep_until_body_ends(response, permit)
}

/// 431 when the request headers are larger than `[limits] max_header_bytes`.
/// Inside the other layers, so the refusal is counted and timed like any
/// other failed request.
pub async fn limit_header_size<F, Fut>(gateway: &Gateway, request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let max = gateway.limits.max_header_bytes;
    if header_bytes(request.headers()) > max {
        let err = GatewayError::HeadersTooLarge(format!(
            "request headers are larger than the {max} byte limit"
        ));
        return failed(request.uri(), err, wants_html(request.headers()));
    }
    inner(request).await
}
