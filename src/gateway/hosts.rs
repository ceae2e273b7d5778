//! The first step of every request, before routing: the site its host
//! names ([`super::origin`]), and the request rewritten into the content
//! path that site serves (`<cid>.ipfs.<gateway>/a` becomes `/ipfs/<cid>/a`,
//! a DNSLink host's `/a` becomes `/ipns/<host>/a`), with the site recorded
//! for the handlers. Path-form requests to a subdomain gateway host, and
//! sites named in a non-canonical form, are redirected here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::GatewayError;
use super::headers::value;
use super::origin::{
    addressed_authority, addressed_scheme, site_of, subdomain_location, HostRules, Namespace,
    OnSite, Site, SiteOrigin,
};
use super::request::{asks_for_verifiable, wants_html};
use super::state::Gateway;
use crate::names::{DnsLinkError, NameError};

/// Routes `request` by the host it addresses (an axum layer around the
/// path gateway's router).
pub async fn route_by_host(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let config = &gateway.config;
    let trust = config.trust_forwarded_headers;
    let authority = addressed_authority(request.uri(), request.headers(), trust);
    let rules = HostRules {
        subdomain_hosts: &config.subdomain_hosts,
        dnslink: config.dnslink && gateway.names.is_some(),
    };
    // Kept for an error page (HTML or text), read only if one is made: the
    // common request is routed without parsing its Accept header here.
    let accept = request.headers().get(header::ACCEPT).cloned();
    let fail = |err: GatewayError| {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept);
        }
        err.into_response_for(wants_html(&headers))
    };
    let site = match site_of(authority.as_deref(), rules) {
        Ok(site) => site,
        Err(err) => return fail(err),
    };
    match site {
        Site::Path {
            subdomain_host: None,
        } => next.run(request).await,
        Site::Path {
            subdomain_host: Some(gateway_host),
        } => {
            if asks_for_verifiable(request.uri(), request.headers()) {
                return next.run(request).await;
            }
            let uri = request.uri();
            let scheme = addressed_scheme(uri, request.headers(), trust);
            match subdomain_location(uri.path(), uri.query(), scheme, &gateway_host) {
                Ok(Some(location)) => moved(&location),
                Ok(None) => next.run(request).await,
                Err(err) => fail(err),
            }
        }
        Site::Canonical { host } => {
            let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let scheme = addressed_scheme(request.uri(), request.headers(), trust);
            moved(&format!("{scheme}://{host}{path_and_query}"))
        }
        Site::Subdomain {
            namespace,
            id,
            gateway: gateway_host,
        } => {
            let origin = SiteOrigin::Subdomain {
                namespace,
                id: id.clone(),
                gateway: gateway_host,
            };
            match rewrite(request, namespace, &id, origin) {
                Ok(request) => next.run(request).await,
                Err(err) => fail(err),
            }
        }
        Site::MaybeDnsLink { domain } => {
            // The lookup runs before the content layers admit the request:
            // it takes one of their slots meanwhile, so hosts made up by
            // a client cannot start more lookups than requests may run.
            let Ok(slot) = gateway.concurrency.clone().try_acquire_owned() else {
                let limit = gateway.limits.max_concurrent_requests;
                return fail(GatewayError::Overloaded(format!(
                    "more than {limit} requests in flight; try again shortly"
                )));
            };
            let is_site = has_dnslink(&gateway, &domain).await;
            drop(slot);
            if !is_site {
                return next.run(request).await;
            }
            let host = authority
                .unwrap_or_else(|| domain.clone())
                .to_ascii_lowercase();
            match rewrite(
                request,
                Namespace::Ipns,
                &domain,
                SiteOrigin::DnsLink { host },
            ) {
                Ok(request) => next.run(request).await,
                Err(err) => fail(err),
            }
        }
    }
}

/// Whether `domain` names a DNSLink site. A name without a record (or
/// whose lookup fails) is the path gateway, as other gateways do; a record
/// that exists but leads nowhere (a bad value, a loop, a broken IPNS
/// record) is the site's, and its error is shown there.
async fn has_dnslink(gateway: &Gateway, domain: &str) -> bool {
    let Some(names) = &gateway.names else {
        return false;
    };
    match names.resolve(domain, &[]).await {
        Ok(_) => true,
        Err(err) => !no_site(&err),
    }
}

/// Errors that say a host has no DNSLink site, rather than a broken one.
fn no_site(err: &NameError) -> bool {
    matches!(
        err,
        NameError::BadName(_)
            | NameError::NoDns(_)
            | NameError::DnsLink(
                DnsLinkError::BadDomain { .. }
                    | DnsLinkError::NoDomain { .. }
                    | DnsLinkError::NoLink { .. }
                    | DnsLinkError::Lookup { .. }
                    | DnsLinkError::Timeout { .. }
            )
    )
}

/// `request` with its path under the site's root, and the site recorded.
fn rewrite(
    mut request: Request,
    namespace: Namespace,
    id: &str,
    origin: SiteOrigin,
) -> Result<Request, GatewayError> {
    let public_path = request.uri().path().to_string();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = format!("/{}/{id}{public_path}{query}", namespace.as_str());
    let uri: Uri = target.parse().map_err(|e| {
        GatewayError::BadRequest(format!(
            "the request target does not form a content path: {e}"
        ))
    })?;
    *request.uri_mut() = uri;
    request.extensions_mut().insert(OnSite {
        origin,
        public_path,
    });
    Ok(request)
}

fn moved(location: &str) -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, value(location))],
        format!("moved to {location}\n"),
    )
        .into_response()
}
