//! The want logic: getting one block from the network, for a session,
//! from Bitswap peers and trustless HTTP gateways alike (asked the same
//! way, ranked on the same scale). In three parts:
//!
//! - `table`: the shared want table, one network want per CID however
//!   many sessions want it. Answers fan out to every session waiting on the
//!   CID; when the last of them stops waiting (done, or its session ended),
//!   CANCEL goes to every peer that was asked and HTTP requests in flight
//!   are aborted.
//! - `core`: the planning core of one fetch — which provider gets
//!   WANT_BLOCK, which get WANT_HAVE, when a slow want is hedged or sent
//!   again, when the search widens (content routing, connected peers). It
//!   does no I/O and never reads the clock; its rules are listed, and each
//!   tested, there.
//! - here: [`NetworkFetcher`], whose loop waits for answers and the
//!   planner's wake-ups and carries out what the planner decides through
//!   the transports (`bitswap::peer`, `http`). Only the transports see
//!   bytes on the wire.
//!
//! Every want belongs to a session (the current one, see
//! [`crate::session`]); its ranking picks the providers and learns from
//! every answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

mod core;
mod table;

use self::core::{Action, Planner, Search};
use table::{dispatch, WantTable};

use self::core::{broadcast_candidates, Neighbour};
use super::bitswap::budget::{BitswapConfig, InboundBudget};
use super::bitswap::peer::{accept_inbound, Outbound};
use super::http::HttpProviders;
use super::{BlockFetcher, FetchError, LinkProgress, SearchReport, SessionMode, WantKind};
use crate::dial::AddressPolicy;
use crate::metrics::Metrics;
use crate::p2p::P2pNode;
use crate::routing::{ContentRouting, HintPolicy, LookupEvent, ProviderHint, RouterSource};
use crate::session::{self, describe_lookups, Outcome, ProviderId, ProviderSource, Session};

/// Retrieval settings (`[retrieval]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Seconds before a block that no provider delivered fails (504).
    pub block_timeout_secs: u64,
    /// Providers asked for one block at the same time (the first, plus hedges).
    pub max_block_wants_per_cid: usize,
    /// Next-ranked providers sent WANT_HAVE alongside each WANT_BLOCK.
    pub want_have_fanout: usize,
    /// Most connected peers asked when the session widens its search
    /// (only peers that delivered or said HAVE before, `[p2p] peers` and
    /// local-network peers are asked).
    pub max_broadcast_peers: usize,
    /// Under `[hints] policy = "first"`: milliseconds a session waits for
    /// its hinted providers before it also asks content routing.
    pub routing_delay_ms: u64,
    /// `on`: ranked per session; `off`: every block asked of every provider.
    pub session_mode: SessionMode,
    /// Distinct blocks wanted from the network at once, process-wide; a
    /// fetch past it waits for a slot (within `block_timeout_secs`).
    pub max_pending_wants: usize,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            block_timeout_secs: 30,
            max_block_wants_per_cid: 3,
            want_have_fanout: 2,
            max_broadcast_peers: 16,
            routing_delay_ms: 300,
            session_mode: SessionMode::On,
            max_pending_wants: 16_384,
        }
    }
}

struct Inner {
    node: P2pNode,
    outbound: Arc<Outbound>,
    http: HttpProviders,
    routing: Option<Arc<ContentRouting>>,
    table: Arc<WantTable>,
    /// When bytes last arrived from each provider (see `WantState::due_at`).
    progress: LinkProgress,
    config: RetrievalConfig,
    /// When routing is asked beside a session's hinted providers.
    hint_policy: HintPolicy,
    /// Woken when a fetch finds a provider stalled: every other fetch
    /// looks at its wants there at once (see `Planner::take_stalled`).
    stalls: tokio::sync::Notify,
}

/// Gets blocks from Bitswap peers and trustless HTTP gateways. Cheap to clone.
#[derive(Clone)]
pub struct NetworkFetcher {
    inner: Arc<Inner>,
}

