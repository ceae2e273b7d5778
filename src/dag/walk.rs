//! Walking a DAG for a CAR response: the blocks that prove a path, then the
//! blocks of the requested scope, depth-first in link order, with the next
//! blocks of the walk fetched ahead within the response's read-ahead
//! budget. Without duplicates (`dups=n`) every walk (each scope, file
//! entities, HAMT listings) skips what it has already sent, so a DAG
//! linking one child many times costs one visit per distinct block (one
//! that links a child twice at each of 30 levels costs 31 visits, not
//! 2^30); with them, the request's block cap ends the repeats.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::{links_of, DagError, Node, ResolvedPath};
use crate::blocks::read_ahead::{self, FetchId, FetchTasks, Prefetcher, ReadAheadBudget};
use crate::blocks::{BlockError, BlockService};
use crate::unixfs::{file_size, file_stream, hamt_list, Repeats, UnixfsNode};
use crate::verify::MAX_BLOCK_SIZE;

/// Bound on the depth of a depth-first walk.
const MAX_WALK_DEPTH: usize = 4096;
/// Bound on the links a depth-first walk holds to visit later (about
/// 27 MiB of state): far more than the widest real DAGs need (a 2 MiB
/// directory block has about 50,000 links), far less than nested blocks
/// of 50,000 links each would pile up.
const MAX_WALK_PENDING: usize = 1 << 18;

/// Most blocks a depth-first walk fetches ahead of the one it is emitting
/// (the bytes they hold are the budget's to bound). Every one is on the
/// walk's stack, so it will be emitted (or skipped as already seen); none
/// is fetched for nothing.
const WALK_AHEAD: usize = 16;

/// Bytes expected of a block whose size nothing declares, until the walk
/// has met a larger one: the common chunk size of files (1 MiB) and some
/// framing. A larger block is accounted at its real size when it arrives.
const UNKNOWN_BLOCK_ESTIMATE: u64 = 1024 * 1024 + 1024;

/// Bytes expected of a HAMT shard (256 links with names: about 16 KiB).
const SHARD_ESTIMATE: u64 = 64 * 1024;

/// How much of the DAG under the path's end a CAR carries (`dag-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagScope {
    /// Only the block the path names.
    Block,
    /// What is needed to read the entity: a whole file (or the range in
    /// `entity-bytes`), a directory's node and its HAMT shards, or a block.
    Entity,
    /// The whole DAG.
    All,
}

/// `entity-bytes=from:to`: `to` is inclusive, `None` means `*`, negative
/// numbers count from the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityBytes {
    pub from: i64,
    pub to: Option<i64>,
}

impl EntityBytes {
    /// The half-open byte range this selects in a file of `size` bytes.
    pub fn to_range(self, size: u64) -> (u64, u64) {
        let size_i = size as i128;
        let absolute = |n: i64| if n < 0 { size_i + n as i128 } else { n as i128 };
        let from = absolute(self.from).clamp(0, size_i) as u64;
        let to_exclusive = match self.to {
            None => size,
            Some(to) => (absolute(to) + 1).clamp(0, size_i) as u64,
        };
        (from, to_exclusive.max(from))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub scope: DagScope,
    pub entity_bytes: Option<EntityBytes>,
    /// `dups=y`: send a block again each time the walk meets it.
    pub duplicates: bool,
}

/// Every block a CAR for `resolved` must hold, in order; blocks fetched
/// ahead hold their bytes against `budget` until yielded.
pub fn walk_blocks(
    blocks: BlockService,
    budget: ReadAheadBudget,
    resolved: ResolvedPath,
    options: WalkOptions,
) -> BoxStream<'static, Result<(Cid, Bytes), DagError>> {
    let path_blocks = {
        let blocks = blocks.clone();
        stream::iter(resolved.path_blocks.clone()).then(move |cid| {
            let blocks = blocks.clone();
            async move { Ok((cid, blocks.get(&cid).await?)) }
        })
    };
    let terminal = scope_blocks(blocks, budget, resolved, options);
    let all = path_blocks.chain(terminal);
    if options.duplicates {
        return all.boxed();
    }
    let mut seen = HashSet::new();
    all.try_filter(move |(cid, _)| std::future::ready(seen.insert(*cid)))
        .boxed()
}

fn scope_blocks(
    blocks: BlockService,
    budget: ReadAheadBudget,
    resolved: ResolvedPath,
    options: WalkOptions,
) -> BoxStream<'static, Result<(Cid, Bytes), DagError>> {
    let ResolvedPath {
        cid, block, node, ..
    } = resolved;
    let is_file = matches!(
        node,
        Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. }))
    );
    match options.scope {
        DagScope::Block => stream::once(async move { Ok((cid, block)) }).boxed(),
        DagScope::Entity if is_file => {
            let range = match file_size(&cid, &node) {
                Ok(size) => options
                    .entity_bytes
                    .map_or((0, size), |eb| eb.to_range(size)),
                Err(e) => return stream::once(async move { Err(e) }).boxed(),
            };
            let repeats = if options.duplicates {
                Repeats::Visit
            } else {
                Repeats::Skip
            };
            file_stream(blocks, budget, cid, block, range, repeats)
                .map_ok(|visited| (visited.cid, visited.block))
                .boxed()
        }
        DagScope::Entity if matches!(node, Node::Pb(_, Some(UnixfsNode::HamtShard { .. }))) => {
            stream::once(async move {
                hamt_list(&blocks, &cid, &node)
                    .await
                    .map(|(_, shards)| (blocks, shards))
            })
            .map_ok(move |(blocks, shards)| {
                read_ahead::ordered(blocks, budget.clone(), shards, SHARD_ESTIMATE)
                    .map_err(DagError::from)
            })
            .try_flatten()
            .boxed()
        }
        DagScope::Entity => stream::once(async move { Ok((cid, block)) }).boxed(),
        DagScope::All => depth_first(blocks, budget, cid, block, options.duplicates),
    }
}

