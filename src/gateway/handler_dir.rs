//! UnixFS directories (plain and HAMT-sharded): the redirect that adds the
//! trailing slash, `index.html` when there is one, and otherwise an HTML
//! listing rendered from `static/directory.html`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use minijinja::{context, Value};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::{content_headers, value};
use super::origin::SiteOrigin;
use super::ranges::bytes_response;
use super::state::Ctx;
use super::templates;
use crate::dag::{Node, ResolvedPath};
use crate::unixfs::{hamt_list, hamt_lookup, DirEntry, UnixfsNode};

/// Characters left as they are in a path segment of a listing link.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const INDEX_FILE: &str = "index.html";

/// A directory asked for without the trailing slash: the same URL with it.
pub fn redirect_to_slash(ctx: &Ctx<'_>) -> Response {
    let request = &ctx.request;
    // Relative links in a listing or an index.html only work under a slash.
    let mut location = format!("{}/", request.public_path);
    if let Some(query) = &request.query {
        location.push('?');
        location.push_str(query);
    }
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, value(&location))],
    )
        .into_response()
}

/// The directory's `index.html`, resolved, when it has one that is a file.
pub async fn find_index_file(
    ctx: &Ctx<'_>,
    dir: &ResolvedPath,
) -> Result<Option<ResolvedPath>, GatewayError> {
    let Some(index) = find_index(ctx, dir).await? else {
        return Ok(None);
    };
    let block = ctx.blocks.get(&index).await?;
    let node = Node::decode(&index, block.clone())?;
    if !matches!(
        node,
        Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. }))
    ) {
        return Ok(None);
    }
    Ok(Some(ResolvedPath {
        cid: index,
        block,
        node,
        roots: dir.roots.clone(),
        path_blocks: Vec::new(),
        remainder: Vec::new(),
    }))
}

async fn find_index(ctx: &Ctx<'_>, dir: &ResolvedPath) -> Result<Option<Cid>, GatewayError> {
    Ok(match &dir.node {
        Node::Pb(_, Some(UnixfsNode::HamtShard { .. })) => {
            hamt_lookup(&ctx.blocks, &dir.cid, &dir.node, INDEX_FILE)
                .await?
                .found
        }
        Node::Pb(pb, _) => pb
            .links
            .iter()
            .find(|l| l.name.as_deref() == Some(INDEX_FILE))
            .map(|l| l.cid),
        _ => None,
    })
}

