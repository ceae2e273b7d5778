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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_url_bytes: 8 * 1024,
            max_listing_entries: 100_000,
        }
    }
}
