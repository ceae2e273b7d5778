//! Request limits: a cap on concurrent requests and live sessions (429
//! with `Retry-After`), request header size (431), blocks and bytes read
//! per request (403, enforced by the session's budget), bytes fetched
//! ahead of the writer (per response and in all, see
//! [`crate::blocks::read_ahead`]), time to the response headers (504), stalls
//! between body writes and the whole response's duration (both end the
//! body abnormally, as the status is already sent), and the per-request
//! metrics that need to see the body finish.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::metrics::ResponseType;

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
