//! `[gateway]`: limits on what one request may ask of the HTTP layer, and
//! which hosts serve which sites (the `[limits]` section, for budgets and
//! concurrency, is in `limits`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Longest request URL accepted (path and query), in bytes; longer gets 414.
    pub max_url_bytes: usize,
    /// Most entries rendered in one HTML directory listing.
    pub max_listing_entries: usize,
    /// Serve a block in a codec other than its own (dag-pb or dag-cbor as
    /// dag-json, dag-json as dag-cbor, ...). Off by default: IPIP-0524 took
    /// conversions out of the specs, and such requests are a 406.
    pub allow_codec_conversion: bool,
    /// Hosts that serve the subdomain gateway: `<cid>.ipfs.<host>`,
    /// `<key>.ipns.<host>`, `<inlined-dnslink>.ipns.<host>`; path-form
    /// requests to the host itself move to their subdomain.
    pub subdomain_hosts: Vec<String>,
    /// A request whose host is another DNS name with a DNSLink record is
    /// that site (the DNSLink gateway).
    pub dnslink: bool,
    /// Honour `X-Forwarded-Host` and `X-Forwarded-Proto` (only behind a
    /// proxy that sets them; a client could otherwise choose its origin).
    pub trust_forwarded_headers: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_url_bytes: 8 * 1024,
            max_listing_entries: 100_000,
            allow_codec_conversion: false,
            subdomain_hosts: vec!["localhost".into()],
            dnslink: true,
            trust_forwarded_headers: false,
        }
    }
}
