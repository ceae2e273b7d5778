//! `SessionPeerRanking`: what each provider did in one session, and the
//! order in which the session asks them for blocks.
//!
//! A provider's rank is its *expected cost* of delivering the next block:
//! when that block would arrive if asked now — one round trip plus the
//! bytes queued at it (its wants in flight and this one) at its measured
//! throughput — divided by the probability that it has the block at all.
//! Lower is better. Round trip and throughput are measured apart because a
//! provider with a short round trip on a thin link (or the reverse) must
//! not be handed a share of a large file just for answering quickly.
//! Everything is measured inside the session, seeded from the process-wide
//! [`PeerBook`](super::PeerBook) so a new session starts from what earlier
//! ones learned.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

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
    /// A delegated routing lookup returned it.
    Routing,
    /// The DHT named it as a provider.
    Dht,
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
            // Provider records live up to 48 h, so some outlive the content.
            ProviderSource::Dht => 0.5,
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
    /// Had wants and sent nothing for its hedge delay (stopped, cut off or
    /// gone): ranked last until it shows life again (a block or an answer).
    Stalled,
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
    /// Round trip estimate (presence answers, blocks asked of an idle
    /// provider less their transfer time), in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Delivery rate while it had wants queued, in bytes per millisecond.
    pub throughput: Option<f64>,
    #[serde(skip)]
    last_block_at: Option<Instant>,
    /// The window the next rate sample is taken over: since it opened, the
    /// provider always had a want (see [`RateWindow`]).
    #[serde(skip)]
    rate_window: Option<RateWindow>,
    /// When a WANT_HAVE last went out to learn this provider's round trip.
    #[serde(skip)]
    probe_sent_at: Option<Instant>,
    pub timeouts: u32,
    pub in_flight: u32,
    pub bad_blocks: u32,
    pub unreachable: bool,
    /// See [`Outcome::Stalled`].
    pub stalled: bool,
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
            rtt_ms: None,
            throughput: None,
            last_block_at: None,
            rate_window: None,
            probe_sent_at: None,
            timeouts: 0,
            in_flight: 0,
            bad_blocks: 0,
            unreachable: false,
            stalled: false,
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

    /// When the provider last delivered a block in this session.
    pub fn last_block_at(&self) -> Option<Instant> {
        self.last_block_at
    }

    pub fn is_unmeasured(&self) -> bool {
        self.rtt_ms.is_none() && self.latency_ms.is_none()
    }

    fn rtt(&self, assumed: &Assumed) -> f64 {
        self.rtt_ms
            .or(self.latency_ms)
            .unwrap_or(assumed.rtt_ms)
            .max(0.1)
    }

    /// Milliseconds until one more block of the usual size would arrive
    /// if asked now: a provider works through its wants in order.
    fn completion_ms(&self, assumed: &Assumed) -> f64 {
        let rate = self.throughput.unwrap_or_else(|| assumed.rate_of(self));
        let queued = f64::from(self.in_flight + 1) * assumed.block_bytes;
        self.rtt(assumed) + queued / rate
    }

    /// Expected milliseconds to get a block from this provider now.
    fn cost(&self, assumed: &Assumed) -> f64 {
        self.completion_ms(assumed) / self.have_probability()
    }

    /// True if more wants queued here cannot raise this provider's rate:
    /// its queue holds more than its bandwidth-delay product and two
    /// blocks (one on the wire, one to follow), so it is the bottleneck
    /// (its link or its CPU) and the rest of the queue only waits.
    fn saturated(&self, block_bytes: f64) -> bool {
        let (Some(rate), Some(rtt)) = (self.throughput, self.rtt_ms.or(self.latency_ms)) else {
            return false;
        };
        f64::from(self.in_flight) * block_bytes > rate * rtt + 2.0 * block_bytes
    }

    fn ewma(old: Option<f64>, sample: f64) -> Option<f64> {
        Some(old.map_or(sample, |mean| 0.7 * mean + 0.3 * sample))
    }

    /// Adds a delivery to the rate window. A window closes at the end of a
    /// burst (the next delivery comes more than [`BURST_GAP_MS`] later)
    /// once it spans [`RATE_WINDOW_MS`], or when the provider has nothing
    /// more to send; with wants still queued the next window opens where
    /// it closed.
    fn sample_rate(&mut self, now: Instant, bytes: usize, more_queued: bool) {
        let mut window = self
            .rate_window
            .take()
            .unwrap_or(RateWindow::open(now, false));
        let gap_ms = (now - window.last_at).as_secs_f64() * 1000.0;
        if window.bytes > 0
            && gap_ms > BURST_GAP_MS
            && self.window_span_ms(&window, window.last_at) >= RATE_WINDOW_MS
        {
            self.close_window(&window, window.last_at);
            window = RateWindow::open(window.last_at, false);
        }
        window.bytes += bytes as u64;
        window.last_at = now;
        if more_queued {
            self.rate_window = Some(window);
        } else {
            self.close_window(&window, now);
        }
    }

    fn window_span_ms(&self, window: &RateWindow, end: Instant) -> f64 {
        let span_ms = (end - window.start).as_secs_f64() * 1000.0;
        if window.from_idle {
            span_ms - self.rtt_ms.unwrap_or(0.0).min(span_ms / 2.0)
        } else {
            span_ms
        }
    }

    fn close_window(&mut self, window: &RateWindow, end: Instant) {
        if window.bytes >= MIN_RATE_SAMPLE_BYTES as u64 {
            let span_ms = self.window_span_ms(window, end).max(0.05);
            self.throughput = Self::ewma(self.throughput, window.bytes as f64 / span_ms);
        }
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::WantSent => {
                if self.in_flight == 0 {
                    self.rate_window = Some(RateWindow::open(Instant::now(), true));
                }
                self.in_flight += 1;
            }
            Outcome::Have => {
                self.haves += 1;
                self.stalled = false;
            }
            Outcome::Answered { rtt } => {
                self.stalled = false;
                self.rtt_ms = Self::ewma(self.rtt_ms, rtt.as_secs_f64() * 1000.0);
            }
            Outcome::DontHave => {
                self.stalled = false;
                self.dont_haves += 1;
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            Outcome::Block { bytes, latency } => {
                let now = Instant::now();
                let latency_ms = latency.as_secs_f64() * 1000.0;
                let backlogged = self.in_flight > 1;
                self.sample_rate(now, bytes, backlogged);
                if !backlogged {
                    let on_link = self.throughput.map_or(0.0, |rate| bytes as f64 / rate);
                    self.rtt_ms = Self::ewma(self.rtt_ms, (latency_ms - on_link).max(0.1));
                }
                self.stalled = false;
                self.blocks += 1;
                self.bytes += bytes as u64;
                self.in_flight = self.in_flight.saturating_sub(1);
                self.last_block_at = Some(now);
                self.latency_ms = Self::ewma(self.latency_ms, latency_ms);
            }
            Outcome::Timeout => self.timeouts += 1,
            Outcome::WantCancelled => self.in_flight = self.in_flight.saturating_sub(1),
            Outcome::Unreachable => self.unreachable = true,
            Outcome::BadBlock => self.bad_blocks += 1,
            Outcome::Stalled => self.stalled = true,
        }
    }
}

