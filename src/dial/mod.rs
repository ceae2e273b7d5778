//! Where sluice may connect. Every outbound connection — trustless HTTP
//! providers, delegated routers, libp2p dials of hinted, routed and
//! DHT-found peers — is checked against one [`AddressPolicy`] on the socket
//! address about to be dialled, after name resolution, never on the text a
//! client or a router sent: URL parsers read `127.1`, `2130706433`,
//! `0x7f000001` and `127.0.0.1.` as loopback, and a name can resolve
//! anywhere.
//!
//! The classification ([`classify`]) is a pure function; [`http`] applies
//! the policy inside the HTTP client's resolver and connector, and
//! `p2p::guard` inside the libp2p transport.

pub mod http;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use parking_lot::RwLock;

/// Why an address is not dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    #[error("loopback address")]
    Loopback,
    #[error("private-network address")]
    Private,
    #[error("link-local address")]
    LinkLocal,
    #[error("unspecified address")]
    Unspecified,
    #[error("multicast or broadcast address")]
    Multicast,
    #[error("shared (carrier-grade NAT) address")]
    Shared,
    #[error("reserved or special-purpose address")]
    Reserved,
    #[error("cloud metadata address")]
    CloudMetadata,
    #[error("this gateway's own listening address")]
    OwnListener,
}

impl Refusal {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::LinkLocal => "link_local",
            Refusal::Unspecified => "unspecified",
            Refusal::Multicast => "multicast",
            Refusal::Shared => "shared",
            Refusal::Reserved => "reserved",
            Refusal::CloudMetadata => "cloud_metadata",
            Refusal::OwnListener => "own_listener",
        }
    }
}

/// Cloud instance metadata services: refused even where private addresses
/// are allowed, since no block provider lives there and they hand out
/// credentials.
const CLOUD_METADATA: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
];

/// Why `ip` is not a public unicast address, or `None` if it is one. IPv6
/// forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4,
/// Teredo) are judged by the address they carry.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    if CLOUD_METADATA.contains(&ip) {
        return Some(Refusal::CloudMetadata);
    }
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify(IpAddr::V4(v4)).or(Some(Refusal::Reserved).filter(|_| {
                // The deprecated IPv4-compatible form (::a.b.c.d) is never
                // a real destination, whatever it carries.
                v6.segments()[..6].iter().all(|s| *s == 0)
            })),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some(Refusal::Unspecified)
    } else if ip.is_loopback() {
        Some(Refusal::Loopback)
    } else if ip.is_private() {
        Some(Refusal::Private)
    } else if ip.is_link_local() {
        Some(Refusal::LinkLocal)
    } else if a == 100 && (b & 0xc0) == 64 {
        Some(Refusal::Shared)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some(Refusal::Multicast)
    } else if a >= 240
        // IETF protocol assignments, benchmarking, documentation.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some(Refusal::Reserved)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some(Refusal::Unspecified)
    } else if ip.is_loopback() {
        Some(Refusal::Loopback)
    } else if (s[0] & 0xfe00) == 0xfc00 {
        // Unique-local (fc00::/7).
        Some(Refusal::Private)
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some(Refusal::LinkLocal)
    } else if (s[0] & 0xffc0) == 0xfec0 {
        // Site-local (deprecated, still routed inside some networks).
        Some(Refusal::Private)
    } else if ip.is_multicast() {
        Some(Refusal::Multicast)
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some(Refusal::Reserved)
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        // Discard-only (100::/64).
        Some(Refusal::Reserved)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, in the forms that route to
/// one: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::/48`)
/// and Teredo (`2001:0::/32`, the client address inverted).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6].iter().all(|x| *x == 0) && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && (s[2..6].iter().all(|x| *x == 0) || s[2] == 1) {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(v4(!s[6], !s[7]));
    }
    None
}

/// The policy every dial passes: public unicast addresses only (unless
/// private ones are allowed), never this process's own listeners, never a
/// cloud metadata service. Addresses the operator configured (routers,
/// static peers) are trusted as given. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    inner: Arc<PolicyState>,
}

#[derive(Debug, Default)]
struct PolicyState {
    allow_private: bool,
    /// Where this process listens (HTTP, control, libp2p), as bound.
    own: RwLock<Vec<SocketAddr>>,
    /// Socket addresses the operator named in the configuration.
    trusted: RwLock<HashSet<SocketAddr>>,
}

