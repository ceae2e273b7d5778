//! Fetching blocks from the network, inside the current session.
//!
//! A fetcher reads the request's session (see [`crate::session`]) to pick
//! providers and reports every outcome back to it. Fetchers verify every
//! block against its CID, once, where it comes off the wire, before
//! returning it. Fetchers know nothing of HTTP responses.

pub mod bitswap;
pub mod http;
mod progress;
mod wants;

pub use progress::LinkProgress;

pub use wants::{NetworkFetcher, RetrievalConfig};

use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;

use crate::metrics::{BlockOrigin, Metrics, SourceLabel};
use crate::routing::ProviderHint;
use crate::session::ProviderId;

/// What a provider is asked for one block, whatever carries the ask:
/// Bitswap turns it into a wantlist entry, a trustless gateway into `GET`
/// or `HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WantKind {
    /// The block itself (WANT_BLOCK, `GET`).
    Block,
    /// Only whether the provider has it (WANT_HAVE, `HEAD`).
    Have,
}

/// What a provider answered about a want, whatever carried it: both
/// transports turn what they hear into these, and the want logic reads
/// nothing else.
#[derive(Debug, Clone)]
enum WantEvent {
    /// A block that hashes to the wanted CID.
    Block {
        provider: ProviderId,
        data: Bytes,
    },
    Presence {
        provider: ProviderId,
        have: bool,
    },
    Unreachable(ProviderId),
    BackOff(ProviderId, Duration),
    /// Bytes that do not hash to what the provider was asked for.
    BadBlock(ProviderId),
}

fn count_bad_block(source: BlockOrigin) {
    Metrics::global()
        .bad_blocks
        .get_or_create(&SourceLabel { source })
        .inc();
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// Every provider the session knows, and a broadcast, came up empty.
    /// `search` says what each phase found (see [`SearchReport`]).
    #[error("no provider has block {cid} ({search})")]
    NoProviders { cid: Cid, search: String },
    #[error("retrieving block {cid} timed out after {after:?} ({search})")]
    Timeout {
        cid: Cid,
        after: Duration,
        search: String,
    },
}

/// What one block's search did, phase by phase, for the error a client
/// sees when it fails: which routing sources were asked and what each
/// answered, how many providers were found and connected, how many were
/// asked for the block.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchReport {
    /// `describe_lookups` of the session's lookups, or why none ran.
    pub routing: String,
    /// Providers from hints and routing (broadcast peers not counted).
    pub found: usize,
    pub connected: usize,
    pub asked: usize,
    /// Connected peers asked in a broadcast.
    pub broadcast: usize,
}

impl std::fmt::Display for SearchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "routing: {}; connecting: {} provider{} found, {} connected; retrieval: {} asked, {} connected peer{} asked in a broadcast",
            self.routing,
            self.found,
            if self.found == 1 { "" } else { "s" },
            self.connected,
            self.asked.saturating_sub(self.broadcast),
            self.broadcast,
            if self.broadcast == 1 { "" } else { "s" },
        )
    }
}

/// Something that gets blocks from other nodes.
pub trait BlockFetcher: Send + Sync + 'static {
    /// Fetches `cid` for the current session. Only bytes that hash to
    /// `cid` may be returned: implementations verify each block once, where
    /// it comes off the wire, and callers rely on that.
    fn fetch<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, Result<(Bytes, ProviderId), FetchError>>;

    /// Adds the request's provider hints to the current session (and starts
    /// connecting to them), so the first want goes to them.
    fn seed_hints(&self, hints: &[ProviderHint]);
}

/// How sessions share what they learn (`[retrieval] session_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// Providers are ranked per session and each want goes to the best.
    #[default]
    On,
    /// No shared ranking: every block is asked of every known provider.
    /// Kept only to measure what sessions are worth.
    Off,
}