/// The providers of one session, ranked.
#[derive(Debug, Clone, Default)]
pub struct SessionPeerRanking {
    providers: HashMap<ProviderId, ProviderStats>,
    /// Recent block size (see [`SessionPeerRanking::assumed`]).
    recent_block_bytes: Option<f64>,
}

/// Block size assumed before any block of the session arrived.
const PRIOR_BLOCK_BYTES: f64 = 256.0 * 1024.0;

/// An unmeasured provider is assumed no faster than this, however fast the
/// best measured one is: optimism gets it tried when the best is busy, not
/// handed a share of the first wants before its first answer is in.
pub const MIN_UNMEASURED_LATENCY: Duration = Duration::from_millis(50);

/// A provider that has not answered its first WANT_HAVE in this long is
/// asked again (with another block).
pub const PROBE_RETRY: Duration = Duration::from_secs(1);

/// Latency assumed for a provider nothing is known about yet.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(250);

/// Blocks smaller than this are not used alone to estimate throughput.
const MIN_RATE_SAMPLE_BYTES: usize = 32 * 1024;

/// Shortest window a back-to-back throughput sample is taken over.
const RATE_WINDOW_MS: f64 = 25.0;

/// A provider whose rate is not measured yet is assumed to be this much
/// slower than the fastest measured one: trying it costs a block that may
/// hold up an in-order response, so it gets wants only when the measured
/// providers are well loaded.
const UNMEASURED_RATE_DISCOUNT: f64 = 4.0;

