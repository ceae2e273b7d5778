//! Read-ahead budgets: the bytes of blocks fetched ahead of a response's
//! writer and not yet handed to its body, bounded per response and across
//! the process (`[limits] read_ahead_bytes_per_response`,
//! `read_ahead_bytes_total`).
//!
//! A walk reserves a block's expected size before it starts fetching it
//! ahead; the fetch runs in a task of its own (carrying the session), and
//! when the block arrives its reservation is corrected to the real size.
//! A block that turns out larger than expected and does not fit is dropped
//! at once and fetched again when the writer reaches it, so what is held
//! never exceeds the budgets. The block the writer needs next is fetched
//! whatever the budgets say (without read-ahead, a response still makes
//! progress), and new fetches start only when the body is polled: a
//! client that does not read stops its read-ahead. Any walk that streams
//! blocks in a known order (files, CAR walks, HAMT shards, archives) can
//! use [`ReadAheadBudget::fetch_ahead`] or [`ordered`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt};

use super::{BlockError, BlockService};
use crate::session;

/// What a budget allows: bytes held ahead by one response and by all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadLimits {
    pub per_response: u64,
    pub total: u64,
}

/// Whether `bytes` more may be held ahead, given what one response and the
/// whole process already hold.
pub fn admits(limits: ReadAheadLimits, response_used: u64, total_used: u64, bytes: u64) -> bool {
    response_used.saturating_add(bytes) <= limits.per_response
        && total_used.saturating_add(bytes) <= limits.total
}

struct Pool {
    limits: ReadAheadLimits,
    used: Mutex<u64>,
}

/// The process-wide budget; one per gateway. Cheap to clone.
#[derive(Clone)]
pub struct ReadAheadPool(Arc<Pool>);

impl ReadAheadPool {
    pub fn new(limits: ReadAheadLimits) -> ReadAheadPool {
        ReadAheadPool(Arc::new(Pool {
            limits,
            used: Mutex::new(0),
        }))
    }

    /// A budget for one response, drawing on this pool.
    pub fn response(&self) -> ReadAheadBudget {
        ReadAheadBudget(Arc::new(Response {
            pool: self.0.clone(),
            used: Mutex::new(0),
        }))
    }

    /// Bytes held ahead by every response together.
    pub fn used(&self) -> u64 {
        *lock(&self.0.used)
    }
}

struct Response {
    pool: Arc<Pool>,
    used: Mutex<u64>,
}

/// One response's budget, shared by every stream of its body (the parts
/// of a multi-range response, the levels of a file). Cheap to clone.
#[derive(Clone)]
pub struct ReadAheadBudget(Arc<Response>);

