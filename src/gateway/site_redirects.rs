//! A site's `_redirects` file put to use: read from the site's root
//! (bounded to the spec's 64 KiB, parsed once per file CID) when a path the
//! site does not have is asked for on the site's own origin, and its
//! outcome applied. The rules
//! themselves are [`super::redirects`].

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::errors::GatewayError;
use super::headers::value;
use super::redirects::{self, Outcome, RedirectsError, Rules, FILE_NAME, MAX_FILE_BYTES};
use super::request::ContentRequest;
use super::state::Ctx;
use crate::dag::{resolve_path, DagError, Node, ResolvedPath};
use crate::unixfs::{file_size, file_stream, Repeats, UnixfsNode};

/// Whether `err` (resolving the request's path) is one `_redirects` may
/// answer: the path is missing, and the request is on a site's origin.
pub fn applies(ctx: &Ctx<'_>, err: &DagError) -> bool {
    ctx.request.site.is_some()
        && matches!(
            err,
            DagError::NoSuchLink { .. } | DagError::NotTraversable { .. }
        )
}

/// The outcome of the site's rules for the request, if the site has a
/// `_redirects` file and a rule matches.
pub async fn consult(ctx: &Ctx<'_>, site_root: &[String]) -> Result<Option<Outcome>, GatewayError> {
    let mut path = site_root.to_vec();
    path.push(FILE_NAME.to_string());
    let file = match resolve_path(&ctx.blocks, ctx.request.root, &path).await {
        Ok(file) => file,
        Err(DagError::NoSuchLink { .. } | DagError::NotTraversable { .. }) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if !matches!(
        file.node,
        Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. }))
    ) {
        return Ok(None);
    }
    let rules = match ctx.gateway.redirect_rules.get(&file.cid) {
        Some(rules) => rules,
        None => {
            let rules = Arc::new(read_rules(ctx, &file).await?);
            ctx.gateway.redirect_rules.insert(file.cid, rules.clone());
            rules
        }
    };
    match rules.as_ref() {
        Ok(rules) => Ok(rules.find(&ctx.request.public_path, ctx.request.query.as_deref())),
        Err(err) => Err(broken(err.clone())),
    }
}

/// A file's rules, or why it cannot be used: an `Err` inside is the file's
/// own fault (kept, as the file cannot change), an outer one a failure to
/// read it (not kept).
async fn read_rules(
    ctx: &Ctx<'_>,
    file: &ResolvedPath,
) -> Result<Result<Rules, RedirectsError>, GatewayError> {
    let size = file_size(&file.cid, &file.node)?;
    if size > MAX_FILE_BYTES {
        return Ok(Err(redirects::too_large(size)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    let mut blocks = file_stream(
        ctx.blocks.clone(),
        ctx.gateway.read_ahead.response(),
        file.cid,
        file.block.clone(),
        (0, size),
        Repeats::Visit,
    );
    while let Some(block) = blocks.next().await {
        bytes.extend_from_slice(&block?.data);
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Ok(Err(redirects::too_large(bytes.len() as u64)));
        }
    }
    Ok(redirects::parse(&bytes))
}

fn broken(err: RedirectsError) -> GatewayError {
    GatewayError::BrokenSite(err.to_string())
}

/// A rule's redirect.
pub fn redirect(status: u16, location: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    (
        status,
        [(header::LOCATION, value(location))],
        format!("redirected to {location} by the site's _redirects file\n"),
    )
        .into_response()
}

/// `request` asking for the site's `path` instead (a rule's rewrite).
pub fn rewrite(
    request: &mut ContentRequest,
    site_root: &[String],
    path: &str,
) -> Result<(), GatewayError> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments = site_root.to_vec();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let segment = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| {
                GatewayError::BrokenSite(format!(
                    "_redirects rewrites to {path:?}, which is not UTF-8"
                ))
            })?;
        if segment == "." || segment == ".." {
            return Err(GatewayError::BrokenSite(format!(
                "_redirects rewrites to {path:?}, which leaves the site"
            )));
        }
        segments.push(segment.into_owned());
    }
    request.segments = segments;
    request.trailing_slash = path.ends_with('/') && path != "/";
    Ok(())
}

/// A custom error page keeps the rule's status (a `304` stays one).
pub fn set_status(response: &mut Response, status: u16) {
    if response.status() == StatusCode::OK {
        if let Ok(status) = StatusCode::from_u16(status) {
            *response.status_mut() = status;
        }
    }
}
