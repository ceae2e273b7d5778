//! The planning core of one fetch: which provider gets WANT_BLOCK, which
//! get WANT_HAVE, when a slow want is hedged to the next provider or sent
//! again, and when the search widens. It does no I/O and never reads the
//! clock: answers and the time come in ([`Planner::on_event`],
//! [`Planner::on_tick`], [`Planner::plan`]), the wants to send go out as
//! [`Action`]s, and the loop in [`super`] carries them out. It reads the
//! session's ranking, and teaches it every outcome, as it decides.
//!
//! The rules, each with a unit test below:
//! - One WANT_BLOCK at a time per CID (session mode `on`; more only once
//!   the first is hedged, up to `max_block_wants_per_cid`), to the best
//!   ranked provider; providers that said HAVE go first.
//! - No blind WANT_BLOCK to a provider that has answered nothing yet while
//!   a measured one can take it: a block at a provider that turns out to be
//!   far away holds up the in-order body until the hedge. A provider the
//!   peer book saw deliver a block recently, in any session, counts as
//!   measured ([`unproven`]): a new session's first message to it is the
//!   WANT_BLOCK, with no probe first.
//! - WANT_HAVE to the next `want_have_fanout` measured providers, and one
//!   probe at a time to each unmeasured provider (at most
//!   [`MAX_PROBING_HAVES`] per block): its answer is a first latency sample,
//!   and every message costs the provider.
//! - A want is hedged (the next provider asked too) only when its provider
//!   has sent nothing for a hedge delay, twice a block's expected time: a
//!   provider that keeps sending is working through its queue.
//! - A provider with wants out that has sent nothing for its hedge delay
//!   is stalled (stopped, cut off, gone): every fetch's want there moves
//!   at once (the fetch that finds it wakes the others; one tick hedges
//!   every overdue want, not one), and it is asked last, so new wants skip
//!   it, until it delivers or answers again. A send that fails marks it
//!   the same way.
//! - The lost-want backstop: a want twice as old as its place in the
//!   provider's queue explains is overdue even while bytes arrive.
//! - With nobody else to ask, an overdue want to a peer is sent again, each
//!   time after twice the wait (re-send back-off).
//! - The deep-gateway-queue move: a measured provider that says HAVE gets
//!   the block too when it would deliver in under half the time left on the
//!   HTTP gateway queues holding it (see [`WantState::queued_far_behind`]).
//! - Content routing is asked beside hinted providers at once (`[hints]
//!   policy = "parallel"`), or after `routing_delay_ms` (`"first"`).
//! - When no provider is left to ask (all said DONT_HAVE, or are out), the
//!   search widens: content routing, then connected peers, then routing
//!   again ([`Planner::widen`]).
//! - A bad block takes its provider out of the want; the session bans it
//!   process-wide.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use libp2p::PeerId;
use tokio::time::Instant;

use super::RetrievalConfig;
use crate::fetch::{LinkProgress, SessionMode, WantEvent, WantKind};
use crate::routing::HintPolicy;
use crate::session::{Outcome, ProviderId, ProviderSource, Session};

/// Most unmeasured providers sent WANT_HAVE for one block, to learn their latency.
pub(super) const MAX_PROBING_HAVES: usize = 8;

/// Sends to a provider that fail this often in one fetch drop it from the fetch.
pub(super) const MAX_UNREACHABLE: u32 = 3;

/// What the loop is to do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// Ask `provider`, unless it was asked at least as much already.
    Want {
        provider: ProviderId,
        kind: WantKind,
    },
    /// Ask `provider` for the block again: its want may be lost.
    Resend(ProviderId),
    /// The block arrived: the fetch is over.
    Deliver { data: Bytes, provider: ProviderId },
}

/// Where to look when no provider known is left to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Search {
    /// Content routing; the loop adds what it finds to the session.
    Lookup,
    /// Connected peers the session does not know ([`Planner::broadcast`]).
    Broadcast,
}

/// How far the search has widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Widening {
    NotYet,
    /// Connected peers were to be asked; if that reached nobody, routing is
    /// asked once more.
    Broadcasting,
    Done,
}

/// When bytes last arrived from a provider, as the transports saw them
/// ([`LinkProgress`]).
pub(super) trait BytesSeen {
    fn last_bytes(&self, provider: &ProviderId) -> Option<std::time::Instant>;
}

impl BytesSeen for LinkProgress {
    fn last_bytes(&self, provider: &ProviderId) -> Option<std::time::Instant> {
        self.last(provider)
    }
}

/// The plan of one fetch: what it asked so far and how far it searched.
pub(super) struct Planner {
    config: RetrievalConfig,
    started: Instant,
    state: WantState,
    has_routing: bool,
    /// Content routing not asked yet: it is, at `routing_at` or as soon as
    /// no provider is left.
    routing_pending: bool,
    routing_at: Instant,
    widening: Widening,
    /// A provider was found stalled since the loop last asked.
    stalled: bool,
}

impl Planner {
    pub(super) fn new(config: RetrievalConfig, started: Instant) -> Planner {
        Planner {
            config,
            started,
            state: WantState::default(),
            has_routing: false,
            routing_pending: false,
            routing_at: started,
            widening: Widening::NotYet,
            stalled: false,
        }
    }

