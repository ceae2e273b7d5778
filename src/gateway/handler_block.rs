//! `application/vnd.ipld.raw`: one block, exactly as stored, whatever its
//! codec (trustless gateway).

use axum::http::header;
use axum::response::Response;

use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::nosniff;
use super::headers::{content_disposition, content_headers};
use super::ranges::bytes_response;
use super::state::Ctx;
use crate::dag::resolve_path;

pub async fn serve_raw_block(ctx: &Ctx<'_>) -> Result<Response, GatewayError> {
    let request = &ctx.request;
    // A block needs no decoding to be served raw, so a CID of a codec this
    // gateway cannot read is still served when there is no path to walk.
    let (cid, block, roots) = if request.segments.is_empty() {
        let block = ctx.blocks.get(&request.root).await?;
        (request.root, block, vec![request.root])
    } else {
        let resolved = resolve_path(&ctx.blocks, request.root, &request.segments).await?;
        if !resolved.remainder.is_empty() {
            return Err(super::dispatch::remainder_error(&resolved.remainder));
        }
        (resolved.cid, resolved.block, resolved.roots)
    };
    let etag = format!("\"{cid}.raw\"");
    let mut headers = content_headers(request, &roots, &etag);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    let disposition = match request.filename.as_deref() {
        Some(name) => content_disposition("attachment", name),
        None => content_disposition("attachment", &format!("{cid}.bin")),
    };
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    let (name, value) = nosniff();
    headers.insert(name, value);
    bytes_response(
        &ctx.http.headers,
        headers,
        "application/vnd.ipld.raw",
        block,
        ctx.is_head(),
    )
}
