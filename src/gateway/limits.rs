//! Request limits: a cap on concurrent requests and live sessions (429
//! with `Retry-After`), request header size (431), blocks and bytes read
//! per request (403, enforced by the session's budget), bytes fetched
//! ahead of the writer (per response and in all, see
//! [`crate::blocks::read_ahead`]), time to the response headers (504), stalls
//! between body writes and the whole response's duration (both end the
//! body abnormally, as the status is already sent), and the per-request
//! metrics that need to see the body finish.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use crate::metrics::{Metrics, RequestLabels, ResponseType};

/// `[limits]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Content requests answered at once; more get 429 with Retry-After.
    pub max_concurrent_requests: usize,
    /// Total bytes of request headers accepted; more is 431.
    pub max_header_bytes: usize,
    /// Seconds until the response headers must be ready (504 after).
    pub first_byte_timeout_secs: u64,
    /// Seconds the body may go without a write before it is ended.
    pub stall_timeout_secs: u64,
    /// Seconds a whole response may take.
    pub max_request_secs: u64,
    /// Seconds responses in flight get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Blocks one request may read (from any source); past it, 403.
    pub max_blocks_per_request: u64,
    /// Bytes of blocks one request may read; past it, 403.
    pub max_bytes_per_request: u64,
    /// Sessions alive at once (one per request in flight, plus background
    /// fetches); past it, 429.
    pub max_live_sessions: usize,
    /// Bytes of blocks one response may hold fetched ahead of its writer.
    pub read_ahead_bytes_per_response: u64,
    /// Bytes of blocks all responses together may hold fetched ahead.
    pub read_ahead_bytes_total: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_requests: 1024,
            max_header_bytes: 16 * 1024,
            first_byte_timeout_secs: 60,
            stall_timeout_secs: 60,
            max_request_secs: 3600,
            shutdown_grace_secs: 30,
            max_blocks_per_request: 1_000_000,
            max_bytes_per_request: 64 << 30,
            max_live_sessions: 4096,
            read_ahead_bytes_per_response: 20 << 20,
            read_ahead_bytes_total: 256 << 20,
        }
    }
}

pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
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

/// Held for the life of a response: releases its concurrency slot and
/// records its metrics when the body is done or dropped.
pub struct RequestGuard {
    pub in_flight: InFlight,
    pub permit: OwnedSemaphorePermit,
    pub started: Instant,
    pub labels: RequestLabels,
    pub session: crate::session::Session,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = self.session.activity();
        tracing::debug!(
            target: "sluice::access",
            session = self.session.id(),
            status = self.labels.status,
            response_type = ?self.labels.response_type,
            blocks_cache = activity.blocks_from_cache,
            blocks_store = activity.blocks_from_store,
            blocks_network = activity.blocks_from_network,
            bytes_network = activity.bytes_from_network,
            providers = self.session.providers_used(),
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

pin_project_lite::pin_project! {
    /// A response body with stall and total-time limits.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        stall: Pin<Box<Sleep>>,
        stall_after: Duration,
        deadline: Pin<Box<Sleep>>,
        guard: RequestGuard,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limits: &LimitsConfig, guard: RequestGuard) -> Self {
        let stall_after = Duration::from_secs(limits.stall_timeout_secs);
        let remaining =
            Duration::from_secs(limits.max_request_secs).saturating_sub(guard.started.elapsed());
        LimitedBody {
            inner,
            stall: Box::pin(tokio::time::sleep(stall_after)),
            stall_after,
            deadline: Box::pin(tokio::time::sleep(remaining)),
            guard,
        }
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.deadline.as_mut().poll(cx).is_ready() {
            Metrics::global().retrieval_timeouts.inc();
            tracing::warn!("response ended: longer than [limits] max_request_secs");
            return Poll::Ready(Some(Err(
                "response took longer than the request time limit".into(),
            )));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + *this.stall_after;
                this.stall.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.stall.as_mut().poll(cx).is_ready() {
                    Metrics::global().retrieval_timeouts.inc();
                    tracing::warn!("response ended: no data for [limits] stall_timeout_secs");
                    return Poll::Ready(Some(Err("response stalled: retrieval timed out".into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl LimitsConfig {
    /// The read-ahead budgets these limits set.
    pub fn read_ahead(&self) -> crate::blocks::read_ahead::ReadAheadLimits {
        crate::blocks::read_ahead::ReadAheadLimits {
            per_response: self.read_ahead_bytes_per_response,
            total: self.read_ahead_bytes_total,
        }
    }
}

/// Marks a response with the handler that made it (for metrics).
pub fn tag(mut response: axum::response::Response, kind: ResponseType) -> axum::response::Response {
    response.extensions_mut().insert(kind);
    response
}
