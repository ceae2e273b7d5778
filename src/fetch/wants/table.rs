//! The shared want table: one network want per CID however many
//! sessions want it. Every fetch of a CID joins its entry and reads the
//! answers it fans out; none of its providers is asked twice; when the last
//! waiter stops waiting (done, or its session ended), CANCEL goes to every
//! peer that was asked and HTTP requests in flight are aborted. What
//! Bitswap peers send is routed here to the entries waiting for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};

use cid::Cid;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::fetch::bitswap::peer::{Inbound, Outbound};
use crate::fetch::{count_bad_block, FetchError, WantEvent, WantKind};
use crate::metrics::BlockOrigin;
use crate::session::{PeerBook, ProviderId};

/// The wants in flight, process-wide.
pub(super) struct WantTable {
    wants: Mutex<HashMap<Cid, WantEntry>>,
    /// CIDs wanted until recently: a copy of one arriving late (a hedged or
    /// re-sent want answered twice) is expected, not a sign of a bad peer.
    recently_wanted: Mutex<RecentCids>,
    /// One per CID wanted (`[retrieval] max_pending_wants`).
    slots: Arc<Semaphore>,
    /// Where CANCEL goes when a want ends.
    outbound: Arc<Outbound>,
}

impl WantTable {
    pub(super) fn new(outbound: Arc<Outbound>, max_pending_wants: usize) -> Arc<WantTable> {
        Arc::new(WantTable {
            wants: Mutex::default(),
            recently_wanted: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_pending_wants)),
            outbound,
        })
    }

    /// Joins the want for `cid`, or starts it once a slot is free.
    pub(super) async fn register(
        self: &Arc<Self>,
        cid: Cid,
        deadline: Instant,
    ) -> Result<(broadcast::Receiver<WantEvent>, WantGuard), FetchError> {
        let joined = self.join(cid, None);
        if let Some(joined) = joined {
            return Ok(joined);
        }
        let started = Instant::now();
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                tracing::warn!(%cid, "no want slot free: [retrieval] max_pending_wants reached");
                FetchError::Timeout {
                    cid,
                    after: started.elapsed(),
                    search: "waiting for a want slot: [retrieval] max_pending_wants reached".into(),
                }
            })?;
        Ok(self.join(cid, Some(slot)).expect("a slot starts a want"))
    }

    /// Joins the want for `cid` if there is one; with a slot, starts it.
    fn join(
        self: &Arc<Self>,
        cid: Cid,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Option<(broadcast::Receiver<WantEvent>, WantGuard)> {
        let mut wants = self.wants.lock();
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
                table: self.clone(),
                cid,
            },
        ))
    }

    /// The entries, locked.
    pub(super) fn entries(&self) -> MutexGuard<'_, HashMap<Cid, WantEntry>> {
        self.wants.lock()
    }

    /// Lets `provider` be asked for `cid` again.
    pub(super) fn forget_asked(&self, cid: &Cid, provider: &ProviderId) {
        if let Some(entry) = self.entries().get_mut(cid) {
            entry.asked.remove(provider);
        }
    }
}

/// True if a provider asked `before` for a block (if at all) is to be
/// asked `kind` now: nobody is asked the same twice, and WANT_HAVE adds
/// nothing to a WANT_BLOCK.
fn asks_more(before: Option<WantKind>, kind: WantKind) -> bool {
    match before {
        None => true,
        Some(WantKind::Block) => false,
        Some(WantKind::Have) => kind == WantKind::Block,
    }
}

pub(super) struct WantEntry {
    pub(super) events: broadcast::Sender<WantEvent>,
    /// Live waiters (sessions) on this CID.
    pub(super) waiters: usize,
    /// What each provider has been asked, so none is asked twice.
    pub(super) asked: HashMap<ProviderId, WantKind>,
    /// HTTP requests in flight for this CID.
    pub(super) http_requests: Vec<AbortHandle>,
    /// This want's share of `max_pending_wants`, released with the entry.
    pub(super) _slot: OwnedSemaphorePermit,
}

impl WantEntry {
    /// Notes that `provider` is asked `kind`; false if it was asked at
    /// least as much already.
    pub(super) fn ask(&mut self, provider: &ProviderId, kind: WantKind) -> bool {
        if !asks_more(self.asked.get(provider).copied(), kind) {
            return false;
        }
        self.asked.insert(provider.clone(), kind);
        true
    }
}

/// A bounded set of the most recently finished wants.
#[derive(Default)]
pub(super) struct RecentCids {
    order: VecDeque<Cid>,
    set: HashSet<Cid>,
}

impl RecentCids {
    const CAPACITY: usize = 16_384;

    pub(super) fn insert(&mut self, cid: Cid) {
        if self.set.insert(cid) {
            self.order.push_back(cid);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    pub(super) fn contains(&self, cid: &Cid) -> bool {
        self.set.contains(cid)
    }
}

/// Removes a waiter when dropped; the last one cancels the want everywhere.
pub(super) struct WantGuard {
    table: Arc<WantTable>,
    cid: Cid,
}

impl Drop for WantGuard {
    fn drop(&mut self) {
        let mut wants = self.table.entries();
        let Some(entry) = wants.get_mut(&self.cid) else {
            return;
        };
        entry.waiters -= 1;
        if entry.waiters > 0 {
            return;
        }
        let entry = wants.remove(&self.cid).expect("present");
        self.table.recently_wanted.lock().insert(self.cid);
        for request in entry.http_requests {
            request.abort();
        }
        for (provider, kind) in entry.asked {
            if let ProviderId::Peer(peer) = provider {
                self.table.outbound.cancel(peer, &self.cid, kind);
            }
        }
    }
}

/// Routes what Bitswap peers send to the wants waiting for it.
pub(super) async fn dispatch(
    table: Weak<WantTable>,
    mut inbound: mpsc::UnboundedReceiver<Inbound>,
) {
    while let Some(event) = inbound.recv().await {
        let Some(table) = table.upgrade() else { return };
        let wants = table.entries();
        match event {
            Inbound::Block { peer, cid, data } => {
                let provider = ProviderId::Peer(peer);
                if let Some(entry) = wants.get(&cid) {
                    // `cid` was computed by hashing these bytes as they came
                    // off the wire (`protocol::cid_of_block`): a want under the
                    // exact same CID is answered by them, no second hash needed.
                    let _ = entry.events.send(WantEvent::Block { provider, data });
                } else if !table.recently_wanted.lock().contains(&cid) {
                    let asked_for_blocks: Vec<&WantEntry> = wants
                        .values()
                        .filter(|e| e.asked.get(&provider) == Some(&WantKind::Block))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_never_asked_the_same_twice() {
        use WantKind::{Block, Have};
        assert!(asks_more(None, Have));
        assert!(asks_more(None, Block));
        assert!(asks_more(Some(Have), Block), "a block after its presence");
        assert!(!asks_more(Some(Have), Have));
        assert!(!asks_more(Some(Block), Block));
        assert!(!asks_more(Some(Block), Have), "WANT_HAVE adds nothing");
    }
}
