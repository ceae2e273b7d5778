//! The want logic: which provider gets WANT_BLOCK, which get WANT_HAVE,
//! when a slow want is hedged to the next provider, when the search widens
//! (connected peers, content routing), and one network want per CID however
//! many sessions want it. Bitswap peers and trustless HTTP gateways are
//! asked the same way and ranked on the same scale; the transports
//! (`bitswap::peer`, `http`) carry the wants, this module never sees bytes
//! on the wire.
//!
//! Every want belongs to a session (the current one, see
//! [`crate::session`]); its ranking picks the providers and learns from
//! every answer. The shared want table fans answers out to every session
//! waiting on the same CID; when the last of them stops waiting (done, or
//! its session ended), CANCEL goes to every peer that was asked and HTTP
//! requests in flight are aborted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::bitswap::budget::{BitswapConfig, InboundBudget};
use super::bitswap::peer::{accept_inbound, Inbound, Outbound};
use super::bitswap::protocol::{want_entry, WantType};
use super::http::{HttpAnswer, HttpProviders};
use super::{BlockFetcher, FetchError, LinkProgress, SessionMode};
use crate::dial::AddressPolicy;
use crate::metrics::{BlockOrigin, Metrics, SourceLabel};
use crate::p2p::P2pNode;
use crate::routing::{ProviderHint, Routing};
use crate::session::{self, Outcome, PeerBook, ProviderId, ProviderSource, Session};
use crate::verify::verify_block;

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
    /// Most connected peers asked when the session widens its search.
    pub max_broadcast_peers: usize,
    /// Milliseconds a session waits for its hinted providers before it
    /// also asks content routing.
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

#[derive(Debug, Clone)]
enum WantEvent {
    Block { provider: ProviderId, data: Bytes },
    Presence { provider: ProviderId, have: bool },
    Unreachable(ProviderId),
    BackOff(ProviderId, Duration),
    BadBlock(ProviderId),
}

struct WantEntry {
    events: broadcast::Sender<WantEvent>,
    /// Live waiters (sessions) on this CID.
    waiters: usize,
    /// What each provider has been asked, so none is asked twice.
    asked: HashMap<ProviderId, WantType>,
    /// HTTP requests in flight for this CID.
    http_requests: Vec<AbortHandle>,
    /// This want's share of `max_pending_wants`, released with the entry.
    _slot: OwnedSemaphorePermit,
}

struct Inner {
    node: P2pNode,
    outbound: Arc<Outbound>,
    http: HttpProviders,
    routing: Option<Arc<Routing>>,
    wants: Mutex<HashMap<Cid, WantEntry>>,
    /// When bytes last arrived from each provider (see `WantState::due_at`).
    progress: LinkProgress,
    want_slots: Arc<Semaphore>,
    /// CIDs wanted until recently: a copy of one arriving late (a hedged or
    /// re-sent want answered twice) is expected, not a sign of a bad peer.
    recently_wanted: Mutex<RecentCids>,
    config: RetrievalConfig,
}

/// A bounded set of the most recently finished wants.
#[derive(Default)]
struct RecentCids {
    order: VecDeque<Cid>,
    set: HashSet<Cid>,
}

impl RecentCids {
    const CAPACITY: usize = 16_384;