async fn list_entries(ctx: &Ctx<'_>, dir: &ResolvedPath) -> Result<Vec<DirEntry>, GatewayError> {
    Ok(match &dir.node {
        Node::Pb(_, Some(UnixfsNode::HamtShard { .. })) => {
            hamt_list(&ctx.blocks, &dir.cid, &dir.node).await?.0
        }
        Node::Pb(pb, _) => pb
            .links
            .iter()
            .map(|l| DirEntry {
                name: l.name.clone().unwrap_or_default(),
                cid: l.cid,
                size: l.size,
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// The HTML listing of a directory that has no `index.html` file.
pub async fn serve_listing(ctx: &Ctx<'_>, dir: &ResolvedPath) -> Result<Response, GatewayError> {
    let request = &ctx.request;
    let etag = format!(
        "\"DirIndex-{:016x}_CID-{}\"",
        templates::templates_version(),
        dir.cid
    );
    let mut headers = content_headers(request, &dir.roots, &etag);
    // A listing is the gateway's page about the directory, and changes when
    // the gateway's templates do: not immutable.
    headers.remove(header::CACHE_CONTROL);
    let bare_cid_etag = format!("\"{}\"", dir.cid);
    if not_modified(&ctx.http.headers, &etag) || not_modified(&ctx.http.headers, &bare_cid_etag) {
        return Ok(not_modified_response(headers));
    }
    let entries = list_entries(ctx, dir).await?;
    let page = render_listing(
        request,
        dir,
        &entries,
        ctx.gateway.config.max_listing_entries,
    );
    bytes_response(
        &ctx.http.headers,
        headers,
        "text/html; charset=utf-8",
        Bytes::from(page),
        ctx.is_head(),
    )
}

/// Where a listing's links point: the site's own origin for names and the
/// parent, the path gateway (or a CID inspector, for a DNSLink site, which
/// has no path gateway of its own) for CIDs and breadcrumbs.
struct ListingLinks {
    namespace: &'static str,
    /// The breadcrumbs: (name, href), the root first.
    crumbs: Vec<(String, String)>,
    /// What entry names are relative to; ends in `/`.
    base: String,
    /// Links to entries by CID.
    cid_href: fn(&str, &str, &str) -> String,
    /// The authority `cid_href` links to.
    cid_host: String,
    /// CID links leave the site (a new tab, no referrer).
    cid_external: bool,
}

fn listing_links(request: &super::request::ContentRequest) -> ListingLinks {
    fn encode(segment: &str) -> String {
        utf8_percent_encode(segment, SEGMENT).to_string()
    }
    fn path_gateway_cid(host: &str, cid: &str, name: &str) -> String {
        format!("{host}/ipfs/{cid}?filename={}", encode(name))
    }
    let public_segments: Vec<String> = request
        .public_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let crumbs_under = |root_name: String, root_href: String, base: &str| {
        let mut crumbs = vec![(root_name, root_href)];
        let mut href = base.to_string();
        for segment in &public_segments {
            href.push('/');
            href.push_str(&encode(segment));
            crumbs.push((segment.clone(), href.clone()));
        }
        crumbs
    };
    match &request.site {
        None => {
            let root = request.root.to_string();
            let base = format!("/ipfs/{root}");
            let mut crumbs = vec![(root, base.clone())];
            let mut href = base;
            for segment in &request.segments {
                href.push('/');
                href.push_str(&encode(segment));
                crumbs.push((segment.clone(), href.clone()));
            }
            ListingLinks {
                namespace: "ipfs",
                crumbs,
                base: format!("{href}/"),
                cid_href: path_gateway_cid,
                cid_host: String::new(),
                cid_external: false,
            }
        }
        Some(SiteOrigin::Subdomain {
            namespace,
            id,
            gateway,
        }) => {
            let root = format!("//{gateway}/{}/{id}", namespace.as_str());
            ListingLinks {
                namespace: namespace.as_str(),
                crumbs: crumbs_under(id.clone(), root.clone(), &root),
                base: request.public_path.clone(),
                cid_href: path_gateway_cid,
                cid_host: format!("//{gateway}"),
                cid_external: false,
            }
        }
        Some(SiteOrigin::DnsLink { host }) => {
            let root = format!("//{host}");
            ListingLinks {
                namespace: "ipns",
                crumbs: crumbs_under(host.clone(), format!("{root}/"), &root),
                base: request.public_path.clone(),
                cid_href: |_, cid, _| format!("https://cid.ipfs.tech/#{cid}"),
                cid_host: String::new(),
                cid_external: true,
            }
        }
    }
}

fn render_listing(
    request: &super::request::ContentRequest,
    dir: &ResolvedPath,
    entries: &[DirEntry],
    max: usize,
) -> String {
    let links = listing_links(request);
    let safe = |text: &str| Value::from_safe_string(escape_attr(text));
    let breadcrumbs: Vec<_> = links
        .crumbs
        .iter()
        .map(|(name, href)| context! { name => name, href => safe(href) })
        .collect();
    // No way up from a site's root, nor from the root CID.
    let at_root = match request.site {
        None => request.segments.is_empty(),
        Some(_) => request.public_path == "/",
    };
    let base = &links.base;
    let parent = (!at_root).then(|| safe(&format!("{base}..")));
    let shown: Vec<_> = entries
        .iter()
        .take(max)
        .map(|entry| {
            let encoded = utf8_percent_encode(&entry.name, SEGMENT).to_string();
            let cid = entry.cid.to_string();
            context! {
                name => entry.name,
                href => safe(&format!("{base}{encoded}")),
                cid_href => safe(&(links.cid_href)(&links.cid_host, &cid, &encoded)),
                short_cid => short_cid(&cid),
                cid => cid,
                size => entry.size.map(human_size).unwrap_or_default(),
            }
        })
        .collect();
    templates::render(
        "directory.html",
        context! {
            path => request.url_path,
            namespace => links.namespace,
            cid => dir.cid.to_string(),
            breadcrumbs => breadcrumbs,
            parent => parent,
            cid_external => links.cid_external,
            entries => shown,
            truncated => entries.len() > max,
            total => entries.len(),
        },
    )
}

/// Escapes text for a double-quoted HTML attribute (and leaves `/` alone,
/// which the template engine's escaping would not).
fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

fn short_cid(cid: &str) -> String {
    if cid.len() <= 16 {
        cid.to_string()
    } else {
        format!("{}…{}", &cid[..8], &cid[cid.len() - 6..])
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(12), "12 B");
        assert_eq!(human_size(1026), "1.0 kB");
        assert_eq!(human_size(268_435_456), "268.4 MB");
    }
}
