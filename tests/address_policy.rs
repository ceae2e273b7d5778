//! The address policy as an attacker probes it: hints, routing records and
//! redirects that name loopback in every encoding we know of, aimed at a
//! recording listener on this machine that must see no connection at all;
//! redirects from routers and
//! providers that must not be followed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header as h, StatusCode};
use axum::response::IntoResponse;
use cid::Cid;
use common::TestGateway;
use multihash_codetable::{Code, MultihashDigest};

/// A CID nobody has, so the gateway tries every provider it is given.
fn absent_cid(seed: u8) -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(&[seed; 37]))
}

/// TCP and UDP sockets on every local address at one port, counting every
/// connection and datagram that reaches them.
struct Recorder {
    port: u16,
    tcp: Arc<AtomicUsize>,
    udp: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start() -> Recorder {
        // Dual-stack where IPv6 exists, so ::1 and mapped forms land here too.
        let listener = match tokio::net::TcpListener::bind("[::]:0").await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap(),
        };
        let port = listener.local_addr().unwrap().port();
        let tcp = Arc::new(AtomicUsize::new(0));
        let udp = Arc::new(AtomicUsize::new(0));
        let seen = tcp.clone();
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                eprintln!("recorder: TCP connection from {from}");
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        let socket = match tokio::net::UdpSocket::bind(format!("[::]:{port}")).await {
            Ok(s) => Some(s),
            Err(_) => tokio::net::UdpSocket::bind(format!("0.0.0.0:{port}"))
                .await
                .ok(),
        };
        if let Some(socket) = socket {
            let seen = udp.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((_, from)) = socket.recv_from(&mut buf).await {
                    eprintln!("recorder: UDP datagram from {from}");
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Recorder { port, tcp, udp }
    }

    fn seen(&self) -> (usize, usize) {
        (
            self.tcp.load(Ordering::SeqCst),
            self.udp.load(Ordering::SeqCst),
        )
    }
}

const PEER: &str = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d";

/// Loopback (and this host) in the forms URL parsers, resolvers and
/// multiaddr parsers accept, every one at `port`.
fn hostile_urls(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "0177.1",
        "017700000001",
        "127.0.0.1.",
        "127.000.000.001",
        "%31%32%37.0.0.1",
        "%31%32%37%2e%30%2e%30%2e%31",
        "\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}",
        "127\u{3002}0\u{3002}0\u{3002}1",
        "127.0.0.2",
        "127.255.255.254",
        "0.0.0.0",
        "0",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[::]",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "LocalHost.",
        "ip6-localhost",
    ]
    .iter()
    .flat_map(|host| {
        [
            format!("http://{host}:{port}"),
            format!("https://{host}:{port}/"),
        ]
    })
    .collect()
}

fn hostile_multiaddrs(port: u16) -> Vec<String> {
    let mut addrs = Vec::new();
    for host in [
        "/ip4/127.0.0.1",
        "/ip4/127.0.0.2",
        "/ip4/0.0.0.0",
        "/ip6/::1",
        "/ip6/::ffff:127.0.0.1",
        "/ip6/::",
        "/dns4/localhost",
        "/dns6/localhost",
        "/dns/localhost",
        "/dns4/localhost.",
        "/dns6/ip6-localhost",
    ] {
        addrs.push(format!("{host}/tcp/{port}/p2p/{PEER}"));
        addrs.push(format!("{host}/udp/{port}/quic-v1/p2p/{PEER}"));
        addrs.push(format!("{host}/tcp/{port}/http"));
        addrs.push(format!("{host}/tcp/{port}/tls/http"));
        addrs.push(format!("{host}/tcp/{port}/https"));
    }
    addrs
}