    fn insert(&mut self, cid: Cid) {
        if self.set.insert(cid) {
            self.order.push_back(cid);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, cid: &Cid) -> bool {
        self.set.contains(cid)
    }
}

/// Gets blocks from Bitswap peers and trustless HTTP gateways. Cheap to clone.
#[derive(Clone)]
pub struct NetworkFetcher {
    inner: Arc<Inner>,
}

/// Removes a waiter when dropped; the last one cancels the want everywhere.
struct WantGuard {
    inner: Arc<Inner>,
    cid: Cid,
}

impl Drop for WantGuard {
    fn drop(&mut self) {
        let mut wants = self.inner.wants.lock().expect("poisoned");
        let Some(entry) = wants.get_mut(&self.cid) else {
            return;
        };
        entry.waiters -= 1;
        if entry.waiters > 0 {
            return;
        }
        let entry = wants.remove(&self.cid).expect("present");
        self.inner
            .recently_wanted
            .lock()
            .expect("poisoned")
            .insert(self.cid);
        for request in entry.http_requests {
            request.abort();
        }
        for (provider, want_type) in entry.asked {
            if let ProviderId::Peer(peer) = provider {
                self.inner
                    .outbound
                    .send(peer, want_entry(&self.cid, want_type, true));
            }
        }
    }
}

/// Most unmeasured providers sent WANT_HAVE for one block, to learn their latency.
const MAX_PROBING_HAVES: usize = 8;

/// Sends to a provider that fail this often in one fetch drop it from the fetch.
const MAX_UNREACHABLE: u32 = 3;

impl NetworkFetcher {
    pub fn start(
        node: P2pNode,
        routing: Option<Arc<Routing>>,
        config: RetrievalConfig,
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
        let inner = Arc::new(Inner {
            outbound: Outbound::new(node.clone(), tx),
            node,
            http,
            routing,
            wants: Mutex::default(),
            progress,
            want_slots: Arc::new(Semaphore::new(config.max_pending_wants.max(1))),
            recently_wanted: Mutex::default(),
            config,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), rx));
        NetworkFetcher { inner }
    }

