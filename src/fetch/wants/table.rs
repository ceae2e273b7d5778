//! The shared want table: one network want per CID however many
//! sessions want it. Every fetch of a CID joins its entry and reads the
//! answers it fans out; none of its providers is asked twice; when the last
//! waiter stops waiting (done, or its session ended), CANCEL goes to every
//! peer that was asked and HTTP requests in flight are aborted. What
//! Bitswap peers send is routed here to the entries waiting for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};

use cid::Cid;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit};
use tokio::task::AbortHandle;

use super::Inner;
use crate::fetch::bitswap::peer::Inbound;
use crate::fetch::{count_bad_block, WantEvent, WantKind};
use crate::metrics::BlockOrigin;
use crate::session::{PeerBook, ProviderId};

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
    pub(super) inner: Arc<Inner>,
    pub(super) cid: Cid,
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
        for (provider, kind) in entry.asked {
            if let ProviderId::Peer(peer) = provider {
                self.inner.outbound.cancel(peer, &self.cid, kind);
            }
        }
    }
}

/// Routes what Bitswap peers send to the wants waiting for it.
pub(super) async fn dispatch(inner: Weak<Inner>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(event) = inbound.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let wants = inner.wants.lock().expect("poisoned");
        match event {
            Inbound::Block { peer, cid, data } => {
                let provider = ProviderId::Peer(peer);
                if let Some(entry) = wants.get(&cid) {
                    // `cid` was computed by hashing these bytes as they came
                    // off the wire (`protocol::cid_of_block`): a want under the
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
