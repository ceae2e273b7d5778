//! The process-wide peer book: what earlier sessions learned about each
//! provider, decayed over time, used to seed the ranking of new sessions;
//! when each provider last delivered a block (noted as the block arrives,
//! so sessions still running tell new ones at once); and the list of
//! providers banned for sending bad blocks (or, for a shorter while, for
//! sending more than their inbound budget).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::ranking::{ProviderId, ProviderSource, ProviderStats, SessionPeerRanking};

/// Statistics lose half their weight in this time.
const HALF_LIFE: Duration = Duration::from_secs(600);
/// A provider that sent a block not matching its CID is not asked again for this long.
const BAN: Duration = Duration::from_secs(3600);
/// A seeded session trusts history as at most this many observations.
const MAX_SEED_OBSERVATIONS: f64 = 4.0;
/// Most providers remembered; the least recently seen are forgotten first.
const MAX_ENTRIES: usize = 10_000;
/// A provider that delivered a block this recently, in any session, is
/// asked for blocks without a probe first (see [`PeerBook::delivered_recently`]):
/// as long as its history counts for half.
const RECENT_DELIVERY: Duration = HALF_LIFE;

#[derive(Debug, Clone)]
struct Entry {
    positive: f64,
    negative: f64,
    latency_ms: Option<f64>,
    rtt_ms: Option<f64>,
    throughput: Option<f64>,
    banned_until: Option<Instant>,
    updated: Instant,
    /// Blocks delivered over the life of the process (not decayed).
    blocks_delivered: u64,
    /// HAVEs said over the life of the process (not decayed).
    haves_said: u64,
    /// When it last delivered a verified block, in any session (noted as
    /// the block arrives, not when its session ends).
    delivered_at: Option<Instant>,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            positive: 0.0,
            negative: 0.0,
            latency_ms: None,
            rtt_ms: None,
            throughput: None,
            banned_until: None,
            updated: now,
            blocks_delivered: 0,
            haves_said: 0,
            delivered_at: None,
        }
    }

    fn decay(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let factor = 0.5f64.powf(elapsed / HALF_LIFE.as_secs_f64());
        self.positive *= factor;
        self.negative *= factor;
        self.updated = now;
    }
}

#[derive(Debug, Default)]
pub struct PeerBook {
    entries: Mutex<HashMap<ProviderId, Entry>>,
}

impl PeerBook {
    /// The book every session of this process shares.
    pub fn global() -> Arc<PeerBook> {
        static BOOK: OnceLock<Arc<PeerBook>> = OnceLock::new();
        BOOK.get_or_init(|| Arc::new(PeerBook::default())).clone()
    }

    /// Starting statistics for `provider` in a new session.
    pub fn seed(&self, provider: &ProviderId, source: ProviderSource) -> ProviderStats {
        let mut stats = ProviderStats::new(source);
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.get_mut(provider) {
            entry.decay(Instant::now());
            let total = entry.positive + entry.negative;
            if total > 0.0 {
                let scale = (MAX_SEED_OBSERVATIONS / total).min(1.0);
                stats.haves = (entry.positive * scale).round() as u32;
                stats.dont_haves = (entry.negative * scale).round() as u32;
            }
            stats.latency_ms = entry.latency_ms;
            stats.rtt_ms = entry.rtt_ms;
            stats.throughput = entry.throughput;
        }
        stats
    }

