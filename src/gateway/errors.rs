//! The one place errors become HTTP statuses, and the error page clients
//! see (HTML for browsers, plain text for everyone else).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::tar_format::TarError;
use crate::blocks::BlockError;
use crate::dag::DagError;
use crate::names::{DnsLinkError, NameError};
use crate::routing::HintError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    NotCached(String),
    #[error("requested range is not satisfiable: {reason}")]
    RangeNotSatisfiable { reason: String, size: u64 },
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    BadContent(String),
    #[error("{0}")]
    NoProvider(String),
    #[error("{0}")]
    StoreUnavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request would read more than a request may (`[limits]`).
    #[error("{0}")]
    OverBudget(String),
    /// A site's own configuration is broken (its `_redirects` file): the
    /// spec makes it a 500 that says what is wrong.
    #[error("{0}")]
    BrokenSite(String),
    /// A bug (a panic caught while answering); never expected.
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            GatewayError::NotCached(_) => StatusCode::PRECONDITION_FAILED,
            GatewayError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            GatewayError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            GatewayError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            GatewayError::BadContent(_) | GatewayError::NoProvider(_) => StatusCode::BAD_GATEWAY,
            GatewayError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            // Not retryable as is: the client must ask for less.
            GatewayError::OverBudget(_) => StatusCode::FORBIDDEN,
            GatewayError::BrokenSite(_) | GatewayError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Renders the error for a client; `html` when the client is a browser.
    pub fn into_response_for(self, html: bool) -> Response {
        let status = self.status();
        let message = self.to_string();
        let mut response = if html {
            let page = super::templates::error_page(status, &message);
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page,
            )
                .into_response()
        } else {
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{message}\n"),
            )
                .into_response()
        };
        let headers = response.headers_mut();
        if let GatewayError::RangeNotSatisfiable { size, .. } = &self {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        } else if status.is_server_error() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        // Errors are not content: never let a cache keep them as if they were.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_response_for(false)
    }
}

impl From<BlockError> for GatewayError {
    fn from(err: BlockError) -> Self {
        match err {
            BlockError::NotFound { .. } => GatewayError::NoProvider(err.to_string()),
            BlockError::NotCached(_) => {
                GatewayError::NotCached(format!("{err} (Cache-Control: only-if-cached)"))
            }
            BlockError::Invalid { .. } => GatewayError::BadContent(err.to_string()),
            BlockError::Io { .. } => GatewayError::StoreUnavailable(err.to_string()),
            BlockError::Timeout(_) => GatewayError::Timeout(err.to_string()),
            BlockError::OverBudget(_) => GatewayError::OverBudget(err.to_string()),
        }
    }
}

impl From<NameError> for GatewayError {
    fn from(err: NameError) -> Self {
        match err {
            NameError::BadName(_) => GatewayError::BadRequest(err.to_string()),
            NameError::NoRecord { .. } | NameError::NoSources => {
                GatewayError::NoProvider(err.to_string())
            }
            NameError::Broken { .. }
            | NameError::BadValue { .. }
            | NameError::TooDeep { .. }
            | NameError::Loop { .. } => GatewayError::BadContent(err.to_string()),
            NameError::NoDns(_) => GatewayError::NoProvider(err.to_string()),
            NameError::DnsLink(ref e) => match e {
                DnsLinkError::BadDomain { .. } => GatewayError::BadRequest(err.to_string()),
                // The name points nowhere: nothing is there to serve.
                DnsLinkError::NoDomain { .. } | DnsLinkError::NoLink { .. } => {
                    GatewayError::NotFound(err.to_string())
                }
                DnsLinkError::Timeout { .. } => GatewayError::Timeout(err.to_string()),
                // The DNS server answered badly or not at all.
                DnsLinkError::BadLink { .. }
                | DnsLinkError::Ambiguous { .. }
                | DnsLinkError::TooManyRecords { .. }
                | DnsLinkError::Lookup { .. } => GatewayError::BadContent(err.to_string()),
            },
        }
    }
}

impl From<DagError> for GatewayError {
    fn from(err: DagError) -> Self {
        match err {
            DagError::Block(e) => e.into(),
            DagError::NoSuchLink { .. } | DagError::NotTraversable { .. } => {
                GatewayError::NotFound(err.to_string())
            }
            DagError::UnsupportedCodec { .. } => GatewayError::NotImplemented(err.to_string()),
            DagError::Decode { .. } | DagError::Inconsistent { .. } | DagError::TooDeep(_) => {
                GatewayError::BadContent(err.to_string())
            }
        }
    }
}

impl From<HintError> for GatewayError {
    fn from(err: HintError) -> Self {
        GatewayError::BadRequest(err.to_string())
    }
}

impl From<TarError> for GatewayError {
    fn from(err: TarError) -> Self {
        match err {
            TarError::Dag(e) => e.into(),
            // The content cannot be a TAR, as content that is not UnixFS
            // cannot (the spec's 400); a CAR can carry it.
            TarError::BadName { .. } | TarError::NotUnixfs { .. } | TarError::BadLink { .. } => {
                GatewayError::BadRequest(err.to_string())
            }
            TarError::TooLarge(_) => GatewayError::OverBudget(err.to_string()),
        }
    }
}
