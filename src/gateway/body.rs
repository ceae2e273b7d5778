//! Streamed response bodies, for the responses (CARs, byte ranges) whose
//! length is not known when the status is sent. A block missing or failing
//! verification after the status was sent ends the body abnormally, so a
//! client never mistakes a truncated body for a complete one; the status
//! and the bytes before the error still reach it.

/// A response body streamed from `body`. An error is handed to hyper only
/// after one `Pending`: hyper writes out what it holds (the status line and
/// the chunks before the error) when the body is pending, while an error
/// met in the same pass makes it drop the connection with nothing sent, and
/// the client would not even learn the status.
pub fn streamed_body<E>(
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, E>>,
) -> axum::body::Body
where
    E: Into<axum::BoxError> + Send + 'static,
{
    use futures::StreamExt;
    use std::task::Poll;
    let mut body = body.fuse();
    let mut failed: Option<E> = None;
    axum::body::Body::from_stream(futures::stream::poll_fn(move |cx| {
        if let Some(error) = failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match body.poll_next_unpin(cx) {
            Poll::Ready(Some(Err(error))) => {
                failed = Some(error);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }))
}