    /// Joins the want for `cid`, or starts it once a slot is free.
    async fn register(
        &self,
        cid: Cid,
        deadline: Instant,
    ) -> Result<(broadcast::Receiver<WantEvent>, WantGuard), FetchError> {
        let joined = self.join(cid, None);
        if let Some(joined) = joined {
            return Ok(joined);
        }
        let started = Instant::now();
        let slot = tokio::time::timeout_at(deadline, self.inner.want_slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                tracing::warn!(%cid, "no want slot free: [retrieval] max_pending_wants reached");
                FetchError::Timeout {
                    cid,
                    after: started.elapsed(),
                }
            })?;
        Ok(self.join(cid, Some(slot)).expect("a slot starts a want"))
    }

    /// Joins the want for `cid` if there is one; with a slot, starts it.
    fn join(
        &self,
        cid: Cid,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Option<(broadcast::Receiver<WantEvent>, WantGuard)> {
        let mut wants = self.inner.wants.lock().expect("poisoned");
        let entry = match wants.entry(cid) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(WantEntry {
                events: broadcast::channel(256).0,
                waiters: 0,
                asked: HashMap::new(),
                http_requests: Vec::new(),
                _slot: slot?,
            }),
        };
        entry.waiters += 1;
        let receiver = entry.events.subscribe();
        Some((
            receiver,
            WantGuard {
                inner: self.inner.clone(),
                cid,
            },
        ))
    }

    /// Sends a want unless the provider was already asked at least as much.
    fn want(&self, provider: &ProviderId, cid: &Cid, want_type: WantType) {
        let mut wants = self.inner.wants.lock().expect("poisoned");
        let Some(entry) = wants.get_mut(cid) else {
            return;
        };
        match entry.asked.get(provider) {
            Some(WantType::Block) => return,
            Some(WantType::Have) if want_type == WantType::Have => return,
            _ => {}
        }
        entry.asked.insert(provider.clone(), want_type);
        match provider {
            ProviderId::Peer(peer) => {
                drop(wants);
                self.inner
                    .outbound
                    .send(*peer, want_entry(cid, want_type, false));
            }
            ProviderId::Http(base) => {
                let (http, base, cid, events, progress) = (
                    self.inner.http.clone(),
                    base.clone(),
                    *cid,
                    entry.events.clone(),
                    self.inner.progress.clone(),
                );
                let provider = provider.clone();
                let request = http.request(&base, &cid, want_type, &progress);
                let task = tokio::spawn(async move {
                    let event = match request.await {
                        HttpAnswer::Block(data) if verify_block(&cid, &data).is_ok() => {
                            WantEvent::Block { provider, data }
                        }
                        HttpAnswer::Block(_) => {
                            tracing::warn!(%base, %cid, "HTTP provider sent bytes that do not match the CID");
                            PeerBook::global().penalise(&provider);
                            count_bad_block(BlockOrigin::Http);
                            WantEvent::BadBlock(provider)
                        }
                        HttpAnswer::Have => WantEvent::Presence {
                            provider,
                            have: true,
                        },
                        HttpAnswer::DontHave => WantEvent::Presence {
                            provider,
                            have: false,
                        },
                        HttpAnswer::BackOff(after) => WantEvent::BackOff(provider, after),
                        HttpAnswer::Failed(reason) => {
                            tracing::debug!(%base, %cid, %reason, "HTTP provider failed");
                            WantEvent::Unreachable(provider)
                        }
                    };
                    let _ = events.send(event);
                });
                entry.http_requests.push(task.abort_handle());
            }
        }
    }

    /// Asks `provider` for the block again.
    fn resend(&self, provider: &ProviderId, cid: &Cid) {
        if let Some(entry) = self.inner.wants.lock().expect("poisoned").get_mut(cid) {
            entry.asked.remove(provider);
        }
        tracing::debug!(%provider, %cid, "re-sending an unanswered want");
        self.want(provider, cid, WantType::Block);
    }

    /// Adds connected peers the session does not know yet, as broadcast
    /// candidates, and asks them WANT_HAVE. Returns how many were asked.
    fn broadcast(&self, session: &Session, cid: &Cid, state: &mut WantState) -> usize {
        let mut asked = 0;
        for peer in self.inner.node.connected_peers() {
            if asked >= self.inner.config.max_broadcast_peers {
                break;
            }
            let provider = ProviderId::Peer(peer);
            if session.stats_of(&provider).is_none()
                && session.add_provider(provider.clone(), ProviderSource::Broadcast)
            {
                self.want(&provider, cid, WantType::Have);
                state.have_asked.insert(provider);
                asked += 1;
            }
        }
        asked
    }

    /// Looks `cid` up in content routing and adds what comes back to the
    /// session. Returns how many providers were new.
    async fn lookup(&self, session: &Session, cid: &Cid) -> usize {
        let Some(routing) = &self.inner.routing else {
            return 0;
        };
        if !session.begin_lookup() {
            return 0;
        }
        let mut added = 0;
        for hint in routing.find_providers(cid).await.iter() {
            added += usize::from(self.add_hint(session, hint, ProviderSource::Routing));
        }
        tracing::debug!(%cid, added, session = session.id(), "routing lookup");
        added
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
        let mut state = WantState::default();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.inner.config.block_timeout_secs);
        // Every wait inside (a want slot, routing lookups, connections)
        // ends at the deadline: `block_timeout_secs` is what the client
        // waits, not a minimum.
        let fetched = tokio::time::timeout_at(
            deadline,
            self.fetch_with(&session, cid, &mut state, started, deadline),
        )
        .await;
        let result = fetched.unwrap_or_else(|_| {
            Err(FetchError::Timeout {
                cid,
                after: started.elapsed(),
            })
        });
        // Wants that lost the race are over too: they no longer load their provider.
        let winner = result.as_ref().ok().map(|(_, provider)| provider);
        for provider in state.block_targets.iter().filter(|p| Some(*p) != winner) {
            session.record(provider, Outcome::WantCancelled);
        }
        result
    }

    async fn fetch_with(
        &self,
        session: &Session,
        cid: Cid,
        state: &mut WantState,
        started: Instant,
        deadline: Instant,
    ) -> Result<(Bytes, ProviderId), FetchError> {
        let session = session.clone();
        let config = &self.inner.config;
        let (mut events, _guard) = self.register(cid, deadline).await?;
        let mut widened = false;
        // Routing runs beside the hints when they are slow to answer, and
        // as a last resort when every provider known is out.
        let routing_at = if session.ranked().is_empty() {
            started
        } else {
            started + Duration::from_millis(config.routing_delay_ms)
        };
        // The lookup itself is rate-limited per session (see `lookup`).
        let mut routing_pending = self.inner.routing.is_some();
        // Long transfers look again now and then, in the background, so new
        // providers can join without stalling this block.
        if routing_pending && session.age() > session::LOOKUP_INTERVAL && session.lookup_due() {
            let (this, bg_session) = (self.clone(), session.clone());
            session::spawn(async move { this.lookup(&bg_session, &cid).await });
        }
        loop {
            self.send_wants(&session, &cid, state);
            if state.block_targets.is_empty() && state.retry_at.is_empty() {
                if routing_pending {
                    routing_pending = false;
                    if self.lookup(&session, &cid).await > 0 {
                        continue;
                    }
                }
                if !widened {
                    widened = true;
                    if self.broadcast(&session, &cid, state) > 0 {
                        continue;
                    }
                    if self.inner.routing.is_some() && self.lookup(&session, &cid).await > 0 {
                        continue;
                    }
                }
                if state.nothing_pending() {
                    return Err(FetchError::NoProviders(cid));
                }
            }
            let mut wake_at = state
                .next_hedge(&session, &self.inner.progress)
                .unwrap_or(deadline);
            if let Some(retry) = state.retry_at.values().min() {
                wake_at = wake_at.min(*retry);
            }
            if routing_pending {
                wake_at = wake_at.min(routing_at);
            }
            tokio::select! {
                event = events.recv() => match event {
                    Ok(WantEvent::Block { provider, data }) => {
                        let latency = state.sent_at.get(&provider).map_or(started.elapsed(), |t| t.elapsed());
                        session.record(&provider, Outcome::Block { bytes: data.len(), latency });
                        return Ok((data, provider));
                    }
                    Ok(WantEvent::Presence { provider, have }) => {
                        session.add_provider(provider.clone(), ProviderSource::Broadcast);
                        state.have_asked.remove(&provider);
                        if let Some(sent) = state.sent_at.get(&provider).or(state.have_sent_at.get(&provider)) {
                            session.record(&provider, Outcome::Answered { rtt: sent.elapsed() });
                        }
                        if have {
                            session.record(&provider, Outcome::Have);
                            // Much cheaper than every provider asked for the
                            // block so far: ask it too, now, rather than wait
                            // for the others to time out.
                            // Only while the providers asked are unmeasured:
                            // a measured one is judged by its progress (see
                            // `overdue`), as a hedge would mostly fetch the
                            // block twice.
                            let outclassed = !state.block_targets.is_empty()
                                && !state.block_targets.contains(&provider)
                                && !session.is_unmeasured(&provider)
                                && (state.block_targets.iter().all(|t| session.is_unmeasured(t))
                                    || state.queued_far_behind(&session, &provider));
                            if outclassed {
                                state.hedged.extend(state.block_targets.iter().cloned());
                            }
                            state.said_have.insert(provider);
                        } else {
                            session.record(&provider, Outcome::DontHave);
                            state.exclude(&provider);
                        }
                    }
                    Ok(WantEvent::Unreachable(provider)) => {
                        // A dropped connection is often transient: try the
                        // provider again a couple of times before giving up.
                        session.record(&provider, Outcome::Timeout);
                        let failures = state.unreachable.entry(provider.clone()).or_default();
                        *failures += 1;
                        if *failures < MAX_UNREACHABLE && state.block_targets.contains(&provider) && !self.has_alternative(&session, state) {
                            self.resend(&provider, &cid);
                            state.sent_at.insert(provider, Instant::now());
                        } else {
                            state.exclude(&provider);
                        }
                    }
                    Ok(WantEvent::BackOff(provider, after)) => {
                        session.record(&provider, Outcome::Timeout);
                        state.block_targets.remove(&provider);
                        state.retry_at.insert(provider.clone(), Instant::now() + after);
                        if self.has_alternative(&session, state) {
                            state.exclude(&provider);
                        }
                    }
                    Ok(WantEvent::BadBlock(provider)) => {
                        session.record(&provider, Outcome::BadBlock);
                        state.exclude(&provider);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(FetchError::NoProviders(cid)),
                },
                _ = tokio::time::sleep_until(wake_at) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(FetchError::Timeout { cid, after: started.elapsed() });
                    }
                    if routing_pending && now >= routing_at {
                        routing_pending = false;
                        self.lookup(&session, &cid).await;
                    }
                    let due: Vec<ProviderId> = state.retry_at.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                    for provider in due {
                        state.retry_at.remove(&provider);
                        self.resend(&provider, &cid);
                        state.block_targets.insert(provider.clone());
                        state.sent_at.insert(provider, now);
                    }
                    // The slowest outstanding want gets company: the next
                    // provider is asked too. With nobody else to ask, the want
                    // is sent again, with back-off: a peer may have answered on
                    // a stream that was lost (Go peers open one per message).
                    if let Some(slow) = state.overdue(&session, &self.inner.progress) {
                        session.record(&slow, Outcome::Timeout);
                        if self.has_alternative(&session, state) {
                            state.hedged.insert(slow);
                        } else {
                            // An HTTP request is still in flight (a lost one
                            // fails on its own): asking again would only send
                            // the block twice down the same link.
                            if matches!(slow, ProviderId::Peer(_)) {
                                self.resend(&slow, &cid);
                            }
                            state.sent_at.insert(slow.clone(), Instant::now());
                            *state.resends.entry(slow).or_default() += 1;
                        }
                    }
                }
            }
        }
    }

    /// True if some provider not yet asked for the block could be.
    fn has_alternative(&self, session: &Session, state: &WantState) -> bool {
        session.ranked().iter().any(|p| {
            !state.excluded.contains(p)
                && !state.block_targets.contains(p)
                && !state.retry_at.contains_key(p)
        })
    }

    fn send_wants(&self, session: &Session, cid: &Cid, state: &mut WantState) {
        let config = &self.inner.config;
        let candidates: Vec<ProviderId> = session
            .ranked()
            .into_iter()
            .filter(|p| !state.excluded.contains(p) && !state.retry_at.contains_key(p))
            .collect();
        let live_targets = state
            .block_targets
            .iter()
            .filter(|p| !state.hedged.contains(*p))
            .count();
        let block_slots = match config.session_mode {
            SessionMode::Off => usize::MAX,
            SessionMode::On if live_targets == 0 => 1,
            SessionMode::On => 0,
        }
        .min(
            config
                .max_block_wants_per_cid
                .saturating_sub(state.block_targets.len()),
        );
        // Providers that said HAVE go first: they are known to hold the block.
        let mut order: Vec<&ProviderId> = candidates
            .iter()
            .filter(|p| state.said_have.contains(*p))
            .collect();
        order.extend(candidates.iter().filter(|p| !state.said_have.contains(*p)));
        // A provider that has not answered anything yet is asked WANT_HAVE
        // (below), not handed a block, while a measured one can take it: a
        // block at a provider that turns out to be far away holds up the
        // in-order body until the hedge.
        let measured_available = order
            .iter()
            .any(|p| !session.is_unmeasured(p) && !state.hedged.contains(*p));
        let mut sent_blocks = 0;
        for provider in order.iter().copied() {
            if sent_blocks >= block_slots {
                break;
            }
            if state.block_targets.contains(provider)
                || (measured_available
                    && config.session_mode == SessionMode::On
                    && session.is_unmeasured(provider))
            {
                continue;
            }
            self.want(provider, cid, WantType::Block);
            session.record(provider, Outcome::WantSent);
            state.block_targets.insert(provider.clone());
            state.sent_at.insert(provider.clone(), Instant::now());
            // Wants already queued at this provider come first: this one's
            // deadline allows for them.
            let queued = session
                .stats_of(provider)
                .map_or(0, |s| s.in_flight.saturating_sub(1));
            state.queued_behind.insert(provider.clone(), queued);
            sent_blocks += 1;
        }
        if config.session_mode == SessionMode::On {
            // WANT_HAVE to the next-ranked few measured providers (who has
            // the block, should this want need a hedge), and one at a time
            // to each provider not measured yet (bounded): its answer is a
            // first latency sample. Every message costs the provider, so an
            // unmeasured one is not asked about every block while its first
            // answer is on the way.
            let not_asked = |p: &&&ProviderId| {
                !state.block_targets.contains(**p)
                    && !state.said_have.contains(**p)
                    && !state.have_sent.contains(**p)
            };
            let mut haves: Vec<ProviderId> = order
                .iter()
                .filter(not_asked)
                .filter(|p| !session.is_unmeasured(p))
                .take(config.want_have_fanout)
                .map(|p| (*p).clone())
                .collect();
            haves.extend(
                order
                    .iter()
                    .filter(not_asked)
                    .filter(|p| session.claim_probe(p))
                    .take(MAX_PROBING_HAVES)
                    .map(|p| (*p).clone())
                    .collect::<Vec<_>>(),
            );
            for provider in haves {
                self.want(&provider, cid, WantType::Have);
                state.have_sent.insert(provider.clone());
                state.have_sent_at.insert(provider.clone(), Instant::now());
                state.have_asked.insert(provider);
            }
        }
    }
}