struct DepthFirst {
    prefetcher: Prefetcher,
    /// The largest block met so far: what the next unknown one is expected to take.
    largest: u64,
    /// Next CIDs to visit with their depth; the top is the end.
    stack: Vec<(Cid, usize)>,
    seen: HashSet<Cid>,
    duplicates: bool,
    first: Option<(Cid, Bytes)>,
    /// Fetches started for CIDs near the top of the stack.
    ahead: HashMap<Cid, FetchId>,
}

impl DepthFirst {
    /// Starts fetches for the next `WALK_AHEAD` CIDs the walk will visit,
    /// while the budget has room. Runs only when the body asks for more, so
    /// a client that stops reading stops it.
    fn fetch_ahead(&mut self) {
        let estimate = self
            .largest
            .clamp(UNKNOWN_BLOCK_ESTIMATE, MAX_BLOCK_SIZE as u64);
        for (cid, _) in self.stack.iter().rev().take(WALK_AHEAD) {
            if self.ahead.len() >= WALK_AHEAD {
                break;
            }
            if self.ahead.contains_key(cid) || (!self.duplicates && self.seen.contains(cid)) {
                continue;
            }
            match self.prefetcher.start(*cid, estimate) {
                Some(id) => self.ahead.insert(*cid, id),
                None => break,
            };
        }
    }

    /// The block the walk visits next: asked for before the ones after it
    /// (if not already), whatever the budget says, then the walk's next
    /// blocks are fetched ahead.
    async fn get(&mut self, cid: &Cid) -> Result<Bytes, BlockError> {
        let id = match self.ahead.remove(cid) {
            Some(id) => id,
            None => self.prefetcher.start_needed(*cid),
        };
        self.fetch_ahead();
        let block = self.prefetcher.take(id, cid).await?;
        self.largest = self.largest.max(block.len() as u64);
        Ok(block)
    }
}

fn depth_first(
    blocks: BlockService,
    budget: ReadAheadBudget,
    root: Cid,
    root_block: Bytes,
    duplicates: bool,
) -> BoxStream<'static, Result<(Cid, Bytes), DagError>> {
    let state = DepthFirst {
        // Spawned, as this walk always was: blocks read from a store are
        // hashed on every core.
        prefetcher: Prefetcher::new(blocks, budget, FetchTasks::Spawned),
        largest: 0,
        stack: Vec::new(),
        seen: HashSet::new(),
        duplicates,
        first: Some((root, root_block)),
        ahead: HashMap::new(),
    };
    stream::try_unfold(state, |mut state| async move {
        loop {
            let (cid, block, depth) = if let Some((cid, block)) = state.first.take() {
                (cid, block, 0)
            } else {
                let Some((cid, depth)) = state.stack.pop() else {
                    return Ok(None);
                };
                if !state.duplicates && state.seen.contains(&cid) {
                    if let Some(id) = state.ahead.remove(&cid) {
                        state.prefetcher.abandon(id);
                    }
                    continue;
                }
                (cid, state.get(&cid).await?, depth)
            };
            if depth > MAX_WALK_DEPTH {
                return Err(DagError::TooDeep(MAX_WALK_DEPTH));
            }
            state.seen.insert(cid);
            let mut links = links_of(&cid, &block)?;
            if !state.duplicates {
                links.retain(|l| !state.seen.contains(l));
            }
            if state.stack.len() + links.len() > MAX_WALK_PENDING {
                return Err(DagError::Inconsistent {
                    cid,
                    reason: format!(
                        "the walk would hold more than {MAX_WALK_PENDING} links not yet visited"
                    ),
                });
            }
            state
                .stack
                .extend(links.into_iter().rev().map(|l| (l, depth + 1)));
            return Ok(Some(((cid, block), state)));
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: i64, to: Option<i64>, size: u64) -> (u64, u64) {
        EntityBytes { from, to }.to_range(size)
    }

    #[test]
    fn entity_bytes_ranges() {
        assert_eq!(range(0, None, 100), (0, 100));
        assert_eq!(range(0, Some(0), 100), (0, 1));
        assert_eq!(range(10, Some(19), 100), (10, 20));
        assert_eq!(range(-10, None, 100), (90, 100));
        assert_eq!(range(0, Some(-1), 100), (0, 100));
        assert_eq!(range(0, Some(-11), 100), (0, 90));
        assert_eq!(range(50, Some(1000), 100), (50, 100));
        assert_eq!(range(500, None, 100), (100, 100));
        assert_eq!(range(-1000, Some(10), 100), (0, 11));
    }
}
