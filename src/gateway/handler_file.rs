//! UnixFS files (and raw blocks served as files): streamed block by block,
//! with `Range` support, a content type from the name or the first bytes,
//! and `?filename=` / `?download=` dispositions. Symlinks are answered with
//! their target text.

use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::{content_headers, requested_disposition};
use super::ranges::{bytes_response, ranged_response};
use super::sniff;
use super::state::Ctx;
use crate::dag::{DagError, Node, ResolvedPath};
use crate::unixfs::{file_size, file_stream, Repeats, UnixfsNode};

pub async fn serve_file(ctx: &Ctx<'_>, resolved: ResolvedPath) -> Result<Response, GatewayError> {
    let etag = format!("\"{}\"", resolved.cid);
    let name = ctx.request.file_name().map(str::to_string);
    serve_file_from(ctx, &resolved, &resolved.roots, &etag, name.as_deref()).await
}

/// A directory's `index.html` file, `index`, served for the directory
/// `dir`: the page stands for the directory, so its Etag and roots are the
/// directory's.
pub async fn serve_directory_index(
    ctx: &Ctx<'_>,
    dir: &ResolvedPath,
    index: &ResolvedPath,
    name: &str,
) -> Result<Response, GatewayError> {
    let etag = format!("\"{}\"", dir.cid);
    serve_file_from(ctx, index, &dir.roots, &etag, Some(name)).await
}

/// Serves the file in `file` under the given roots and Etag (which differ
/// from the file's own when it is a directory's `index.html`).
async fn serve_file_from(
    ctx: &Ctx<'_>,
    file: &ResolvedPath,
    roots: &[Cid],
    etag: &str,
    name: Option<&str>,
) -> Result<Response, GatewayError> {
    let mut headers = content_headers(&ctx.request, roots, etag);
    if not_modified(&ctx.http.headers, etag) {
        return Ok(not_modified_response(headers));
    }
    if let Some(disposition) = requested_disposition(&ctx.request) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    // Hot path: a file that is one raw block is all in hand already; serve
    // it without setting up the block-by-block streams.
    if let Node::Raw(data) = &file.node {
        let head = &data[..data.len().min(sniff::SNIFF_LEN)];
        let content_type = sniff::content_type(name, head, head.len() == data.len());
        return bytes_response(
            &ctx.http.headers,
            headers,
            &content_type,
            data.clone(),
            ctx.is_head(),
        );
    }
    let size = file_size(&file.cid, &file.node)?;
    // Refused before the status line rather than cut off halfway; a Range
    // request for part of it is still served.
    let max_bytes = ctx.gateway.limits.max_bytes_per_request;
    if size > max_bytes && !ctx.http.headers.contains_key(header::RANGE) && !ctx.is_head() {
        return Err(GatewayError::OverBudget(format!(
            "the file is {size} bytes, more than the {max_bytes} one request may read ([limits] max_bytes_per_request); ask for a byte range"
        )));
    }
    let sniff_len = (sniff::SNIFF_LEN as u64).min(size);
    let (blocks, cid, block) = (ctx.blocks.clone(), file.cid, file.block.clone());
    // One budget for every range of the response.
    let budget = ctx.gateway.read_ahead.response();
    let bytes_of = move |range| {
        file_stream(
            blocks.clone(),
            budget.clone(),
            cid,
            block.clone(),
            range,
            Repeats::Visit,
        )
        .map_ok(|visited| visited.data)
        .try_filter(|data| std::future::ready(!data.is_empty()))
        .map_err(GatewayError::from)
        .boxed()
    };
    let whole_body = !ctx.is_head() && !ctx.http.headers.contains_key(header::RANGE);
    let (head, started) = if whole_body {
        // The type is sniffed from the body's own first bytes, so the body's
        // read-ahead asks for the next blocks together with the first one
        // instead of a round trip later.
        let (head, started) = sniff_from(bytes_of((0, size)), sniff_len as usize).await?;
        (head, Some(started))
    } else {
        // Only the first bytes are read, so a Range request far into a file
        // does not fetch its beginning's whole subtree.
        let (head, _) = sniff_from(bytes_of((0, sniff_len)), sniff_len as usize).await?;
        (head, None)
    };
    let content_type = sniff::content_type(name, &head, sniff_len == size);
    // Handed over once, to the whole-body range (the only one asked for
    // when there is no Range header).
    let started = std::cell::Cell::new(started);
    ranged_response(
        &ctx.http.headers,
        headers,
        &content_type,
        size,
        ctx.is_head(),
        move |range| {
            let prestarted = (range == (0, size)).then(|| started.take()).flatten();
            prestarted.unwrap_or_else(|| bytes_of(range))
        },
    )
}

type ByteStream = BoxStream<'static, Result<Bytes, GatewayError>>;

/// Reads `body` until it has `len` bytes (or ends); returns those bytes and
/// a stream that yields the whole body, the chunks already read included.
async fn sniff_from(
    mut body: ByteStream,
    len: usize,
) -> Result<(Vec<u8>, ByteStream), GatewayError> {
    let mut head = Vec::with_capacity(len);
    let mut read = Vec::new();
    while head.len() < len {
        let Some(chunk) = body.try_next().await? else {
            break;
        };
        head.extend_from_slice(&chunk[..chunk.len().min(len - head.len())]);
        read.push(Ok(chunk));
    }
    Ok((head, stream::iter(read).chain(body).boxed()))
}

pub async fn serve_symlink(
    ctx: &Ctx<'_>,
    resolved: ResolvedPath,
) -> Result<Response, GatewayError> {
    let Node::Pb(_, Some(UnixfsNode::Symlink { target })) = &resolved.node else {
        return Err(DagError::Inconsistent {
            cid: resolved.cid,
            reason: "expected a symlink".into(),
        }
        .into());
    };
    let etag = format!("\"{}\"", resolved.cid);
    let headers = content_headers(&ctx.request, &resolved.roots, &etag);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    // Symlinks are not followed: the target may point outside this DAG.
    let target: Bytes = target.clone();
    bytes_response(
        &ctx.http.headers,
        headers,
        "inode/symlink",
        target,
        ctx.is_head(),
    )
}