/// What one fetch has asked so far.
#[derive(Default)]
struct WantState {
    block_targets: HashSet<ProviderId>,
    sent_at: HashMap<ProviderId, Instant>,
    hedged: HashSet<ProviderId>,
    said_have: HashSet<ProviderId>,
    have_sent: HashSet<ProviderId>,
    /// WANT_HAVE sent, no answer yet.
    have_asked: HashSet<ProviderId>,
    /// When each WANT_HAVE went out (for a first round-trip estimate).
    have_sent_at: HashMap<ProviderId, Instant>,
    excluded: HashSet<ProviderId>,
    /// Wants the provider already had in flight when this one was sent.
    queued_behind: HashMap<ProviderId, u32>,
    /// How often a want was sent again to a provider: each doubles its wait.
    resends: HashMap<ProviderId, u32>,
    /// How often sending to a provider failed.
    unreachable: HashMap<ProviderId, u32>,
    /// Providers that asked us to back off, and when to ask again.
    retry_at: HashMap<ProviderId, Instant>,
}

impl WantState {
    fn exclude(&mut self, provider: &ProviderId) {
        self.excluded.insert(provider.clone());
        self.block_targets.remove(provider);
        self.said_have.remove(provider);
        self.have_asked.remove(provider);
        self.retry_at.remove(provider);
    }