    /// Folds what a finished session observed into the book.
    pub fn absorb(&self, ranking: &SessionPeerRanking) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        for (provider, stats) in ranking.iter() {
            let entry = entries
                .entry(provider.clone())
                .or_insert_with(|| Entry::new(now));
            entry.decay(now);
            entry.blocks_delivered += u64::from(stats.blocks);
            entry.haves_said += u64::from(stats.haves);
            entry.positive += f64::from(stats.blocks + stats.haves);
            entry.negative += f64::from(stats.dont_haves + stats.timeouts);
            let blend = |old: Option<f64>, new: Option<f64>| match (old, new) {
                (Some(old), Some(new)) => Some(0.5 * old + 0.5 * new),
                (old, new) => new.or(old),
            };
            entry.latency_ms = blend(entry.latency_ms, stats.latency_ms);
            entry.rtt_ms = blend(entry.rtt_ms, stats.rtt_ms);
            entry.throughput = blend(entry.throughput, stats.throughput);
            if stats.bad_blocks > 0 {
                entry.banned_until = Some(now + BAN);
            }
        }
        if entries.len() > MAX_ENTRIES {
            let mut by_age: Vec<(ProviderId, Instant)> = entries
                .iter()
                .map(|(k, e)| (k.clone(), e.updated))
                .collect();
            by_age.sort_by_key(|(_, updated)| *updated);
            for (provider, _) in by_age.into_iter().take(entries.len() - MAX_ENTRIES) {
                entries.remove(&provider);
            }
        }
    }

    /// Bans a provider that sent a block that does not match its CID.
    pub fn penalise(&self, provider: &ProviderId) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let entry = entries
            .entry(provider.clone())
            .or_insert_with(|| Entry::new(now));
        entry.banned_until = Some(now + BAN);
    }

    /// Bans `provider` for `duration` (a peer that went over its inbound
    /// budget), unless it is banned for longer already.
    pub fn penalise_for(&self, provider: &ProviderId, duration: Duration) {
        let now = Instant::now();
        let until = now + duration;
        let mut entries = self.entries.lock();
        let entry = entries
            .entry(provider.clone())
            .or_insert_with(|| Entry::new(now));
        if entry.banned_until.is_none_or(|banned| banned < until) {
            entry.banned_until = Some(until);
        }
    }

    /// Notes that `provider` delivered a verified block just now. Sessions
    /// fold their statistics in only when they end, which for the requests
    /// of one page is after the next ones have begun: this is what those
    /// can know of the provider at once.
    pub fn note_delivery(&self, provider: &ProviderId) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        match entries.get_mut(provider) {
            Some(entry) => entry.delivered_at = Some(now),
            None => {
                // Bounded: every provider a session knows is folded in
                // (and the book pruned) when the session ends.
                let mut entry = Entry::new(now);
                entry.delivered_at = Some(now);
                entries.insert(provider.clone(), entry);
            }
        }
    }

    /// True if `provider` delivered a block in some session of this
    /// process within `RECENT_DELIVERY` and is not banned: it holds
    /// content of this kind and answers, so a new session may ask it for a
    /// block without first probing it with a WANT_HAVE.
    pub fn delivered_recently(&self, provider: &ProviderId) -> bool {
        let entries = self.entries.lock();
        let Some(entry) = entries.get(provider) else {
            return false;
        };
        let now = Instant::now();
        entry
            .delivered_at
            .is_some_and(|at| now.saturating_duration_since(at) < RECENT_DELIVERY)
            && entry.banned_until.is_none_or(|until| until <= now)
    }

    /// Blocks `provider` delivered in every finished session of this process.
    pub fn blocks_delivered(&self, provider: &ProviderId) -> u64 {
        let entries = self.entries.lock();
        entries.get(provider).map_or(0, |e| e.blocks_delivered)
    }

    /// Blocks delivered and HAVEs said by `provider` in earlier sessions.
    pub fn track_record(&self, provider: &ProviderId) -> (u64, u64) {
        let entries = self.entries.lock();
        entries
            .get(provider)
            .map_or((0, 0), |e| (e.blocks_delivered, e.haves_said))
    }

    pub fn is_banned(&self, provider: &ProviderId) -> bool {
        let entries = self.entries.lock();
        entries
            .get(provider)
            .and_then(|e| e.banned_until)
            .is_some_and(|until| until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ranking::Outcome;
    use super::*;

    #[test]
    fn history_seeds_new_sessions() {
        let book = PeerBook::default();
        let good = ProviderId::Http("http://good".into());
        let mut ranking = SessionPeerRanking::default();
        ranking.add(good.clone(), ProviderStats::new(ProviderSource::Broadcast));
        for _ in 0..10 {
            ranking.record(
                &good,
                Outcome::Block {
                    bytes: 10,
                    latency: Duration::from_millis(30),
                },
            );
        }
        book.absorb(&ranking);
        let seeded = book.seed(&good, ProviderSource::Broadcast);
        assert_eq!(seeded.haves, 4, "history counts as at most 4 observations");
        assert!(seeded.latency_ms.unwrap() < 31.0);
        let unknown = book.seed(&ProviderId::Http("http://new".into()), ProviderSource::Hint);
        assert_eq!(unknown.haves, 0);
    }

    #[test]
    fn a_delivery_is_known_at_once_until_it_is_old_or_the_provider_banned() {
        let book = PeerBook::default();
        let quick = ProviderId::Http("http://quick".into());
        assert!(!book.delivered_recently(&quick));
        book.note_delivery(&quick);
        assert!(
            book.delivered_recently(&quick),
            "known before any session ends"
        );
        assert_eq!(book.blocks_delivered(&quick), 0, "counted when absorbed");
        book.entries.lock().get_mut(&quick).unwrap().delivered_at =
            Instant::now().checked_sub(RECENT_DELIVERY + Duration::from_secs(1));
        assert!(!book.delivered_recently(&quick), "too long ago");
        book.note_delivery(&quick);
        book.penalise(&quick);
        assert!(!book.delivered_recently(&quick), "banned");
    }

    #[test]
    fn penalised_providers_are_banned() {
        let book = PeerBook::default();
        let bad = ProviderId::Http("http://bad".into());
        assert!(!book.is_banned(&bad));
        book.penalise(&bad);
        assert!(book.is_banned(&bad));
    }

    #[test]
    fn a_penalty_for_a_while_does_not_shorten_a_ban() {
        let book = PeerBook::default();
        let greedy = ProviderId::Http("http://greedy".into());
        book.penalise_for(&greedy, Duration::from_secs(60));
        assert!(book.is_banned(&greedy));
        book.penalise_for(&greedy, Duration::ZERO);
        assert!(
            book.is_banned(&greedy),
            "a shorter penalty keeps the longer one"
        );
        let bad = ProviderId::Http("http://bad".into());
        book.penalise(&bad);
        book.penalise_for(&bad, Duration::from_secs(1));
        let until = book.entries.lock()[&bad].banned_until.unwrap();
        assert!(until > Instant::now() + Duration::from_secs(3000));
        let brief = ProviderId::Http("http://brief".into());
        book.penalise_for(&brief, Duration::ZERO);
        assert!(!book.is_banned(&brief), "a penalty ends");
    }
}
