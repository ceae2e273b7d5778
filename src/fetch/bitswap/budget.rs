//! The bound on bytes of Bitswap messages that peers sent us and that are
//! not yet handed on, per peer and in total (`[bitswap]` in the config).
//!
//! Bytes are reserved as they arrive, before they are buffered, never as a
//! length prefix announces them: a peer that announces 4 MB and sends little
//! holds little. A message keeps its reservation until it has been decoded,
//! its blocks hashed and handed to the want logic. A peer that would pass its
//! own budget has every inbound stream reset and new ones refused for a
//! while (and is penalised in the peer book); when the total is spent,
//! readers wait for room, with the message timeout as the backstop. As long
//! as the per-peer budget is below the total, one peer cannot take it all.
//!
//! [`Ledger`] is the accounting, pure and synchronous; [`InboundBudget`]
//! puts it behind a lock, wakes waiting readers and does the side effects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::protocol::{FrameBudget, MAX_MESSAGE_SIZE};
use crate::metrics::Metrics;
use crate::session::{PeerBook, ProviderId};

/// Bitswap transport settings (`[bitswap]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BitswapConfig {
    /// Bytes of inbound messages one peer may have buffered (read, not yet
    /// verified and handed on); past it, its streams are reset.
    pub max_inbound_bytes_per_peer: u64,
    /// Bytes of inbound messages buffered for all peers together; past it,
    /// readers wait for room.
    pub max_inbound_bytes_total: u64,
    /// Streams one peer may have open to us at once; more are refused.
    pub max_inbound_streams_per_peer: usize,
    /// Seconds a message may take from its length prefix to its last byte.
    pub inbound_message_timeout_secs: u64,
    /// Seconds a peer that went over its budget is refused and not asked.
    pub over_budget_penalty_secs: u64,
}

impl Default for BitswapConfig {
    fn default() -> Self {
        BitswapConfig {
            max_inbound_bytes_per_peer: 32 * 1024 * 1024,
            max_inbound_bytes_total: 256 * 1024 * 1024,
            max_inbound_streams_per_peer: 64,
            inbound_message_timeout_secs: 60,
            over_budget_penalty_secs: 600,
        }
    }
}

/// A peer entry not needed for accounting or a penalty is dropped; this
/// many are kept before expired penalties are swept.
const SWEEP_ABOVE: usize = 10_000;

/// Whether a stream a peer opened may be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Read it; cancelled when the peer goes over its budget.
    Admitted(CancellationToken),
    TooManyStreams,
    /// The peer went over its budget recently.
    Penalised,
}

/// The answer to a request for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Granted,
    /// The peer is (or would be) over its own budget; `newly` the first
    /// time, when its streams were just told to reset.
    OverPeerBudget {
        newly: bool,
    },
    /// Every peer together has the total: wait for room.
    TotalSpent,
}

#[derive(Debug)]
struct PeerEntry {
    used: u64,
    streams: usize,
    penalised_until: Option<Instant>,
    /// Cancelled when the peer goes over its budget: its readers reset.
    reset: CancellationToken,
}

impl PeerEntry {
    fn new() -> PeerEntry {
        PeerEntry {
            used: 0,
            streams: 0,
            penalised_until: None,
            reset: CancellationToken::new(),
        }
    }

    fn penalised(&self, now: Instant) -> bool {
        self.penalised_until.is_some_and(|until| until > now)
    }

    fn idle(&self, now: Instant) -> bool {
        self.used == 0 && self.streams == 0 && !self.penalised(now)
    }
}

/// Who holds how many inbound bytes and streams.
#[derive(Debug)]
pub struct Ledger {
    per_peer: u64,
    total: u64,
    max_streams: usize,
    penalty: Duration,
    used: u64,
    peers: HashMap<PeerId, PeerEntry>,
}

impl Ledger {
    pub fn new(config: &BitswapConfig) -> Ledger {
        Ledger {
            per_peer: config.max_inbound_bytes_per_peer,
            total: config.max_inbound_bytes_total,
            max_streams: config.max_inbound_streams_per_peer,
            penalty: Duration::from_secs(config.over_budget_penalty_secs),
            used: 0,
            peers: HashMap::new(),
        }
    }