    fn nothing_pending(&self) -> bool {
        self.block_targets.is_empty() && self.have_asked.is_empty() && self.retry_at.is_empty()
    }

    /// When the want at `provider` becomes overdue. A provider works
    /// through its wants in order, so one that keeps sending bytes is not
    /// hedged however long its queue: the want is overdue when the provider
    /// has sent nothing for a hedge delay (it stalled), or — a backstop for
    /// a want it lost — when the want is twice as old as its place in the
    /// queue explains.
    fn due_at(
        &self,
        session: &Session,
        progress: &LinkProgress,
        provider: &ProviderId,
    ) -> Option<Instant> {
        let sent = *self.sent_at.get(provider)?;
        let backoff = 1u32 << self.resends.get(provider).copied().unwrap_or(0).min(5);
        let delay = session.hedge_delay(provider) * backoff;
        let last_block = session.stats_of(provider).and_then(|s| s.last_block_at());
        let last_bytes = progress.last(provider);
        let last_progress = [last_block, last_bytes]
            .into_iter()
            .flatten()
            .map(Instant::from_std)
            .fold(sent, Instant::max);
        let queue = 1 + self
            .queued_behind
            .get(provider)
            .copied()
            .unwrap_or(0)
            .min(64);
        Some((last_progress + delay).min(sent + delay * queue * 2))
    }

