//! What the layers build responses with: the response for a failed
//! request, and a body that keeps something alive until it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Uri;
use axum::response::Response;
use bytes::Bytes;

use super::super::errors::GatewayError;
use super::super::limits::tag;
use crate::metrics::ResponseType;

/// The response for a request that failed with `err`, marked as an error
/// for the metrics; `html` when the client is a browser.
pub fn failed(uri: &Uri, err: GatewayError, html: bool) -> Response {
    tracing::debug!(uri = %uri, error = %err, "request failed");
    tag(err.into_response_for(html), ResponseType::Error)
}

/// `response` with `held` kept alive until its body is finished or dropped.
pub fn keep_until_body_ends<T: Send + 'static>(response: Response, held: T) -> Response {
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
