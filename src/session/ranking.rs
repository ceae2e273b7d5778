//! `SessionPeerRanking`: what each provider did in one session, and the
//! order in which the session asks them for blocks.
//!
//! A provider's rank is its *expected cost* of delivering the next block:
//! its latency estimate, stretched by the wants already in flight to it and
//! divided by the probability that it has the block at all. Lower is better.
//! Everything is measured inside the session, seeded from the process-wide
//! [`PeerBook`](super::PeerBook) so a new session starts from what earlier
//! ones learned.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use libp2p::PeerId;

/// Who can deliver blocks: a Bitswap peer, or a trustless HTTP gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderId {
    Peer(PeerId),
    Http(String),
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderId::Peer(peer) => write!(f, "{peer}"),
            ProviderId::Http(url) => write!(f, "{url}"),
        }
    }
}

/// How a provider entered the session; a prior for how likely it is to have
/// the session's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderSource {
    /// The client named it (`X-Ipfs-Provider`, `?provider=`).
    Hint,
    /// A content routing lookup returned it.
    Routing,
    /// It delivered a block this session already holds (block cache
    /// provenance), so it likely holds the siblings.
    Provenance,
    /// A connected peer asked during a broadcast.
    Broadcast,
}

impl ProviderSource {
    /// Prior probability that a provider of this source has a wanted block.
    fn prior_have(self) -> f64 {
        match self {
            ProviderSource::Hint => 0.8,
            ProviderSource::Provenance => 0.7,
            ProviderSource::Routing => 0.6,
            ProviderSource::Broadcast => 0.1,
        }
    }
}

/// Something a provider did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    WantSent,
    Have,
    DontHave,
    /// A verified block of `bytes`, `latency` after it was asked for.
    Block {
        bytes: usize,
        latency: Duration,
    },
    /// Asked for a block and did not answer within its hedge delay.
    Timeout,
    /// A WANT_BLOCK that is no longer needed (another provider was faster).
    WantCancelled,
    /// Cannot be reached at all (failed its reachability probe): out of this session.
    Unreachable,
    /// Answered a WANT_HAVE or WANT_BLOCK with a presence after `rtt`:
    /// a first latency estimate for a provider that has sent no block yet.
    Answered {
        rtt: Duration,
    },
    /// Sent bytes that do not hash to the CID: dropped for good.
    BadBlock,
}

/// A provider's record in one session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderStats {
    pub source: ProviderSource,
    pub haves: u32,
    pub dont_haves: u32,
    pub blocks: u32,
    pub bytes: u64,
    /// Exponentially weighted mean time to a block, in milliseconds.
    pub latency_ms: Option<f64>,
    pub timeouts: u32,
    pub in_flight: u32,
    pub bad_blocks: u32,
    pub unreachable: bool,
    /// Order of arrival in the session: among equals, the first hinted
    /// provider is asked first (clients list hints by preference).
    pub arrival: u32,
}

impl ProviderStats {
    pub fn new(source: ProviderSource) -> Self {
        ProviderStats {
            source,
            haves: 0,
            dont_haves: 0,
            blocks: 0,
            bytes: 0,
            latency_ms: None,
            timeouts: 0,
            in_flight: 0,
            bad_blocks: 0,
            unreachable: false,
            arrival: 0,
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.bad_blocks > 0 || self.unreachable
    }

    /// Probability that the provider has the next block: a Beta estimate
    /// whose prior weighs two observations.
    fn have_probability(&self) -> f64 {
        let positive = f64::from(self.blocks + self.haves);
        let negative = f64::from(self.dont_haves) + 0.5 * f64::from(self.timeouts);
        let prior = self.source.prior_have();
        ((positive + 2.0 * prior) / (positive + negative + 2.0)).clamp(0.01, 1.0)
    }

    /// Expected milliseconds to get a block from this provider now: a
    /// provider works through its wants one after another, so each want
    /// already in flight adds its latency again.
    pub fn cost(&self, default_latency: Duration) -> f64 {
        let latency = self
            .latency_ms
            .unwrap_or(default_latency.as_secs_f64() * 1000.0)
            .max(1.0);
        latency * (1.0 + f64::from(self.in_flight)) / self.have_probability()
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::WantSent => self.in_flight += 1,
            Outcome::Have => self.haves += 1,
            Outcome::Answered { rtt } => {
                if self.blocks == 0 {
                    let sample = rtt.as_secs_f64() * 1000.0;
                    self.latency_ms = Some(
                        self.latency_ms
                            .map_or(sample, |mean| 0.7 * mean + 0.3 * sample),
                    );
                }
            }
            Outcome::DontHave => {
                self.dont_haves += 1;
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            Outcome::Block { bytes, latency } => {
                self.blocks += 1;
                self.bytes += bytes as u64;
                self.in_flight = self.in_flight.saturating_sub(1);
                let sample = latency.as_secs_f64() * 1000.0;
                self.latency_ms = Some(match self.latency_ms {
                    Some(mean) => 0.7 * mean + 0.3 * sample,
                    None => sample,
                });
            }
            Outcome::Timeout => self.timeouts += 1,
            Outcome::WantCancelled => self.in_flight = self.in_flight.saturating_sub(1),
            Outcome::Unreachable => self.unreachable = true,
            Outcome::BadBlock => self.bad_blocks += 1,
        }
    }
}

/// The providers of one session, ranked.
#[derive(Debug, Clone, Default)]
pub struct SessionPeerRanking {
    providers: HashMap<ProviderId, ProviderStats>,
}

/// An unmeasured provider is assumed no faster than this, however fast the
/// best measured one is: optimism gets it tried when the best is busy, not
/// handed a share of the first wants before its first answer is in.
pub const MIN_UNMEASURED_LATENCY: Duration = Duration::from_millis(50);

/// Latency assumed for a provider nothing is known about yet.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(250);

impl SessionPeerRanking {
    /// Adds a provider (keeping what is known if it is already there; a
    /// better source replaces a weaker one).
    pub fn add(&mut self, provider: ProviderId, stats: ProviderStats) -> bool {
        match self.providers.get_mut(&provider) {
            Some(existing) => {
                if stats.source.prior_have() > existing.source.prior_have() {
                    existing.source = stats.source;
                }
                false
            }
            None => {
                let arrival = self.providers.len() as u32;
                self.providers
                    .insert(provider, ProviderStats { arrival, ..stats });
                true
            }
        }
    }

