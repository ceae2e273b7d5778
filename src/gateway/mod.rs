//! The HTTP gateway: the path gateway and the trustless gateway under
//! `/ipfs/`, to the IPFS gateway specs.
//!
//! A request is parsed and validated once ([`request`]), its content path
//! resolved through the DAG layer, and then handed to the handler for its
//! response type: a UnixFS file, a directory, a raw block, a CAR, or an
//! IPLD codec. Handlers read blocks only through the [`BlockService`]; they
//! know nothing of where blocks come from. Errors become statuses in one
//! place ([`errors`]).

mod config;
mod errors;
mod handler_block;
mod handler_car;
mod handler_codec;
mod handler_dir;
mod handler_file;
mod headers;
pub mod limits;
mod panics;
mod ranges;
mod request;
mod sniff;
pub(crate) mod templates;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

pub use config::GatewayConfig;
pub use errors::GatewayError;
pub use request::{ContentRequest, Format};

use crate::blocks::read_ahead::ReadAheadPool;
use crate::blocks::BlockService;
use crate::dag::{resolve_path, Node};
use crate::dial::AddressPolicy;
use crate::metrics::{Metrics, RequestLabels, ResponseType};
use crate::routing::{parse_hints, HintsConfig};
use crate::session::{self, Session, SessionBody};
use crate::unixfs::UnixfsNode;
use limits::{header_bytes, tag, InFlight, LimitedBody, LimitsConfig, RequestGuard};

/// What every handler needs.
pub struct Gateway {
    pub blocks: BlockService,
    pub config: GatewayConfig,
    pub hints: HintsConfig,
    pub limits: LimitsConfig,
    /// Bytes all responses hold fetched ahead of their writers.
    pub read_ahead: ReadAheadPool,
    /// Hints are checked against it as they are parsed.
    pub address_policy: AddressPolicy,
    concurrency: Arc<tokio::sync::Semaphore>,
}

impl Gateway {
    pub fn new(
        blocks: BlockService,
        config: GatewayConfig,
        hints: HintsConfig,
        limits: LimitsConfig,
    ) -> Gateway {
        let concurrency = Arc::new(tokio::sync::Semaphore::new(
            limits.max_concurrent_requests.max(1),
        ));
        Gateway {
            blocks,
            config,
            address_policy: AddressPolicy::new(hints.allow_private),
            hints,
            read_ahead: ReadAheadPool::new(limits.read_ahead()),
            limits,
            concurrency,
        }
    }

    /// Checks hints against `policy` (the process's, which knows its own
    /// listening addresses) instead of a policy of its own.
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Gateway {
        self.address_policy = policy;
        self
    }
}

/// The gateway's HTTP routes, with CORS and request tracing.
pub fn router(gateway: Gateway) -> Router {
    let routes = Router::new()
        .route("/ipfs/{*path}", get(content))
        .route("/ipfs", get(content))
        .route("/ipfs/", get(content))
        .route("/healthz", get(crate::control::healthz))
        .fallback(not_found)
        .with_state(Arc::new(gateway));
    harden(routes)
}

/// The layers around the routes: a panic in a handler is a 500 (still
/// with CORS headers), one in a response body ends that body; both are
/// logged and counted, and the connection lives on.
fn harden(routes: Router) -> Router {
    routes
        .layer(CatchPanicLayer::custom(panics::response_for_panic))
        .layer(axum::middleware::from_fn(cors))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(panics::panic_safe_bodies))
}

/// Content is public: any origin may read it, and the `X-Ipfs-*` headers.
/// Each value is its own header line, the form the gateway-conformance
/// suite checks (tower-http's CORS layer joins them into one line).
async fn cors(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        axum::http::StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    for method in ["GET", "HEAD", "OPTIONS"] {
        headers.append(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(method),
        );
    }
    for allowed in ["Content-Type", "Range", "User-Agent", "X-Requested-With"] {
        headers.append(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(allowed),
        );
    }
    for exposed in [
        "Content-Range",
        "Content-Length",
        "X-Ipfs-Path",
        "X-Ipfs-Roots",
        "X-Chunked-Output",
        "X-Stream-Output",
    ] {
        headers.append(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(exposed),
        );
    }
    response
}

