//! `[gateway]`: limits on what one request may ask of the HTTP layer (the
//! `[limits]` section, for budgets and concurrency, is in `limits`).

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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_url_bytes: 8 * 1024,
            max_listing_entries: 100_000,
            allow_codec_conversion: false,
        }
    }
}
