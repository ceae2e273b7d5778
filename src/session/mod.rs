//! Implicit per-request sessions.
//!
//! Every HTTP content request runs inside a session: a tracker of the
//! providers that may hold its blocks and of how useful each has been. The
//! session lives in task-local state, so the layers underneath (DAG walks,
//! the block cache, the fetchers) find it with [`current`] instead of having
//! it passed down:
//!
//! | operation | meaning |
//! |---|---|
//! | [`begin`] | run a future in a session: the current one if any (re-entrant), else a new one |
//! | [`fork`] | run a future in a child session starting from a copy of the current rankings |
//! | [`leave`] | run a future with no session |
//! | [`current`] | the session of this task, if any |
//! | [`spawn`] | `tokio::spawn`, carrying the current session into the new task |
//!
//! A session ends when its last [`Session`] handle drops (the response body
//! finished, or the client went away). Spawned tasks hold only a weak
//! handle: they do not keep a session alive, and they are aborted when it
//! ends, which drops their wants and so cancels them on the wire.
//!
//! This file holds the [`Session`] itself (its providers, lookups and
//! activity). Around it: `context` (the task-local operations above and
//! [`SessionBody`]), `registry` (the sessions alive in the process),
//! `budget` (what one request may read), `view` (snapshots for
//! `/debug/sessions`), `ranking` and `peer_book` (what is known of
//! providers, per session and process-wide), `search` (the content routing
//! lookups of a session).

mod budget;
mod context;
mod family;
mod peer_book;
mod ranking;
mod registry;
mod search;
mod view;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use budget::{Budget, BudgetExceeded};
pub use context::{begin, current, fork, leave, spawn, within, SessionBody};
pub use family::{Families, Membership, SessionsConfig};
pub use peer_book::PeerBook;
pub use ranking::{Outcome, ProviderId, ProviderSource, ProviderStats, SessionPeerRanking};
pub use registry::{live_count, live_sessions};
pub use search::{describe_lookups, LookupOutcome, LookupRecord};
pub use view::{ProviderView, SessionView};

use search::SearchLog;

/// A handle to a session. Cheap to clone; the session ends when the last
/// handle drops.
#[derive(Clone)]
pub struct Session(Arc<SessionInner>);

pub struct SessionInner {
    id: u64,
    started: Instant,
    ranking: Mutex<SessionPeerRanking>,
    activity: Mutex<Activity>,
    book: Arc<PeerBook>,
    ended: CancellationToken,
    last_lookup: Mutex<Option<Instant>>,
    searches: Mutex<SearchLog>,
    budget: OnceLock<Budget>,
    /// Set if this session heads its root's family (see [`Families`]).
    family: OnceLock<Arc<family::Family>>,
    /// Set if this session started as a fork of that session.
    parent: OnceLock<u64>,
    /// When the parent last looked providers up, for a fork: no lookup is
    /// due while it is fresh, but a fork whose inherited providers are all
    /// out may still look up once as a last resort.
    family_lookup: Mutex<Option<Instant>>,
}

/// Where a block was found. It lives here, not in the block service that
/// finds it, because the session records it and the session depends on
/// nothing of the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockSource {
    Inline,
    Cache,
    Store,
    Network(ProviderId),
}

/// What a session did, for `Server-Timing` and logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Activity {
    pub resolve: Duration,
    pub fetch: Duration,
    pub blocks_from_cache: u64,
    pub blocks_from_store: u64,
    pub blocks_from_network: u64,
    pub bytes_from_network: u64,
    /// Bytes of every block read, from any source.
    pub bytes_read: u64,
    /// Block reads started under a budget (see `Session::check_budget`).
    pub blocks_started: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Shortest time between two content routing lookups of one session.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(30);

impl Session {
    /// A new, empty session seeded from the process-wide peer book.
    pub fn new() -> Session {
        Self::with_ranking(SessionPeerRanking::default())
    }

