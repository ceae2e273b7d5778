//! Where providers come from: the provider hints of a request, delegated
//! content routing, and the address policy every dialled address must pass.

mod delegated;
mod hints;

pub use delegated::{Routing, RoutingConfig};
pub use hints::{parse_hints, HintError, ProviderHint};

use std::net::IpAddr;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// True for addresses that must not be dialled on behalf of an untrusted
/// request unless the operator allows it: loopback, private, link-local,
/// unspecified, unique-local and shared (CGNAT) ranges.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private_ip(IpAddr::V4(v4)))
        }
    }
}

/// True if the multiaddr names a private address (see [`is_private_ip`])
/// or a DNS name that is `localhost`.
pub fn is_private_multiaddr(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => is_private_ip(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => is_private_ip(IpAddr::V6(ip)),
        Protocol::Dns(name)
        | Protocol::Dns4(name)
        | Protocol::Dns6(name)
        | Protocol::Dnsaddr(name) => {
            let name = name.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_ip(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private_ip(public.parse().unwrap()), "{public}");
        }
        assert!(is_private_multiaddr(
            &"/dns4/localhost/tcp/1".parse().unwrap()
        ));
        assert!(!is_private_multiaddr(
            &"/dns4/example.com/tcp/1".parse().unwrap()
        ));
    }
}
