//! Reading UnixFS files: the bytes of any byte range, streamed block by
//! block in file order with a read-ahead bounded in blocks per tree level
//! and in bytes by the response's [`ReadAheadBudget`], never buffered
//! whole. A walk for a CAR without duplicates skips the subtrees it has
//! already sent whole, so a DAG that links one child many times costs one
//! visit per distinct block.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt};

use super::UnixfsNode;
use crate::blocks::read_ahead::{FetchId, FetchTasks, Prefetcher, ReadAheadBudget};
use crate::blocks::BlockService;
use crate::dag::{codec, DagError, Node};
use crate::verify::MAX_BLOCK_SIZE;

/// Most blocks fetched ahead of the one being written, per tree level (the
/// bytes they may hold are the budget's to bound). Enough to keep two
/// providers' links busy while the body is written in order.
const READ_AHEAD: usize = 16;
/// Expected size of a child that must be an inner node (it declares more
/// bytes than a block may hold): a 1024-link node of CIDv1 links is about
/// 45 KiB. A larger one is accounted at its real size when it arrives.
const INNER_NODE_ESTIMATE: u64 = 64 * 1024;
/// The dag-pb and UnixFS framing around a dag-pb leaf's bytes.
const LEAF_FRAMING: u64 = 1024;
/// No sane file DAG is deeper than this (a 174-wide balanced tree of depth
/// 8 already holds exabytes).
const MAX_FILE_DEPTH: usize = 32;
/// Bound on the children a file read holds queued over all levels (about
/// 33 MiB of state): real files have at most a few thousand (1024 links
/// a level, a handful of levels).
const MAX_FILE_PENDING: usize = 1 << 18;

/// A node visited while reading a file range: the block itself (for CAR
/// responses) and the part of the file's bytes it holds that falls inside
/// the range (for file responses; often empty for inner nodes).
#[derive(Debug, Clone)]
pub struct FileBlock {
    pub cid: Cid,
    pub block: Bytes,
    pub data: Bytes,
}

enum FilePart {
    Leaf(Bytes),
    Inner {
        data: Bytes,
        children: Vec<(Cid, u64)>,
    },
}

fn file_part(cid: &Cid, node: &Node) -> Result<FilePart, DagError> {
    let inconsistent = |reason: &str| DagError::Inconsistent {
        cid: *cid,
        reason: reason.to_string(),
    };
    match node {
        Node::Raw(data) => Ok(FilePart::Leaf(data.clone())),
        Node::Pb(pb, Some(UnixfsNode::File { data, blocksizes })) => {
            if pb.links.is_empty() {
                return Ok(FilePart::Leaf(data.clone()));
            }
            if pb.links.len() != blocksizes.len() {
                return Err(inconsistent("number of links and of block sizes differ"));
            }
            let children = pb
                .links
                .iter()
                .map(|l| l.cid)
                .zip(blocksizes.iter().copied())
                .collect();
            Ok(FilePart::Inner {
                data: data.clone(),
                children,
            })
        }
        other => Err(inconsistent(&format!(
            "expected a file node, found a {}",
            other.kind()
        ))),
    }
}

/// The size in bytes of the file whose root is `node`.
pub fn file_size(cid: &Cid, node: &Node) -> Result<u64, DagError> {
    part_size(cid, &file_part(cid, node)?)
}

fn part_size(cid: &Cid, part: &FilePart) -> Result<u64, DagError> {
    match part {
        FilePart::Leaf(data) => Ok(data.len() as u64),
        FilePart::Inner { data, children } => children
            .iter()
            .try_fold(data.len() as u64, |total, (_, size)| {
                total.checked_add(*size)
            })
            .ok_or_else(|| DagError::Inconsistent {
                cid: *cid,
                reason: "block sizes overflow".into(),
            }),
    }
}

/// Whether a walk visits a subtree again each time the file links to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    /// Every occurrence, as reading the file's bytes needs.
    Visit,
    /// Once: a subtree already sent whole is skipped (CARs without
    /// duplicates).
    Skip,
}

/// Streams the nodes of the file rooted at `root` that hold bytes of
/// `range` (start inclusive, end exclusive), in file order. The root is
/// always the first item. Every node's size is checked against what its
/// parent declared, so a lying DAG ends the stream with an error instead of
/// producing bytes at the wrong offsets. Blocks fetched ahead hold their
/// bytes against `budget` until they are yielded.
pub fn file_stream(
    blocks: BlockService,
    budget: ReadAheadBudget,
    root: Cid,
    root_block: Bytes,
    range: (u64, u64),
    repeats: Repeats,
) -> BoxStream<'static, Result<FileBlock, DagError>> {
    let reader = FileReader {
        // In order: the file path's wants must reach providers in file order.
        prefetcher: Prefetcher::new(blocks, budget, FetchTasks::InOrder),
        range,
        repeats,
        sent_whole: HashSet::new(),
        root: Some((root, root_block)),
        levels: Vec::new(),
    };
    stream::try_unfold(reader, |mut reader| async move {
        Ok(reader.next().await?.map(|block| (block, reader)))
    })
    .boxed()
}

fn clip(data: &Bytes, start: u64, range: (u64, u64)) -> Bytes {
    let len = data.len() as u64;
    let from = range.0.saturating_sub(start).min(len);
    let to = range.1.saturating_sub(start).min(len);
    if from >= to {
        Bytes::new()
    } else {
        data.slice(from as usize..to as usize)
    }
}

/// A child node still to visit: where its bytes start in the file, how
/// many its parent says it holds, and its fetch if one was started ahead.
struct Child {
    cid: Cid,
    start: u64,
    size: u64,
    fetch: Option<FetchId>,
}

