//! Provider hints: `X-Ipfs-Provider` headers and `?provider=` query values
//! (repeatable, comma-separated), parsed and checked against the address
//! policy. Hints seed a request's session; they never restrict it.

use std::net::SocketAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::dial::{count_refusal, AddressPolicy, Refusal};

/// `[hints]`: what a request may name as providers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HintsConfig {
    /// Most provider hints one request may carry; more is a 400.
    pub max_per_request: usize,
    /// Dial private and special-purpose addresses named by hints, routing
    /// answers and peers (tests, LANs); see `dial::AddressPolicy`.
    pub allow_private: bool,
    /// When content routing is asked beside a session's hinted providers.
    pub policy: HintPolicy,
    /// New providers one client's hints may name per minute (see
    /// `routing::hint_limits`); past it a request's hints are ignored.
    pub max_dials_per_minute_per_client: usize,
    /// New providers all clients' hints may name per minute, together.
    pub max_dials_per_minute: usize,
}

/// `[hints] policy`: how hints and content routing are evaluated
/// together (IPIP-0504's gateway rules; the README maps them).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HintPolicy {
    /// Routing starts at once, beside the hints, never after them.
    #[default]
    Parallel,
    /// Hints first: routing after `[retrieval] routing_delay_ms` (or as
    /// soon as no hinted provider is left). For private deployments whose
    /// clients know best.
    First,
}

impl Default for HintsConfig {
    fn default() -> Self {
        HintsConfig {
            max_per_request: 8,
            allow_private: false,
            policy: HintPolicy::Parallel,
            max_dials_per_minute_per_client: 30,
            max_dials_per_minute: 1200,
        }
    }
}

/// One provider named by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderHint {
    /// A Bitswap peer and where to dial it.
    Peer { peer: PeerId, addrs: Vec<Multiaddr> },
    /// A trustless HTTP gateway, as a base URL (`http(s)://host[:port]`).
    Http { url: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HintError {
    #[error("invalid provider hint {value:?}: {reason}")]
    Invalid { value: String, reason: String },
    #[error("provider hint {value:?} names {addr}, a {reason}: this gateway does not dial private or special-purpose addresses, nor itself")]
    Refused {
        value: String,
        addr: SocketAddr,
        reason: Refusal,
    },
    #[error("too many provider hints: {count} given, at most {max} per request")]
    TooMany { count: usize, max: usize },
}

/// Longest single hint accepted (a multiaddr with a peer ID is ~100 bytes).
const MAX_HINT_LEN: usize = 512;

/// Parses every hint of a request. `values` are the raw header and query
/// values; each may hold several hints separated by commas. A hint whose
/// address `policy` refuses is an error; one that names a host is
/// checked again on what the host resolves to, when it is dialled.
pub fn parse_hints<'a>(
    values: impl IntoIterator<Item = &'a str>,
    max: usize,
    policy: &AddressPolicy,
) -> Result<Vec<ProviderHint>, HintError> {
    let items: Vec<&str> = values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if items.len() > max {
        return Err(HintError::TooMany {
            count: items.len(),
            max,
        });
    }
    let mut hints: Vec<ProviderHint> = Vec::new();
    for item in items {
        let hint = parse_one(item, policy)?;
        // The same peer named twice (say, by TCP and QUIC) is one provider.
        match (&hint, hints.iter_mut().find(|h| same_provider(h, &hint))) {
            (ProviderHint::Peer { addrs, .. }, Some(ProviderHint::Peer { addrs: known, .. })) => {
                known.extend(addrs.iter().cloned());
            }
            (_, Some(_)) => {}
            (_, None) => hints.push(hint),
        }
    }
    Ok(hints)
}

fn same_provider(a: &ProviderHint, b: &ProviderHint) -> bool {
    match (a, b) {
        (ProviderHint::Peer { peer: x, .. }, ProviderHint::Peer { peer: y, .. }) => x == y,
        (ProviderHint::Http { url: x }, ProviderHint::Http { url: y }) => x == y,
        _ => false,
    }
}

fn invalid(value: &str, reason: impl Into<String>) -> HintError {
    HintError::Invalid {
        value: value.chars().take(MAX_HINT_LEN).collect(),
        reason: reason.into(),
    }
}

fn parse_one(value: &str, policy: &AddressPolicy) -> Result<ProviderHint, HintError> {
    if value.len() > MAX_HINT_LEN {
        return Err(invalid(value, format!("longer than {MAX_HINT_LEN} bytes")));
    }
    let refused = |(addr, reason): (SocketAddr, Refusal)| {
        count_refusal("hint", addr, reason);
        HintError::Refused {
            value: value.to_string(),
            addr,
            reason,
        }
    };
    if value.starts_with("http://") || value.starts_with("https://") {
        let url = parse_http_url(value)?;
        policy.check_url(&url).map_err(refused)?;
        return Ok(ProviderHint::Http {
            url: base_url(&url),
        });
    }
    if value.starts_with('/') {
        let addr: Multiaddr = value
            .parse()
            .map_err(|e| invalid(value, format!("not a multiaddr: {e}")))?;
        policy.check_multiaddr(&addr).map_err(refused)?;
        return multiaddr_hint(value, addr);
    }
    let peer: PeerId = value.parse().map_err(|_| {
        invalid(
            value,
            "expected a multiaddr, an http(s):// URL or a peer ID",
        )
    })?;
    Ok(ProviderHint::Peer {
        peer,
        addrs: Vec::new(),
    })
}

