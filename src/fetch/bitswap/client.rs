//! The want logic: which peer gets WANT_BLOCK, which get WANT_HAVE, when a
//! slow want is hedged to the next peer, when the search widens, and one
//! network want per CID however many sessions want it.
//!
//! Every want belongs to a session (the current one, see
//! [`crate::session`]); its ranking picks the peers and learns from every
//! answer. The shared want table fans answers out to every session waiting
//! on the same CID; when the last of them stops waiting (done, or its
//! session ended), CANCEL goes to every peer that was asked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::peer::{accept_inbound, Inbound, Outbound};
use super::protocol::{want_entry, WantType};
use crate::blocks::verify_block;
use crate::fetch::{BlockFetcher, FetchError, SessionMode};
use crate::p2p::Node;
use crate::routing::ProviderHint;
use crate::session::{self, Outcome, ProviderId, ProviderSource, Session};

/// Bitswap settings (`[bitswap]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BitswapConfig {
    /// Seconds before a block that no provider delivered fails (504).
    pub block_timeout_secs: u64,
    /// Peers asked for one block at the same time (the first, plus hedges).
    pub max_block_wants_per_cid: usize,
    /// Next-ranked peers sent WANT_HAVE alongside each WANT_BLOCK.
    pub want_have_fanout: usize,
    /// Most connected peers asked when the session widens its search.
    pub max_broadcast_peers: usize,
    /// `on`: ranked per session; `off`: every block asked of every provider.
    pub session_mode: SessionMode,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        BitswapConfig {
            block_timeout_secs: 30,
            max_block_wants_per_cid: 3,
            want_have_fanout: 2,
            max_broadcast_peers: 16,
            session_mode: SessionMode::On,
        }
    }
}

#[derive(Debug, Clone)]
enum WantEvent {
    Block { peer: PeerId, data: Bytes },
    Presence { peer: PeerId, have: bool },
    Unreachable(PeerId),
    BadBlock(PeerId),
}

struct WantEntry {
    events: broadcast::Sender<WantEvent>,
    /// Live waiters (sessions) on this CID.
    waiters: usize,
    /// What each peer has been asked, so no peer is asked twice.
    asked: HashMap<PeerId, WantType>,
}

struct Inner {
    node: Node,
    outbound: Arc<Outbound>,
    wants: Mutex<HashMap<Cid, WantEntry>>,
    /// CIDs wanted until recently: a copy of one arriving late (a hedged or
    /// re-sent want answered twice) is expected, not a sign of a bad peer.
    recently_wanted: Mutex<RecentCids>,
    config: BitswapConfig,
}

/// A bounded set of the most recently finished wants.
#[derive(Default)]
struct RecentCids {
    order: std::collections::VecDeque<Cid>,
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

/// The Bitswap client. Cheap to clone.
#[derive(Clone)]
pub struct BitswapClient {
    inner: Arc<Inner>,
}

/// Removes a waiter when dropped, and cancels the want on the wire when it
/// was the last one.
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
        if entry.waiters == 0 {
            let entry = wants.remove(&self.cid).expect("present");
            self.inner
                .recently_wanted
                .lock()
                .expect("poisoned")
                .insert(self.cid);
            for (peer, want_type) in entry.asked {
                self.inner
                    .outbound
                    .send(peer, want_entry(&self.cid, want_type, true));
            }
        }
    }
}

impl BitswapClient {
    pub fn start(node: Node, config: BitswapConfig) -> BitswapClient {
        let (tx, rx) = mpsc::unbounded_channel();
        accept_inbound(&node, tx.clone());
        let inner = Arc::new(Inner {
            outbound: Outbound::new(node.clone(), tx),
            node,
            wants: Mutex::default(),
            recently_wanted: Mutex::default(),
            config,
        });
        tokio::spawn(dispatch(Arc::downgrade(&inner), rx));
        BitswapClient { inner }
    }

    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// CIDs currently wanted from the network (for tests and views).
    pub fn wanted(&self) -> Vec<Cid> {
        self.inner
            .wants
            .lock()
            .expect("poisoned")
            .keys()
            .copied()
            .collect()
    }