impl NetworkFetcher {
    pub fn start(
        node: P2pNode,
        routing: Option<Arc<ContentRouting>>,
        config: RetrievalConfig,
        hint_policy: HintPolicy,
        policy: AddressPolicy,
        bitswap: &BitswapConfig,
    ) -> NetworkFetcher {
        let (tx, rx) = mpsc::unbounded_channel();
        let progress = LinkProgress::default();
        accept_inbound(
            &node,
            tx.clone(),
            progress.clone(),
            InboundBudget::new(bitswap),
        );
        let http = HttpProviders::new(
            Duration::from_secs(config.block_timeout_secs.max(1)),
            policy,
        );
        let outbound = Outbound::new(node.clone(), tx);
        let table = WantTable::new(outbound.clone(), config.max_pending_wants.max(1));
        tokio::spawn(dispatch(Arc::downgrade(&table), rx));
        let inner = Arc::new(Inner {
            outbound,
            node,
            http,
            routing,
            table,
            progress,
            config,
            hint_policy,
            stalls: tokio::sync::Notify::new(),
        });
        NetworkFetcher { inner }
    }

    /// Sends a want unless the provider was already asked at least as much.
    fn want(&self, provider: &ProviderId, cid: &Cid, kind: WantKind) {
        let mut wants = self.inner.table.entries();
        let Some(entry) = wants.get_mut(cid) else {
            return;
        };
        if !entry.ask(provider, kind) {
            return;
        }
        match provider {
            ProviderId::Peer(peer) => {
                drop(wants);
                self.inner.outbound.want(*peer, cid, kind);
            }
            ProviderId::Http(base) => {
                let (http, events) = (&self.inner.http, entry.events.clone());
                let request = http.want(base, cid, kind, &self.inner.progress);
                let task = tokio::spawn(async move {
                    let _ = events.send(request.await);
                });
                entry.http_requests.push(task.abort_handle());
            }
        }
    }

    /// Asks `provider` for the block again.
    fn resend(&self, provider: &ProviderId, cid: &Cid) {
        self.inner.table.forget_asked(cid, provider);
        tracing::debug!(%provider, %cid, "re-sending an unanswered want");
        self.want(provider, cid, WantKind::Block);
    }

    /// Looks `cid` up in every content routing source and adds providers
    /// to the session as they arrive: returns when the first new one is
    /// added (their number) or when every source is done (0); the rest of
    /// the lookup goes on in the background, inside the session.
    async fn lookup(&self, session: &Session, cid: &Cid) -> usize {
        let Some(routing) = &self.inner.routing else {
            return 0;
        };
        if !session.begin_lookup() {
            return 0;
        }
        let mut events = routing.find_providers(*cid);
        let mut added = 0;
        while let Some(event) = events.recv().await {
            added += self.on_lookup_event(session, event);
            if added > 0 {
                break;
            }
        }
        tracing::debug!(%cid, added, session = session.id(), "routing lookup");
        if added > 0 {
            let (this, session) = (self.clone(), session.clone());
            session::spawn(async move {
                while let Some(event) = events.recv().await {
                    this.on_lookup_event(&session, event);
                }
            });
        }
        added
    }

    /// Returns 1 if the event added a provider to the session.
    fn on_lookup_event(&self, session: &Session, event: LookupEvent) -> usize {
        match event {
            LookupEvent::Provider { source, hint } => {
                let source = match source {
                    RouterSource::Dht => ProviderSource::Dht,
                    RouterSource::Delegated => ProviderSource::Routing,
                };
                usize::from(self.add_hint(session, &hint, source))
            }
            LookupEvent::Progress(record) => {
                session.note_lookup(record);
                0
            }
            LookupEvent::Done(record) => {
                tracing::debug!(
                    source = record.source,
                    outcome = record.outcome.label(),
                    providers = record.providers,
                    "lookup done"
                );
                session.note_lookup(record);
                0
            }
        }
    }

    /// Connected peers a widening search may ask, best first.
    fn neighbours(&self) -> Vec<PeerId> {
        let book = session::PeerBook::global();
        let node = &self.inner.node;
        broadcast_candidates(
            node.connected_peers_at()
                .into_iter()
                .map(|(peer, addr)| {
                    let (blocks, haves) = book.track_record(&ProviderId::Peer(peer));
                    Neighbour {
                        peer,
                        blocks,
                        haves,
                        configured: node.is_configured(&peer),
                        local: crate::dial::is_local_network(&addr),
                    }
                })
                .collect(),
        )
    }