    /// Content routing can be asked: beside the hints (at once under
    /// `HintPolicy::Parallel`; under `First` only when they are slow to
    /// answer, after `routing_delay_ms`; at once if the session knows no
    /// provider), and as a last resort when every provider known is out.
    pub(super) fn use_routing(&mut self, session_has_providers: bool, hints: HintPolicy) {
        self.has_routing = true;
        self.routing_pending = true;
        self.routing_at = if session_has_providers && hints == HintPolicy::First {
            self.started + Duration::from_millis(self.config.routing_delay_ms)
        } else {
            self.started
        };
    }

    /// The wants to send now; called again after every answer and tick.
    pub(super) fn plan(&mut self, session: &Session, now: Instant) -> Vec<Action> {
        let order = candidates(session, &self.state);
        let is_unmeasured = |p: &ProviderId| unproven(session, p);
        let mut actions = Vec::new();
        for provider in block_targets(&order, is_unmeasured, &self.state, &self.config) {
            session.record(&provider, Outcome::WantSent);
            // Wants already queued at this provider come first: this one's
            // deadline allows for them.
            let queued = session
                .stats_of(&provider)
                .map_or(0, |s| s.in_flight.saturating_sub(1));
            let state = &mut self.state;
            state.block_targets.insert(provider.clone());
            state.sent_at.insert(provider.clone(), now);
            state.queued_behind.insert(provider.clone(), queued);
            actions.push(Action::Want {
                provider,
                kind: WantKind::Block,
            });
        }
        let claim_probe = |p: &ProviderId| unproven(session, p) && session.claim_probe(p);
        for provider in have_targets(
            &order,
            is_unmeasured,
            claim_probe,
            &self.state,
            &self.config,
        ) {
            let state = &mut self.state;
            state.have_sent.insert(provider.clone());
            state.have_sent_at.insert(provider.clone(), now);
            state.have_asked.insert(provider.clone());
            actions.push(Action::Want {
                provider,
                kind: WantKind::Have,
            });
        }
        actions
    }

    /// True if no provider holds a want for the block nor will be asked again.
    pub(super) fn out_of_targets(&self) -> bool {
        self.state.block_targets.is_empty() && self.state.retry_at.is_empty()
    }

    /// True if nothing asked can still be answered: the fetch has failed.
    pub(super) fn nothing_pending(&self) -> bool {
        self.state.nothing_pending()
    }

    /// Where to look next once [`out_of_targets`](Self::out_of_targets):
    /// routing if it was not asked yet, then connected peers, then (if
    /// those were nobody) routing again; `None` when all were tried. The
    /// loop plans again as soon as one of them finds a provider.
    pub(super) fn widen(&mut self) -> Option<Search> {
        if self.routing_pending {
            self.routing_pending = false;
            return Some(Search::Lookup);
        }
        match self.widening {
            Widening::NotYet => {
                self.widening = Widening::Broadcasting;
                Some(Search::Broadcast)
            }
            Widening::Broadcasting => {
                self.widening = Widening::Done;
                self.has_routing.then_some(Search::Lookup)
            }
            Widening::Done => None,
        }
    }

    /// Adds `connected` peers the session does not know yet, as broadcast
    /// candidates, and asks them WANT_HAVE (at most `max_broadcast_peers`,
    /// in the order given: see [`broadcast_candidates`]).
    pub(super) fn broadcast(
        &mut self,
        session: &Session,
        connected: impl IntoIterator<Item = PeerId>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for peer in connected {
            if actions.len() >= self.config.max_broadcast_peers {
                break;
            }
            let provider = ProviderId::Peer(peer);
            if session.stats_of(&provider).is_none()
                && session.add_provider(provider.clone(), ProviderSource::Broadcast)
            {
                self.state.have_asked.insert(provider.clone());
                actions.push(Action::Want {
                    provider,
                    kind: WantKind::Have,
                });
            }
        }
        if !actions.is_empty() {
            self.widening = Widening::Done;
        }
        actions
    }

    /// When the loop must wake if nothing is heard: the next want to become
    /// overdue, the next provider to ask again after its back-off, the
    /// routing delay, or `deadline`.
    pub(super) fn wake_at(
        &self,
        session: &Session,
        progress: &dyn BytesSeen,
        deadline: Instant,
    ) -> Instant {
        let mut wake_at = self.state.next_hedge(session, progress).unwrap_or(deadline);
        if let Some(retry) = self.state.retry_at.values().min() {
            wake_at = wake_at.min(*retry);
        }
        if self.routing_pending {
            wake_at = wake_at.min(self.routing_at);
        }
        wake_at
    }

    /// True once, when the routing delay is over and routing was not asked.
    pub(super) fn routing_due(&mut self, now: Instant) -> bool {
        let due = self.routing_pending && now >= self.routing_at;
        if due {
            self.routing_pending = false;
        }
        due
    }