    /// Bytes reserved by every peer.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes reserved by `peer`.
    pub fn used_by(&self, peer: &PeerId) -> u64 {
        self.peers.get(peer).map_or(0, |e| e.used)
    }

    /// A stream `peer` opened: counted if admitted (undo with [`Ledger::close`]).
    pub fn admit(&mut self, peer: PeerId, now: Instant) -> Admission {
        if self.peers.len() > SWEEP_ABOVE {
            self.peers.retain(|_, e| !e.idle(now));
        }
        let entry = self.peers.entry(peer).or_insert_with(PeerEntry::new);
        if entry.penalised(now) {
            return Admission::Penalised;
        }
        if entry.penalised_until.take().is_some() {
            // The penalty is over: a fresh start, with a token not cancelled.
            entry.reset = CancellationToken::new();
        }
        if entry.streams >= self.max_streams {
            return Admission::TooManyStreams;
        }
        entry.streams += 1;
        Admission::Admitted(entry.reset.clone())
    }

    /// An admitted stream of `peer` ended.
    pub fn close(&mut self, peer: &PeerId, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.streams = entry.streams.saturating_sub(1);
        }
        self.forget_if_idle(peer, now);
    }

    /// Room for `bytes` more from `peer`. Over its budget, the peer is
    /// penalised and its streams' token cancelled.
    pub fn reserve(&mut self, peer: &PeerId, bytes: u64, now: Instant) -> Grant {
        let entry = self.peers.entry(*peer).or_insert_with(PeerEntry::new);
        if entry.penalised(now) {
            return Grant::OverPeerBudget { newly: false };
        }
        if entry.used.saturating_add(bytes) > self.per_peer {
            entry.penalised_until = Some(now + self.penalty);
            entry.reset.cancel();
            return Grant::OverPeerBudget { newly: true };
        }
        if self.used.saturating_add(bytes) > self.total {
            return Grant::TotalSpent;
        }
        entry.used += bytes;
        self.used += bytes;
        Grant::Granted
    }

    /// Gives back `bytes` reserved for `peer`.
    pub fn release(&mut self, peer: &PeerId, bytes: u64, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            let bytes = bytes.min(entry.used);
            entry.used -= bytes;
            self.used = self.used.saturating_sub(bytes);
        }
        self.forget_if_idle(peer, now);
    }

    fn forget_if_idle(&mut self, peer: &PeerId, now: Instant) {
        if self.peers.get(peer).is_some_and(|e| e.idle(now)) {
            self.peers.remove(peer);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("peer {peer} is over its inbound budget of {limit} bytes")]
    OverPeerBudget { peer: PeerId, limit: u64 },
}

/// The process's inbound budget, shared by every stream reader.
pub struct InboundBudget {
    ledger: Mutex<Ledger>,
    /// Woken whenever bytes are released.
    room: Notify,
    per_peer: u64,
    penalty: Duration,
    message_timeout: Duration,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyStreams,
    Penalised,
}

impl InboundBudget {
    pub fn new(config: &BitswapConfig) -> Arc<InboundBudget> {
        if config.max_inbound_bytes_per_peer < MAX_MESSAGE_SIZE as u64 {
            tracing::warn!(
                "[bitswap] max_inbound_bytes_per_peer is below one full message ({MAX_MESSAGE_SIZE} bytes): honest peers will be reset"
            );
        }
        if config.max_inbound_bytes_per_peer >= config.max_inbound_bytes_total {
            tracing::warn!(
                "[bitswap] max_inbound_bytes_per_peer is not below max_inbound_bytes_total: one peer can make every other wait"
            );
        }
        Arc::new(InboundBudget {
            ledger: Mutex::new(Ledger::new(config)),
            room: Notify::new(),
            per_peer: config.max_inbound_bytes_per_peer,
            penalty: Duration::from_secs(config.over_budget_penalty_secs),
            message_timeout: Duration::from_secs(config.inbound_message_timeout_secs.max(1)),
        })
    }

    /// Time a message may take from its length prefix to its last byte.
    pub fn message_timeout(&self) -> Duration {
        self.message_timeout
    }