    /// True if every provider asked for the block is an HTTP gateway with so
    /// many requests queued ahead of this one that `other` (which says it
    /// has the block) would deliver it in under half the time left. A burst
    /// of wants sent before a second provider was measured all sits at the
    /// first one: this moves the far end of that queue. Only a gateway's
    /// queue is moved: a request still waiting for its link is aborted
    /// before it starts when the block arrives from `other`, while a
    /// Bitswap peer (Helia) takes every want it holds into its next send,
    /// so a want moved away from one mostly arrives twice (23.8% duplicate
    /// bytes between two equal Helia providers when it did).
    fn queued_far_behind(&self, session: &Session, other: &ProviderId) -> bool {
        let Some(cost) = session.cost_of(other) else {
            return false;
        };
        let other_done = Duration::from_secs_f64(cost / 1000.0);
        let now = Instant::now();
        self.block_targets
            .iter()
            .filter(|t| !self.hedged.contains(*t))
            .all(|target| {
                if !matches!(target, ProviderId::Http(_)) {
                    return false;
                }
                let ahead = self.queued_behind.get(target).copied().unwrap_or(0);
                let (Some(sent), Some(takes)) = (
                    self.sent_at.get(target),
                    session.completion_behind(target, ahead.min(64)),
                ) else {
                    return false;
                };
                (*sent + takes).saturating_duration_since(now) > other_done * 2
            })
    }