async fn not_found(request: Request) -> Response {
    GatewayError::NotFound(format!(
        "no route for {}: content is served under /ipfs/<cid>",
        request.uri().path()
    ))
    .into_response()
}

/// Every content request runs in a session of its own, which lives until
/// the response body is finished or dropped, within the request limits.
async fn content(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let wants_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let Ok(permit) = gateway.concurrency.clone().try_acquire_owned() else {
        let limit = gateway.limits.max_concurrent_requests;
        return GatewayError::Overloaded(format!(
            "more than {limit} requests in flight; try again shortly"
        ))
        .into_response_for(wants_html);
    };
    // Sessions normally end with their request; this bounds the ones that
    // outlive it (background fetches) so they cannot pile up.
    let live = session::live_count();
    if live >= gateway.limits.max_live_sessions {
        return GatewayError::Overloaded(format!(
            "{live} retrieval sessions are live, the most allowed ([limits] max_live_sessions); try again shortly"
        ))
        .into_response_for(wants_html);
    }
    let metrics = Metrics::global();
    let in_flight = InFlight::enter();
    let started = std::time::Instant::now();
    let session = Session::new();
    session.set_budget(session::Budget {
        max_blocks: gateway.limits.max_blocks_per_request,
        max_bytes: gateway.limits.max_bytes_per_request,
    });
    let span = tracing::info_span!(
        "request",
        session = session.id(),
        method = %parts.method,
        path = %parts.uri.path(),
        hints = parts.headers.get_all("x-ipfs-provider").iter().count(),
    );
    let first_byte = std::time::Duration::from_secs(gateway.limits.first_byte_timeout_secs);
    let outcome = if header_bytes(&parts.headers) > gateway.limits.max_header_bytes {
        Err(GatewayError::HeadersTooLarge(format!(
            "request headers are larger than the {} byte limit",
            gateway.limits.max_header_bytes
        )))
    } else {
        match tokio::time::timeout(
            first_byte,
            session::within(session.clone(), serve(&gateway, &parts)).instrument(span),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(GatewayError::Timeout(format!(
                "no response could be started within {}s (retrieval timed out)",
                first_byte.as_secs()
            ))),
        }
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(uri = %parts.uri, error = %err, "request failed");
            tag(err.into_response_for(wants_html), ResponseType::Error)
        }
    };
    let kind = response
        .extensions()
        .get::<ResponseType>()
        .copied()
        .unwrap_or(ResponseType::Error);
    if response.status() == axum::http::StatusCode::GATEWAY_TIMEOUT {
        metrics.retrieval_timeouts.inc();
    }
    metrics
        .time_to_first_byte
        .get_or_create(&limits_type_label(kind))
        .observe(started.elapsed().as_secs_f64());
    if let Ok(timing) = HeaderValue::from_str(&session.server_timing()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("server-timing"), timing);
    }
    let guard = RequestGuard {
        in_flight,
        permit,
        started,
        labels: RequestLabels {
            response_type: kind,
            status: response.status().as_u16(),
        },
        session: session.clone(),
    };
    let limits = gateway.limits.clone();
    response.map(|body| {
        axum::body::Body::new(LimitedBody::new(
            SessionBody::new(session, body),
            &limits,
            guard,
        ))
    })
}

fn limits_type_label(response_type: ResponseType) -> crate::metrics::TypeLabel {
    crate::metrics::TypeLabel { response_type }
}

/// Everything a handler gets: the parsed request, the raw HTTP parts (for
/// conditional and range headers), and the block service to read from.
pub struct Ctx<'a> {
    pub gateway: &'a Gateway,
    pub http: &'a axum::http::request::Parts,
    pub request: ContentRequest,
    pub blocks: BlockService,
}