    /// Admits a stream `peer` opened, or says why not.
    pub fn admit(self: &Arc<Self>, peer: PeerId) -> Result<StreamTicket, Refusal> {
        let admission = self.lock().admit(peer, Instant::now());
        match admission {
            Admission::Admitted(reset) => Ok(StreamTicket {
                budget: self.clone(),
                peer,
                reset,
            }),
            Admission::TooManyStreams => Err(Refusal::TooManyStreams),
            Admission::Penalised => Err(Refusal::Penalised),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock()
    }

    fn publish(ledger: &Ledger) {
        Metrics::global()
            .inbound_bytes_buffered
            .set(i64::try_from(ledger.used()).unwrap_or(i64::MAX));
    }

    /// Side effects of a peer going over its budget, once per penalty.
    fn over_budget(&self, peer: PeerId) {
        tracing::warn!(%peer, limit = self.per_peer, "bitswap peer over its inbound budget: streams reset, peer penalised");
        Metrics::global().inbound_budget_exceeded.inc();
        PeerBook::global().penalise_for(&ProviderId::Peer(peer), self.penalty);
    }
}

/// An admitted stream; dropping it ends the stream's count.
pub struct StreamTicket {
    budget: Arc<InboundBudget>,
    peer: PeerId,
    reset: CancellationToken,
}

impl StreamTicket {
    /// Cancelled when the peer goes over its budget: drop the stream then.
    pub fn reset(&self) -> &CancellationToken {
        &self.reset
    }

    /// An empty reservation, to fill as a message arrives.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.budget.clone(),
            peer: self.peer,
            bytes: 0,
        }
    }
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        self.budget.lock().close(&self.peer, Instant::now());
    }
}

/// Bytes one message holds of its peer's and the total budget, given back
/// when dropped.
pub struct Reservation {
    budget: Arc<InboundBudget>,
    peer: PeerId,
    bytes: u64,
}

