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
//! so what it holds is released when the body is finished or dropped
//! (`response.rs`, with the one way a layer answers a failed request). The
//! panic layers of `router()` sit outside all of these: a panic unwinds
//! through them and drops what they hold (the in-flight gauge included).

mod admission;
mod metrics;
mod response;
mod session;
mod timeouts;

pub use response::failed;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;

use super::state::Gateway;

/// `routes` with the content layers around each of them. Only the routes
/// given here are wrapped: health checks and the 404 fallback are not
/// requests for content and are not limited or counted as such.
pub fn around_content(routes: Router<Arc<Gateway>>, gateway: Arc<Gateway>) -> Router<Arc<Gateway>> {
    routes.route_layer(from_fn_with_state(gateway, content_layers))
}

/// The layers, outermost first, as plain calls inside one axum layer: as
/// five `from_fn` layers each boxed and cloned the services inside it on
/// every request (most of the cost of serving a small file).
async fn content_layers(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let gateway = &*gateway;
    admission::admit(gateway, request, |request| {
        session::in_session(gateway, request, |request| {
            metrics::observe(request, |request| {
                timeouts::first_byte(gateway, request, |request| {
                    admission::limit_header_size(gateway, request, |request| next.run(request))
                })
            })
        })
    })
    .await
}