impl AddressPolicy {
    pub fn new(allow_private: bool) -> AddressPolicy {
        AddressPolicy {
            inner: Arc::new(PolicyState {
                allow_private,
                ..PolicyState::default()
            }),
        }
    }

    pub fn allows_private(&self) -> bool {
        self.inner.allow_private
    }

    /// Records a socket this process listens on, so it is never dialled.
    pub fn add_own_listener(&self, addr: SocketAddr) {
        let mut own = self.inner.own.write();
        if !own.contains(&addr) {
            own.push(addr);
        }
    }

    /// Trusts an address the operator configured.
    pub fn trust(&self, addr: SocketAddr) {
        self.inner.trusted.write().insert(addr);
    }

    /// Whether `addr` may be dialled.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(addr.ip());
        let own = self.inner.own.read();
        if own.iter().any(|l| is_same_listener(*l, ip, addr.port())) {
            return Err(Refusal::OwnListener);
        }
        drop(own);
        if CLOUD_METADATA.contains(&ip) {
            return Err(Refusal::CloudMetadata);
        }
        let trusted = self.inner.trusted.read();
        if trusted.contains(&addr) || trusted.contains(&SocketAddr::new(ip, addr.port())) {
            return Ok(());
        }
        drop(trusted);
        match classify(ip) {
            Some(refusal) if !self.inner.allow_private => Err(refusal),
            _ => Ok(()),
        }
    }

    /// The check made once a connection is up, on its actual endpoints:
    /// never a cloud metadata service, never one of our own listeners,
    /// including a public address of this machine dialled back to itself
    /// (the private-address rule was applied before the dial).
    pub fn check_connected(&self, remote: SocketAddr, local: SocketAddr) -> Result<(), Refusal> {
        let ip = canonical(remote.ip());
        if CLOUD_METADATA.contains(&ip) {
            return Err(Refusal::CloudMetadata);
        }
        let own = self.inner.own.read();
        let to_self = ip == canonical(local.ip()) && own.iter().any(|l| l.port() == remote.port());
        if to_self || own.iter().any(|l| is_same_listener(*l, ip, remote.port())) {
            return Err(Refusal::OwnListener);
        }
        Ok(())
    }
}

/// Whether `addr` is on this host or its local network (loopback,
/// private or link-local): the neighbours a widening search may ask.
pub fn is_local_network(addr: &Multiaddr) -> bool {
    multiaddr_socket(addr).is_some_and(|socket| {
        matches!(
            classify(canonical(socket.ip())),
            Some(Refusal::Loopback | Refusal::Private | Refusal::LinkLocal)
        )
    })
}

/// The IP socket address a multiaddr dials (`/ip4|ip6/…/tcp|udp/…`), or
/// `None` when it names a host to resolve first (checked when the
/// resolved address is dialled) or is not an IP address at all.
pub fn multiaddr_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(port) | Protocol::Udp(port) => {
                return ip.map(|ip| SocketAddr::new(ip, port));
            }
            _ => {}
        }
    }
    // An address with no port still names a host: judge the host.
    ip.map(|ip| SocketAddr::new(ip, 0))
}

impl AddressPolicy {
    /// [`AddressPolicy::check`] for the address a multiaddr dials; one that
    /// names a host passes here and is checked once resolved.
    pub fn check_multiaddr(&self, addr: &Multiaddr) -> Result<(), (SocketAddr, Refusal)> {
        match multiaddr_socket(addr) {
            Some(socket) => self.check(socket).map_err(|r| (socket, r)),
            None => Ok(()),
        }
    }

    /// [`AddressPolicy::check`] for an `http(s)://` URL with an IP-literal
    /// host, as the URL parser reads it (`127.1` is 127.0.0.1); a named
    /// host passes here and is checked once resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), (SocketAddr, Refusal)> {
        let port = url.port_or_known_default().unwrap_or(80);
        let ip: IpAddr = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.into(),
            Some(url::Host::Ipv6(ip)) => ip.into(),
            _ => return Ok(()),
        };
        let socket = SocketAddr::new(ip, port);
        self.check(socket).map_err(|r| (socket, r))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether dialling `ip:port` reaches the listener bound at `listener`.
/// A listener on the unspecified address answers on every local address;
/// loopback and unspecified destinations are local by definition.
fn is_same_listener(listener: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if listener.port() != port {
        return false;
    }
    let local_dest = ip.is_loopback() || ip.is_unspecified();
    let listener_ip = canonical(listener.ip());
    listener_ip == ip
        || (listener_ip.is_unspecified() && local_dest)
        || (local_dest && listener_ip.is_loopback())
}

