//! Per-request metrics and the access log: the in-flight gauge, time to
//! first byte, retrieval timeouts, and, when the body is finished or
//! dropped, the request count and duration by status and response type and
//! one `sluice::access` log line.

use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::response::keep_until_body_ends;
use crate::metrics::{Metrics, RequestLabels, ResponseType, TypeLabel};
use crate::session::Session;

/// When the request was first seen, for the layers inside that measure
/// from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub Instant);

/// Counts the request in flight, times its first byte, and records the
/// rest when its body ends. The session, if the session layer set one up,
/// is read from the request's extensions.
pub async fn observe<F, Fut>(mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let session = request.extensions().get::<Session>().cloned();
    let in_flight = InFlight::enter();
    let started = Instant::now();
    request.extensions_mut().insert(RequestStarted(started));
    let response = inner(request).await;
    let metrics = Metrics::global();
    let response_type = response
        .extensions()
        .get::<ResponseType>()
        .copied()
        .unwrap_or(ResponseType::Error);
    if response.status() == StatusCode::GATEWAY_TIMEOUT {
        metrics.retrieval_timeouts.inc();
    }
    metrics
        .time_to_first_byte
        .get_or_create(&TypeLabel { response_type })
        .observe(started.elapsed().as_secs_f64());
    let guard = RequestGuard {
        _in_flight: in_flight,
        started,
        labels: RequestLabels {
            response_type,
            status: response.status().as_u16(),
        },
        session,
    };
    keep_until_body_ends(response, guard)
}

/// Counts a request in flight for as long as it lives: also when a panic
/// unwinds through the handler before the response (and its
/// [`RequestGuard`]) exists.
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> InFlight {
        Metrics::global().in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Metrics::global().in_flight.dec();
    }
}

/// Held for the life of a response: records its metrics and its access
/// log line when the body is done or dropped.
pub struct RequestGuard {
    /// Only held: the request leaves the gauge when the guard is dropped.
    _in_flight: InFlight,
    started: Instant,
    labels: RequestLabels,
    session: Option<Session>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = self
            .session
            .as_ref()
            .map(Session::activity)
            .unwrap_or_default();
        tracing::debug!(
            target: "sluice::access",
            session = self.session.as_ref().map_or(0, Session::id),
            status = self.labels.status,
            response_type = ?self.labels.response_type,
            blocks_cache = activity.blocks_from_cache,
            blocks_store = activity.blocks_from_store,
            blocks_network = activity.blocks_from_network,
            bytes_network = activity.bytes_from_network,
            providers = self.session.as_ref().map_or(0, Session::providers_used),
            ms = self.started.elapsed().as_millis() as u64,
            "request finished"
        );
        let metrics = Metrics::global();
        metrics.requests.get_or_create(&self.labels).inc();
        metrics
            .request_duration
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}