    fn with_ranking(ranking: SessionPeerRanking) -> Session {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(SessionInner {
            id,
            started: Instant::now(),
            ranking: Mutex::new(ranking),
            activity: Mutex::new(Activity::default()),
            book: PeerBook::global(),
            ended: CancellationToken::new(),
            last_lookup: Mutex::new(None),
            searches: Mutex::default(),
            budget: OnceLock::new(),
            family: OnceLock::new(),
            parent: OnceLock::new(),
            family_lookup: Mutex::new(None),
        });
        registry::register(&inner);
        Session(inner)
    }

    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn age(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Adds a provider; returns false if it was known already or is banned.
    pub fn add_provider(&self, provider: ProviderId, source: ProviderSource) -> bool {
        if self.0.book.is_banned(&provider) {
            return false;
        }
        let seeded = self.0.book.seed(&provider, source);
        self.0.ranking.lock().add(provider, seeded)
    }

    /// Records what a provider did. A bad block also bans it
    /// process-wide; a block is noted in the peer book at once.
    pub fn record(&self, provider: &ProviderId, outcome: Outcome) {
        match outcome {
            Outcome::BadBlock => self.0.book.penalise(provider),
            Outcome::Block { .. } => self.0.book.note_delivery(provider),
            _ => {}
        }
        self.0.ranking.lock().record(provider, outcome);
    }

    /// Providers cheapest first, dropped and banned ones left out.
    pub fn ranked(&self) -> Vec<ProviderId> {
        let ranking = self.0.ranking.lock();
        ranking
            .ranked()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !self.0.book.is_banned(id))
            .collect()
    }

    /// Expected cost (ms) of asking `provider` now; `None` if unknown here.
    pub fn cost_of(&self, provider: &ProviderId) -> Option<f64> {
        self.0.ranking.lock().cost_of(provider)
    }

    /// True if nothing has been measured about `provider` yet in this session.
    pub fn is_unmeasured(&self, provider: &ProviderId) -> bool {
        let ranking = self.0.ranking.lock();
        ranking.get(provider).is_some_and(|s| s.is_unmeasured())
    }

    /// True if `provider` delivered a block in this or another session of
    /// the process recently (see [`PeerBook::delivered_recently`]).
    pub fn delivered_recently(&self, provider: &ProviderId) -> bool {
        self.0.book.delivered_recently(provider)
    }

    /// See [`SessionPeerRanking::claim_probe`].
    pub fn claim_probe(&self, provider: &ProviderId) -> bool {
        self.0.ranking.lock().claim_probe(provider)
    }

    pub fn hedge_delay(&self, provider: &ProviderId) -> Duration {
        self.0.ranking.lock().hedge_delay(provider)
    }

    /// See [`SessionPeerRanking::completion_behind`].
    pub fn completion_behind(&self, provider: &ProviderId, ahead: u32) -> Option<Duration> {
        self.0.ranking.lock().completion_behind(provider, ahead)
    }

    /// True if `provider` is marked stalled in this session (see
    /// `Outcome::Stalled`).
    pub fn is_stalled(&self, provider: &ProviderId) -> bool {
        let ranking = self.0.ranking.lock();
        ranking.get(provider).is_some_and(|s| s.stalled)
    }

    pub fn stats_of(&self, provider: &ProviderId) -> Option<ProviderStats> {
        self.0.ranking.lock().get(provider).cloned()
    }

    /// A copy of the ranking (for views and for forks).
    pub fn ranking(&self) -> SessionPeerRanking {
        self.0.ranking.lock().clone()
    }

    /// The session this one was forked from, if any.
    pub fn parent(&self) -> Option<u64> {
        self.0.parent.get().copied()
    }

    /// How this session joined its root's family, if it did.
    fn membership(&self) -> Option<Membership> {
        if self.0.family.get().is_some() {
            return Some(Membership::Head);
        }
        self.parent().map(|parent| Membership::Forked { parent })
    }

    /// Makes this session a fork of session `parent`, starting from what
    /// it knew (see [`Families::join`]).
    fn start_from(&self, parent: u64, ranking: SessionPeerRanking, last_lookup: Option<Instant>) {
        if self.0.parent.set(parent).is_err() {
            return;
        }
        self.0.ranking.lock().inherit(ranking);
        *self.0.family_lookup.lock() = last_lookup;
    }