    fn register(&self, cid: Cid) -> (broadcast::Receiver<WantEvent>, WantGuard) {
        let mut wants = self.inner.wants.lock().expect("poisoned");
        let entry = wants.entry(cid).or_insert_with(|| WantEntry {
            events: broadcast::channel(256).0,
            waiters: 0,
            asked: HashMap::new(),
        });
        entry.waiters += 1;
        let receiver = entry.events.subscribe();
        (
            receiver,
            WantGuard {
                inner: self.inner.clone(),
                cid,
            },
        )
    }

    /// Sends a want unless the peer was already asked at least as much.
    fn want(&self, peer: PeerId, cid: &Cid, want_type: WantType) {
        let mut wants = self.inner.wants.lock().expect("poisoned");
        let Some(entry) = wants.get_mut(cid) else {
            return;
        };
        match entry.asked.get(&peer) {
            Some(WantType::Block) => return,
            Some(WantType::Have) if want_type == WantType::Have => return,
            _ => {}
        }
        entry.asked.insert(peer, want_type);
        drop(wants);
        self.inner
            .outbound
            .send(peer, want_entry(cid, want_type, false));
    }

    /// Adds connected peers the session does not know yet, as broadcast
    /// candidates, and asks them WANT_HAVE. Returns how many were asked.
    fn widen(&self, session: &Session, cid: &Cid) -> usize {
        let mut asked = 0;
        for peer in self.inner.node.connected_peers() {
            if asked >= self.inner.config.max_broadcast_peers {
                break;
            }
            let provider = ProviderId::Peer(peer);
            if session.stats_of(&provider).is_none()
                && session.add_provider(provider.clone(), ProviderSource::Broadcast)
            {
                session.record(&provider, Outcome::WantSent);
                self.want(peer, cid, WantType::Have);
                asked += 1;
            }
        }
        asked
    }