    /// What a provider answered.
    pub(super) fn on_event(
        &mut self,
        session: &Session,
        event: WantEvent,
        now: Instant,
    ) -> Vec<Action> {
        let state = &mut self.state;
        match event {
            WantEvent::Block { provider, data } => {
                let sent = state.sent_at.get(&provider).copied();
                let latency = now.saturating_duration_since(sent.unwrap_or(self.started));
                session.record(
                    &provider,
                    Outcome::Block {
                        bytes: data.len(),
                        latency,
                    },
                );
                return vec![Action::Deliver { data, provider }];
            }
            WantEvent::Presence { provider, have } => {
                session.add_provider(provider.clone(), ProviderSource::Broadcast);
                state.have_asked.remove(&provider);
                if let Some(sent) = state
                    .sent_at
                    .get(&provider)
                    .or(state.have_sent_at.get(&provider))
                {
                    let rtt = now.saturating_duration_since(*sent);
                    session.record(&provider, Outcome::Answered { rtt });
                }
                if have {
                    session.record(&provider, Outcome::Have);
                    if state.outclassed_by(session, &provider, now) {
                        state.hedged.extend(state.block_targets.iter().cloned());
                    }
                    state.said_have.insert(provider);
                } else {
                    session.record(&provider, Outcome::DontHave);
                    state.exclude(&provider);
                }
            }
            WantEvent::Unreachable(provider) => {
                // A dropped connection is often transient: try the
                // provider again a couple of times before giving up.
                session.record(&provider, Outcome::Timeout);
                // Until it answers again, other fetches ask it last.
                session.record(&provider, Outcome::Stalled);
                let failures = state.unreachable.entry(provider.clone()).or_default();
                *failures += 1;
                if *failures < MAX_UNREACHABLE
                    && state.block_targets.contains(&provider)
                    && !state.has_alternative(session)
                {
                    state.sent_at.insert(provider.clone(), now);
                    return vec![Action::Resend(provider)];
                }
                if state.block_targets.contains(&provider) {
                    // Out of the want: it no longer loads the provider.
                    session.record(&provider, Outcome::WantCancelled);
                }
                state.exclude(&provider);
            }
            WantEvent::BackOff(provider, after) => {
                session.record(&provider, Outcome::Timeout);
                if state.block_targets.contains(&provider) {
                    session.record(&provider, Outcome::WantCancelled);
                }
                state.block_targets.remove(&provider);
                state.retry_at.insert(provider.clone(), now + after);
                if state.has_alternative(session) {
                    state.exclude(&provider);
                }
            }
            WantEvent::BadBlock(provider) => {
                session.record(&provider, Outcome::BadBlock);
                state.exclude(&provider);
            }
        }
        Vec::new()
    }

    /// Nothing was heard until `now`: providers whose back-off is over are
    /// asked again, and the slowest overdue want gets company (the next
    /// provider is asked too). With nobody else to ask, the want is sent
    /// again, with back-off: a peer may have answered on a stream that was
    /// lost (Go peers open one per message).
    pub(super) fn on_tick(
        &mut self,
        session: &Session,
        progress: &dyn BytesSeen,
        now: Instant,
    ) -> Vec<Action> {
        let state = &mut self.state;
        let mut actions = Vec::new();
        let due: Vec<ProviderId> = state
            .retry_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for provider in due {
            state.retry_at.remove(&provider);
            state.block_targets.insert(provider.clone());
            state.sent_at.insert(provider.clone(), now);
            actions.push(Action::Resend(provider));
        }
        for (slow, silent) in state.overdue(session, progress, now) {
            session.record(&slow, Outcome::Timeout);
            if silent && !session.is_stalled(&slow) {
                // Every fetch with a want there moves it now, and new
                // wants go elsewhere (see `Outcome::Stalled`).
                session.record(&slow, Outcome::Stalled);
                self.stalled = true;
            }
            if state.has_alternative(session) {
                state.hedged.insert(slow);
            } else {
                // An HTTP request is still in flight (a lost one fails on
                // its own): asking again would only send the block twice
                // down the same link.
                if matches!(slow, ProviderId::Peer(_)) {
                    actions.push(Action::Resend(slow.clone()));
                }
                state.sent_at.insert(slow.clone(), now);
                *state.resends.entry(slow).or_default() += 1;
            }
        }
        actions
    }

    /// True once after this planner found a provider stalled: the loop
    /// wakes the other fetches of the process, so their wants at it move
    /// at once rather than each at its own hedge time.
    pub(super) fn take_stalled(&mut self) -> bool {
        std::mem::take(&mut self.stalled)
    }

    /// Providers asked for the block and not yet out of the want.
    pub(super) fn asked_for_block(&self) -> &HashSet<ProviderId> {
        &self.state.block_targets
    }

    /// Distinct providers asked for the block or whether they have it.
    pub(super) fn asked(&self) -> usize {
        let state = &self.state;
        let asked: HashSet<&ProviderId> = state
            .sent_at
            .keys()
            .chain(state.have_sent.iter())
            .chain(state.have_sent_at.keys())
            .collect();
        asked.len()
    }
}

