//! The layers around every content request, one file per concern,
//! composed in one place ([`around_content`]) so the order is read, not
//! inferred. Outermost first:
//!
//! 1. [`admission`]: room for the request at all (concurrent requests and
//!    live sessions, else 429), and request header size (431, innermost).
//! 2. [`session`]: the request's retrieval session with its budget, the
//!    tracing span, and `Server-Timing` from the session afterwards.
//! 3. [`metrics`]: the in-flight gauge, time to first byte, and the request
//!    metrics and access log, recorded when the body ends.
//! 4. [`timeouts`]: the first-byte timeout around the handler (504), then
//!    the stall and total-time limits on the body.
//!
//! Each layer that must outlive the handler (a concurrency permit, the
//! metrics guard, the session, the body timers) wraps the response body,
//! so what it holds is released when the body is finished or dropped. The
//! panic layers of `router()` sit outside all of these: a panic unwinds
//! through them and drops what they hold (the in-flight gauge included).

mod admission;
mod metrics;
mod session;
mod timeouts;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;

use super::errors::GatewayError;
use super::limits::tag;
use super::state::Gateway;
use crate::metrics::ResponseType;

/// `routes` with the content layers around each of them. Only the routes
/// given here are wrapped: health checks and the 404 fallback are not
/// requests for content and are not limited or counted as such.
pub fn around_content(routes: Router<Arc<Gateway>>, gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    // A layer added later wraps the ones added before it: innermost first.
    routes
        .route_layer(from_fn_with_state(
            gateway.clone(),
            admission::limit_header_size,
        ))
        .route_layer(from_fn_with_state(gateway.clone(), timeouts::first_byte))
        .route_layer(axum::middleware::from_fn(metrics::observe))
        .route_layer(from_fn_with_state(gateway.clone(), session::in_session))
        .route_layer(from_fn_with_state(gateway, admission::admit))
}

/// The response for a request that failed with `err`, marked as an error
/// for the metrics; `html` when the client is a browser.
pub fn failed(uri: &Uri, err: GatewayError, html: bool) -> Response {
    tracing::debug!(uri = %uri, error = %err, "request failed");
    tag(err.into_response_for(html), ResponseType::Error)
}

/// `response` with `held` kept alive until its body is finished or dropped.
fn keep_until_body_ends<T: Send + 'static>(response: Response, held: T) -> Response {
    response.map(|inner| Body::new(Holding { inner, _held: held }))
}

pin_project_lite::pin_project! {
    /// A body that owns something for as long as it lives.
    struct Holding<T> {
        #[pin]
        inner: Body,
        _held: T,
    }
}

impl<T> http_body::Body for Holding<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