    async fn fetch_in(
        &self,
        session: Session,
        cid: Cid,
    ) -> Result<(Bytes, ProviderId), FetchError> {
        let (mut events, _guard) = self.register(cid);
        let config = &self.inner.config;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(config.block_timeout_secs);
        let mut state = WantState::default();
        let mut widened = false;
        loop {
            self.send_wants(&session, &cid, &mut state);
            if state.block_targets.is_empty() {
                if !widened {
                    widened = true;
                    if self.widen(&session, &cid) > 0 || !state.haves_pending(&session) {
                        continue;
                    }
                } else if state.nothing_pending() {
                    return Err(FetchError::NoProviders(cid));
                }
            }
            let hedge_at = state.next_hedge(&session).unwrap_or(deadline).min(deadline);
            tokio::select! {
                event = events.recv() => match event {
                    Ok(WantEvent::Block { peer, data }) => {
                        let provider = ProviderId::Peer(peer);
                        let latency = state.sent_at.get(&peer).map_or(started.elapsed(), |t| t.elapsed());
                        session.record(&provider, Outcome::Block { bytes: data.len(), latency });
                        return Ok((data, provider));
                    }
                    Ok(WantEvent::Presence { peer, have }) => {
                        let provider = ProviderId::Peer(peer);
                        session.add_provider(provider.clone(), ProviderSource::Broadcast);
                        state.have_asked.remove(&peer);
                        if have {
                            session.record(&provider, Outcome::Have);
                            state.said_have.insert(peer);
                        } else {
                            session.record(&provider, Outcome::DontHave);
                            state.exclude(peer);
                        }
                    }
                    Ok(WantEvent::Unreachable(peer)) => {
                        // A dropped connection is often transient: try the
                        // peer again a couple of times before giving up on it.
                        session.record(&ProviderId::Peer(peer), Outcome::Timeout);
                        let failures = state.unreachable.entry(peer).or_default();
                        *failures += 1;
                        if *failures >= MAX_UNREACHABLE || self.has_alternative(&session, &state) {
                            state.exclude(peer);
                        } else if state.block_targets.contains(&peer) {
                            self.resend(peer, &cid);
                            state.sent_at.insert(peer, Instant::now());
                        } else {
                            state.exclude(peer);
                        }
                    }
                    Ok(WantEvent::BadBlock(peer)) => {
                        session.record(&ProviderId::Peer(peer), Outcome::BadBlock);
                        state.exclude(peer);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(FetchError::NoProviders(cid)),
                },
                _ = tokio::time::sleep_until(hedge_at) => {
                    if Instant::now() >= deadline {
                        return Err(FetchError::Timeout { cid, after: started.elapsed() });
                    }
                    // The slowest outstanding want gets company: the next
                    // peer is asked too. With nobody else to ask, the want is
                    // sent again, with back-off: a peer may have answered on a
                    // stream that was lost (Go peers open one per message).
                    if let Some(slow) = state.overdue(&session) {
                        session.record(&ProviderId::Peer(slow), Outcome::Timeout);
                        if self.has_alternative(&session, &state) {
                            state.hedged.insert(slow);
                        } else {
                            self.resend(slow, &cid);
                            state.sent_at.insert(slow, Instant::now());
                            *state.resends.entry(slow).or_default() += 1;
                        }
                    }
                }
            }
        }
    }

    /// True if some provider not yet asked for the block could be.
    fn has_alternative(&self, session: &Session, state: &WantState) -> bool {
        session.ranked().iter().any(|p| match p {
            ProviderId::Peer(peer) => {
                !state.excluded.contains(peer) && !state.block_targets.contains(peer)
            }
            ProviderId::Http(_) => false,
        })
    }

    /// Asks `peer` for the block again.
    fn resend(&self, peer: PeerId, cid: &Cid) {
        if let Some(entry) = self.inner.wants.lock().expect("poisoned").get_mut(cid) {
            entry.asked.remove(&peer);
        }
        tracing::debug!(%peer, %cid, "re-sending an unanswered want");
        self.want(peer, cid, WantType::Block);
    }

    fn send_wants(&self, session: &Session, cid: &Cid, state: &mut WantState) {
        let config = &self.inner.config;
        let candidates: Vec<PeerId> = session
            .ranked()
            .into_iter()
            .filter_map(|p| match p {
                ProviderId::Peer(peer) => Some(peer),
                ProviderId::Http(_) => None,
            })
            .filter(|peer| !state.excluded.contains(peer))
            .collect();
        let live_targets = state
            .block_targets
            .iter()
            .filter(|p| !state.hedged.contains(p))
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
        // Peers that said HAVE go first: they are known to hold the block.
        let mut order: Vec<PeerId> = candidates
            .iter()
            .filter(|p| state.said_have.contains(p))
            .copied()
            .collect();
        order.extend(
            candidates
                .iter()
                .filter(|p| !state.said_have.contains(p))
                .copied(),
        );
        let mut sent_blocks = 0;
        for peer in order.iter().copied() {
            if sent_blocks >= block_slots {
                break;
            }
            if state.block_targets.contains(&peer) {
                continue;
            }
            self.want(peer, cid, WantType::Block);
            session.record(&ProviderId::Peer(peer), Outcome::WantSent);
            state.block_targets.insert(peer);
            state.sent_at.insert(peer, Instant::now());
            sent_blocks += 1;
        }
        if config.session_mode == SessionMode::On {
            let haves = order
                .iter()
                .filter(|p| {
                    !state.block_targets.contains(p)
                        && !state.said_have.contains(p)
                        && !state.have_sent.contains(p)
                })
                .take(config.want_have_fanout)
                .copied()
                .collect::<Vec<_>>();
            for peer in haves {
                self.want(peer, cid, WantType::Have);
                state.have_sent.insert(peer);
                state.have_asked.insert(peer);
            }
        }
    }
}

/// What one fetch has asked so far.
#[derive(Default)]
struct WantState {
    block_targets: HashSet<PeerId>,
    sent_at: HashMap<PeerId, Instant>,
    hedged: HashSet<PeerId>,
    said_have: HashSet<PeerId>,
    have_sent: HashSet<PeerId>,
    /// WANT_HAVE sent, no answer yet.
    have_asked: HashSet<PeerId>,
    excluded: HashSet<PeerId>,
    /// How often a want was sent again to a peer: each doubles its wait.
    resends: HashMap<PeerId, u32>,
    /// How often sending to a peer failed.
    unreachable: HashMap<PeerId, u32>,
}

/// Sends to a peer that fail this often in one fetch drop it from the fetch.
const MAX_UNREACHABLE: u32 = 3;

impl WantState {
    fn exclude(&mut self, peer: PeerId) {
        self.excluded.insert(peer);
        self.block_targets.remove(&peer);
        self.said_have.remove(&peer);
        self.have_asked.remove(&peer);
    }