/// Bytes a provider delivered while it always had wants to work on. Blocks
/// often arrive in bursts (Helia packs three 1 MiB blocks in a message), so
/// a rate is taken over a window that spans the gap before a burst and the
/// whole burst, never block by block.
#[derive(Debug, Clone, Copy)]
struct RateWindow {
    start: Instant,
    bytes: u64,
    /// Opened when a want went to an idle provider: the first round trip
    /// is in the window and is not transfer time.
    from_idle: bool,
    /// The last delivery in the window.
    last_at: Instant,
}

impl RateWindow {
    fn open(at: Instant, from_idle: bool) -> RateWindow {
        RateWindow {
            start: at,
            bytes: 0,
            from_idle,
            last_at: at,
        }
    }
}

/// Deliveries closer together than this belong to one burst (one message).
const BURST_GAP_MS: f64 = 2.0;

/// What is assumed where a provider has not been measured.
struct Assumed {
    rtt_ms: f64,
    /// Bytes per millisecond.
    throughput: f64,
    /// Size of the next block.
    block_bytes: f64,
    /// While the busiest provider is saturated: providers answering within
    /// this many milliseconds are assumed to deliver at its rate (bytes
    /// per millisecond). See [`SessionPeerRanking::assumed`].
    peer_rate: Option<(f64, f64)>,
}

impl Assumed {
    /// The rate assumed for `stats`, whose rate is not measured yet.
    fn rate_of(&self, stats: &ProviderStats) -> f64 {
        match (self.peer_rate, stats.rtt_ms) {
            (Some((within_ms, rate)), Some(rtt)) if rtt <= within_ms => rate,
            _ => self.throughput,
        }
    }
}

