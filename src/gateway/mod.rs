//! The HTTP gateway: the path gateway and the trustless gateway under
//! `/ipfs/`, to the IPFS gateway specs.
//!
//! A content request passes the layers of `middleware` (admission,
//! session and budget, metrics and access log, timeouts), is parsed and
//! validated once (`request`), and answered by the one handler
//! `dispatch` chooses from the request and what its content path
//! resolved to: a UnixFS file, a directory, a raw block, a CAR, a TAR, or
//! an IPLD codec. No handler calls another. Handlers read blocks only through the [`BlockService`](crate::blocks::BlockService); they
//! know nothing of where blocks come from. Errors become statuses in one
//! place (`errors`).

mod body;
mod config;
mod dispatch;
mod errors;
mod etag;
mod handler_block;
mod handler_car;
mod handler_codec;
mod handler_dir;
mod handler_file;
mod handler_tar;
mod headers;
mod hosts;
mod landing;
pub mod limits;
mod middleware;
mod names;
mod origin;
mod panics;
mod ranges;
mod redirects;
mod representations;
mod request;
mod site_redirects;
mod sniff;
mod state;
mod tar_format;
pub(crate) mod templates;
mod uri_router;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use config::GatewayConfig;
pub use errors::GatewayError;
pub use request::{ContentRequest, Format};
use state::Ctx;
pub use state::Gateway;

use crate::dag::resolve_path;
use crate::metrics::Metrics;
use crate::routing::parse_hints;
use crate::session::Membership;
use dispatch::{Asked, Decision, Index, Resolved, ResponseKind};
use limits::tag;

/// The gateway's HTTP routes, with CORS and request tracing; content
/// routes also with the request layers of `middleware`.
pub fn router(gateway: Gateway) -> Router {
    let gateway = Arc::new(gateway);
    let content_routes = Router::new()
        .route("/ipfs/{*path}", get(content))
        .route("/ipfs", get(content))
        .route("/ipfs/", get(content))
        .route("/ipns/{*path}", get(content))
        .route("/ipns", get(content))
        .route("/ipns/", get(content));
    let routes = middleware::around_content(content_routes, gateway.clone())
        .route("/healthz", get(crate::control::healthz))
        .route("/", get(landing::landing))
        .fallback(not_found)
        .with_state(gateway.clone());
    // The host decides the site before the path is routed.
    let by_host = axum::middleware::from_fn_with_state(gateway, hosts::route_by_host);
    harden(Router::new().fallback_service(tower::Layer::layer(&by_host, routes)))
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
        "no route for {}: content is served under /ipfs/<cid> and /ipns/<name>",
        request.uri().path()
    ))
    .into_response()
}

/// A content request: parsed, its hints seeded, and handed to the handler
/// for its response kind. Limits, the session, timeouts and metrics are the
/// layers around it ([`middleware`]).
async fn content(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let site = parts.extensions.get::<origin::OnSite>().cloned();
    let mut response = match serve(&gateway, &parts, site).await {
        Ok(response) => response,
        Err(err) => middleware::failed(&parts.uri, err, request::wants_html(&parts.headers)),
    };
    headers::vary_on_accept(response.headers_mut());
    response
}