async fn public_gateway() -> TestGateway {
    TestGateway::start_with(Vec::new(), |c| {
        c.hints.allow_private = false;
        c.retrieval.block_timeout_secs = 2;
        c.retrieval.routing_delay_ms = 0;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_never_reach_loopback_in_any_encoding() {
    let recorder = Recorder::start().await;
    let gw = public_gateway().await;
    let mut hints = hostile_urls(recorder.port);
    hints.extend(hostile_multiaddrs(recorder.port));
    let results = futures::future::join_all(hints.iter().enumerate().map(|(i, hint)| {
        let gw = &gw;
        async move {
            let path = format!("/ipfs/{}?format=raw", absent_cid(i as u8));
            // Half by header, half by ?provider= (percent-encoded; a header
            // carries only ASCII).
            let response = if i % 2 == 0 && hint.is_ascii() {
                gw.get_hinted(&path, hint).await
            } else {
                let query: String = url::form_urlencoded::byte_serialize(hint.as_bytes()).collect();
                gw.get(&format!("{path}&provider={query}")).await
            };
            let status = response.status().as_u16();
            (hint.clone(), status, response.text().await.unwrap())
        }
    }))
    .await;
    for (hint, status, body) in &results {
        assert!(
            matches!(status, 400 | 502 | 504),
            "hint {hint:?}: status {status}: {body}"
        );
        if *status == 400 {
            assert!(
                body.contains("not dial") || body.contains("invalid provider hint"),
                "hint {hint:?}: a 400 says why: {body}"
            );
        }
    }
    // Every IP-literal form is known to be loopback before anything is
    // dialled: a 400 naming the address, not a timeout.
    for (hint, status, body) in results
        .iter()
        .filter(|(h, _, _)| h.starts_with("http") && !h.to_ascii_lowercase().contains("localhost"))
    {
        assert_eq!(*status, 400, "hint {hint:?}: {body}");
    }
    assert_eq!(recorder.seen(), (0, 0), "connections reached the recorder");
    // Names were refused where they resolved: in the HTTP client's
    // resolver and below libp2p's DNS transport.
    for client in ["hint", "http", "libp2p"] {
        let label = format!("client=\"{client}\"");
        let refused = gw.metric_sum("sluice_dials_refused_total", &[&label]).await;
        assert!(refused >= 1.0, "refusals by {client} counted: {refused}");
    }
}

/// A delegated router (trusted: the operator configured it, on loopback)
/// whose answers name loopback in every form, or redirect to it.
async fn hostile_router(recorder_port: u16, redirect: bool) -> String {
    let app = axum::Router::new().route(
        "/routing/v1/providers/{cid}",
        axum::routing::get(move || async move {
            if redirect {
                return (
                    StatusCode::FOUND,
                    [(
                        h::LOCATION,
                        format!("http://127.0.0.1:{recorder_port}/routing/v1/providers/x"),
                    )],
                )
                    .into_response();
            }
            let addrs = hostile_multiaddrs(recorder_port)
                .into_iter()
                .map(|a| a.trim_end_matches(&format!("/p2p/{PEER}")).to_string())
                .collect::<Vec<_>>();
            let providers = vec![
                serde_json::json!({
                    "Schema": "peer", "ID": PEER, "Addrs": addrs,
                    "Protocols": ["transport-bitswap"],
                }),
                serde_json::json!({
                    "Schema": "peer", "ID": PEER, "Addrs": addrs,
                    "Protocols": ["transport-ipfs-gateway-http"],
                }),
            ];
            (
                [(h::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "Providers": providers }).to_string(),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_records_and_router_redirects_never_reach_loopback() {
    let recorder = Recorder::start().await;
    for redirect in [false, true] {
        let router = hostile_router(recorder.port, redirect).await;
        let gw = TestGateway::start_with(Vec::new(), |c| {
            c.hints.allow_private = false;
            c.routing.endpoints = vec![router];
            c.retrieval.block_timeout_secs = 3;
            c.retrieval.routing_delay_ms = 0;
        })
        .await;
        let response = gw
            .get(&format!(
                "/ipfs/{}?format=raw",
                absent_cid(200 + redirect as u8)
            ))
            .await;
        let status = response.status().as_u16();
        assert!(matches!(status, 502 | 504), "redirect={redirect}: {status}");
        if !redirect {
            let dropped = gw
                .metric_sum("sluice_dials_refused_total", &["client=\"routing\""])
                .await;
            assert!(
                dropped >= 10.0,
                "routing addresses dropped and counted: {dropped}"
            );
        }
    }
    assert_eq!(recorder.seen(), (0, 0), "connections reached the recorder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_redirects_are_not_followed() {
    let recorder = Recorder::start().await;
    let port = recorder.port;
    let redirecting = axum::Router::new().fallback(move || async move {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(h::LOCATION, format!("http://127.0.0.1:{port}/ipfs/x"))],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });
    // Private addresses allowed (the provider is on loopback): only the
    // no-redirect rule keeps the recorder unreached.
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.retrieval.block_timeout_secs = 2;
    })
    .await;
    let response = gw
        .get_hinted(&format!("/ipfs/{}?format=raw", absent_cid(250)), &provider)
        .await;
    assert!(matches!(response.status().as_u16(), 502 | 504));
    assert_eq!(recorder.seen(), (0, 0), "the redirect was followed");
}