    /// What the search for `cid` did so far, for the error a client sees.
    fn search_report(&self, session: &Session, planner: &Planner) -> String {
        let lookups = session.lookups();
        let routing = match &self.inner.routing {
            None => "no source configured ([dht] mode = \"off\", no [routing] endpoints)".into(),
            Some(routing) if lookups.is_empty() => {
                format!("not asked yet ({})", routing.sources().join(", "))
            }
            Some(_) => describe_lookups(&lookups),
        };
        let (broadcast, found): (Vec<ProviderId>, Vec<ProviderId>) =
            session.ranked().into_iter().partition(|p| {
                session
                    .stats_of(p)
                    .is_some_and(|s| s.source == ProviderSource::Broadcast)
            });
        let connected = found
            .iter()
            .filter(|p| match p {
                ProviderId::Peer(peer) => self.inner.node.is_connected(peer),
                ProviderId::Http(_) => true,
            })
            .count();
        SearchReport {
            routing,
            found: found.len(),
            connected,
            asked: planner.asked(),
            broadcast: broadcast.len(),
        }
        .to_string()
    }

    fn add_hint(&self, session: &Session, hint: &ProviderHint, source: ProviderSource) -> bool {
        match hint {
            ProviderHint::Peer { peer, addrs } => {
                let added = session.add_provider(ProviderId::Peer(*peer), source);
                if added || !self.inner.node.is_connected(peer) {
                    self.inner.node.dial(*peer, addrs.clone());
                }
                added
            }
            ProviderHint::Http { url } => {
                let provider = ProviderId::Http(url.clone());
                let added = session.add_provider(provider.clone(), source);
                if added {
                    // A gateway that does not answer the empty-block probe
                    // leaves the session before any want waits on it.
                    let (http, url, probing) =
                        (self.inner.http.clone(), url.clone(), session.clone());
                    tokio::spawn(async move {
                        if !http.probe(&url).await {
                            tracing::debug!(%url, "HTTP provider failed the bafkqaaa probe");
                            probing.record(&provider, Outcome::Unreachable);
                        }
                    });
                }
                added
            }
        }
    }

    async fn fetch_in(
        &self,
        session: Session,
        cid: Cid,
    ) -> Result<(Bytes, ProviderId), FetchError> {
        let started = Instant::now();
        let mut planner = Planner::new(self.inner.config.clone(), started);
        let deadline = started + Duration::from_secs(self.inner.config.block_timeout_secs);
        // Every wait inside (a want slot, routing lookups, connections)
        // ends at the deadline: `block_timeout_secs` is what the client
        // waits, not a minimum.
        let fetched = tokio::time::timeout_at(
            deadline,
            self.fetch_with(&session, cid, &mut planner, started, deadline),
        )
        .await;
        let result = fetched.unwrap_or_else(|_| {
            Err(FetchError::Timeout {
                cid,
                after: started.elapsed(),
                search: self.search_report(&session, &planner),
            })
        });
        // Wants that lost the race are over too: they no longer load their provider.
        let winner = result.as_ref().ok().map(|(_, provider)| provider);
        for provider in planner
            .asked_for_block()
            .iter()
            .filter(|p| Some(*p) != winner)
        {
            session.record(provider, Outcome::WantCancelled);
        }
        result
    }