    fn nothing_pending(&self) -> bool {
        self.block_targets.is_empty() && self.have_asked.is_empty()
    }

    fn haves_pending(&self, _session: &Session) -> bool {
        !self.have_asked.is_empty()
    }

    /// When the next outstanding, not yet hedged want becomes overdue.
    fn next_hedge(&self, session: &Session) -> Option<Instant> {
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(p))
            .filter_map(|p| {
                Some(*self.sent_at.get(p)? + session.hedge_delay(&ProviderId::Peer(*p)))
            })
            .min()
    }

    fn overdue(&self, session: &Session) -> Option<PeerId> {
        let now = Instant::now();
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(p))
            .find(|p| {
                self.sent_at
                    .get(p)
                    .is_some_and(|t| *t + session.hedge_delay(&ProviderId::Peer(**p)) <= now)
            })
            .copied()
    }
}

/// Routes what peers send to the wants waiting for it.
async fn dispatch(inner: std::sync::Weak<Inner>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(event) = inbound.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let wants = inner.wants.lock().expect("poisoned");
        match event {
            Inbound::Block { peer, cid, data } => {
                tracing::trace!(%peer, %cid, wanted = wants.contains_key(&cid), "block received");
                if let Some(entry) = wants.get(&cid) {
                    // The CID was computed from the data, but check against
                    // the wanted CID once more: this is the trust boundary.
                    if verify_block(&cid, &data).is_ok() {
                        let _ = entry.events.send(WantEvent::Block { peer, data });
                    }
                } else if !inner
                    .recently_wanted
                    .lock()
                    .expect("poisoned")
                    .contains(&cid)
                {
                    let asked_for_blocks: Vec<&WantEntry> = wants
                        .values()
                        .filter(|e| e.asked.get(&peer) == Some(&WantType::Block))
                        .collect();
                    // A block nobody wanted, from a peer we asked for
                    // blocks: it sent bytes that do not hash to what it was
                    // asked for.
                    if !asked_for_blocks.is_empty() {
                        tracing::warn!(%peer, %cid, "peer sent a block that matches no wanted CID; dropping it");
                        session::PeerBook::global().penalise(&ProviderId::Peer(peer));
                        for entry in asked_for_blocks {
                            let _ = entry.events.send(WantEvent::BadBlock(peer));
                        }
                    }
                }
            }
            Inbound::Presence { peer, cid, have } => {
                tracing::trace!(%peer, %cid, have, "presence received");
                if let Some(entry) = wants.get(&cid) {
                    let _ = entry.events.send(WantEvent::Presence { peer, have });
                }
            }
            Inbound::Unreachable { peer, cids } => {
                for cid in cids {
                    if let Some(entry) = wants.get(&cid) {
                        let _ = entry.events.send(WantEvent::Unreachable(peer));
                    }
                }
            }
            Inbound::Malformed { peer, reason } => {
                tracing::debug!(%peer, %reason, "malformed bitswap message");
            }
        }
    }
}

impl BlockFetcher for BitswapClient {
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
            if let ProviderHint::Peer { peer, addrs } = hint {
                if session.add_provider(ProviderId::Peer(*peer), ProviderSource::Hint)
                    || !self.inner.node.is_connected(peer)
                {
                    self.inner.node.dial(*peer, addrs.clone());
                }
            }
        }
    }
}