/// The counters are plain numbers updated under the lock: a poisoned lock
/// still holds a consistent one.
fn lock(counter: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    counter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReadAheadBudget {
    /// A budget of its own, with no pool behind it (for walks outside the
    /// gateway, and tests).
    pub fn standalone(limits: ReadAheadLimits) -> ReadAheadBudget {
        ReadAheadPool::new(limits).response()
    }

    /// Reserves `bytes` if both budgets have room.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        self.try_grow(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Bytes this response holds ahead.
    pub fn used(&self) -> u64 {
        *lock(&self.0.used)
    }

    fn try_grow(&self, bytes: u64) -> bool {
        // Lock order: the response, then the pool.
        let mut response = lock(&self.0.used);
        let mut total = lock(&self.0.pool.used);
        if !admits(self.0.pool.limits, *response, *total, bytes) {
            return false;
        }
        *response += bytes;
        *total += bytes;
        true
    }

    fn release(&self, bytes: u64) {
        let mut response = lock(&self.0.used);
        let mut total = lock(&self.0.pool.used);
        *response = response.saturating_sub(bytes);
        *total = total.saturating_sub(bytes);
    }

    /// Starts fetching `cid` ahead of the writer if `estimate` bytes fit the
    /// budgets; `None` when they do not (the caller fetches it when needed).
    pub fn fetch_ahead(
        &self,
        blocks: &BlockService,
        cid: Cid,
        estimate: u64,
    ) -> Option<AheadFetch> {
        let mut held = self.try_reserve(estimate)?;
        let blocks = blocks.clone();
        let task = session::spawn(async move {
            let block = blocks.get(&cid).await?;
            // Dropped now rather than held over the budget: the writer
            // fetches it again (a cache hit if it came from the network).
            Ok(held.fit(block.len() as u64).then_some((block, held)))
        });
        Some(AheadFetch(task))
    }
}

/// Bytes reserved against a response's budget and the pool, released when
/// dropped.
pub struct Reservation {
    budget: ReadAheadBudget,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Corrects the reservation to a block's real size: shrinks, or grows
    /// if the budgets have room; false (and unchanged) when they have not.
    pub fn fit(&mut self, actual: u64) -> bool {
        if actual <= self.bytes {
            self.budget.release(self.bytes - actual);
        } else if !self.budget.try_grow(actual - self.bytes) {
            return false;
        }
        self.bytes = actual;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// The block with the bytes it holds against the budget, `None` if it
/// was dropped, or the fetch's error.
type FetchOutcome = Result<Option<(Bytes, Reservation)>, BlockError>;

/// A block being fetched ahead in its own task, holding its reservation
/// until taken; aborted when dropped.
pub struct AheadFetch(tokio::task::JoinHandle<Option<FetchOutcome>>);

impl AheadFetch {
    /// The fetched block (its bytes leave the budget: they are the
    /// writer's now), its fetch's error, or `None` when it must be fetched
    /// again (it did not fit, or the task ended without it).
    pub async fn take(mut self) -> Option<Result<Bytes, BlockError>> {
        match (&mut self.0).await {
            Ok(Some(Ok(Some((block, _held))))) => Some(Ok(block)),
            Ok(Some(Err(e))) => Some(Err(e)),
            _ => None,
        }
    }

    /// Takes the block, or fetches it now if it has to be fetched again.
    pub async fn take_or_fetch(
        self,
        blocks: &BlockService,
        cid: &Cid,
    ) -> Result<Bytes, BlockError> {
        match self.take().await {
            Some(fetched) => fetched,
            None => blocks.get(cid).await,
        }
    }
}

impl Drop for AheadFetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Most blocks [`ordered`] fetches ahead, whatever their size.
const ORDERED_AHEAD: usize = 16;

/// Fetches `cids` in order within `budget`, reserving `estimate` bytes for
/// each block fetched ahead; yields each block with its CID.
pub fn ordered(
    blocks: BlockService,
    budget: ReadAheadBudget,
    cids: Vec<Cid>,
    estimate: u64,
) -> BoxStream<'static, Result<(Cid, Bytes), BlockError>> {
    let queue: VecDeque<(Cid, Option<AheadFetch>)> = cids.into_iter().map(|c| (c, None)).collect();
    stream::try_unfold(queue, move |mut queue| {
        let (blocks, budget) = (blocks.clone(), budget.clone());
        async move {
            let Some((cid, fetch)) = queue.pop_front() else {
                return Ok(None);
            };
            for (next, slot) in queue.iter_mut().take(ORDERED_AHEAD) {
                if slot.is_none() {
                    match budget.fetch_ahead(&blocks, *next, estimate) {
                        Some(started) => *slot = Some(started),
                        None => break,
                    }
                }
            }
            let block = match fetch {
                Some(fetch) => fetch.take_or_fetch(&blocks, &cid).await?,
                None => blocks.get(&cid).await?,
            };
            Ok(Some(((cid, block), queue)))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadAheadLimits = ReadAheadLimits {
        per_response: 100,
        total: 150,
    };

    #[test]
    fn admits_within_both_limits_only() {
        assert!(admits(LIMITS, 0, 0, 100));
        assert!(!admits(LIMITS, 0, 0, 101));
        assert!(admits(LIMITS, 50, 100, 50));
        assert!(!admits(LIMITS, 50, 101, 50));
        assert!(!admits(LIMITS, 0, 0, u64::MAX));
    }

    #[test]
    fn reservations_count_against_the_response_and_the_pool() {
        let pool = ReadAheadPool::new(LIMITS);
        let (a, b) = (pool.response(), pool.response());
        let held_a = a.try_reserve(100).expect("fits");
        assert!(a.try_reserve(1).is_none(), "response full");
        let held_b = b.try_reserve(50).expect("fits the pool");
        assert!(b.try_reserve(1).is_none(), "pool full");
        assert_eq!(pool.used(), 150);
        drop(held_a);
        assert_eq!((a.used(), pool.used()), (0, 50));
        assert!(b.try_reserve(50).is_some());
        drop(held_b);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn fit_shrinks_and_grows_only_with_room() {
        let budget = ReadAheadBudget::standalone(LIMITS);
        let mut held = budget.try_reserve(60).unwrap();
        assert!(held.fit(10));
        assert_eq!(budget.used(), 10);
        let other = budget.try_reserve(80).unwrap();
        assert!(!held.fit(30), "no room to grow");
        assert_eq!((held.bytes(), budget.used()), (10, 90));
        drop(other);
        assert!(held.fit(100));
        assert_eq!(budget.used(), 100);
    }
}