    /// When the next outstanding, not yet hedged want becomes overdue.
    fn next_hedge(&self, session: &Session, progress: &LinkProgress) -> Option<Instant> {
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .filter_map(|p| self.due_at(session, progress, p))
            .min()
    }

    fn overdue(&self, session: &Session, progress: &LinkProgress) -> Option<ProviderId> {
        let now = Instant::now();
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .find(|p| self.due_at(session, progress, p).is_some_and(|t| t <= now))
            .cloned()
    }
}

fn count_bad_block(source: BlockOrigin) {
    Metrics::global()
        .bad_blocks
        .get_or_create(&SourceLabel { source })
        .inc();
}

/// Routes what Bitswap peers send to the wants waiting for it.
async fn dispatch(inner: Weak<Inner>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(event) = inbound.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let wants = inner.wants.lock().expect("poisoned");
        match event {
            Inbound::Block { peer, cid, data } => {
                let provider = ProviderId::Peer(peer);
                if let Some(entry) = wants.get(&cid) {
                    // `cid` was computed by hashing these bytes as they came
                    // off the wire (`protocol::block_cid`): a want under the
                    // exact same CID is answered by them, no second hash needed.
                    let _ = entry.events.send(WantEvent::Block { provider, data });
                } else if !inner
                    .recently_wanted
                    .lock()
                    .expect("poisoned")
                    .contains(&cid)
                {
                    let asked_for_blocks: Vec<&WantEntry> = wants
                        .values()
                        .filter(|e| e.asked.get(&provider) == Some(&WantType::Block))
                        .collect();
                    // A block nobody wanted, from a peer asked for blocks: it
                    // sent bytes that do not hash to what it was asked for.
                    if !asked_for_blocks.is_empty() {
                        tracing::warn!(%peer, %cid, "peer sent a block that matches no wanted CID; dropping it");
                        PeerBook::global().penalise(&provider);
                        count_bad_block(BlockOrigin::Bitswap);
                        for entry in asked_for_blocks {
                            let _ = entry.events.send(WantEvent::BadBlock(provider.clone()));
                        }
                    }
                }
            }
            Inbound::Presence { peer, cid, have } => {
                if let Some(entry) = wants.get(&cid) {
                    let _ = entry.events.send(WantEvent::Presence {
                        provider: ProviderId::Peer(peer),
                        have,
                    });
                }
            }
            Inbound::Unreachable { peer, cids } => {
                for cid in cids {
                    if let Some(entry) = wants.get(&cid) {
                        let _ = entry
                            .events
                            .send(WantEvent::Unreachable(ProviderId::Peer(peer)));
                    }
                }
            }
            Inbound::Malformed { peer, reason } => {
                tracing::debug!(%peer, %reason, "malformed bitswap message");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_deep_gateway_queue_is_moved_to_a_provider_that_has_the_block() {
        let session = Session::new();
        let gateway = ProviderId::Http("http://gateway.example".into());
        let peer = ProviderId::Peer(libp2p::PeerId::random());
        for provider in [&gateway, &peer] {
            session.add_provider(provider.clone(), ProviderSource::Hint);
            session.record(
                provider,
                Outcome::Answered {
                    rtt: Duration::from_millis(20),
                },
            );
        }
        let asked = |target: &ProviderId, ahead: u32| {
            let mut state = WantState::default();
            state.block_targets.insert(target.clone());
            state.sent_at.insert(target.clone(), Instant::now());
            state.queued_behind.insert(target.clone(), ahead);
            state
        };
        assert!(asked(&gateway, 15).queued_far_behind(&session, &peer));
        assert!(
            !asked(&gateway, 0).queued_far_behind(&session, &peer),
            "next in line at the gateway"
        );
        assert!(
            !asked(&peer, 15).queued_far_behind(&session, &gateway),
            "a Bitswap peer sends what it holds anyway"
        );
    }
}