async fn serve(
    gateway: &Gateway,
    http: &axum::http::request::Parts,
    site: Option<origin::OnSite>,
) -> Result<Response, GatewayError> {
    request::check_target_length(&http.uri, gateway.config.max_url_bytes)?;
    if let Some(redirect) = uri_router::redirect(&http.uri) {
        return redirect;
    }
    let mut request = request::parse(&http.uri, &http.headers, gateway.config.max_url_bytes)?;
    if let Some(site) = site {
        request.site = Some(site.origin);
        request.public_path = site.public_path;
    }
    // The segments above the request's own: a DNSLink or IPNS value's path,
    // the root a site's `_redirects` sits in.
    let mut site_root = Vec::new();
    // An `/ipns/` name becomes the root and path it points at; its
    // responses may be cached for as long as the name.
    let mut name_ttl = None;
    if let Some(name) = request.ipns_name.clone() {
        if let Some(canonical) = names::canonical_location(&name, &request) {
            return Ok(canonical);
        }
        let names = gateway
            .names
            .as_ref()
            .ok_or(crate::names::NameError::NoSources)?;
        if request.ipns_record {
            return names::record_response(names, &name, &request).await;
        }
        let resolved = names.resolve(&name, &request.segments).await?;
        let own = request.segments.len();
        site_root = resolved.segments[..resolved.segments.len().saturating_sub(own)].to_vec();
        request.root = resolved.root;
        request.segments = resolved.segments;
        name_ttl = Some(resolved.ttl);
    }
    // A site's later requests start from what its first one learned.
    if let Some(session) = crate::session::current() {
        if let Membership::Forked { .. } = gateway.families.join(&session, &request.root) {
            Metrics::global().sessions_forked.inc();
        }
    }
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
    let client = http
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let hints = gateway.hint_limits.admit(client, hints);
    gateway.blocks.seed_hints(&hints);
    let blocks = if request.only_if_cached {
        gateway.blocks.local_only()
    } else {
        gateway.blocks.clone()
    };
    let mut ctx = Ctx {
        gateway,
        http,
        request,
        blocks,
    };
    let mut asked = Asked::of(&ctx.request, gateway.config.allow_codec_conversion);
    // The facts the decision asks for, gathered only when it asks.
    let mut resolved = None;
    let mut index = None;
    // A `_redirects` rule that serves another path may set the status.
    let mut status = None;
    let mut decision = dispatch::decide(&asked, Resolved::Unresolved);
    if decision == Decision::ResolvePath {
        let path = match resolve_path(&ctx.blocks, ctx.request.root, &ctx.request.segments).await {
            Ok(path) => path,
            Err(err) if site_redirects::applies(&ctx, &err) => {
                match site_redirects::consult(&ctx, &site_root).await? {
                    None => return Err(err.into()),
                    Some(redirects::Outcome::Redirect { status, location }) => {
                        return Ok(site_redirects::redirect(status, &location))
                    }
                    Some(redirects::Outcome::Rewrite {
                        status: rule_status,
                        path,
                    }) => {
                        site_redirects::rewrite(&mut ctx.request, &site_root, &path)?;
                        asked = Asked::of(&ctx.request, gateway.config.allow_codec_conversion);
                        status = Some(rule_status);
                        resolve_path(&ctx.blocks, ctx.request.root, &ctx.request.segments).await?
                    }
                }
            }
            Err(err) => return Err(err.into()),
        };
        decision = dispatch::decide(&asked, Resolved::of(&path, Index::NotLookedUp));
        resolved = Some(path);
    }
    if decision == Decision::FindIndex {
        let dir = needed(resolved.as_ref())?;
        let found = handler_dir::find_index_file(&ctx, dir).await?;
        let known = if found.is_some() {
            Index::File
        } else {
            Index::Absent
        };
        decision = dispatch::decide(&asked, Resolved::of(dir, known));
        index = found;
    }
    let Decision::Respond(kind) = decision else {
        return Err(GatewayError::Internal(format!(
            "the response kind was still undecided: {decision:?}"
        )));
    };
    let response = match kind {
        ResponseKind::RawBlock => handler_block::serve_raw_block(&ctx).await?,
        ResponseKind::Car => handler_car::serve_car(&ctx).await?,
        ResponseKind::File => handler_file::serve_file(&ctx, needed(resolved)?).await?,
        ResponseKind::Symlink => handler_file::serve_symlink(&ctx, needed(resolved)?).await?,
        ResponseKind::DirectoryRedirect => handler_dir::redirect_to_slash(&ctx),
        ResponseKind::DirectoryIndex => {
            handler_file::serve_directory_index(
                &ctx,
                needed(resolved.as_ref())?,
                needed(index.as_ref())?,
                handler_dir::INDEX_FILE,
            )
            .await?
        }
        ResponseKind::DirectoryListing => {
            handler_dir::serve_listing(&ctx, needed(resolved.as_ref())?).await?
        }
        ResponseKind::Codec(format) => {
            handler_codec::serve_codec(&ctx, needed(resolved)?, format).await?
        }
        ResponseKind::Tar => handler_tar::serve_tar(&ctx, needed(resolved)?).await?,
        ResponseKind::DagHtml => handler_codec::serve_html_view(&ctx, needed(resolved.as_ref())?)?,
        ResponseKind::PathRemainder => {
            return Err(dispatch::remainder_error(&needed(resolved)?.remainder))
        }
        ResponseKind::NotAcceptable(format) => {
            return Err(representations::refuse(&needed(resolved)?, format))
        }
    };
    let mut response = tag(response, kind.response_type(asked.format));
    if let Some(status) = status {
        site_redirects::set_status(&mut response, status);
    }
    if let Some(ttl) = name_ttl {
        names::cache_for(&mut response, ttl);
    }
    Ok(response)
}

/// A fact [`dispatch::decide`] asked for before choosing `kind`; missing
/// only if the decision and the gathering above disagree, a bug.
fn needed<T>(fact: Option<T>) -> Result<T, GatewayError> {
    fact.ok_or_else(|| {
        GatewayError::Internal("a response was chosen before what it needs was known".into())
    })
}