    /// The loop of one fetch: it sends what the planner decides, waits for
    /// an answer or the planner's next wake-up, and looks further (routing,
    /// connected peers) when the planner says so.
    async fn fetch_with(
        &self,
        session: &Session,
        cid: Cid,
        planner: &mut Planner,
        started: Instant,
        deadline: Instant,
    ) -> Result<(Bytes, ProviderId), FetchError> {
        let session = session.clone();
        let (mut events, _guard) = self.inner.table.register(cid, deadline).await?;
        if self.inner.routing.is_some() {
            planner.use_routing(!session.ranked().is_empty(), self.inner.hint_policy);
            // Long transfers look again now and then, in the background, so
            // new providers can join without stalling this block. (The
            // lookup itself is rate-limited per session, see `lookup`.)
            if session.age() > session::LOOKUP_INTERVAL && session.lookup_due() {
                let (this, bg_session) = (self.clone(), session.clone());
                session::spawn(async move { this.lookup(&bg_session, &cid).await });
            }
        }
        // A lookup begun while providers are still asked runs beside them:
        // their answers are not held up by a slow router.
        let mut beside: Option<tokio::task::JoinHandle<Option<usize>>> = None;
        'plan: loop {
            self.execute(&cid, planner.plan(&session, Instant::now()));
            if planner.out_of_targets() {
                if let Some(lookup) = beside.take() {
                    if lookup.await.ok().flatten().unwrap_or(0) > 0 {
                        continue 'plan;
                    }
                }
                while let Some(search) = planner.widen() {
                    let found = match search {
                        Search::Lookup => self.lookup(&session, &cid).await,
                        Search::Broadcast => {
                            let wants = planner.broadcast(&session, self.neighbours());
                            let asked = wants.len();
                            Metrics::global().broadcast_wants.inc_by(asked as u64);
                            self.execute(&cid, wants);
                            asked
                        }
                    };
                    if found > 0 {
                        continue 'plan;
                    }
                }
                if planner.nothing_pending() {
                    let search = self.search_report(&session, planner);
                    return Err(FetchError::NoProviders { cid, search });
                }
            }
            let wake_at = planner.wake_at(&session, &self.inner.progress, deadline);
            let actions = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => planner.on_event(&session, event, Instant::now()),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue 'plan,
                    Err(broadcast::error::RecvError::Closed) => {
                        let search = self.search_report(&session, planner);
                        return Err(FetchError::NoProviders { cid, search });
                    }
                },
                found = async { beside.as_mut().expect("guarded by the branch condition").await }, if beside.is_some() => {
                    beside = None;
                    if found.ok().flatten().unwrap_or(0) > 0 {
                        continue 'plan;
                    }
                    Vec::new()
                },
                _ = self.inner.stalls.notified() => {
                    planner.on_tick(&session, &self.inner.progress, Instant::now())
                }
                _ = tokio::time::sleep_until(wake_at) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let search = self.search_report(&session, planner);
                        return Err(FetchError::Timeout { cid, after: started.elapsed(), search });
                    }
                    if planner.routing_due(now) && session.lookup_due() {
                        let (this, looking) = (self.clone(), session.clone());
                        beside = Some(session::spawn(async move { this.lookup(&looking, &cid).await }));
                    }
                    planner.on_tick(&session, &self.inner.progress, Instant::now())
                }
            };
            if planner.take_stalled() {
                Metrics::global().stalled_providers.inc();
                self.inner.stalls.notify_waiters();
            }
            if let Some(block) = self.execute(&cid, actions) {
                return Ok(block);
            }
        }
    }

    /// Carries out what the planner decided; returns the block if it came.
    fn execute(&self, cid: &Cid, actions: Vec<Action>) -> Option<(Bytes, ProviderId)> {
        for action in actions {
            match action {
                Action::Want { provider, kind } => self.want(&provider, cid, kind),
                Action::Resend(provider) => self.resend(&provider, cid),
                Action::Deliver { data, provider } => return Some((data, provider)),
            }
        }
        None
    }
}

impl BlockFetcher for NetworkFetcher {
    fn fetch<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, Result<(Bytes, ProviderId), FetchError>> {
        Box::pin(async move {
            // Outside a request (e.g. a background task) a fetch still runs
            // in a session of its own.
            let session = session::current().unwrap_or_default();
            let result = self.fetch_in(session, *cid).await;
            match &result {
                Ok((data, provider)) => {
                    tracing::trace!(%cid, %provider, bytes = data.len(), "block fetched")
                }
                Err(e) => tracing::debug!(%cid, error = %e, "block fetch failed"),
            }
            result
        })
    }

    fn seed_hints(&self, hints: &[ProviderHint]) {
        let Some(session) = session::current() else {
            return;
        };
        for hint in hints {
            self.add_hint(&session, hint, ProviderSource::Hint);
        }
    }
}