    pub fn record(&mut self, provider: &ProviderId, outcome: Outcome) {
        if let Some(stats) = self.providers.get_mut(provider) {
            stats.record(outcome);
        }
    }

    pub fn get(&self, provider: &ProviderId) -> Option<&ProviderStats> {
        self.providers.get(provider)
    }

    pub fn contains(&self, provider: &ProviderId) -> bool {
        self.providers.contains_key(provider)
    }

    /// Latency assumed for a provider not measured yet: as fast as the best
    /// one measured (within a floor), so it gets tried once the best is busy.
    fn unmeasured_latency(&self) -> Duration {
        self.providers
            .values()
            .filter_map(|s| s.latency_ms)
            .min_by(f64::total_cmp)
            .map_or(DEFAULT_LATENCY, |ms| Duration::from_secs_f64(ms / 1000.0))
            .max(MIN_UNMEASURED_LATENCY)
    }

    /// Providers still in the session, cheapest first (ties broken by
    /// arrival, so the order is stable and follows the hints' order).
    pub fn ranked(&self) -> Vec<(ProviderId, f64)> {
        let best_known = self.unmeasured_latency();
        let mut ranked: Vec<(ProviderId, f64, u32)> = self
            .providers
            .iter()
            .filter(|(_, s)| !s.is_dropped())
            .map(|(id, s)| (id.clone(), s.cost(best_known), s.arrival))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)));
        ranked.into_iter().map(|(id, cost, _)| (id, cost)).collect()
    }

    /// How long to wait for `provider` before hedging to the next one:
    /// twice what it usually takes, within sane bounds.
    pub fn hedge_delay(&self, provider: &ProviderId) -> Duration {
        let expected = self
            .providers
            .get(provider)
            .and_then(|s| s.latency_ms)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            // Unmeasured: give it a short leash, others may be waiting.
            .unwrap_or(Duration::from_millis(150));
        (expected * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The expected cost of asking `provider` now (see [`ProviderStats::cost`]).
    pub fn cost_of(&self, provider: &ProviderId) -> Option<f64> {
        let best_known = self.unmeasured_latency();
        self.providers.get(provider).map(|s| s.cost(best_known))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ProviderId, &ProviderStats)> {
        self.providers.iter()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> ProviderId {
        ProviderId::Peer(PeerId::random())
    }

    #[test]
    fn hint_outranks_broadcast() {
        let (hinted, broadcast) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(
            broadcast.clone(),
            ProviderStats::new(ProviderSource::Broadcast),
        );
        ranking.add(hinted.clone(), ProviderStats::new(ProviderSource::Hint));
        assert_eq!(ranking.ranked()[0].0, hinted);
    }

    #[test]
    fn fast_deliveries_move_a_provider_up() {
        let (slow, fast) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(slow.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.add(fast.clone(), ProviderStats::new(ProviderSource::Hint));
        for _ in 0..3 {
            ranking.record(
                &slow,
                Outcome::Block {
                    bytes: 1000,
                    latency: Duration::from_millis(400),
                },
            );
            ranking.record(
                &fast,
                Outcome::Block {
                    bytes: 1000,
                    latency: Duration::from_millis(20),
                },
            );
        }
        assert_eq!(ranking.ranked()[0].0, fast);
        assert!(ranking.hedge_delay(&fast) < ranking.hedge_delay(&slow));
    }

    #[test]
    fn dont_have_and_load_lower_the_rank() {
        let (a, b) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(a.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.add(b.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.record(&a, Outcome::WantSent);
        ranking.record(&a, Outcome::DontHave);
        ranking.record(&a, Outcome::DontHave);
        assert_eq!(ranking.ranked()[0].0, b);
        let before = ranking.get(&b).unwrap().cost(DEFAULT_LATENCY);
        ranking.record(&b, Outcome::WantSent);
        assert!(ranking.get(&b).unwrap().cost(DEFAULT_LATENCY) > before);
    }

    #[test]
    fn bad_block_drops_the_provider() {
        let (bad, good) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(bad.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.add(good.clone(), ProviderStats::new(ProviderSource::Broadcast));
        ranking.record(&bad, Outcome::BadBlock);
        let ranked = ranking.ranked();
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].0, good);
    }
}
