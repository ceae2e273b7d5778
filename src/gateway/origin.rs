//! Which site a request is for, from the authority the client addressed:
//! the path gateway (`/ipfs/<cid>` and `/ipns/<name>` as paths), a
//! subdomain gateway origin (`<cid>.ipfs.<host>`, `<key>.ipns.<host>`,
//! `<inlined-dnslink>.ipns.<host>`), or a DNSLink origin (another DNS name,
//! if its `_dnslink` record names a site). Every site gets its own origin,
//! so sites do not share cookies or storage (the subdomain gateway spec).
//!
//! Pure functions: `hosts` does the I/O (the DNSLink check) and rewrites
//! the request into a content path before routing.

use axum::http::{HeaderMap, Uri};
use cid::Cid;
use libp2p::PeerId;

use super::errors::GatewayError;
use crate::dag::codec::{DAG_PB, LIBP2P_KEY};
use crate::names::{dnslink, ipns};

/// A DNS label's longest form (RFC 1035).
pub const MAX_LABEL: usize = 63;
/// A DNS name's longest form.
const MAX_NAME: usize = 253;

/// The two content namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Ipfs,
    Ipns,
}

impl Namespace {
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Ipfs => "ipfs",
            Namespace::Ipns => "ipns",
        }
    }
}

/// What the addressed host makes of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// The path gateway. `subdomain_host` is the gateway authority when the
    /// host is a configured subdomain gateway itself: content paths there
    /// move to their subdomain.
    Path { subdomain_host: Option<String> },
    /// A content root named in the host: served at `/ipfs/<id>` or
    /// `/ipns/<id>` (a libp2p key in base36 or a DNSLink name).
    Subdomain {
        namespace: Namespace,
        id: String,
        /// The subdomain gateway's authority (`localhost:8080`).
        gateway: String,
    },
    /// A root named in the host, but not in its canonical form: the same
    /// URL on the canonical host (`https://<canonical>.ipns.<gateway>/…`).
    Canonical { host: String },
    /// Another DNS name: a DNSLink site if it has a record, else the path
    /// gateway.
    MaybeDnsLink { domain: String },
}

/// The site a request was rewritten for, carried from `hosts` to the
/// handlers (links, redirects and `_redirects` depend on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteOrigin {
    /// `<id>.<namespace>.<gateway>`.
    Subdomain {
        namespace: Namespace,
        id: String,
        gateway: String,
    },
    /// A DNSLink name as the host (`host`, without port).
    DnsLink { host: String },
}

/// A rewritten request's site and the path its client asked for.
#[derive(Debug, Clone)]
pub struct OnSite {
    pub origin: SiteOrigin,
    pub public_path: String,
}

/// What decides the site, from `[gateway]`.
#[derive(Debug, Clone, Copy)]
pub struct HostRules<'a> {
    pub subdomain_hosts: &'a [String],
    pub dnslink: bool,
}

/// The authority the client addressed: the absolute-form request target
/// (as a proxy gets it), else `X-Forwarded-Host` when trusted, else `Host`.
pub fn addressed_authority(
    uri: &Uri,
    headers: &HeaderMap,
    trust_forwarded: bool,
) -> Option<String> {
    if let Some(authority) = uri.authority() {
        return Some(authority.as_str().to_string());
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            // A proxy chain lists hosts first to last; the first is the client's.
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if trust_forwarded {
        if let Some(forwarded) = header("x-forwarded-host") {
            return Some(forwarded);
        }
    }
    header("host")
}

/// The scheme the client used: `X-Forwarded-Proto` when trusted (a proxy
/// terminating TLS), else the absolute-form target's, else `http`.
pub fn addressed_scheme(uri: &Uri, headers: &HeaderMap, trust_forwarded: bool) -> &'static str {
    let forwarded = trust_forwarded
        .then(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
        })
        .flatten()
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match forwarded.as_deref().or(uri.scheme_str()) {
        Some("https") => "https",
        _ => "http",
    }
}

