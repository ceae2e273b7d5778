//! Defence in depth against bugs on untrusted input: a panic while a
//! request is handled becomes a 500, and a panic while its body is polled
//! ends that body abnormally; both are logged and counted, and neither
//! takes the connection down with it.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::GatewayError;
use crate::metrics::Metrics;

/// The text a panic was raised with, when it is a string.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The answer to a request whose handler panicked (for tower-http's
/// catch-panic layer).
pub fn response_for_panic(payload: Box<dyn Any + Send + 'static>) -> Response {
    Metrics::global().panics.inc();
    tracing::error!(
        panic = panic_message(payload.as_ref()),
        "request handler panicked; answered 500"
    );
    GatewayError::Internal("internal error while answering this request (logged)".into())
        .into_response()
}

pin_project_lite::pin_project! {
    /// A response body that turns a panic in `inner` into a body error.
    pub struct PanicSafeBody<B> {
        #[pin]
        inner: B,
        state: State,
    }
}

enum State {
    Polling,
    /// Panicked; the error is handed out after one `Pending` so hyper
    /// first writes what it holds (see `gateway::streamed_body`).
    Panicked,
    Done,
}

impl<B> PanicSafeBody<B> {
    pub fn new(inner: B) -> Self {
        PanicSafeBody {
            inner,
            state: State::Polling,
        }
    }
}

impl<B> http_body::Body for PanicSafeBody<B>
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
        match this.state {
            State::Done => return Poll::Ready(None),
            State::Panicked => {
                *this.state = State::Done;
                return Poll::Ready(Some(Err("response body ended by an internal error".into())));
            }
            State::Polling => {}
        }
        let inner = this.inner;
        // The body is never polled again after a panic, so no broken
        // invariant inside it can be observed.
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
            Ok(polled) => polled.map(|frame| frame.map(|f| f.map_err(Into::into))),
            Err(payload) => {
                Metrics::global().panics.inc();
                tracing::error!(
                    panic = panic_message(payload.as_ref()),
                    "response body panicked; ending it"
                );
                *this.state = State::Panicked;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.state {
            State::Polling => self.inner.is_end_stream(),
            State::Panicked => false,
            State::Done => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.state {
            State::Polling => self.inner.size_hint(),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// Wraps every response body of the router in a [`PanicSafeBody`].
pub async fn panic_safe_bodies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    next.run(request)
        .await
        .map(|body| axum::body::Body::new(PanicSafeBody::new(body)))
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn panicking_routes() -> Router {
        #[allow(clippy::unused_async)]
        async fn handler_panics() -> &'static str {
            panic!("handler bug")
        }
        async fn body_panics() -> axum::body::Body {
            let mut sent = false;
            axum::body::Body::from_stream(futures::stream::poll_fn(move |_| {
                if sent {
                    panic!("body bug");
                }
                sent = true;
                std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                    b"first chunk",
                ))))
            }))
        }
        super::super::harden(
            Router::new()
                .route("/handler", get(handler_panics))
                .route("/body", get(body_panics))
                .route("/ok", get(|| async { "fine" })),
        )
    }

    /// Sends `GET path` on `stream` and reads one response with a
    /// Content-Length body; returns the head and the body.
    async fn exchange(stream: &mut tokio::net::TcpStream, path: &str) -> (String, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-response");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .expect("content-length");
                if body.len() >= length {
                    return (head.to_string(), body.to_string());
                }
            }
        }
    }

    #[tokio::test]
    async fn a_handler_panic_is_a_500_and_the_connection_serves_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, panicking_routes()).await });
        let before = crate::metrics::Metrics::global().panics.get();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (head, body) = exchange(&mut stream, "/handler").await;
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        assert!(body.contains("internal error"), "{body}");
        assert!(crate::metrics::Metrics::global().panics.get() > before);
        // The same connection answers the next request.
        let (head, body) = exchange(&mut stream, "/ok").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, "fine");
    }

    #[tokio::test]
    async fn a_body_panic_ends_the_body_abnormally_after_what_was_sent() {
        let before = crate::metrics::Metrics::global().panics.get();
        let response = tower::ServiceExt::oneshot(
            panicking_routes(),
            axum::http::Request::get("/body")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = http_body_util::BodyExt::frame(&mut body)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "first chunk");
        let next = http_body_util::BodyExt::frame(&mut body).await;
        assert!(
            matches!(next, Some(Err(_))),
            "the body ends with an error, not a clean end"
        );
        assert!(crate::metrics::Metrics::global().panics.get() > before);
    }
}