/// A provider answering within this factor of the saturated busiest
/// provider's round trip (plus [`NEAR_RTT_SLACK_MS`]) is taken for its
/// equal: a far one's first block would hold up an in-order body.
const NEAR_RTT_FACTOR: f64 = 2.0;
const NEAR_RTT_SLACK_MS: f64 = 10.0;

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
        if let Outcome::Block { bytes, .. } = outcome {
            let old = self.recent_block_bytes.unwrap_or(PRIOR_BLOCK_BYTES);
            self.recent_block_bytes = Some(0.7 * old + 0.3 * bytes as f64);
        }
        if let Some(stats) = self.providers.get_mut(provider) {
            stats.record(outcome);
        }
    }

    /// True if a WANT_HAVE may go to `provider` to measure it: it is
    /// unmeasured and no such probe is out (one answer is all it takes, and
    /// every message costs the provider; a probe unanswered for
    /// `PROBE_RETRY` may be repeated).
    pub fn claim_probe(&mut self, provider: &ProviderId) -> bool {
        let Some(stats) = self.providers.get_mut(provider) else {
            return false;
        };
        let now = Instant::now();
        let free = stats
            .probe_sent_at
            .is_none_or(|at| now.duration_since(at) >= PROBE_RETRY);
        if stats.is_unmeasured() && free {
            stats.probe_sent_at = Some(now);
            return true;
        }
        false
    }

    pub fn get(&self, provider: &ProviderId) -> Option<&ProviderStats> {
        self.providers.get(provider)
    }

    pub fn contains(&self, provider: &ProviderId) -> bool {
        self.providers.contains_key(provider)
    }

    /// What to assume for providers not measured yet: the best round trip
    /// measured (within a floor), a fraction of the best rate measured
    /// (10 MB/s before any), and a moving average of block sizes that
    /// starts at 256 KiB. (The mean so far made the first wants of a file
    /// look free: after its root, a few KiB, sixteen 1 MiB leaves were all
    /// queued at the provider that sent it.)
    fn assumed(&self) -> Assumed {
        let measured = || self.providers.values();
        let rtt_ms = measured()
            .filter_map(|s| s.rtt_ms.or(s.latency_ms))
            .min_by(f64::total_cmp)
            .unwrap_or(DEFAULT_LATENCY.as_secs_f64() * 1000.0)
            .max(MIN_UNMEASURED_LATENCY.as_secs_f64() * 1000.0);
        let throughput = measured()
            .filter_map(|s| s.throughput)
            .max_by(f64::total_cmp)
            .map_or(10_000.0, |best| best / UNMEASURED_RATE_DISCOUNT);
        let block_bytes = self.recent_block_bytes.unwrap_or(PRIOR_BLOCK_BYTES);
        // Equal providers used together: when the busiest one is the
        // bottleneck, a provider as near as it is assumed as fast (not
        // discounted), so it gets a share at once and its rate is measured
        // (the fallback's rate is then known should the busiest fail).
        let peer_rate = measured()
            .filter(|s| !s.is_dropped() && !s.stalled)
            .max_by_key(|s| s.in_flight)
            .filter(|busiest| busiest.saturated(block_bytes))
            .and_then(|busiest| {
                let rtt = busiest.rtt_ms.or(busiest.latency_ms)?;
                Some((
                    rtt * NEAR_RTT_FACTOR + NEAR_RTT_SLACK_MS,
                    busiest.throughput?,
                ))
            });
        Assumed {
            rtt_ms,
            throughput,
            block_bytes,
            peer_rate,
        }
    }

    /// Providers still in the session, cheapest first (ties broken by
    /// arrival, so the order is stable and follows the hints' order);
    /// stalled ones last, whatever their cost: a stopped provider's record
    /// still looks good, and every want it gets waits out a hedge delay.
    pub fn ranked(&self) -> Vec<(ProviderId, f64)> {
        let assumed = self.assumed();
        let mut ranked: Vec<(ProviderId, f64, bool, u32)> = self
            .providers
            .iter()
            .filter(|(_, s)| !s.is_dropped())
            .map(|(id, s)| (id.clone(), s.cost(&assumed), s.stalled, s.arrival))
            .collect();
        ranked.sort_by(|a, b| a.2.cmp(&b.2).then(a.1.total_cmp(&b.1)).then(a.3.cmp(&b.3)));
        ranked
            .into_iter()
            .map(|(id, cost, _, _)| (id, cost))
            .collect()
    }

    /// How long to wait for one block from `provider` before hedging to
    /// the next one: twice a round trip and a block's transfer, within sane
    /// bounds (the caller stretches it for the wants queued ahead).
    pub fn hedge_delay(&self, provider: &ProviderId) -> Duration {
        // Unmeasured: a short leash, others may be waiting.
        let expected = self
            .completion_behind(provider, 0)
            .unwrap_or(Duration::from_millis(150));
        (expected * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// How long a block asked of `provider` behind `ahead` others takes to
    /// arrive: a round trip and the transfer of all of them; `None` if the
    /// provider is unmeasured.
    pub fn completion_behind(&self, provider: &ProviderId, ahead: u32) -> Option<Duration> {
        let stats = self
            .providers
            .get(provider)
            .filter(|s| !s.is_unmeasured())?;
        let queued = ProviderStats {
            in_flight: ahead,
            ..stats.clone()
        };
        Some(Duration::from_secs_f64(
            queued.completion_ms(&self.assumed()) / 1000.0,
        ))
    }

    /// The expected cost of asking `provider` now (see `ProviderStats::cost`).
    pub fn cost_of(&self, provider: &ProviderId) -> Option<f64> {
        let assumed = self.assumed();
        self.providers.get(provider).map(|s| s.cost(&assumed))
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

    /// A copy for a child session: what was measured, without the wants
    /// in flight (they stay the parent's, and only the parent hears how
    /// they end).
    pub fn for_fork(&self) -> SessionPeerRanking {
        let mut copy = self.clone();
        for stats in copy.providers.values_mut() {
            stats.in_flight = 0;
            stats.rate_window = None;
            stats.probe_sent_at = None;
        }
        copy
    }

    /// Adds what `other` knows of providers this ranking does not have.
    pub fn inherit(&mut self, other: SessionPeerRanking) {
        if self.providers.is_empty() {
            *self = other;
            return;
        }
        for (provider, stats) in other.providers {
            self.providers.entry(provider).or_insert(stats);
        }
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
    fn one_probe_at_a_time_until_the_first_answer() {
        let provider = peer();
        let mut ranking = SessionPeerRanking::default();
        ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
        assert!(ranking.claim_probe(&provider));
        assert!(!ranking.claim_probe(&provider), "a probe is already out");
        ranking.record(
            &provider,
            Outcome::Answered {
                rtt: Duration::from_millis(20),
            },
        );
        assert!(!ranking.claim_probe(&provider), "measured: no probe needed");
        assert!(!ranking.claim_probe(&peer()), "not in the session");
    }

    #[test]
    fn a_burst_of_blocks_is_measured_over_the_time_it_took() {
        // Three blocks in one message: all three were on the wire since the
        // wants went out, not just the first.
        let provider = peer();
        let mut ranking = SessionPeerRanking::default();
        ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
        let started = Instant::now();
        for _ in 0..3 {
            ranking.record(&provider, Outcome::WantSent);
        }
        std::thread::sleep(Duration::from_millis(40));
        for _ in 0..3 {
            ranking.record(
                &provider,
                Outcome::Block {
                    bytes: 1 << 20,
                    latency: started.elapsed(),
                },
            );
        }
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let rate = ranking.get(&provider).unwrap().throughput.unwrap();
        let one_block_rate = (1 << 20) as f64 / elapsed_ms;
        assert!(
            rate >= 2.5 * one_block_rate,
            "{rate} bytes/ms counts one block"
        );
        assert!(rate <= 3.0 * (1 << 20) as f64 / 40.0, "{rate} bytes/ms");
    }

    #[test]
    fn a_small_first_block_does_not_make_queued_wants_look_free() {
        // A file's root (a few KiB) from `first`, then a burst of wants for
        // its leaves: they must not all queue at `first`, though `second`
        // is further away.
        let (first, second) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        for (provider, rtt_ms) in [(&first, 10), (&second, 80)] {
            ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
            ranking.record(
                provider,
                Outcome::Answered {
                    rtt: Duration::from_millis(rtt_ms),
                },
            );
        }
        ranking.record(&first, Outcome::WantSent);
        ranking.record(
            &first,
            Outcome::Block {
                bytes: 3 * 1024,
                latency: Duration::from_millis(10),
            },
        );
        let mut asked = HashMap::new();
        for _ in 0..16 {
            let best = ranking.ranked()[0].0.clone();
            ranking.record(&best, Outcome::WantSent);
            *asked.entry(best).or_insert(0) += 1;
        }
        assert!(
            asked.get(&second).copied().unwrap_or(0) >= 4,
            "wants per provider: {asked:?}"
        );
    }

    #[test]
    fn a_queued_block_takes_longer_than_an_idle_one() {
        let provider = peer();
        let mut ranking = SessionPeerRanking::default();
        ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
        assert_eq!(ranking.completion_behind(&provider, 0), None, "unmeasured");
        ranking.record(
            &provider,
            Outcome::Answered {
                rtt: Duration::from_millis(20),
            },
        );
        let idle = ranking.completion_behind(&provider, 0).unwrap();
        let queued = ranking.completion_behind(&provider, 8).unwrap();
        assert!(idle >= Duration::from_millis(20), "{idle:?}");
        assert!(queued > idle * 2, "{queued:?} vs {idle:?}");
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
        let before = ranking.cost_of(&b).unwrap();
        ranking.record(&b, Outcome::WantSent);
        assert!(ranking.cost_of(&b).unwrap() > before);
    }

    #[test]
    fn a_loaded_fast_link_still_beats_an_untried_far_one() {
        let (fast, far) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(far.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.add(fast.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.record(
            &far,
            Outcome::Answered {
                rtt: Duration::from_millis(100),
            },
        );
        ranking.record(
            &fast,
            Outcome::Answered {
                rtt: Duration::from_millis(1),
            },
        );
        // 1 MiB blocks from the fast one, back to back, in bursts of two.
        for _ in 0..8 {
            ranking.record(&fast, Outcome::WantSent);
        }
        for i in 0..6 {
            if i % 2 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            ranking.record(&fast, Outcome::WantSent);
            ranking.record(
                &fast,
                Outcome::Block {
                    bytes: 1 << 20,
                    latency: Duration::from_millis(80),
                },
            );
        }
        let rate = ranking.get(&fast).unwrap().throughput.unwrap();
        assert!(
            rate < 200_000.0,
            "bursts must not read as a huge rate: {rate}"
        );
        assert_eq!(ranking.ranked()[0].0, fast);
        // Far more load on the fast one, and the untried one gets a turn.
        for _ in 0..40 {
            ranking.record(&fast, Outcome::WantSent);
        }
        assert_eq!(ranking.ranked()[0].0, far);
    }

    /// A provider with `rtt_ms` and a rate measured over one burst of
    /// three 1 MiB blocks (about 3 MiB / 20 ms).
    fn with_rate(ranking: &mut SessionPeerRanking, provider: &ProviderId, rtt_ms: u64) {
        ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
        ranking.record(
            provider,
            Outcome::Answered {
                rtt: Duration::from_millis(rtt_ms),
            },
        );
        for _ in 0..3 {
            ranking.record(provider, Outcome::WantSent);
        }
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..3 {
            ranking.record(
                provider,
                Outcome::Block {
                    bytes: 1 << 20,
                    latency: Duration::from_millis(20),
                },
            );
        }
    }

    #[test]
    fn a_saturated_busiest_provider_shares_with_an_equally_near_one() {
        let (busy, near, far) = (peer(), peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        with_rate(&mut ranking, &busy, 2);
        for (provider, rtt_ms) in [(&near, 3), (&far, 100)] {
            ranking.add(provider.clone(), ProviderStats::new(ProviderSource::Hint));
            ranking.record(
                provider,
                Outcome::Answered {
                    rtt: Duration::from_millis(rtt_ms),
                },
            );
        }
        let rate = ranking.get(&busy).unwrap().throughput.unwrap();
        // Not yet saturated: one block queued, within its bandwidth-delay
        // product and two blocks. The near one is discounted as unmeasured.
        ranking.record(&busy, Outcome::WantSent);
        let assumed = ranking.assumed();
        assert!(assumed.peer_rate.is_none());
        let near_stats = ranking.get(&near).unwrap().clone();
        assert!(assumed.rate_of(&near_stats) < rate / 2.0);
        // Eight queued: past it. The near one is taken for its equal, the
        // far one is not.
        for _ in 0..7 {
            ranking.record(&busy, Outcome::WantSent);
        }
        let assumed = ranking.assumed();
        assert!((assumed.rate_of(&near_stats) - rate).abs() < 1e-6);
        let far_stats = ranking.get(&far).unwrap().clone();
        assert!(assumed.rate_of(&far_stats) < rate / 2.0);
        assert_eq!(
            ranking.ranked()[0].0,
            near,
            "the next want goes to the near one"
        );
    }

    #[test]
    fn a_stalled_provider_ranks_last_until_it_shows_life() {
        let (stopped, slow) = (peer(), peer());
        let mut ranking = SessionPeerRanking::default();
        with_rate(&mut ranking, &stopped, 2);
        ranking.add(slow.clone(), ProviderStats::new(ProviderSource::Broadcast));
        assert_eq!(ranking.ranked()[0].0, stopped);
        ranking.record(&stopped, Outcome::Stalled);
        assert_eq!(ranking.ranked()[0].0, slow);
        assert_eq!(ranking.ranked().len(), 2, "still in the session");
        ranking.record(&stopped, Outcome::Have);
        assert_eq!(ranking.ranked()[0].0, stopped);
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