/// Counts a refused dial and logs it.
pub fn count_refusal(client: &str, addr: SocketAddr, refusal: Refusal) {
    tracing::debug!(%addr, client, reason = %refusal, "dial refused by the address policy");
    crate::metrics::Metrics::global()
        .dials_refused
        .get_or_create(&crate::metrics::DialRefusedLabels {
            client: client.to_string(),
            reason: refusal.label().to_string(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_non_public_range_is_refused() {
        for (addr, reason) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.255.254", Refusal::Loopback),
            ("10.1.2.3", Refusal::Private),
            ("172.16.5.4", Refusal::Private),
            ("172.31.255.255", Refusal::Private),
            ("192.168.0.1", Refusal::Private),
            ("169.254.1.1", Refusal::LinkLocal),
            ("169.254.169.254", Refusal::CloudMetadata),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::Unspecified),
            ("100.64.0.1", Refusal::Shared),
            ("100.127.255.255", Refusal::Shared),
            ("224.0.0.1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Multicast),
            ("240.0.0.1", Refusal::Reserved),
            ("192.0.0.8", Refusal::Reserved),
            ("198.18.0.1", Refusal::Reserved),
            ("::1", Refusal::Loopback),
            ("::", Refusal::Unspecified),
            ("fe80::1", Refusal::LinkLocal),
            ("fd00::1", Refusal::Private),
            ("fc00::1", Refusal::Private),
            ("fec0::1", Refusal::Private),
            ("ff02::1", Refusal::Multicast),
            ("fd00:ec2::254", Refusal::CloudMetadata),
            ("2001:db8::1", Refusal::Reserved),
            // IPv6 forms carrying an IPv4 address.
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:10.0.0.1", Refusal::Private),
            ("::ffff:169.254.169.254", Refusal::CloudMetadata),
            ("::127.0.0.1", Refusal::Loopback),
            ("::8.8.8.8", Refusal::Reserved),
            ("64:ff9b::7f00:1", Refusal::Loopback),
            ("64:ff9b::a00:1", Refusal::Private),
            ("64:ff9b:1::c0a8:1", Refusal::Private),
            ("2002:7f00:1::", Refusal::Loopback),
            ("2002:a9fe:a9fe::1", Refusal::CloudMetadata),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Refusal::Loopback),
        ] {
            assert_eq!(classify(ip(addr)), Some(reason), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(classify(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn own_listeners_are_refused_even_where_private_is_allowed() {
        let policy = AddressPolicy::new(true);
        policy.add_own_listener("0.0.0.0:8080".parse().unwrap());
        policy.add_own_listener("127.0.0.1:8081".parse().unwrap());
        for addr in [
            "127.0.0.1:8080",
            "127.0.0.2:8080",
            "0.0.0.0:8080",
            "[::ffff:127.0.0.1]:8080",
            "127.0.0.1:8081",
        ] {
            assert_eq!(
                policy.check(addr.parse().unwrap()),
                Err(Refusal::OwnListener),
                "{addr}"
            );
        }
        assert_eq!(policy.check("127.0.0.1:9000".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("10.0.0.1:8081".parse().unwrap()), Ok(()));
        // A public address of this machine, found to be ourselves once connected.
        let me: SocketAddr = "198.51.100.7:8080".parse().unwrap();
        assert_eq!(
            policy.check_connected(me, "198.51.100.7:41000".parse().unwrap()),
            Err(Refusal::OwnListener)
        );
    }

    #[test]
    fn private_is_refused_unless_allowed_or_configured() {
        let policy = AddressPolicy::new(false);
        let router: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        assert_eq!(policy.check(router), Err(Refusal::Private));
        policy.trust(router);
        assert_eq!(policy.check(router), Ok(()));
        assert_eq!(
            policy.check("10.0.0.5:8081".parse().unwrap()),
            Err(Refusal::Private)
        );
        let metadata = "169.254.169.254:80".parse().unwrap();
        policy.trust(metadata);
        assert_eq!(policy.check(metadata), Err(Refusal::CloudMetadata));
        assert_eq!(
            AddressPolicy::new(true).check(metadata),
            Err(Refusal::CloudMetadata)
        );
        assert_eq!(
            AddressPolicy::new(true).check("127.0.0.1:1".parse().unwrap()),
            Ok(())
        );
    }
}
