//! `application/vnd.ipld.car`: the blocks that prove a content path, then
//! the DAG under it in the requested scope, streamed depth-first
//! (trustless gateway). A path that does not exist is a 404 before any
//! byte is sent (the spec allows that or a partial CAR).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};

use super::body::streamed_body;
use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::nosniff;
use super::headers::{content_disposition, content_headers, value};
use super::state::Ctx;
use crate::car::{encode_header, encode_section_head};
use crate::dag::{resolve_path, walk_blocks, DagScope, WalkOptions};
use crate::verify::IDENTITY;

pub async fn serve_car(ctx: &Ctx<'_>) -> Result<Response, GatewayError> {
    let request = &ctx.request;
    let resolved = resolve_path(&ctx.blocks, request.root, &request.segments).await?;
    if !resolved.remainder.is_empty() {
        return Err(super::dispatch::remainder_error(&resolved.remainder));
    }
    let params = request.car;
    let dups = if params.duplicates { "y" } else { "n" };
    let etag = format!("W/\"{}.car.{}\"", request.root, car_variant_tag(request));
    let mut headers = content_headers(request, &resolved.roots, &etag);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    headers.insert(
        header::CONTENT_TYPE,
        value(&format!(
            "application/vnd.ipld.car; version=1; order=dfs; dups={dups}"
        )),
    );
    let name = request
        .filename
        .clone()
        .unwrap_or_else(|| format!("{}.car", resolved.cid));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition("attachment", &name),
    );
    headers.insert(header::ACCEPT_RANGES, value("none"));
    let (nosniff_name, nosniff_value) = nosniff();
    headers.insert(nosniff_name, nosniff_value);
    if ctx.is_head() {
        return Ok((StatusCode::OK, headers).into_response());
    }

    let options = WalkOptions {
        scope: params.scope,
        entity_bytes: params.entity_bytes,
        duplicates: params.duplicates,
    };
    let header_bytes = encode_header(&[request.root]);
    let budget = ctx.gateway.read_ahead.response();
    let sections = walk_blocks(ctx.blocks.clone(), budget, resolved, options)
        .filter(|item| {
            std::future::ready(!matches!(item, Ok((cid, _)) if cid.hash().code() == IDENTITY))
        })
        .flat_map(|item| {
            let chunks = match item {
                // The block follows its section's head as it is: not copied,
                // so a stalled client holds one copy of it, not two.
                Ok((cid, block)) => vec![Ok(encode_section_head(&cid, block.len())), Ok(block)],
                Err(e) => {
                    // The status is already sent: the only way left to tell the
                    // client is to end the stream abnormally.
                    tracing::warn!(error = %e, "CAR stream aborted");
                    vec![Err(std::io::Error::other(e.to_string()))]
                }
            };
            stream::iter(chunks)
        });
    let body = stream::once(async move { Ok::<_, std::io::Error>(header_bytes) }).chain(sections);
    Ok((StatusCode::OK, headers, streamed_body(body.boxed())).into_response())
}

/// Distinguishes the Etags of CARs of the same root with other parameters.
fn car_variant_tag(request: &super::request::ContentRequest) -> String {
    let scope = match request.car.scope {
        DagScope::Block => "block",
        DagScope::Entity => "entity",
        DagScope::All => "all",
    };
    let bytes = request
        .car
        .entity_bytes
        .map(|eb| {
            format!(
                ".{}:{}",
                eb.from,
                eb.to.map_or("*".to_string(), |t| t.to_string())
            )
        })
        .unwrap_or_default();
    let path = request.segments.join("/");
    let hash = super::etag::fnv1a(
        format!("{path}|{scope}{bytes}|{}", request.car.duplicates).into_bytes(),
    );
    format!("{hash:016x}")
}
