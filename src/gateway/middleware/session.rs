//! Every content request runs in a retrieval session of its own, which
//! lives until the response body is finished or dropped: set up here with
//! the request's budget (`[limits] max_blocks_per_request`,
//! `max_bytes_per_request`) and its tracing span, and reported afterwards
//! in `Server-Timing`. The response body carries the session and runs each
//! poll inside it, so blocks fetched while the body streams belong to the
//! request; when the body ends or is dropped the session ends, which drops
//! its wants and so sends CANCEL to every peer asked.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use tracing::Instrument;

use super::super::state::Gateway;
use crate::session::{self, Budget, Session, SessionBody};

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Runs the rest of the request, and its body, in a new session. The
/// session also rides in the request's extensions, for the layers inside
/// that report on it when the body ends.
pub async fn in_session<F, Fut>(gateway: &Gateway, mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let session = Session::new();
    session.set_budget(Budget {
        max_blocks: gateway.limits.max_blocks_per_request,
        max_bytes: gateway.limits.max_bytes_per_request,
    });
    let span = tracing::info_span!(
        "request",
        session = session.id(),
        method = %request.method(),
        path = %request.uri().path(),
        hints = request.headers().get_all("x-ipfs-provider").iter().count(),
    );
    request.extensions_mut().insert(session.clone());
    let mut response = session::within(session.clone(), inner(request))
        .instrument(span)
        .await;
    if let Ok(timing) = HeaderValue::from_str(&session.server_timing()) {
        response.headers_mut().insert(SERVER_TIMING, timing);
    }
    response.map(|body| Body::new(SessionBody::new(session, body)))
}
