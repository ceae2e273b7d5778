//! The page at `/`: what this gateway is, how to fetch from it (path and
//! subdomain forms, trustless formats, provider hints) and where its
//! metrics live. HTML for browsers, plain text for everyone else, both from
//! templates in `static/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::request::wants_html;
use super::state::Gateway;
use super::templates;

/// Longest `Host` header echoed into the page's examples (a DNS name).
const MAX_HOST_BYTES: usize = 255;

pub async fn landing(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let headers = request.headers();
    let host = origin_host(headers);
    let control = gateway
        .control_addr
        .map(|addr| control_url(addr, &host))
        .unwrap_or_else(|| "the control address ([metrics] listen)".into());
    let control_note = if gateway.control_addr.is_some() {
        "The control address is a separate listener from this one ([metrics] listen)."
    } else {
        ""
    };
    let facts = context! {
        version => env!("CARGO_PKG_VERSION"),
        base => format!("http://{host}"),
        subdomain => subdomain_example(&host),
        metrics => format!("{control}/debug/metrics/prometheus"),
        control => control,
        control_note => control_note,
    };
    let (content_type, body) = if wants_html(headers) {
        (
            "text/html; charset=utf-8",
            templates::render("landing.html", facts),
        )
    } else {
        (
            "text/plain; charset=utf-8",
            templates::render("landing.txt", facts),
        )
    };
    let mut response = (StatusCode::OK, body).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(header::VARY, HeaderValue::from_static("Accept"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The `host[:port]` the client reached this gateway by, if it is one a
/// page may repeat (a name or an address, bounded); else the default.
fn origin_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|host| !host.is_empty() && host.len() <= MAX_HOST_BYTES)
        .filter(|host| {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        })
        .unwrap_or("localhost:8080")
        .to_ascii_lowercase()
}

/// The control server's URL; one listening on every address is reached
/// by the name the client used for this one, on the control port.
fn control_url(addr: SocketAddr, host: &str) -> String {
    if !addr.ip().is_unspecified() {
        return format!("http://{addr}");
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    format!("http://{name}:{}", addr.port())
}

/// `http://<cid>.ipfs.<host>/` for the host the client used; an IP address
/// has no subdomains, so `localhost` (which resolves to loopback with its
/// subdomains, RFC 6761) stands in for it on the same port.
fn subdomain_example(host: &str) -> String {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let is_ip = name.starts_with('[')
        || name.parse::<std::net::IpAddr>().is_ok()
        || host.parse::<SocketAddr>().is_ok();
    let name = if is_ip { "localhost" } else { name };
    match port {
        Some(port) => format!("http://<cid>.ipfs.{name}:{port}/"),
        None => format!("http://<cid>.ipfs.{name}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_examples_follow_the_host() {
        for (host, expected) in [
            ("localhost:8080", "http://<cid>.ipfs.localhost:8080/"),
            ("127.0.0.1:8080", "http://<cid>.ipfs.localhost:8080/"),
            ("[::1]:9000", "http://<cid>.ipfs.localhost:9000/"),
            (
                "gateway.example.org",
                "http://<cid>.ipfs.gateway.example.org/",
            ),
            ("dweb.example:443", "http://<cid>.ipfs.dweb.example:443/"),
        ] {
            assert_eq!(subdomain_example(host), expected, "{host}");
        }
    }

    #[test]
    fn control_urls_name_a_reachable_address() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(
            control_url(addr("127.0.0.1:8081"), "localhost:8080"),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            control_url(addr("0.0.0.0:8081"), "gw.example.org:8080"),
            "http://gw.example.org:8081"
        );
        assert_eq!(
            control_url(addr("[::]:9000"), "[::1]:8080"),
            "http://[::1]:9000"
        );
        assert_eq!(
            control_url(addr("0.0.0.0:8081"), "gw.example.org"),
            "http://gw.example.org:8081"
        );
    }

    #[test]
    fn odd_hosts_are_not_repeated() {
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
            origin_host(&headers)
        };
        assert_eq!(host("Example.ORG:8080"), "example.org:8080");
        assert_eq!(host("<script>"), "localhost:8080");
        assert_eq!(host("a b"), "localhost:8080");
        assert_eq!(host(&"a".repeat(300)), "localhost:8080");
        assert_eq!(origin_host(&HeaderMap::new()), "localhost:8080");
    }
}