impl Ctx<'_> {
    pub fn is_head(&self) -> bool {
        self.http.method == Method::HEAD
    }
}

async fn serve(
    gateway: &Gateway,
    http: &axum::http::request::Parts,
) -> Result<Response, GatewayError> {
    let request = request::parse(&http.uri, &http.headers, gateway.config.max_url_bytes)?;
    let header_hints = http
        .headers
        .get_all("x-ipfs-provider")
        .iter()
        .map(|v| {
            v.to_str().map_err(|_| {
                GatewayError::BadRequest(
                    "X-Ipfs-Provider holds bytes that are not visible ASCII".into(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hint_values = header_hints
        .into_iter()
        .chain(request.provider_hints.iter().map(String::as_str));
    let hints = parse_hints(
        hint_values,
        gateway.hints.max_per_request,
        &gateway.address_policy,
    )?;
    gateway.blocks.seed_hints(&hints);
    let blocks = if request.only_if_cached {
        gateway.blocks.local_only()
    } else {
        gateway.blocks.clone()
    };
    let ctx = Ctx {
        gateway,
        http,
        request,
        blocks,
    };
    match ctx.request.format {
        Some(Format::Raw) => {
            return Ok(tag(
                handler_block::serve_raw_block(&ctx).await?,
                ResponseType::Raw,
            ))
        }
        Some(Format::Car) => {
            return Ok(tag(handler_car::serve_car(&ctx).await?, ResponseType::Car))
        }
        _ => {}
    }
    let resolved = resolve_path(&ctx.blocks, ctx.request.root, &ctx.request.segments).await?;
    if let Some(format) = ctx.request.format {
        return Ok(tag(
            handler_codec::serve_codec(&ctx, resolved, Some(format)).await?,
            ResponseType::Codec,
        ));
    }
    serve_unixfs(&ctx, resolved).await
}

/// Dispatch by what the path resolved to, for requests with no explicit
/// format (or a plain json/cbor one, which is no conversion for UnixFS).
async fn serve_unixfs(
    ctx: &Ctx<'_>,
    resolved: crate::dag::ResolvedPath,
) -> Result<Response, GatewayError> {
    let (response, kind) = match &resolved.node {
        _ if !resolved.remainder.is_empty() => (
            handler_codec::serve_codec(ctx, resolved, None).await?,
            ResponseType::Codec,
        ),
        Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. })) => (
            handler_file::serve_file(ctx, resolved).await?,
            ResponseType::File,
        ),
        Node::Pb(_, Some(UnixfsNode::Symlink { .. })) => (
            handler_file::serve_symlink(ctx, resolved).await?,
            ResponseType::File,
        ),
        Node::Pb(_, Some(fs)) if fs.is_directory() => (
            handler_dir::serve_directory(ctx, resolved).await?,
            ResponseType::Directory,
        ),
        _ => (
            handler_codec::serve_codec(ctx, resolved, None).await?,
            ResponseType::Codec,
        ),
    };
    Ok(tag(response, kind))
}

/// A 304 with the headers a cache needs to refresh its copy.
fn not_modified_response(mut headers: axum::http::HeaderMap) -> Response {
    headers.remove(header::CONTENT_LENGTH);
    (axum::http::StatusCode::NOT_MODIFIED, headers).into_response()
}

/// A response body streamed from `body`. An error is handed to hyper only
/// after one `Pending`: hyper writes out what it holds (the status line and
/// the chunks before the error) when the body is pending, while an error
/// met in the same pass makes it drop the connection with nothing sent, and
/// the client would not even learn the status.
fn streamed_body<E>(
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

/// `X-Content-Type-Options: nosniff`, for responses whose type must not be
/// second-guessed by a browser.
fn nosniff() -> (header::HeaderName, HeaderValue) {
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}