fn multiaddr_hint(value: &str, mut addr: Multiaddr) -> Result<ProviderHint, HintError> {
    if let Some(url) = http_url_of(&addr) {
        return Ok(ProviderHint::Http { url });
    }
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => {
            addr.pop();
            Ok(ProviderHint::Peer {
                peer,
                addrs: vec![addr],
            })
        }
        Some(Protocol::Http) | Some(Protocol::Https) => {
            Err(invalid(value, "HTTP multiaddr has no host"))
        }
        _ => Err(invalid(
            value,
            "a multiaddr hint must end in /p2p/<peer-id>, /http or /https",
        )),
    }
}

/// The base URL of a multiaddr ending in `/http`, `/https` or `/tls/http`.
pub(crate) fn http_url_of(addr: &Multiaddr) -> Option<String> {
    let protocols: Vec<Protocol> = addr.iter().collect();
    let last = protocols
        .iter()
        .rev()
        .find(|p| !matches!(p, Protocol::P2p(_)))?;
    if !matches!(last, Protocol::Http | Protocol::Https) {
        return None;
    }
    let tls = protocols
        .iter()
        .any(|p| matches!(p, Protocol::Https | Protocol::Tls));
    let host = protocols.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(ip.to_string()),
        Protocol::Ip6(ip) => Some(format!("[{ip}]")),
        Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => Some(h.to_string()),
        _ => None,
    })?;
    let port = protocols.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(*port),
        _ => None,
    });
    let scheme = if tls { "https" } else { "http" };
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Parses `http(s)://host[:port][/]` the way the HTTP client will (the
/// WHATWG rules: `127.1`, `0x7f000001`, `%31%32%37.0.0.1` and full-width
/// digits all become 127.0.0.1), refusing paths, queries and credentials.
fn parse_http_url(value: &str) -> Result<url::Url, HintError> {
    let url = url::Url::parse(value).map_err(|e| invalid(value, format!("not a URL: {e}")))?;
    if url.host().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            value,
            "expected http(s)://host[:port] with no path, query or credentials",
        ));
    }
    Ok(url)
}

/// `scheme://host[:port]` of a parsed URL, in its canonical form (the
/// form the session knows the provider by).
fn base_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default().trim_end_matches('.');
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d";

    #[test]
    fn parses_every_form() {
        let values = [
            format!("/ip4/1.2.3.4/tcp/4001/p2p/{PEER}, /dns4/gw.example.com/tcp/443/https"),
            "https://Trustless.Example.org/".to_string(),
            PEER.to_string(),
        ];
        let hints = parse_hints(
            values.iter().map(String::as_str),
            8,
            &AddressPolicy::new(false),
        )
        .unwrap();
        assert_eq!(hints.len(), 3, "{hints:?}");
        assert_eq!(
            hints[0],
            ProviderHint::Peer {
                peer: PEER.parse().unwrap(),
                addrs: vec!["/ip4/1.2.3.4/tcp/4001".parse().unwrap()]
            }
        );
        assert_eq!(
            hints[1],
            ProviderHint::Http {
                url: "https://gw.example.com:443".into()
            }
        );
        assert_eq!(
            hints[2],
            ProviderHint::Http {
                url: "https://trustless.example.org".into()
            }
        );
    }

    #[test]
    fn merges_addresses_of_one_peer() {
        let values = [format!(
            "/ip4/1.2.3.4/tcp/4001/p2p/{PEER},/ip4/1.2.3.4/udp/4001/quic-v1/p2p/{PEER}"
        )];
        let hints = parse_hints(
            values.iter().map(String::as_str),
            8,
            &AddressPolicy::new(false),
        )
        .unwrap();
        assert!(matches!(&hints[..], [ProviderHint::Peer { addrs, .. }] if addrs.len() == 2));
    }

    #[test]
    fn rejects_bad_and_private_hints() {
        let bad = |v: &str| parse_hints([v], 8, &AddressPolicy::new(false)).unwrap_err();
        assert!(matches!(bad("not-a-hint"), HintError::Invalid { .. }));
        assert!(matches!(
            bad("/ip4/1.2.3.4/tcp/4001"),
            HintError::Invalid { .. }
        ));
        assert!(matches!(
            bad("/ip4/999.1.1.1/tcp/1"),
            HintError::Invalid { .. }
        ));
        assert!(matches!(bad("http://host/path"), HintError::Invalid { .. }));
        assert!(matches!(
            bad(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{PEER}")),
            HintError::Refused { .. }
        ));
        assert!(matches!(
            bad("http://192.168.1.1:8080"),
            HintError::Refused { .. }
        ));
        assert!(matches!(
            bad("http://[::1]:8080"),
            HintError::Refused { .. }
        ));
        assert!(parse_hints(
            [format!("/ip4/127.0.0.1/tcp/4001/p2p/{PEER}").as_str()],
            8,
            &AddressPolicy::new(true)
        )
        .is_ok());
        let many = vec![PEER; 9];
        assert_eq!(
            parse_hints(many, 8, &AddressPolicy::new(false)).unwrap_err(),
            HintError::TooMany { count: 9, max: 8 }
        );
    }
}