/// A host and port as the client wrote them, split and normalised (lower
/// case, no trailing dot). `None` for an IP literal.
fn split_authority(authority: &str) -> Result<Option<(String, Option<u16>)>, GatewayError> {
    let odd = || {
        GatewayError::BadRequest(format!(
            "Host {:?} is not a host name with an optional port",
            authority.chars().take(300).collect::<String>()
        ))
    };
    if authority.starts_with('[') {
        // An IPv6 literal.
        let end = authority.find(']').ok_or_else(odd)?;
        authority[1..end]
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| odd())?;
        let rest = &authority[end + 1..];
        if !rest.is_empty()
            && rest
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(odd());
        }
        return Ok(None);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| odd())?)),
        None => (authority, None),
    };
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(None);
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || host.len() > MAX_NAME || !host.chars().all(allowed) {
        return Err(odd());
    }
    Ok(Some((host, port)))
}

/// Whether `name` is a DNS name a DNSLink record could be published under
/// (the resolver's own check; a single label is never looked up).
pub fn is_dns_name(name: &str) -> bool {
    name.contains('.') && dnslink::parse_domain(name).is_ok()
}

/// The site `authority` addresses.
pub fn site_of(authority: Option<&str>, rules: HostRules<'_>) -> Result<Site, GatewayError> {
    let Some(authority) = authority else {
        return Ok(Site::Path {
            subdomain_host: None,
        });
    };
    let Some((host, port)) = split_authority(authority)? else {
        return Ok(Site::Path {
            subdomain_host: None,
        });
    };
    let with_port = |name: &str| match port {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    };
    // The longest configured host that is the host or a suffix of it wins
    // (`a.example` before `example`).
    let gateway = rules
        .subdomain_hosts
        .iter()
        .map(|g| g.trim_end_matches('.'))
        .filter(|g| {
            host.eq_ignore_ascii_case(g)
                || (host.len() > g.len()
                    && host.is_char_boundary(host.len() - g.len() - 1)
                    && host[host.len() - g.len()..].eq_ignore_ascii_case(g)
                    && host.as_bytes()[host.len() - g.len() - 1] == b'.')
        })
        .max_by_key(|g| g.len());
    if let Some(gateway) = gateway {
        let gateway = gateway.to_ascii_lowercase();
        if host == gateway {
            return Ok(Site::Path {
                subdomain_host: Some(with_port(&gateway)),
            });
        }
        let prefix = &host[..host.len() - gateway.len() - 1];
        let namespace = match prefix.rsplit_once('.') {
            Some((id, "ipfs")) => Some((id, Namespace::Ipfs)),
            Some((id, "ipns")) => Some((id, Namespace::Ipns)),
            _ => None,
        };
        if let Some((id, namespace)) = namespace {
            return subdomain_site(namespace, id, with_port(&gateway));
        }
    }
    if rules.dnslink && is_dns_name(&host) {
        return Ok(Site::MaybeDnsLink { domain: host });
    }
    Ok(Site::Path {
        subdomain_host: None,
    })
}

fn too_long(id: &str) -> GatewayError {
    GatewayError::BadRequest(format!(
        "{id} is {} characters: CID incompatible with DNS label length limit of {MAX_LABEL}",
        id.len()
    ))
}

/// The site `<id>.<namespace>.<gateway>` names, checked and canonical.
fn subdomain_site(namespace: Namespace, id: &str, gateway: String) -> Result<Site, GatewayError> {
    let canonical = |label: String| {
        Ok(Site::Canonical {
            host: format!("{label}.{}.{gateway}", namespace.as_str()),
        })
    };
    match namespace {
        Namespace::Ipfs => {
            if id.len() > MAX_LABEL {
                return Err(too_long(id));
            }
            let cid = Cid::try_from(id).map_err(|e| {
                GatewayError::BadRequest(format!("invalid CID {id:?} in the host name: {e}"))
            })?;
            let label = dns_label_of_cid(&cid)?;
            if label != id {
                return canonical(label);
            }
        }
        Namespace::Ipns => {
            if let Some(key) = libp2p_key(id) {
                let label = ipns::canonical_name(&key);
                if label != id {
                    return canonical(label);
                }
            } else if !id.contains('.') {
                // An inlined DNSLink name: one label.
                if id.len() > MAX_LABEL {
                    return Err(too_long(id));
                }
                let domain = decode_inlined_dnslink(id);
                if !is_dns_name(&domain) {
                    return Err(GatewayError::BadRequest(format!(
                        "{id:?} in the host name is neither a libp2p key nor an inlined DNSLink name"
                    )));
                }
                return Ok(Site::Subdomain {
                    namespace,
                    id: domain,
                    gateway,
                });
            } else if !is_dns_name(id) {
                return Err(GatewayError::BadRequest(format!(
                    "{id:?} in the host name is not a DNS name"
                )));
            }
        }
    }
    Ok(Site::Subdomain {
        namespace,
        id: id.to_string(),
        gateway,
    })
}

