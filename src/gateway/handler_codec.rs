//! IPLD codec responses: dag-json, dag-cbor, json and cbor, as stored, or
//! converted when `[gateway] allow_codec_conversion` is on (otherwise
//! [`super::dispatch`] never asks for a conversion), and an HTML view of a
//! DAG node for browsers.

use axum::http::{header, HeaderMap};
use axum::response::Response;
use bytes::Bytes;
use cid::Cid;
use ipld_core::ipld::Ipld;
use minijinja::context;

use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::nosniff;
use super::headers::{content_disposition, content_headers, value};
use super::ranges::bytes_response;
use super::request::Format;
use super::state::Ctx;
use super::templates;
use crate::dag::{codec, codec_name, ResolvedPath};

/// The block as `target`: as stored when it is in that codec already,
/// otherwise converted (see [`super::dispatch`] for when this is asked).
pub async fn serve_codec(
    ctx: &Ctx<'_>,
    resolved: ResolvedPath,
    target: Format,
) -> Result<Response, GatewayError> {
    let body = convert(&resolved.cid, &resolved.block, target)?;
    let etag = format!("\"{}.{}\"", resolved.cid, target.name());
    let mut headers = content_headers(&ctx.request, &resolved.roots, &etag);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    let (extension, default_kind) = match target {
        Format::DagJson | Format::Json => ("json", "inline"),
        _ => ("cbor", "attachment"),
    };
    let kind = if ctx.request.download {
        "attachment"
    } else {
        default_kind
    };
    let name = ctx
        .request
        .filename
        .clone()
        .unwrap_or_else(|| format!("{}.{extension}", resolved.cid));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(kind, &name),
    );
    let (nosniff_name, nosniff_value) = nosniff();
    headers.insert(nosniff_name, nosniff_value);
    bytes_response(
        &ctx.http.headers,
        headers,
        target.media_type(),
        body,
        ctx.is_head(),
    )
}

/// The block re-encoded as `target`, or 406 where the conversion would lose
/// meaning (links cannot be written in plain JSON or CBOR).
fn convert(cid: &Cid, block: &Bytes, target: Format) -> Result<Bytes, GatewayError> {
    let source = cid.codec();
    let not_acceptable = || {
        GatewayError::NotAcceptable(format!(
            "a {} block cannot be served as {}",
            codec_name(source),
            target.name()
        ))
    };
    match (target, source) {
        (Format::DagJson, codec::DAG_JSON)
        | (Format::DagCbor, codec::DAG_CBOR)
        | (Format::Json, codec::JSON | codec::DAG_JSON)
        | (Format::Cbor, codec::CBOR | codec::DAG_CBOR) => Ok(block.clone()),
        (Format::DagJson, _) => {
            let ipld = decode_ipld(cid, block)?;
            serde_ipld_dagjson::to_vec(&ipld)
                .map(Bytes::from)
                .map_err(|e| {
                    GatewayError::BadContent(format!("cannot encode {cid} as dag-json: {e}"))
                })
        }
        (Format::DagCbor, _) => {
            let ipld = decode_ipld(cid, block)?;
            serde_ipld_dagcbor::to_vec(&ipld)
                .map(Bytes::from)
                .map_err(|e| {
                    GatewayError::BadContent(format!("cannot encode {cid} as dag-cbor: {e}"))
                })
        }
        _ => Err(not_acceptable()),
    }
}

/// The IPLD data model of any block the gateway can decode.
fn decode_ipld(cid: &Cid, block: &Bytes) -> Result<Ipld, GatewayError> {
    let bad = |codec: &str, e: String| {
        GatewayError::BadContent(format!("block {cid} is not valid {codec}: {e}"))
    };
    match cid.codec() {
        codec::RAW => Ok(Ipld::Bytes(block.to_vec())),
        codec::DAG_PB => ipld_dagpb::to_ipld(block).map_err(|e| bad("dag-pb", e.to_string())),
        codec::DAG_CBOR | codec::CBOR => {
            serde_ipld_dagcbor::from_slice(block).map_err(|e| bad("cbor", e.to_string()))
        }
        codec::DAG_JSON | codec::JSON => {
            serde_ipld_dagjson::from_slice(block).map_err(|e| bad("json", e.to_string()))
        }
        other => Err(GatewayError::NotImplemented(format!(
            "codec 0x{other:x} of {cid} cannot be converted"
        ))),
    }
}

/// A browser's page about a dag-json or dag-cbor node: its data model and
/// its links.
pub fn serve_html_view(ctx: &Ctx<'_>, resolved: &ResolvedPath) -> Result<Response, GatewayError> {
    let etag = format!(
        "\"DagIndex-{:016x}_CID-{}\"",
        templates::templates_version(),
        resolved.cid
    );
    let mut headers = content_headers(&ctx.request, &resolved.roots, &etag);
    // The page is the gateway's rendering, not the immutable content.
    headers.remove(header::CACHE_CONTROL);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    let ipld = decode_ipld(&resolved.cid, &resolved.block)?;
    let json = serde_ipld_dagjson::to_vec(&ipld)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default();
    let mut links = Vec::new();
    collect_links(&ipld, &mut String::new(), &mut links);
    let links: Vec<_> = links
        .into_iter()
        .map(|(path, cid)| context! { path => path, cid => cid.to_string() })
        .collect();
    let page = templates::render(
        "dag.html",
        context! {
            codec => codec_name(resolved.cid.codec()),
            cid => resolved.cid.to_string(),
            path => ctx.request.url_path,
            links => links,
            json => json,
        },
    );
    html_response(ctx, headers, page)
}

fn html_response(
    ctx: &Ctx<'_>,
    headers: HeaderMap,
    page: String,
) -> Result<Response, GatewayError> {
    let mut headers = headers;
    headers.insert(header::VARY, value("Accept"));
    bytes_response(
        &ctx.http.headers,
        headers,
        "text/html",
        Bytes::from(page),
        ctx.is_head(),
    )
}

/// Every link in a value with the path to it, bounded so a node with a
/// million links still renders a page of reasonable size.
fn collect_links(value: &Ipld, path: &mut String, out: &mut Vec<(String, Cid)>) {
    const MAX_LINKS_SHOWN: usize = 1000;
    if out.len() >= MAX_LINKS_SHOWN {
        return;
    }
    let visit = |key: &str, child: &Ipld, path: &mut String, out: &mut Vec<(String, Cid)>| {
        let len = path.len();
        path.push('/');
        path.push_str(key);
        collect_links(child, path, out);
        path.truncate(len);
    };
    match value {
        Ipld::Link(cid) => out.push((
            if path.is_empty() {
                "/".into()
            } else {
                path.clone()
            },
            *cid,
        )),
        Ipld::Map(map) => map.iter().for_each(|(k, v)| visit(k, v, path, out)),
        Ipld::List(list) => list
            .iter()
            .enumerate()
            .for_each(|(i, v)| visit(&i.to_string(), v, path, out)),
        _ => {}
    }
}
