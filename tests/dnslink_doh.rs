//! DNSLink over DNS-over-HTTPS (`[dns] doh`): a DoH server on loopback
//! (HTTP/2 over TLS, `application/dns-message`, relaying each query to a
//! Debian dnsmasq) answers the domains under its suffix, the plain
//! `[dns] nameservers` the rest; a DoH server whose certificate is not
//! trusted is refused. Its own test binary: it points the process's trust
//! roots at the test certificate (`SSL_CERT_FILE`, which the platform
//! verifier reads on Linux).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls;

use common::dns::Dnsmasq;
use common::{block_from_car, fixtures, header, TestGateway};

const HELLO: &str = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";

/// A DoH server on loopback relaying queries to `upstream` over UDP, with a
/// new self-signed certificate for 127.0.0.1: its address, the certificate
/// (PEM) and how many queries it relayed.
async fn doh_server(upstream: SocketAddr) -> (SocketAddr, String, Arc<AtomicUsize>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    let counted = counted.clone();
                    async move { relay(request, upstream, &counted).await }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, certified.cert.pem(), queries)
}

/// RFC 8484 POST: the body is the DNS query, the answer the DNS response.
async fn relay(
    request: Request<hyper::body::Incoming>,
    upstream: SocketAddr,
    counted: &AtomicUsize,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let refuse = |status: u16| {
        Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap())
    };
    if request.method() != hyper::Method::POST || request.uri().path() != "/dns-query" {
        return refuse(404);
    }
    let Ok(body) = request.into_body().collect().await else {
        return refuse(400);
    };
    let query = body.to_bytes();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query, upstream).await.unwrap();
    let mut answer = vec![0; 65_535];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut answer)).await
    else {
        return refuse(502);
    };
    counted.fetch_add(1, Ordering::SeqCst);
    answer.truncate(n);
    Ok(Response::builder()
        .header("content-type", "application/dns-message")
        .body(Full::new(Bytes::from(answer)))
        .unwrap())
}

#[tokio::test]
async fn domains_under_a_doh_suffix_are_asked_over_https() {
    let Some(dir) = fixtures() else { return };
    let link = format!("dnslink=/ipfs/{HELLO}");
    let records = |domain: &str| vec![(domain.to_string(), link.clone())];
    let Some(plain) = Dnsmasq::start(&records("plain.example.org")) else {
        return;
    };
    let behind_doh = Dnsmasq::start(&records("site.doh.example")).unwrap();
    let untrusted_upstream = Dnsmasq::start(&records("site.untrusted.example")).unwrap();
    let (doh, cert, queries) = doh_server(behind_doh.addr).await;
    let (untrusted, _, untrusted_queries) = doh_server(untrusted_upstream.addr).await;
    // Only the first server's certificate is a trust root.
    let roots = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(roots.path(), cert).unwrap();
    std::env::set_var("SSL_CERT_FILE", roots.path());
    std::env::remove_var("SSL_CERT_DIR");
    let nameserver = plain.nameserver();
    let Some(gw) = TestGateway::with_fixtures_and(move |c| {
        c.dns.nameservers = vec![nameserver];
        c.dns
            .doh
            .insert("doh.example.".into(), format!("https://{doh}/dns-query"));
        c.dns.doh.insert(
            "untrusted.example".into(),
            format!("https://{untrusted}/dns-query"),
        );
        c.dns.timeout_ms = 3_000;
    })
    .await
    else {
        return;
    };
    let hello = block_from_car(&dir.join("subdomain_gateway/fixtures.car"), HELLO);

    // Only the DoH server's upstream knows this name.
    let resp = gw.get("/ipns/site.doh.example").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-ipfs-path"), "/ipns/site.doh.example");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);
    assert_eq!(queries.load(Ordering::SeqCst), 1);

    // Other names: the plain nameserver, not the DoH server.
    let resp = gw.get("/ipns/plain.example.org").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), hello);
    assert_eq!(queries.load(Ordering::SeqCst), 1);

    // A DoH server whose certificate is not trusted is never believed.
    let resp = gw.get("/ipns/site.untrusted.example").await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("_dnslink.site.untrusted.example")
            && body.contains(&format!("https://{untrusted}/dns-query")),
        "{body}"
    );
    assert_eq!(untrusted_queries.load(Ordering::SeqCst), 0);
}