/// A libp2p key named in a host label: a `libp2p-key` CID, or the legacy
/// dag-pb CID form of one. (A base58 peer ID does not survive a host name's
/// case folding.)
fn libp2p_key(label: &str) -> Option<PeerId> {
    let cid = Cid::try_from(label).ok()?;
    if cid.codec() != LIBP2P_KEY && cid.codec() != DAG_PB {
        return None;
    }
    PeerId::from_multihash(*cid.hash()).ok()
}

/// A CID as a DNS label: CIDv1 in base32 (case-insensitive), if it fits.
pub fn dns_label_of_cid(cid: &Cid) -> Result<String, GatewayError> {
    let v1 = Cid::new_v1(cid.codec(), *cid.hash());
    let label = v1
        .to_string_of_base(multibase::Base::Base32Lower)
        .map_err(|e| GatewayError::BadRequest(format!("CID {cid} has no base32 form: {e}")))?;
    if label.len() > MAX_LABEL {
        return Err(too_long(&label));
    }
    Ok(label)
}

/// A DNSLink name as one DNS label (the subdomain spec): `-` becomes
/// `--`, then `.` becomes `-`.
pub fn inline_dnslink(domain: &str) -> String {
    domain.replace('-', "--").replace('.', "-")
}

/// The inverse of [`inline_dnslink`]: a lone `-` is a `.`, `--` a `-`.
pub fn decode_inlined_dnslink(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '-' {
            if chars.peek() == Some(&'-') {
                chars.next();
                out.push('-');
            } else {
                out.push('.');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a path-form request on a subdomain gateway moves to:
/// `/ipfs/<cid>/rest?query` → `<scheme>://<cid-base32>.ipfs.<gateway>/rest?query`,
/// `/ipns/<key or domain>/rest` likewise (keys in base36, domains
/// inlined). `None`: not a content path with a root (served as it is, e.g.
/// the URI router at `/ipfs/?uri=`).
pub fn subdomain_location(
    path: &str,
    query: Option<&str>,
    scheme: &str,
    gateway: &str,
) -> Result<Option<String>, GatewayError> {
    let (namespace, rest) = if let Some(rest) = path.strip_prefix("/ipfs/") {
        (Namespace::Ipfs, rest)
    } else if let Some(rest) = path.strip_prefix("/ipns/") {
        (Namespace::Ipns, rest)
    } else {
        return Ok(None);
    };
    let (root, remainder) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if root.is_empty() {
        return Ok(None);
    }
    let invalid = |why: String| {
        GatewayError::BadRequest(format!(
            "invalid path \"/{}/{root}\": {why}",
            namespace.as_str()
        ))
    };
    let decoded = percent_encoding::percent_decode_str(root)
        .decode_utf8()
        .map_err(|_| invalid("not UTF-8".into()))?;
    let label = match namespace {
        Namespace::Ipfs => {
            let cid = Cid::try_from(decoded.as_ref()).map_err(|e| invalid(e.to_string()))?;
            dns_label_of_cid(&cid)?
        }
        Namespace::Ipns => {
            if let Ok(key) = ipns::parse_name(&decoded) {
                ipns::canonical_name(&key)
            } else if let Some(key) = libp2p_key(&decoded) {
                ipns::canonical_name(&key)
            } else if is_dns_name(&decoded.to_ascii_lowercase()) {
                let label = inline_dnslink(&decoded.to_ascii_lowercase());
                if label.len() > MAX_LABEL {
                    return Err(too_long(&label));
                }
                label
            } else {
                return Err(invalid("neither a libp2p key nor a DNS name".into()));
            }
        }
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Some(format!(
        "{scheme}://{label}.{}.{gateway}{remainder}{query}",
        namespace.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIDV1: &str = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";
    const CIDV0: &str = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN";
    const KEY_B36: &str = "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam";
    const KEY_B58: &str = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d";

    fn rules(hosts: &[String]) -> HostRules<'_> {
        HostRules {
            subdomain_hosts: hosts,
            dnslink: true,
        }
    }

    fn site(authority: &str) -> Result<Site, GatewayError> {
        let hosts = vec!["localhost".to_string(), "gw.example.net".to_string()];
        site_of(Some(authority), rules(&hosts))
    }

    #[test]
    fn ip_hosts_are_the_path_gateway() {
        for authority in ["127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "[2001:db8::1]"] {
            assert_eq!(
                site(authority).unwrap(),
                Site::Path {
                    subdomain_host: None
                },
                "{authority}"
            );
        }
    }

    #[test]
    fn subdomain_hosts_and_their_sites() {
        assert_eq!(
            site("localhost:8080").unwrap(),
            Site::Path {
                subdomain_host: Some("localhost:8080".into())
            }
        );
        assert_eq!(
            site(&format!("{CIDV1}.ipfs.LOCALHOST:8080")).unwrap(),
            Site::Subdomain {
                namespace: Namespace::Ipfs,
                id: CIDV1.into(),
                gateway: "localhost:8080".into()
            }
        );
        assert_eq!(
            site(&format!("{KEY_B36}.ipns.gw.example.net.")).unwrap(),
            Site::Subdomain {
                namespace: Namespace::Ipns,
                id: KEY_B36.into(),
                gateway: "gw.example.net".into()
            }
        );
        assert_eq!(
            site("en-wikipedia--on--ipfs-org.ipns.localhost").unwrap(),
            Site::Subdomain {
                namespace: Namespace::Ipns,
                id: "en.wikipedia-on-ipfs.org".into(),
                gateway: "localhost".into()
            }
        );
        assert_eq!(
            site("dnslink-test.example.org.ipns.localhost").unwrap(),
            Site::Subdomain {
                namespace: Namespace::Ipns,
                id: "dnslink-test.example.org".into(),
                gateway: "localhost".into()
            }
        );
    }

    #[test]
    fn non_canonical_roots_move_to_their_canonical_host() {
        // A dag-pb CID of a key, in the ipns namespace: the libp2p-key form.
        let key = ipns::parse_name(KEY_B58).unwrap();
        let dag_pb = Cid::new_v1(DAG_PB, *key.as_ref())
            .to_string_of_base(multibase::Base::Base36Lower)
            .unwrap();
        assert_eq!(
            site(&format!("{dag_pb}.ipns.localhost")).unwrap(),
            Site::Canonical {
                host: format!("{KEY_B36}.ipns.localhost")
            }
        );
        // A base36 CIDv1 in the ipfs namespace: base32.
        let cid = Cid::try_from(CIDV1).unwrap();
        let b36 = cid.to_string_of_base(multibase::Base::Base36Lower).unwrap();
        assert_eq!(
            site(&format!("{b36}.ipfs.localhost")).unwrap(),
            Site::Canonical {
                host: format!("{CIDV1}.ipfs.localhost")
            }
        );
    }

    #[test]
    fn bad_hosts_are_clear_errors() {
        let long = format!("b{}", "a".repeat(70));
        for authority in [
            "exa mple.com",
            "example.com:99999",
            "user@example.com",
            "[::1",
            "[::1]junk",
            "[::1]:x",
            "",
        ] {
            assert!(
                matches!(site(authority), Err(GatewayError::BadRequest(_))),
                "{authority:?}"
            );
        }
        let err = site(&format!("{long}.ipfs.localhost")).unwrap_err();
        assert!(
            err.to_string().contains("DNS label length limit of 63"),
            "{err}"
        );
        assert!(site("notacid.ipfs.localhost").is_err());
        assert!(site("-bad-.ipns.localhost").is_err());
    }

    #[test]
    fn other_names_may_be_dnslink_sites() {
        assert_eq!(
            site("en.wikipedia-on-ipfs.org").unwrap(),
            Site::MaybeDnsLink {
                domain: "en.wikipedia-on-ipfs.org".into()
            }
        );
        // Not a DNS name that could hold a record: the path gateway.
        assert_eq!(
            site("intranet").unwrap(),
            Site::Path {
                subdomain_host: None
            }
        );
        let hosts = vec![];
        let off = HostRules {
            subdomain_hosts: &hosts,
            dnslink: false,
        };
        assert_eq!(
            site_of(Some("example.org"), off).unwrap(),
            Site::Path {
                subdomain_host: None
            }
        );
    }

    #[test]
    fn dnslink_inlining_round_trips() {
        for domain in ["en.wikipedia-on-ipfs.org", "a--b.c-d.example", "x.y"] {
            let label = inline_dnslink(domain);
            assert!(!label.contains('.'));
            assert_eq!(decode_inlined_dnslink(&label), domain);
        }
        assert_eq!(
            inline_dnslink("en.wikipedia-on-ipfs.org"),
            "en-wikipedia--on--ipfs-org"
        );
    }

    #[test]
    fn path_requests_move_to_subdomains() {
        let at = |path: &str, query: Option<&str>| {
            subdomain_location(path, query, "http", "localhost:8080")
        };
        assert_eq!(
            at(&format!("/ipfs/{CIDV1}/a%20b/c.txt"), Some("x=1")).unwrap(),
            Some(format!(
                "http://{CIDV1}.ipfs.localhost:8080/a%20b/c.txt?x=1"
            ))
        );
        // CIDv0 becomes CIDv1 in base32.
        let v1 = dns_label_of_cid(&Cid::try_from(CIDV0).unwrap()).unwrap();
        assert!(v1.starts_with("bafybei"));
        assert_eq!(
            at(&format!("/ipfs/{CIDV0}"), None).unwrap(),
            Some(format!("http://{v1}.ipfs.localhost:8080/"))
        );
        for name in [KEY_B58, KEY_B36] {
            assert_eq!(
                at(&format!("/ipns/{name}"), None).unwrap(),
                Some(format!("http://{KEY_B36}.ipns.localhost:8080/"))
            );
        }
        assert_eq!(
            at("/ipns/en.wikipedia-on-ipfs.org/wiki/", None).unwrap(),
            Some("http://en-wikipedia--on--ipfs-org.ipns.localhost:8080/wiki/".into())
        );
        assert_eq!(at("/ipfs/", Some("uri=ipfs%3A%2F%2Fx")).unwrap(), None);
        assert_eq!(at("/healthz", None).unwrap(), None);
        let err = at("/ipfs/QmInvalidCID", None).unwrap_err();
        assert!(err
            .to_string()
            .contains("invalid path \"/ipfs/QmInvalidCID\""));
    }

    #[test]
    fn forwarded_headers_count_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "fake.domain.com".parse().unwrap());
        headers.insert("x-forwarded-host", "localhost:8080".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        let uri: Uri = "/ipfs/x".parse().unwrap();
        assert_eq!(
            addressed_authority(&uri, &headers, false).as_deref(),
            Some("fake.domain.com")
        );
        assert_eq!(
            addressed_authority(&uri, &headers, true).as_deref(),
            Some("localhost:8080")
        );
        assert_eq!(addressed_scheme(&uri, &headers, false), "http");
        assert_eq!(addressed_scheme(&uri, &headers, true), "https");
        // The absolute form wins over every header.
        let absolute: Uri = "http://bafy.ipfs.localhost/".parse().unwrap();
        assert_eq!(
            addressed_authority(&absolute, &headers, true).as_deref(),
            Some("bafy.ipfs.localhost")
        );
    }
}
