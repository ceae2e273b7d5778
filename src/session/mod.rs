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

mod peer_book;
mod ranking;
mod search;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use peer_book::PeerBook;
pub use ranking::{Outcome, ProviderId, ProviderSource, ProviderStats, SessionPeerRanking};
pub use search::{describe_lookups, LookupOutcome, LookupRecord};

use search::SearchLog;

tokio::task_local! {
    static CURRENT: Slot;
}

#[derive(Clone)]
enum Slot {
    None,
    Owner(Session),
    /// Held by spawned tasks: sees the session without keeping it alive.
    Observer(Weak<SessionInner>),
}

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
}

/// The most one request may read, in blocks and in bytes of blocks, from
/// any source (`[limits] max_blocks_per_request`, `max_bytes_per_request`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_blocks: u64,
    pub max_bytes: u64,
}

/// A request read as much as its [`Budget`] allows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this request read more than {limit} {what}, the most one request may read ([limits] {key}); ask for a byte range or a smaller part of the DAG")]
pub struct BudgetExceeded {
    pub what: &'static str,
    pub limit: u64,
    pub key: &'static str,
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

/// Sessions alive in this process, for `/debug/sessions` and the gauge.
/// Sharded by id: every request registers one, so a single lock would be
/// contended by every worker thread.
struct LiveSessions {
    shards: [Mutex<HashMap<u64, Weak<SessionInner>>>; 16],
}

impl LiveSessions {
    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<SessionInner>>> {
        self.shards[(id % 16) as usize].lock().expect("poisoned")
    }
}

fn live() -> &'static LiveSessions {
    static LIVE: OnceLock<LiveSessions> = OnceLock::new();
    LIVE.get_or_init(|| LiveSessions {
        shards: std::array::from_fn(|_| Mutex::default()),
    })
}

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
        });
        live().shard(id).insert(id, Arc::downgrade(&inner));
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
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .add(provider, seeded)
    }

    /// Records what a provider did. A bad block also bans it process-wide.
    pub fn record(&self, provider: &ProviderId, outcome: Outcome) {
        if outcome == Outcome::BadBlock {
            self.0.book.penalise(provider);
        }
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .record(provider, outcome);
    }

    /// Providers cheapest first, dropped and banned ones left out.
    pub fn ranked(&self) -> Vec<ProviderId> {
        let ranking = self.0.ranking.lock().expect("poisoned");
        ranking
            .ranked()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !self.0.book.is_banned(id))
            .collect()
    }

    /// Expected cost (ms) of asking `provider` now; `None` if unknown here.
    pub fn cost_of(&self, provider: &ProviderId) -> Option<f64> {
        self.0.ranking.lock().expect("poisoned").cost_of(provider)
    }

    /// True if nothing has been measured about `provider` yet in this session.
    pub fn is_unmeasured(&self, provider: &ProviderId) -> bool {
        let ranking = self.0.ranking.lock().expect("poisoned");
        ranking.get(provider).is_some_and(|s| s.is_unmeasured())
    }

    /// See [`SessionPeerRanking::claim_probe`].
    pub fn claim_probe(&self, provider: &ProviderId) -> bool {
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .claim_probe(provider)
    }

    pub fn hedge_delay(&self, provider: &ProviderId) -> Duration {
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .hedge_delay(provider)
    }

    /// See [`SessionPeerRanking::completion_behind`].
    pub fn completion_behind(&self, provider: &ProviderId, ahead: u32) -> Option<Duration> {
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .completion_behind(provider, ahead)
    }

    pub fn stats_of(&self, provider: &ProviderId) -> Option<ProviderStats> {
        self.0
            .ranking
            .lock()
            .expect("poisoned")
            .get(provider)
            .cloned()
    }

    /// A copy of the ranking (for views and for forks).
    pub fn ranking(&self) -> SessionPeerRanking {
        self.0.ranking.lock().expect("poisoned").clone()
    }

    /// True if the session may look providers up in content routing now:
    /// once at the start, then at most every [`LOOKUP_INTERVAL`] (long
    /// transfers look again; a stuck session does not hammer the routers).
    pub fn begin_lookup(&self) -> bool {
        let mut last = self.0.last_lookup.lock().expect("poisoned");
        match *last {
            Some(at) if at.elapsed() < LOOKUP_INTERVAL => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// True if a periodic lookup is due (without claiming it).
    pub fn lookup_due(&self) -> bool {
        let last = self.0.last_lookup.lock().expect("poisoned");
        last.is_none_or(|at| at.elapsed() >= LOOKUP_INTERVAL)
    }

    /// Records what one content routing source answered.
    pub fn note_lookup(&self, record: LookupRecord) {
        self.0.searches.lock().expect("poisoned").push(record);
    }

    /// The content routing lookups so far, oldest first.
    pub fn lookups(&self) -> Vec<LookupRecord> {
        self.0.searches.lock().expect("poisoned").records()
    }

    /// Fires when the session ends.
    pub fn ended(&self) -> CancellationToken {
        self.0.ended.clone()
    }

    /// Sets what the session may read; the first budget set is kept.
    pub fn set_budget(&self, budget: Budget) {
        let _ = self.0.budget.set(budget);
    }

    /// Counts a block read about to start; fails once the session has read
    /// all its budget allows. Blocks count when they start, not when they
    /// arrive, so read-ahead cannot run past the cap.
    pub fn check_budget(&self) -> Result<(), BudgetExceeded> {
        let Some(budget) = self.0.budget.get() else {
            return Ok(());
        };
        let mut activity = self.0.activity.lock().expect("poisoned");
        if activity.blocks_started >= budget.max_blocks {
            return Err(BudgetExceeded {
                what: "blocks",
                limit: budget.max_blocks,
                key: "max_blocks_per_request",
            });
        }
        if activity.bytes_read >= budget.max_bytes {
            return Err(BudgetExceeded {
                what: "bytes",
                limit: budget.max_bytes,
                key: "max_bytes_per_request",
            });
        }
        activity.blocks_started += 1;
        Ok(())
    }

    pub fn note_block(&self, source: BlockSource, bytes: usize, took: Duration) {
        let mut activity = self.0.activity.lock().expect("poisoned");
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
        self.0.activity.lock().expect("poisoned").resolve += took;
    }

    pub fn activity(&self) -> Activity {
        self.0.activity.lock().expect("poisoned").clone()
    }

    /// Providers that delivered at least one block.
    pub fn providers_used(&self) -> usize {
        let ranking = self.0.ranking.lock().expect("poisoned");
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
        if let Ok(ranking) = self.ranking.lock() {
            // Most requests are served locally and learn nothing about providers.
            if !ranking.is_empty() {
                self.book.absorb(&ranking);
            }
        }
        live().shard(self.id).remove(&self.id);
    }
}

/// Number of sessions alive in this process.
pub fn live_count() -> usize {
    live()
        .shards
        .iter()
        .map(|s| s.lock().expect("poisoned").len())
        .sum()
}

/// A snapshot of a session for views (`/debug/sessions`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub id: u64,
    pub age_ms: u64,
    pub activity: Activity,
    /// Ranked providers first (cheapest first), then dropped ones.
    pub providers: Vec<ProviderView>,
    /// Content routing lookups, by source.
    pub lookups: Vec<LookupRecord>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderView {
    pub id: String,
    pub cost: f64,
    pub dropped: bool,
    pub stats: ProviderStats,
}

impl Session {
    pub fn view(&self) -> SessionView {
        let ranking = self.ranking();
        let ranked = ranking.ranked();
        let mut providers: Vec<ProviderView> = ranked
            .iter()
            .filter_map(|(id, cost)| {
                Some(ProviderView {
                    id: id.to_string(),
                    cost: *cost,
                    dropped: false,
                    stats: ranking.get(id)?.clone(),
                })
            })
            .collect();
        providers.extend(
            ranking
                .iter()
                .filter(|(_, s)| s.is_dropped())
                .map(|(id, s)| ProviderView {
                    id: id.to_string(),
                    cost: f64::INFINITY,
                    dropped: true,
                    stats: s.clone(),
                }),
        );
        SessionView {
            id: self.id(),
            age_ms: self.age().as_millis() as u64,
            activity: self.activity(),
            providers,
            lookups: self.lookups(),
        }
    }
}

/// The sessions alive in this process.
pub fn live_sessions() -> Vec<Session> {
    live()
        .shards
        .iter()
        .flat_map(|shard| {
            let shard = shard.lock().expect("poisoned");
            shard
                .values()
                .filter_map(|w| w.upgrade().map(Session))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The session of the running task, if any.
pub fn current() -> Option<Session> {
    CURRENT
        .try_with(|slot| match slot {
            Slot::None => None,
            Slot::Owner(session) => Some(session.clone()),
            Slot::Observer(weak) => weak.upgrade().map(Session),
        })
        .ok()
        .flatten()
}

/// Runs `fut` in the current session, or in a new one if there is none.
pub async fn begin<F: Future>(fut: F) -> F::Output {
    match current() {
        Some(_) => fut.await,
        None => CURRENT.scope(Slot::Owner(Session::new()), fut).await,
    }
}

/// Runs `fut` in `session`.
pub async fn within<F: Future>(session: Session, fut: F) -> F::Output {
    CURRENT.scope(Slot::Owner(session), fut).await
}

/// Runs `fut` in a child session that starts with a copy of the current
/// session's rankings; what the child learns stays in the child.
pub async fn fork<F: Future>(fut: F) -> F::Output {
    let ranking = current().map(|s| s.ranking()).unwrap_or_default();
    CURRENT
        .scope(Slot::Owner(Session::with_ranking(ranking)), fut)
        .await
}

/// Runs `fut` with no session (background work that must not inherit a
/// request's providers).
pub async fn leave<F: Future>(fut: F) -> F::Output {
    CURRENT.scope(Slot::None, fut).await
}

/// Spawns `fut` carrying the current session. The task does not keep the
/// session alive and is aborted when the session ends (its result is then
/// `None`).
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (slot, ended) = match current() {
        Some(session) => (
            Slot::Observer(Arc::downgrade(&session.0)),
            Some(session.ended()),
        ),
        None => (Slot::None, None),
    };
    tokio::spawn(async move {
        let work = CURRENT.scope(slot, fut);
        match ended {
            Some(ended) => tokio::select! {
                _ = ended.cancelled() => None,
                out = work => Some(out),
            },
            None => Some(work.await),
        }
    })
}

pin_project_lite::pin_project! {
    /// A response body that keeps its session alive while it streams and
    /// runs every poll inside it, so blocks fetched while writing the body
    /// belong to the request's session.
    pub struct SessionBody<B> {
        session: Session,
        #[pin]
        inner: B,
    }
}

impl<B> SessionBody<B> {
    pub fn new(session: Session, inner: B) -> Self {
        SessionBody { session, inner }
    }
}

impl<B: http_body::Body> http_body::Body for SessionBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let slot = Slot::Owner(this.session.clone());
        let inner = this.inner;
        CURRENT.sync_scope(slot, || inner.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn provider() -> ProviderId {
        ProviderId::Peer(PeerId::random())
    }

    #[tokio::test]
    async fn begin_is_reentrant() {
        assert!(current().is_none());
        begin(async {
            let outer = current().unwrap().id();
            begin(async move {
                assert_eq!(
                    current().unwrap().id(),
                    outer,
                    "nested begin joins the session"
                );
            })
            .await;
        })
        .await;
        assert!(current().is_none());
    }

    #[tokio::test]
    async fn fork_inherits_rankings_but_not_later_changes() {
        begin(async {
            let parent = current().unwrap();
            let parent_id = parent.id();
            let known = provider();
            parent.add_provider(known.clone(), ProviderSource::Hint);
            let learned_in_child = provider();
            let child_learned = learned_in_child.clone();
            fork(async move {
                let child = current().unwrap();
                assert_ne!(child.id(), parent_id);
                assert!(
                    child.ranked().contains(&known),
                    "child starts with the parent's providers"
                );
                child.add_provider(child_learned, ProviderSource::Routing);
            })
            .await;
            assert!(
                !parent.ranked().contains(&learned_in_child),
                "the child's providers stay in the child"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn leave_runs_without_session() {
        begin(async {
            assert!(current().is_some());
            leave(async { assert!(current().is_none()) }).await;
            assert!(current().is_some());
        })
        .await;
    }

    #[tokio::test]
    #[allow(clippy::async_yields_async)] // the spawned task's handle is the point
    async fn spawn_carries_the_session_without_keeping_it_alive() {
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let session = Session::new();
        let id = session.id();
        let task = within(session.clone(), async move {
            spawn(async move {
                seen_tx.send(current().map(|s| s.id())).unwrap();
                let _ = release_rx.await;
                "finished"
            })
        })
        .await;
        assert_eq!(seen_rx.await.unwrap(), Some(id));
        assert!(live_sessions().iter().any(|s| s.id() == id));
        drop(session);
        assert!(
            !live_sessions().iter().any(|s| s.id() == id),
            "the task does not keep it alive"
        );
        assert_eq!(
            task.await.unwrap(),
            None,
            "the task was aborted when the session ended"
        );
        drop(release_tx);
    }

    #[tokio::test]
    async fn ending_a_session_fires_its_token() {
        let session = Session::new();
        let ended = session.ended();
        assert!(!ended.is_cancelled());
        drop(session);
        assert!(ended.is_cancelled());
    }
}