/// True if `provider` is to be probed (WANT_HAVE) before it is handed a
/// block: nothing was measured of it in this session, and the peer book
/// has no recent delivery from it in any other. A small file is one block:
/// the probe would cost each new request a round trip to a provider that
/// has just been delivering.
fn unproven(session: &Session, provider: &ProviderId) -> bool {
    session.is_unmeasured(provider) && !session.delivered_recently(provider)
}

/// The providers a want may go to, in the order to ask them: those that
/// said HAVE first (they are known to hold the block), then the session's
/// ranking; excluded ones and ones backing off left out.
fn candidates(session: &Session, state: &WantState) -> Vec<ProviderId> {
    let stalled = |p: &ProviderId| session.is_stalled(p);
    let (mut order, rest): (Vec<ProviderId>, Vec<ProviderId>) = session
        .ranked()
        .into_iter()
        .filter(|p| !state.excluded.contains(p) && !state.retry_at.contains_key(p))
        .partition(|p| state.said_have.contains(p) && !stalled(p));
    order.extend(rest);
    order
}

/// Who of `order` gets WANT_BLOCK now. In session mode `on`, one provider
/// while no want is live (one not hedged), within
/// `max_block_wants_per_cid`; a provider that has not answered anything yet
/// is not handed a block while a measured one can take it (it is asked
/// WANT_HAVE instead, see [`have_targets`]).
/// A connected peer as the broadcast rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Neighbour {
    pub peer: PeerId,
    /// Blocks it delivered and HAVEs it said in earlier sessions.
    pub blocks: u64,
    pub haves: u64,
    /// Named in `[p2p] peers`.
    pub configured: bool,
    /// Connected over loopback, a private or a link-local address.
    pub local: bool,
}

/// Which connected peers a widening session asks, best first. With a DHT
/// the node holds hundreds of connections, most of them routing peers
/// that never held a block; asking them all costs a message each and
/// finds nothing. So only peers that delivered or said HAVE before,
/// configured peers and local-network peers are asked: those that
/// delivered most first, then those that said HAVE, then configured, then
/// local ones.
pub(super) fn broadcast_candidates(mut neighbours: Vec<Neighbour>) -> Vec<PeerId> {
    neighbours.retain(|n| n.blocks > 0 || n.haves > 0 || n.configured || n.local);
    neighbours.sort_by(|a, b| {
        (b.blocks, b.haves, b.configured, b.local).cmp(&(a.blocks, a.haves, a.configured, a.local))
    });
    neighbours.into_iter().map(|n| n.peer).collect()
}

pub(super) fn block_targets(
    order: &[ProviderId],
    is_unmeasured: impl Fn(&ProviderId) -> bool,
    state: &WantState,
    config: &RetrievalConfig,
) -> Vec<ProviderId> {
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
    let measured_available = order
        .iter()
        .any(|p| !is_unmeasured(p) && !state.hedged.contains(p));
    let held_back = |p: &ProviderId| {
        measured_available && config.session_mode == SessionMode::On && is_unmeasured(p)
    };
    order
        .iter()
        .filter(|p| !state.block_targets.contains(*p) && !held_back(p))
        .take(block_slots)
        .cloned()
        .collect()
}

/// Who of `order` gets WANT_HAVE now (session mode `on` only): the
/// next-ranked few measured providers not asked yet (who has the block,
/// should this want need a hedge), and each unmeasured provider whose probe
/// `claim_probe` grants (one at a time per provider and session, at most
/// [`MAX_PROBING_HAVES`]): every message costs the provider, so an
/// unmeasured one is not asked about every block while its first answer is
/// on the way.
pub(super) fn have_targets(
    order: &[ProviderId],
    is_unmeasured: impl Fn(&ProviderId) -> bool,
    mut claim_probe: impl FnMut(&ProviderId) -> bool,
    state: &WantState,
    config: &RetrievalConfig,
) -> Vec<ProviderId> {
    if config.session_mode != SessionMode::On {
        return Vec::new();
    }
    let not_asked = |p: &&ProviderId| {
        !state.block_targets.contains(*p)
            && !state.said_have.contains(*p)
            && !state.have_sent.contains(*p)
    };
    let mut haves: Vec<ProviderId> = order
        .iter()
        .filter(not_asked)
        .filter(|p| !is_unmeasured(p))
        .take(config.want_have_fanout)
        .cloned()
        .collect();
    haves.extend(
        order
            .iter()
            .filter(not_asked)
            .filter(|p| claim_probe(p))
            .take(MAX_PROBING_HAVES)
            .cloned()
            .collect::<Vec<_>>(),
    );
    haves
}

/// What one fetch has asked so far.
#[derive(Default)]
pub(super) struct WantState {
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

    /// True if some provider not yet asked for the block could be.
    fn has_alternative(&self, session: &Session) -> bool {
        session.ranked().iter().any(|p| {
            !self.excluded.contains(p)
                && !self.block_targets.contains(p)
                && !self.retry_at.contains_key(p)
        })
    }