    /// Makes this session the head of `family`.
    fn head(&self, family: Arc<family::Family>) {
        let _ = self.0.family.set(family);
    }

    /// True if the session may look providers up in content routing now:
    /// once at the start, then at most every [`LOOKUP_INTERVAL`] (long
    /// transfers look again; a stuck session does not hammer the routers).
    pub fn begin_lookup(&self) -> bool {
        let mut last = self.0.last_lookup.lock();
        match *last {
            Some(at) if at.elapsed() < LOOKUP_INTERVAL => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// True if a lookup beside the providers known, or a periodic one, is
    /// due (without claiming it): neither this session nor, for a fork,
    /// its parent looked up within [`LOOKUP_INTERVAL`].
    pub fn lookup_due(&self) -> bool {
        let stale = |last: Option<Instant>| last.is_none_or(|at| at.elapsed() >= LOOKUP_INTERVAL);
        stale(*self.0.last_lookup.lock()) && stale(*self.0.family_lookup.lock())
    }

    /// Records what one content routing source answered.
    pub fn note_lookup(&self, record: LookupRecord) {
        self.0.searches.lock().push(record);
    }

    /// The content routing lookups so far, oldest first.
    pub fn lookups(&self) -> Vec<LookupRecord> {
        self.0.searches.lock().records()
    }

    /// Fires when the session ends.
    pub fn ended(&self) -> CancellationToken {
        self.0.ended.clone()
    }

    pub fn note_block(&self, source: BlockSource, bytes: usize, took: Duration) {
        let mut activity = self.0.activity.lock();
        activity.bytes_read += bytes as u64;
        match source {
            BlockSource::Inline | BlockSource::Cache => activity.blocks_from_cache += 1,
            BlockSource::Store => activity.blocks_from_store += 1,
            BlockSource::Network(_) => {
                activity.blocks_from_network += 1;
                activity.bytes_from_network += bytes as u64;
                activity.fetch += took;
            }
        }
    }

    pub fn note_resolve(&self, took: Duration) {
        self.0.activity.lock().resolve += took;
    }

    pub fn activity(&self) -> Activity {
        self.0.activity.lock().clone()
    }

    /// Providers that delivered at least one block.
    pub fn providers_used(&self) -> usize {
        let ranking = self.0.ranking.lock();
        ranking.iter().filter(|(_, s)| s.blocks > 0).count()
    }

    /// `Server-Timing` value describing the session's work so far: one
    /// `lookup-<source>` entry per content routing lookup.
    pub fn server_timing(&self) -> String {
        let a = self.activity();
        let mut timing = format!(
            "resolve;dur={:.1}, fetch;dur={:.1}, blocks;desc=\"cache={} store={} network={}\", providers;desc=\"{}\"",
            a.resolve.as_secs_f64() * 1000.0,
            a.fetch.as_secs_f64() * 1000.0,
            a.blocks_from_cache,
            a.blocks_from_store,
            a.blocks_from_network,
            self.providers_used()
        );
        if let Some(parent) = self.parent() {
            timing.push_str(&format!(", fork;desc=\"from session {parent}\""));
        }
        for lookup in self.lookups() {
            timing.push_str(&format!(
                ", lookup-{};dur={:.1};desc=\"{} {}\"",
                lookup.source,
                lookup.took.as_secs_f64() * 1000.0,
                lookup.outcome.label(),
                lookup.providers
            ));
        }
        timing
    }
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.ended.cancel();
        // No lock needed: this is the last reference.
        let ranking = self.ranking.get_mut();
        // Most requests are served locally and learn nothing about providers.
        if !ranking.is_empty() {
            self.book.absorb(ranking);
        }
        if let Some(family) = self.family.get() {
            family.head_ended(ranking, *self.last_lookup.get_mut());
        }
        registry::deregister(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_a_session_fires_its_token() {
        let session = Session::new();
        let ended = session.ended();
        assert!(!ended.is_cancelled());
        drop(session);
        assert!(ended.is_cancelled());
    }
}
