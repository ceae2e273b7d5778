//! Time limits on a response: until its headers are ready (`[limits]
//! first_byte_timeout_secs`, a 504), between writes of its body
//! (`stall_timeout_secs`) and for the whole response (`max_request_secs`).
//! The last two end the body abnormally, as the status is already sent.

use std::future::Future;
use std::pin::Pin;

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use tokio::time::Sleep;

use super::super::errors::GatewayError;
use super::super::limits::LimitsConfig;
use super::super::request::wants_html;
use super::super::state::Gateway;
use super::metrics::RequestStarted;
use super::response::failed;
use crate::metrics::Metrics;

/// A 504 when the handler has no response within the first-byte timeout;
/// the body it does return is bounded by [`LimitedBody`].
pub async fn first_byte<F, Fut>(gateway: &Gateway, request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let limits = &gateway.limits;
    // The total time counts from when the request was first seen.
    let started = request
        .extensions()
        .get::<RequestStarted>()
        .map_or_else(Instant::now, |started| started.0);
    let uri = request.uri().clone();
    let html = wants_html(request.headers());
    let first_byte = Duration::from_secs(limits.first_byte_timeout_secs);
    let response = match tokio::time::timeout(first_byte, inner(request)).await {
        Ok(response) => response,
        Err(_) => failed(
            &uri,
            GatewayError::Timeout(format!(
                "no response could be started within {}s (retrieval timed out)",
                first_byte.as_secs()
            )),
            html,
        ),
    };
    response.map(|body| Body::new(LimitedBody::new(body, limits, started)))
}

pin_project_lite::pin_project! {
    /// A response body with stall and total-time limits.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        stall: Pin<Box<Sleep>>,
        stall_after: Duration,
        deadline: Pin<Box<Sleep>>,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limits: &LimitsConfig, started: Instant) -> Self {
        let stall_after = Duration::from_secs(limits.stall_timeout_secs);
        let remaining =
            Duration::from_secs(limits.max_request_secs).saturating_sub(started.elapsed());
        LimitedBody {
            inner,
            stall: Box::pin(tokio::time::sleep(stall_after)),
            stall_after,
            deadline: Box::pin(tokio::time::sleep(remaining)),
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
