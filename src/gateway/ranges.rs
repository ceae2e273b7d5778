//! HTTP `Range` requests: parsing against a known size, and the bodies of
//! 206 responses (one range as is, several as `multipart/byteranges`).
//! A malformed `Range` is a 400 naming the header, an unsatisfiable one a
//! 416; a `Range` in a unit other than bytes is ignored, as HTTP says.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use super::errors::GatewayError;
use super::headers::value;

/// Most ranges honoured in one request (more is a cheap amplification).
const MAX_RANGES: usize = 16;

/// A half-open byte range.
pub type ByteRange = (u64, u64);

/// The ranges asked for, or `None` when the request has no `Range` header
/// (or one in a unit other than bytes, which HTTP says to ignore).
pub fn requested_ranges(
    request_headers: &HeaderMap,
    size: u64,
) -> Result<Option<Vec<ByteRange>>, GatewayError> {
    let Some(raw) = request_headers.get(header::RANGE) else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| GatewayError::BadRequest("Range header is not ASCII".into()))?;
    if !text.trim_start().starts_with("bytes=") {
        return Ok(None);
    }
    let unsatisfiable = |reason: String| GatewayError::RangeNotSatisfiable { reason, size };
    let parsed = http_range_header::parse_range_header(text)
        .map_err(|e| GatewayError::BadRequest(format!("invalid Range header {text:?}: {e:?}")))?;
    if parsed.ranges.len() > MAX_RANGES {
        return Err(unsatisfiable(format!(
            "more than {MAX_RANGES} ranges in {text:?}"
        )));
    }
    if size == 0 {
        return Err(unsatisfiable(format!(
            "{text:?} asks for bytes of an empty body"
        )));
    }
    let ranges = parsed
        .validate(size)
        .map_err(|e| unsatisfiable(format!("{text:?} does not fit {size} bytes: {e:?}")))?;
    let ranges: Vec<ByteRange> = ranges
        .into_iter()
        .map(|r| (*r.start(), r.end() + 1))
        .collect();
    if ranges
        .iter()
        .any(|(start, end)| start >= end || *start >= size)
    {
        return Err(unsatisfiable(format!(
            "{text:?} starts past the end of {size} bytes"
        )));
    }
    Ok(Some(ranges))
}

/// Builds the response for a body of `size` bytes whose bytes in any range
/// `body_of` streams. `headers` already hold everything but the body's
/// own framing headers.
pub fn ranged_response(
    request_headers: &HeaderMap,
    mut headers: HeaderMap,
    content_type: &str,
    size: u64,
    head_only: bool,
    body_of: impl Fn(ByteRange) -> BoxStream<'static, Result<Bytes, GatewayError>>,
) -> Result<Response, GatewayError> {
    headers.insert(header::ACCEPT_RANGES, value("bytes"));
    let ranges = requested_ranges(request_headers, size)?;
    let (status, length, body) = match ranges.as_deref() {
        None | Some([]) => {
            headers.insert(header::CONTENT_TYPE, value(content_type));
            (StatusCode::OK, size, body_of((0, size)))
        }
        Some([(start, end)]) => {
            headers.insert(header::CONTENT_TYPE, value(content_type));
            headers.insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {start}-{}/{size}", end - 1)),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                end - start,
                body_of((*start, *end)),
            )
        }
        Some(many) => {
            let boundary = boundary_for(&headers, size);
            headers.insert(
                header::CONTENT_TYPE,
                value(&format!("multipart/byteranges; boundary={boundary}")),
            );
            let mut length = 0;
            let mut parts = Vec::new();
            for (i, (start, end)) in many.iter().enumerate() {
                let lead = if i == 0 { "" } else { "\r\n" };
                let part_head = format!(
                    "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{}/{size}\r\n\r\n",
                    end - 1
                );
                length += part_head.len() as u64 + (end - start);
                parts.push(stream::once(async move { Ok(Bytes::from(part_head)) }).boxed());
                parts.push(body_of((*start, *end)));
            }
            let tail = format!("\r\n--{boundary}--\r\n");
            length += tail.len() as u64;
            parts.push(stream::once(async move { Ok(Bytes::from(tail)) }).boxed());
            (
                StatusCode::PARTIAL_CONTENT,
                length,
                stream::iter(parts).flatten().boxed(),
            )
        }
    };
    headers.insert(header::CONTENT_LENGTH, value(&length.to_string()));
    let body = if head_only {
        Body::empty()
    } else {
        super::body::streamed_body(body)
    };
    Ok((status, headers, body).into_response())
}

/// A part boundary that cannot occur inside the parts' own headers and is
/// stable for the same response (so repeated requests match byte for byte).
fn boundary_for(headers: &HeaderMap, size: u64) -> String {
    let etag = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hash = super::etag::fnv1a(etag.bytes().chain(size.to_le_bytes()));
    format!("sluice-{hash:016x}")
}

/// Serves bytes already in memory (a block, a converted document, a page),
/// honouring `Range`.
pub fn bytes_response(
    request_headers: &HeaderMap,
    headers: HeaderMap,
    content_type: &str,
    body: Bytes,
    head_only: bool,
) -> Result<Response, GatewayError> {
    let size = body.len() as u64;
    ranged_response(
        request_headers,
        headers,
        content_type,
        size,
        head_only,
        move |(start, end)| {
            let part = body.slice(start as usize..end as usize);
            stream::once(async move { Ok(part) }).boxed()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ranges(h: &str, size: u64) -> Result<Option<Vec<ByteRange>>, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(h).unwrap());
        requested_ranges(&headers, size)
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(ranges("bytes=6-16", 31).unwrap(), Some(vec![(6, 17)]));
        assert_eq!(ranges("bytes=-3", 31).unwrap(), Some(vec![(28, 31)]));
        assert_eq!(ranges("bytes=10-", 31).unwrap(), Some(vec![(10, 31)]));
        assert_eq!(
            ranges("bytes=6-16,0-4", 31).unwrap(),
            Some(vec![(6, 17), (0, 5)])
        );
        assert_eq!(ranges("bytes=0-100", 31).unwrap(), Some(vec![(0, 31)]));
        assert_eq!(ranges("items=0-1", 31).unwrap(), None);
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(matches!(
            ranges("bytes=40-50", 31),
            Err(GatewayError::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            ranges("bytes=abc", 31),
            Err(GatewayError::BadRequest(_))
        ));
        assert!(matches!(
            ranges("bytes=5-1", 31),
            Err(GatewayError::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            ranges("bytes=0-1", 0),
            Err(GatewayError::RangeNotSatisfiable { .. })
        ));
    }
}
