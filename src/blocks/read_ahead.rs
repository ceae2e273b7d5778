//! Read-ahead budgets: the bytes of blocks fetched ahead of a response's
//! writer and not yet handed to its body, bounded per response and across
//! the process (`[limits] read_ahead_bytes_per_response`,
//! `read_ahead_bytes_total`).
//!
//! A walk reserves a block's expected size (what its parent declares, or
//! the largest block seen) before it starts fetching it ahead (a
//! [`Prefetcher`] runs the fetches, inside the request's session), and when
//! the block arrives its reservation is corrected to the real size.
//! A block that turns out larger than expected and does not fit is dropped
//! at once and fetched again when the writer reaches it, so what is held
//! never exceeds the budgets. The block the writer needs next is fetched
//! whatever the budgets say (without read-ahead, a response still makes
//! progress), and new fetches start only when the body is polled: a
//! client that does not read stops its read-ahead. Any walk that streams
//! blocks in a known order (files, CAR walks, HAMT shards, archives) can
//! use a [`Prefetcher`], or [`ordered`] for a list of CIDs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use parking_lot::Mutex;

use super::{BlockError, BlockService};
use crate::metrics::Metrics;
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
        *self.0.used.lock()
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

fn gauge(bytes: u64) -> i64 {
    bytes.try_into().unwrap_or(i64::MAX)
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
        *self.0.used.lock()
    }

    fn try_grow(&self, bytes: u64) -> bool {
        // Lock order: the response, then the pool.
        let mut response = self.0.used.lock();
        let mut total = self.0.pool.used.lock();
        if !admits(self.0.pool.limits, *response, *total, bytes) {
            return false;
        }
        *response += bytes;
        *total += bytes;
        Metrics::global().read_ahead_bytes.inc_by(gauge(bytes));
        true
    }

    fn release(&self, bytes: u64) {
        let mut response = self.0.used.lock();
        let mut total = self.0.pool.used.lock();
        *response = response.saturating_sub(bytes);
        *total = total.saturating_sub(bytes);
        Metrics::global().read_ahead_bytes.dec_by(gauge(bytes));
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

/// Identifies a fetch started by a [`Prefetcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchId(u64);

/// A fetched block with the bytes it holds against the budget (none for
/// the block the writer needs), `None` if it was dropped for not fitting,
/// or the fetch's error.
type FetchOutcome = Result<Option<(Bytes, Option<Reservation>)>, BlockError>;

/// Where a [`Prefetcher`]'s fetches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchTasks {
    /// Inside the walk's own task, polled whenever it waits for a block,
    /// and first polled in the order they were started: providers serve
    /// wants in the order they arrive, so wants out of order would hold up
    /// the in-order body.
    InOrder,
    /// Each in a task of its own (carrying the session), so hashing the
    /// blocks read from a store uses every core; they start in no set order
    /// (tokio runs the newest spawned task first).
    Spawned,
}

/// The fetches one walk has started ahead of its writer. Dropping it
/// drops (or aborts) every fetch and what it holds.
pub struct Prefetcher {
    blocks: BlockService,
    budget: ReadAheadBudget,
    tasks: FetchTasks,
    running: FuturesUnordered<BoxFuture<'static, (FetchId, FetchOutcome)>>,
    done: HashMap<FetchId, FetchOutcome>,
    abandoned: HashSet<FetchId>,
    next_id: u64,
}

impl Prefetcher {
    pub fn new(blocks: BlockService, budget: ReadAheadBudget, tasks: FetchTasks) -> Prefetcher {
        Prefetcher {
            blocks,
            budget,
            tasks,
            running: FuturesUnordered::new(),
            done: HashMap::new(),
            abandoned: HashSet::new(),
            next_id: 0,
        }
    }