impl Child {
    /// The bytes its block is expected to take, for the read-ahead budget.
    fn estimate(&self) -> u64 {
        let max = MAX_BLOCK_SIZE as u64;
        if self.size > max {
            INNER_NODE_ESTIMATE
        } else if self.cid.codec() == codec::RAW {
            self.size
        } else {
            (self.size + LEAF_FRAMING).min(max)
        }
    }
}

/// A depth-first walk of a file's DAG: one queue of children per level of
/// the node being read, the deepest last.
struct FileReader {
    prefetcher: Prefetcher,
    range: (u64, u64),
    repeats: Repeats,
    /// Nodes whose whole subtree lies in the range and was (or is being)
    /// yielded; with [`Repeats::Skip`] they are not visited again.
    sent_whole: HashSet<Cid>,
    root: Option<(Cid, Bytes)>,
    levels: Vec<VecDeque<Child>>,
}

impl FileReader {
    fn skipped(&self, cid: &Cid) -> bool {
        self.repeats == Repeats::Skip && self.sent_whole.contains(cid)
    }

    async fn next(&mut self) -> Result<Option<FileBlock>, DagError> {
        if let Some((cid, block)) = self.root.take() {
            return self.visit(cid, block, 0, None).map(Some);
        }
        loop {
            let Some(level) = self.levels.last_mut() else {
                return Ok(None);
            };
            let Some(child) = level.pop_front() else {
                self.levels.pop();
                continue;
            };
            if self.skipped(&child.cid) {
                if let Some(id) = child.fetch {
                    self.prefetcher.abandon(id);
                }
                continue;
            }
            // The block the writer needs is asked for before the ones
            // after it, and whatever the budget says.
            let id = child
                .fetch
                .unwrap_or_else(|| self.prefetcher.start_needed(child.cid));
            self.fetch_ahead();
            let block = self.prefetcher.take(id, &child.cid).await?;
            return self
                .visit(child.cid, block, child.start, Some(child.size))
                .map(Some);
        }
    }

    /// Starts fetches for the next children of every level, the deepest
    /// (needed soonest) first, while the budget has room. Runs only when
    /// the body asks for more, so a client that stops reading stops it.
    fn fetch_ahead(&mut self) {
        let repeats = self.repeats;
        for level in self.levels.iter_mut().rev() {
            for child in level.iter_mut().take(READ_AHEAD) {
                if child.fetch.is_some()
                    || (repeats == Repeats::Skip && self.sent_whole.contains(&child.cid))
                {
                    continue;
                }
                match self.prefetcher.start(child.cid, child.estimate()) {
                    Some(id) => child.fetch = Some(id),
                    None => return,
                }
            }
        }
    }

    /// Checks a node against its parent's declaration, queues its children
    /// that hold bytes of the range, and returns it with its own bytes.
    fn visit(
        &mut self,
        cid: Cid,
        block: Bytes,
        start: u64,
        declared: Option<u64>,
    ) -> Result<FileBlock, DagError> {
        if self.levels.len() > MAX_FILE_DEPTH {
            return Err(DagError::TooDeep(MAX_FILE_DEPTH));
        }
        // Parsed once per node: this runs for every block of every file served.
        let node = Node::decode(&cid, block.clone())?;
        let part = file_part(&cid, &node)?;
        let size = part_size(&cid, &part)?;
        if declared.is_some_and(|d| d != size) {
            return Err(DagError::Inconsistent {
                cid,
                reason: format!(
                    "holds {size} bytes but its parent says {}",
                    declared.unwrap_or(0)
                ),
            });
        }
        let range = self.range;
        if self.repeats == Repeats::Skip
            && start >= range.0
            && start.saturating_add(size) <= range.1
        {
            self.sent_whole.insert(cid);
        }
        let data = match part {
            FilePart::Leaf(data) => clip(&data, start, range),
            FilePart::Inner { data, children } => {
                let own = clip(&data, start, range);
                let mut offset = start.saturating_add(data.len() as u64);
                let wanted: VecDeque<Child> = children
                    .into_iter()
                    .filter_map(|(child, size)| {
                        let child_start = offset;
                        offset = offset.saturating_add(size);
                        (child_start < range.1 && child_start.saturating_add(size) > range.0)
                            .then_some(Child {
                                cid: child,
                                start: child_start,
                                size,
                                fetch: None,
                            })
                    })
                    .collect();
                let pending: usize = self.levels.iter().map(VecDeque::len).sum();
                if pending + wanted.len() > MAX_FILE_PENDING {
                    return Err(DagError::Inconsistent {
                        cid,
                        reason: format!(
                            "reading it would hold more than {MAX_FILE_PENDING} links not yet visited"
                        ),
                    });
                }
                self.levels.push(wanted);
                own
            }
        };
        Ok(FileBlock { cid, block, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    fn child(codec: u64, size: u64) -> Child {
        Child {
            cid: Cid::new_v1(codec, Code::Sha2_256.digest(b"x")),
            start: 0,
            size,
            fetch: None,
        }
    }

    #[test]
    fn estimates_follow_what_the_parent_declares() {
        // A raw leaf holds exactly its bytes.
        assert_eq!(child(codec::RAW, 1 << 20).estimate(), 1 << 20);
        // A dag-pb child may be a leaf with framing, never over a block.
        assert_eq!(child(codec::DAG_PB, 1000).estimate(), 1000 + LEAF_FRAMING);
        assert_eq!(
            child(codec::DAG_PB, MAX_BLOCK_SIZE as u64).estimate(),
            MAX_BLOCK_SIZE as u64
        );
        // More bytes than a block holds: an inner node, whatever it claims.
        assert_eq!(
            child(codec::DAG_PB, u64::MAX).estimate(),
            INNER_NODE_ESTIMATE
        );
    }
}