impl Reservation {
    /// Takes `bytes` more, waiting while the total is spent.
    pub async fn grow(&mut self, bytes: u64) -> Result<(), BudgetError> {
        loop {
            // Registered before the check, so a release in between wakes it.
            let room = self.budget.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let grant = {
                let mut ledger = self.budget.lock();
                let grant = ledger.reserve(&self.peer, bytes, Instant::now());
                InboundBudget::publish(&ledger);
                grant
            };
            match grant {
                Grant::Granted => {
                    self.bytes += bytes;
                    return Ok(());
                }
                Grant::OverPeerBudget { newly } => {
                    if newly {
                        self.budget.over_budget(self.peer);
                    }
                    return Err(BudgetError::OverPeerBudget {
                        peer: self.peer,
                        limit: self.budget.per_peer,
                    });
                }
                Grant::TotalSpent => room.await,
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl FrameBudget for Reservation {
    async fn reserve(&mut self, bytes: usize) -> std::io::Result<()> {
        self.grow(bytes as u64).await.map_err(std::io::Error::other)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        {
            let mut ledger = self.budget.lock();
            ledger.release(&self.peer, self.bytes, Instant::now());
            InboundBudget::publish(&ledger);
        }
        self.budget.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_peer: u64, total: u64, streams: usize) -> BitswapConfig {
        BitswapConfig {
            max_inbound_bytes_per_peer: per_peer,
            max_inbound_bytes_total: total,
            max_inbound_streams_per_peer: streams,
            inbound_message_timeout_secs: 60,
            over_budget_penalty_secs: 10,
        }
    }

    #[test]
    fn a_peer_over_its_budget_is_reset_and_penalised() {
        let mut ledger = Ledger::new(&config(100, 1000, 8));
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        let Admission::Admitted(reset) = ledger.admit(peer, now) else {
            panic!("first stream admitted")
        };
        assert_eq!(ledger.reserve(&peer, 60, now), Grant::Granted);
        assert_eq!(ledger.reserve(&peer, 40, now), Grant::Granted);
        assert!(!reset.is_cancelled());
        assert_eq!(
            ledger.reserve(&peer, 1, now),
            Grant::OverPeerBudget { newly: true }
        );
        assert!(reset.is_cancelled(), "its streams are told to reset");
        assert_eq!(
            ledger.reserve(&peer, 1, now),
            Grant::OverPeerBudget { newly: false },
            "counted once"
        );
        assert_eq!(ledger.admit(peer, now), Admission::Penalised);
        // Another peer is not affected.
        assert!(matches!(ledger.admit(other, now), Admission::Admitted(_)));
        assert_eq!(ledger.reserve(&other, 100, now), Grant::Granted);
        // Releasing what it held frees the total but not the penalty.
        ledger.release(&peer, 100, now);
        ledger.close(&peer, now);
        assert_eq!(ledger.used(), 100);
        assert_eq!(ledger.admit(peer, now), Admission::Penalised);
        // After the penalty, a fresh start with a token not cancelled.
        let later = now + Duration::from_secs(11);
        let Admission::Admitted(fresh) = ledger.admit(peer, later) else {
            panic!("admitted after the penalty")
        };
        assert!(!fresh.is_cancelled());
        assert_eq!(ledger.reserve(&peer, 100, later), Grant::Granted);
    }

    #[test]
    fn the_total_makes_readers_wait_without_penalty() {
        let mut ledger = Ledger::new(&config(100, 150, 8));
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        assert_eq!(ledger.reserve(&a, 100, now), Grant::Granted);
        assert_eq!(ledger.reserve(&b, 60, now), Grant::TotalSpent);
        assert_eq!(ledger.used_by(&b), 0, "nothing taken while waiting");
        assert_eq!(ledger.reserve(&b, 50, now), Grant::Granted);
        ledger.release(&a, 100, now);
        assert_eq!(ledger.reserve(&b, 50, now), Grant::Granted);
        assert_eq!((ledger.used(), ledger.used_by(&b)), (100, 100));
    }

    #[test]
    fn streams_are_counted_per_peer_and_entries_forgotten() {
        let mut ledger = Ledger::new(&config(100, 1000, 2));
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(matches!(ledger.admit(peer, now), Admission::Admitted(_)));
        assert!(matches!(ledger.admit(peer, now), Admission::Admitted(_)));
        assert_eq!(ledger.admit(peer, now), Admission::TooManyStreams);
        assert!(matches!(
            ledger.admit(PeerId::random(), now),
            Admission::Admitted(_)
        ));
        ledger.close(&peer, now);
        assert!(matches!(ledger.admit(peer, now), Admission::Admitted(_)));
        ledger.close(&peer, now);
        ledger.close(&peer, now);
        assert!(
            !ledger.peers.contains_key(&peer),
            "an idle peer is forgotten"
        );
        // Releasing more than held (never happens) cannot underflow.
        ledger.release(&peer, 5, now);
        assert_eq!(ledger.used(), 0);
    }

    #[tokio::test]
    async fn a_reader_waiting_for_the_total_resumes_when_room_is_freed() {
        let budget = InboundBudget::new(&config(100, 150, 8));
        let (a, b) = (PeerId::random(), PeerId::random());
        let ticket_a = budget.admit(a).unwrap();
        let ticket_b = budget.admit(b).unwrap();
        let mut held = ticket_a.reservation();
        held.grow(100).await.unwrap();
        let mut waiting = ticket_b.reservation();
        let waiter = tokio::spawn(async move { waiting.grow(60).await.map(|()| waiting.bytes()) });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 60);
        // Its reservation was dropped with the task: everything is back.
        assert_eq!(budget.lock().used(), 0);
    }

    #[tokio::test]
    async fn going_over_the_budget_fails_the_read_and_resets_the_streams() {
        let budget = InboundBudget::new(&config(100, 1000, 8));
        let peer = PeerId::random();
        let first = budget.admit(peer).unwrap();
        let second = budget.admit(peer).unwrap();
        let mut one = first.reservation();
        one.grow(80).await.unwrap();
        let mut two = second.reservation();
        let error = two.grow(30).await.unwrap_err();
        assert!(error
            .to_string()
            .contains("over its inbound budget of 100 bytes"));
        assert!(first.reset().is_cancelled() && second.reset().is_cancelled());
        assert!(matches!(budget.admit(peer), Err(Refusal::Penalised)));
        assert!(PeerBook::global().is_banned(&ProviderId::Peer(peer)));
    }
}