    /// True if `provider`, which just said HAVE, is to be asked for the
    /// block too, now, rather than wait for the others to time out: it is
    /// measured and the providers asked so far are not (a measured one, or
    /// one that delivered recently, is judged by its progress, see
    /// [`overdue`](Self::overdue), as a hedge would mostly fetch the block
    /// twice), or they are far behind in a gateway's queue.
    fn outclassed_by(&self, session: &Session, provider: &ProviderId, now: Instant) -> bool {
        !self.block_targets.is_empty()
            && !self.block_targets.contains(provider)
            && !session.is_unmeasured(provider)
            && (self.block_targets.iter().all(|t| unproven(session, t))
                || self.queued_far_behind(session, provider, now))
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
        progress: &dyn BytesSeen,
        provider: &ProviderId,
    ) -> Option<Instant> {
        self.silent_due_at(session, progress, provider)
            .map(|(due, _)| due)
    }

    /// [`due_at`](Self::due_at), and when the provider counts as silent:
    /// it has sent nothing for its hedge delay. A provider some fetch
    /// already found stalled is due at once (the first time: after a
    /// re-send, the back-off holds).
    fn silent_due_at(
        &self,
        session: &Session,
        progress: &dyn BytesSeen,
        provider: &ProviderId,
    ) -> Option<(Instant, Instant)> {
        let sent = *self.sent_at.get(provider)?;
        let resends = self.resends.get(provider).copied().unwrap_or(0);
        let backoff = 1u32 << resends.min(5);
        let delay = session.hedge_delay(provider) * backoff;
        let stats = session.stats_of(provider);
        if resends == 0 && stats.as_ref().is_some_and(|s| s.stalled) {
            return Some((sent, sent));
        }
        let last_block = stats.and_then(|s| s.last_block_at());
        let last_bytes = progress.last_bytes(provider);
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
        let silent = last_progress + delay;
        Some((silent.min(sent + delay * queue * 2), silent))
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
    fn queued_far_behind(&self, session: &Session, other: &ProviderId, now: Instant) -> bool {
        let Some(cost) = session.cost_of(other) else {
            return false;
        };
        let other_done = Duration::from_secs_f64(cost / 1000.0);
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
    fn next_hedge(&self, session: &Session, progress: &dyn BytesSeen) -> Option<Instant> {
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .filter_map(|p| self.due_at(session, progress, p))
            .min()
    }

    /// Every outstanding, not yet hedged want that is overdue at `now`,
    /// and whether its provider is silent (sent nothing for its hedge delay).
    fn overdue(
        &self,
        session: &Session,
        progress: &dyn BytesSeen,
        now: Instant,
    ) -> Vec<(ProviderId, bool)> {
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .filter_map(|p| {
                let (due, silent) = self.silent_due_at(session, progress, p)?;
                (due <= now).then(|| (p.clone(), silent <= now))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> ProviderId {
        ProviderId::Peer(PeerId::random())
    }

    /// A provider whose round trip the session has measured.
    fn measured(session: &Session, provider: &ProviderId, source: ProviderSource, rtt_ms: u64) {
        session.add_provider(provider.clone(), source);
        session.record(
            provider,
            Outcome::Answered {
                rtt: Duration::from_millis(rtt_ms),
            },
        );
    }

    fn unmeasured(session: &Session, provider: &ProviderId) {
        session.add_provider(provider.clone(), ProviderSource::Hint);
    }

    fn asked(actions: &[Action], wanted: WantKind) -> Vec<ProviderId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Want { provider, kind } if *kind == wanted => Some(provider.clone()),
                _ => None,
            })
            .collect()
    }

    /// No bytes seen from anyone.
    struct Silent;
    impl BytesSeen for Silent {
        fn last_bytes(&self, _: &ProviderId) -> Option<std::time::Instant> {
            None
        }
    }

    /// Bytes last seen from one provider at one time.
    struct SeenAt(ProviderId, Instant);
    impl BytesSeen for SeenAt {
        fn last_bytes(&self, provider: &ProviderId) -> Option<std::time::Instant> {
            (*provider == self.0).then(|| self.1.into_std())
        }
    }

    fn planner(now: Instant) -> Planner {
        Planner::new(RetrievalConfig::default(), now)
    }

    #[test]
    fn an_unmeasured_provider_gets_one_probe_at_a_time() {
        let session = Session::new();
        let (fast, fresh) = (peer(), peer());
        measured(&session, &fast, ProviderSource::Hint, 20);
        unmeasured(&session, &fresh);
        let now = Instant::now();
        let first = planner(now).plan(&session, now);
        assert_eq!(asked(&first, WantKind::Have), vec![fresh.clone()]);
        // Another block of the same session, while the probe is out.
        let second = planner(now).plan(&session, now);
        assert!(
            !asked(&second, WantKind::Have).contains(&fresh),
            "asked again before its first answer: {second:?}"
        );
    }

    #[test]
    fn no_blind_want_block_while_a_measured_provider_can_take_it() {
        let session = Session::new();
        let (far, fresh) = (peer(), peer());
        measured(&session, &far, ProviderSource::Broadcast, 200);
        unmeasured(&session, &fresh);
        assert_eq!(session.ranked()[0], fresh, "the unmeasured one ranks first");
        let now = Instant::now();
        let actions = planner(now).plan(&session, now);
        assert_eq!(asked(&actions, WantKind::Block), vec![far]);
        assert_eq!(asked(&actions, WantKind::Have), vec![fresh]);
    }

    #[test]
    fn a_provider_that_delivered_in_another_session_gets_the_block_unprobed() {
        let (fresh, proven) = (peer(), peer());
        // A session still running (nothing folded into the peer book yet)
        // has just had a block from `proven`.
        let earlier = Session::new();
        earlier.add_provider(proven.clone(), ProviderSource::Hint);
        earlier.record(
            &proven,
            Outcome::Block {
                bytes: 8192,
                latency: Duration::from_millis(3),
            },
        );
        let session = Session::new();
        unmeasured(&session, &fresh);
        unmeasured(&session, &proven);
        assert!(session.is_unmeasured(&proven), "nothing seeded yet");
        assert_eq!(session.ranked()[0], fresh, "hinted first, ranks first");
        let now = Instant::now();
        let actions = planner(now).plan(&session, now);
        assert_eq!(asked(&actions, WantKind::Block), vec![proven.clone()]);
        assert_eq!(asked(&actions, WantKind::Have), vec![fresh.clone()]);
        // Its want is judged by its progress, as a measured one's: the
        // probed provider saying HAVE does not take the block over.
        let mut planner = planner(now);
        planner.plan(&session, now);
        let answered = now + Duration::from_millis(1);
        let have = WantEvent::Presence {
            provider: fresh,
            have: true,
        };
        planner.on_event(&session, have, answered);
        assert!(asked(&planner.plan(&session, answered), WantKind::Block).is_empty());
        drop(earlier);
    }

    /// Two measured providers; the block goes to one, the other is the
    /// alternative a hedge would ask. Returns (planner, asked, other, delay).
    fn asked_one_of_two(
        session: &Session,
        now: Instant,
    ) -> (Planner, ProviderId, ProviderId, Duration) {
        let (a, b) = (peer(), peer());
        measured(session, &a, ProviderSource::Hint, 100);
        measured(session, &b, ProviderSource::Hint, 100);
        let mut planner = planner(now);
        let blocks = asked(&planner.plan(session, now), WantKind::Block);
        assert_eq!(blocks.len(), 1);
        let target = blocks[0].clone();
        let other = if target == a { b } else { a };
        let delay = session.hedge_delay(&target);
        (planner, target, other, delay)
    }

    #[test]
    fn a_silent_provider_is_hedged_after_its_hedge_delay_and_not_before() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, _, other, delay) = asked_one_of_two(&session, t0);
        let early = t0 + delay - Duration::from_millis(1);
        planner.on_tick(&session, &Silent, early);
        assert!(asked(&planner.plan(&session, early), WantKind::Block).is_empty());
        let late = t0 + delay + Duration::from_millis(1);
        planner.on_tick(&session, &Silent, late);
        assert_eq!(
            asked(&planner.plan(&session, late), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn a_provider_still_sending_bytes_is_not_hedged() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, target, other, delay) = asked_one_of_two(&session, t0);
        let sending = SeenAt(target, t0 + delay / 2);
        let after_delay = t0 + delay + Duration::from_millis(1);
        planner.on_tick(&session, &sending, after_delay);
        assert!(
            asked(&planner.plan(&session, after_delay), WantKind::Block).is_empty(),
            "hedged a provider that sent bytes within its hedge delay"
        );
        let silent_since = t0 + delay / 2 + delay + Duration::from_millis(1);
        planner.on_tick(&session, &sending, silent_since);
        assert_eq!(
            asked(&planner.plan(&session, silent_since), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn a_silent_provider_is_stalled_and_new_wants_go_to_the_other() {
        let session = Session::new();
        let (stopped, other) = (peer(), peer());
        measured(&session, &stopped, ProviderSource::Hint, 10);
        measured(&session, &other, ProviderSource::Hint, 200);
        let t0 = Instant::now();
        let mut planner = planner(t0);
        let first = planner.plan(&session, t0);
        assert_eq!(asked(&first, WantKind::Block), vec![stopped.clone()]);
        let delay = session.hedge_delay(&stopped);
        let late = t0 + delay + Duration::from_millis(1);
        planner.on_tick(&session, &Silent, late);
        assert!(
            planner.take_stalled(),
            "the loop is told to wake the others"
        );
        assert!(!planner.take_stalled(), "once");
        assert!(session.stats_of(&stopped).unwrap().stalled);
        // The next block of the session: its want skips the stalled one,
        // though its record (one block's timeout) still ranks it well.
        let mut next = Planner::new(RetrievalConfig::default(), late);
        assert_eq!(
            asked(&next.plan(&session, late), WantKind::Block),
            vec![other]
        );
        // Life again (an answer): it is ranked on its record once more.
        session.record(
            &stopped,
            Outcome::Answered {
                rtt: Duration::from_millis(100),
            },
        );
        assert!(!session.stats_of(&stopped).unwrap().stalled);
    }

    #[test]
    fn every_want_at_a_stalled_provider_moves_when_one_fetch_finds_it() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut first, stopped, other, delay) = asked_one_of_two(&session, t0);
        // A second fetch asked the same provider later: on its own it
        // would wait a hedge delay from its own send.
        let t1 = t0 + delay / 2;
        let mut second = Planner::new(RetrievalConfig::default(), t1);
        second.state.block_targets.insert(stopped.clone());
        second.state.sent_at.insert(stopped.clone(), t1);
        let found = t0 + delay + Duration::from_millis(1);
        second.on_tick(&session, &Silent, found);
        assert!(
            asked(&second.plan(&session, found), WantKind::Block).is_empty(),
            "not due on its own yet"
        );
        first.on_tick(&session, &Silent, found);
        assert!(first.take_stalled());
        // Woken by the loop: it moves now, not a hedge delay after t1.
        second.on_tick(&session, &Silent, found);
        assert_eq!(
            asked(&second.plan(&session, found), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn one_tick_hedges_every_overdue_want() {
        let session = Session::new();
        let (a, b, c) = (peer(), peer(), peer());
        for p in [&a, &b, &c] {
            measured(&session, p, ProviderSource::Hint, 100);
        }
        let t0 = Instant::now();
        let mut planner = planner(t0);
        for p in [&a, &b] {
            planner.state.block_targets.insert(p.clone());
            planner.state.sent_at.insert(p.clone(), t0);
        }
        let late = t0 + session.hedge_delay(&a) + Duration::from_millis(1);
        planner.on_tick(&session, &Silent, late);
        assert!(planner.state.hedged.contains(&a) && planner.state.hedged.contains(&b));
        assert_eq!(
            asked(&planner.plan(&session, late), WantKind::Block),
            vec![c]
        );
    }

    #[test]
    fn a_failed_send_marks_the_provider_and_releases_its_want() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, gone, other, _) = asked_one_of_two(&session, t0);
        assert_eq!(session.stats_of(&gone).unwrap().in_flight, 1);
        planner.on_event(&session, WantEvent::Unreachable(gone.clone()), t0);
        let stats = session.stats_of(&gone).unwrap();
        assert!(stats.stalled);
        assert_eq!(stats.in_flight, 0, "its want no longer loads it");
        assert_eq!(
            asked(&planner.plan(&session, t0), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn a_want_twice_as_old_as_its_queue_explains_is_overdue_while_bytes_arrive() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, target, other, delay) = asked_one_of_two(&session, t0);
        // First in its provider's queue: twice a hedge delay is the backstop.
        let before = t0 + delay * 2 - Duration::from_millis(1);
        let sending = SeenAt(target.clone(), before);
        planner.on_tick(&session, &sending, before);
        assert!(asked(&planner.plan(&session, before), WantKind::Block).is_empty());
        let after = t0 + delay * 2 + Duration::from_millis(1);
        let sending = SeenAt(target, after);
        planner.on_tick(&session, &sending, after);
        assert_eq!(
            asked(&planner.plan(&session, after), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn with_nobody_else_to_ask_a_want_is_sent_again_each_time_after_twice_the_wait() {
        let session = Session::new();
        let only = peer();
        measured(&session, &only, ProviderSource::Hint, 100);
        let t0 = Instant::now();
        let mut planner = planner(t0);
        planner.plan(&session, t0);
        let delay = session.hedge_delay(&only);
        let t1 = t0 + delay + Duration::from_millis(1);
        assert_eq!(
            planner.on_tick(&session, &Silent, t1),
            vec![Action::Resend(only.clone())]
        );
        let one_delay_later = t1 + delay + Duration::from_millis(1);
        assert_eq!(planner.on_tick(&session, &Silent, one_delay_later), vec![]);
        let two_delays_later = t1 + delay * 2 + Duration::from_millis(1);
        assert_eq!(
            planner.on_tick(&session, &Silent, two_delays_later),
            vec![Action::Resend(only)]
        );
    }

    #[test]
    fn a_deep_gateway_queue_moves_to_a_measured_provider_that_says_have() {
        let session = Session::new();
        let gateway = ProviderId::Http("http://gateway.example".into());
        let fresh = peer();
        measured(&session, &gateway, ProviderSource::Hint, 20);
        for _ in 0..15 {
            // Earlier blocks of a burst, queued at the gateway.
            session.record(&gateway, Outcome::WantSent);
        }
        unmeasured(&session, &fresh);
        let t0 = Instant::now();
        let mut planner = planner(t0);
        let first = planner.plan(&session, t0);
        assert_eq!(asked(&first, WantKind::Block), vec![gateway]);
        assert_eq!(asked(&first, WantKind::Have), vec![fresh.clone()]);
        let answered = t0 + Duration::from_millis(20);
        let have = WantEvent::Presence {
            provider: fresh.clone(),
            have: true,
        };
        planner.on_event(&session, have, answered);
        assert_eq!(
            asked(&planner.plan(&session, answered), WantKind::Block),
            vec![fresh]
        );
    }

    #[test]
    fn when_every_provider_says_dont_have_the_search_widens() {
        let session = Session::new();
        let (a, b) = (peer(), peer());
        unmeasured(&session, &a);
        unmeasured(&session, &b);
        let now = Instant::now();
        let mut planner = planner(now);
        planner.use_routing(true, HintPolicy::First);
        let first = planner.plan(&session, now);
        assert_eq!(asked(&first, WantKind::Block).len(), 1);
        assert_eq!(asked(&first, WantKind::Have).len(), 1);
        for provider in [a, b] {
            let dont_have = WantEvent::Presence {
                provider,
                have: false,
            };
            planner.on_event(&session, dont_have, now);
        }
        assert!(planner.plan(&session, now).is_empty());
        assert!(planner.out_of_targets());
        assert_eq!(planner.widen(), Some(Search::Lookup));
        assert_eq!(planner.widen(), Some(Search::Broadcast));
        assert!(planner.broadcast(&session, []).is_empty());
        assert_eq!(planner.widen(), Some(Search::Lookup));
        assert_eq!(planner.widen(), None);
        assert!(planner.nothing_pending());
    }

    #[test]
    fn routing_waits_for_hints_only_under_the_first_policy() {
        let t0 = Instant::now();
        let delay = Duration::from_millis(RetrievalConfig::default().routing_delay_ms);
        let mut parallel = planner(t0);
        parallel.use_routing(true, HintPolicy::Parallel);
        assert!(parallel.routing_due(t0), "beside the hints, at once");
        assert!(!parallel.routing_due(t0), "once");
        let mut first = planner(t0);
        first.use_routing(true, HintPolicy::First);
        assert!(!first.routing_due(t0 + delay - Duration::from_millis(1)));
        assert!(first.routing_due(t0 + delay));
        let mut no_hints = planner(t0);
        no_hints.use_routing(false, HintPolicy::First);
        assert!(no_hints.routing_due(t0));
    }

    fn neighbour(blocks: u64, haves: u64, configured: bool, local: bool) -> Neighbour {
        Neighbour {
            peer: PeerId::random(),
            blocks,
            haves,
            configured,
            local,
        }
    }

    #[test]
    fn a_broadcast_skips_strangers_and_asks_who_delivered_first() {
        let stranger = neighbour(0, 0, false, false);
        let local = neighbour(0, 0, false, true);
        let configured = neighbour(0, 0, true, false);
        let said_have = neighbour(0, 3, false, false);
        let delivered_little = neighbour(2, 0, false, false);
        let delivered_most = neighbour(40, 1, false, false);
        let order = broadcast_candidates(vec![
            stranger.clone(),
            local.clone(),
            configured.clone(),
            said_have.clone(),
            delivered_little.clone(),
            delivered_most.clone(),
        ]);
        assert_eq!(
            order,
            vec![
                delivered_most.peer,
                delivered_little.peer,
                said_have.peer,
                configured.peer,
                local.peer
            ]
        );
        assert!(!order.contains(&stranger.peer));
    }

    #[test]
    fn a_broadcast_asks_at_most_max_broadcast_peers() {
        let session = Session::new();
        let now = Instant::now();
        let mut planner = planner(now);
        let many: Vec<PeerId> = (0..200).map(|_| PeerId::random()).collect();
        let actions = planner.broadcast(&session, many);
        assert_eq!(
            actions.len(),
            RetrievalConfig::default().max_broadcast_peers
        );
    }

    #[test]
    fn connected_peers_asked_in_a_broadcast_end_the_widening() {
        let session = Session::new();
        let now = Instant::now();
        let mut planner = planner(now);
        assert!(planner.out_of_targets());
        assert_eq!(planner.widen(), Some(Search::Broadcast));
        let connected = PeerId::random();
        let actions = planner.broadcast(&session, [connected]);
        assert_eq!(
            asked(&actions, WantKind::Have),
            vec![ProviderId::Peer(connected)]
        );
        assert!(!planner.nothing_pending());
        assert_eq!(planner.widen(), None);
    }

    #[test]
    fn a_bad_block_takes_its_provider_out_of_the_want_and_the_session() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, bad, other, _) = asked_one_of_two(&session, t0);
        planner.on_event(&session, WantEvent::BadBlock(bad.clone()), t0);
        assert!(!session.ranked().contains(&bad), "banned");
        assert_eq!(
            asked(&planner.plan(&session, t0), WantKind::Block),
            vec![other]
        );
    }

    #[test]
    fn a_block_ends_the_fetch() {
        let session = Session::new();
        let t0 = Instant::now();
        let (mut planner, target, _, _) = asked_one_of_two(&session, t0);
        let data = Bytes::from_static(b"block");
        let block = WantEvent::Block {
            provider: target.clone(),
            data: data.clone(),
        };
        assert_eq!(
            planner.on_event(&session, block, t0 + Duration::from_millis(5)),
            vec![Action::Deliver {
                data,
                provider: target
            }]
        );
    }

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
        assert!(asked(&gateway, 15).queued_far_behind(&session, &peer, Instant::now()));
        assert!(
            !asked(&gateway, 0).queued_far_behind(&session, &peer, Instant::now()),
            "next in line at the gateway"
        );
        assert!(
            !asked(&peer, 15).queued_far_behind(&session, &gateway, Instant::now()),
            "a Bitswap peer sends what it holds anyway"
        );
    }
}
