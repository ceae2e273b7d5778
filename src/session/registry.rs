//! The sessions alive in this process, for `/debug/sessions`, the gauge
//! and the live-session bound.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Mutex, MutexGuard};

use super::{Session, SessionInner};

/// Sessions alive in this process, for `/debug/sessions` and the gauge.
/// Sharded by id: every request registers one, so a single lock would be
/// contended by every worker thread.
struct LiveSessions {
    shards: [Mutex<HashMap<u64, Weak<SessionInner>>>; 16],
}

impl LiveSessions {
    fn shard(&self, id: u64) -> MutexGuard<'_, HashMap<u64, Weak<SessionInner>>> {
        self.shards[(id % 16) as usize].lock()
    }
}

fn live() -> &'static LiveSessions {
    static LIVE: OnceLock<LiveSessions> = OnceLock::new();
    LIVE.get_or_init(|| LiveSessions {
        shards: std::array::from_fn(|_| Mutex::default()),
    })
}

/// Adds a new session to the registry.
pub(super) fn register(inner: &Arc<SessionInner>) {
    live()
        .shard(inner.id)
        .insert(inner.id, Arc::downgrade(inner));
}

/// Removes an ending session from the registry.
pub(super) fn deregister(id: u64) {
    live().shard(id).remove(&id);
}

/// Number of sessions alive in this process.
pub fn live_count() -> usize {
    live().shards.iter().map(|s| s.lock().len()).sum()
}

/// The sessions alive in this process.
pub fn live_sessions() -> Vec<Session> {
    live()
        .shards
        .iter()
        .flat_map(|shard| {
            let shard = shard.lock();
            shard
                .values()
                .filter_map(|w| w.upgrade().map(Session))
                .collect::<Vec<_>>()
        })
        .collect()
}