    /// Starts fetching `cid` ahead of the writer if `estimate` bytes fit
    /// the budgets; `None` when they do not.
    pub fn start(&mut self, cid: Cid, estimate: u64) -> Option<FetchId> {
        let held = self.budget.try_reserve(estimate)?;
        Some(self.push(cid, Some(held)))
    }

    /// Starts fetching `cid`, the block the writer needs next, whatever the
    /// budgets say: without read-ahead a response still makes progress.
    pub fn start_needed(&mut self, cid: Cid) -> FetchId {
        self.push(cid, None)
    }

    fn push(&mut self, cid: Cid, held: Option<Reservation>) -> FetchId {
        let id = FetchId(self.next_id);
        self.next_id += 1;
        let blocks = self.blocks.clone();
        let fetch = async move {
            blocks.get(&cid).await.map(|block| match held {
                None => Some((block, None)),
                // Dropped now rather than held over the budget: the writer
                // fetches it again (a cache hit if it came from the network).
                Some(mut held) => held.fit(block.len() as u64).then_some((block, Some(held))),
            })
        };
        match self.tasks {
            FetchTasks::InOrder => self
                .running
                .push(Box::pin(async move { (id, fetch.await) })),
            FetchTasks::Spawned => {
                let task = AbortOnDrop(session::spawn(fetch));
                self.running.push(Box::pin(async move {
                    // A task that ended without its block (the session
                    // ended, or it panicked) is fetched again if needed.
                    (id, task.await.ok().flatten().unwrap_or(Ok(None)))
                }))
            }
        }
        id
    }

    /// The block of fetch `id` (fetched again if it was dropped); its bytes
    /// leave the budget, as they are the writer's now.
    pub async fn take(&mut self, id: FetchId, cid: &Cid) -> Result<Bytes, BlockError> {
        self.poll_running().await;
        let outcome = match self.done.remove(&id) {
            Some(outcome) => Some(outcome),
            None => loop {
                match self.running.next().await {
                    Some((got, outcome)) if got == id => break Some(outcome),
                    Some((got, outcome)) => {
                        if !self.abandoned.remove(&got) {
                            self.done.insert(got, outcome);
                        }
                    }
                    None => break None,
                }
            },
        };
        match outcome {
            Some(Ok(Some((block, _held)))) => Ok(block),
            Some(Err(e)) => Err(e),
            Some(Ok(None)) | None => self.blocks.get(cid).await,
        }
    }

    /// Polls every fetch once without waiting, so the ones just started
    /// begin now (their requests go out) even when the block asked for is
    /// already here.
    async fn poll_running(&mut self) {
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some((got, outcome))) = self.running.poll_next_unpin(cx) {
                if !self.abandoned.remove(&got) {
                    self.done.insert(got, outcome);
                }
            }
            Poll::Ready(())
        })
        .await
    }

    /// Forgets fetch `id`: what it brings is dropped when it arrives.
    pub fn abandon(&mut self, id: FetchId) {
        if self.done.remove(&id).is_none() {
            self.abandoned.insert(id);
        }
    }
}

/// A spawned fetch, aborted when dropped with the walk.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
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
    let queue: VecDeque<(Cid, Option<FetchId>)> = cids.into_iter().map(|c| (c, None)).collect();
    let prefetcher = Prefetcher::new(blocks, budget, FetchTasks::InOrder);
    stream::try_unfold(
        (queue, prefetcher),
        move |(mut queue, mut prefetcher)| async move {
            let Some((cid, fetch)) = queue.pop_front() else {
                return Ok(None);
            };
            let id = fetch.unwrap_or_else(|| prefetcher.start_needed(cid));
            for (next, slot) in queue.iter_mut().take(ORDERED_AHEAD) {
                if slot.is_none() {
                    match prefetcher.start(*next, estimate) {
                        Some(started) => *slot = Some(started),
                        None => break,
                    }
                }
            }
            let block = prefetcher.take(id, &cid).await?;
            Ok(Some(((cid, block), (queue, prefetcher))))
        },
    )
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
