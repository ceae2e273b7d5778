//! Reading UnixFS files: the bytes of any byte range, streamed block by
//! block in file order with a bounded read-ahead, never buffered whole.

use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt};

use super::UnixfsNode;
use crate::blocks::BlockService;
use crate::dag::{DagError, Node};

/// Blocks fetched ahead of the one being written, per tree level. Enough
/// to keep two providers' links busy while the body is written in order
/// (at 1 MiB blocks, 16 MiB per response at most).
const READ_AHEAD: usize = 16;
/// No sane file DAG is deeper than this (a 174-wide balanced tree of depth
/// 8 already holds exabytes).
const MAX_FILE_DEPTH: usize = 32;

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

/// Streams the nodes of the file rooted at `root` that hold bytes of
/// `range` (start inclusive, end exclusive), in file order. The root is
/// always the first item. Every node's size is checked against what its
/// parent declared, so a lying DAG ends the stream with an error instead of
/// producing bytes at the wrong offsets.
pub fn file_stream(
    blocks: BlockService,
    root: Cid,
    root_block: Bytes,
    range: (u64, u64),
) -> BoxStream<'static, Result<FileBlock, DagError>> {
    node_stream(blocks, root, root_block, 0, None, range, 0)
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

fn node_stream(
    blocks: BlockService,
    cid: Cid,
    block: Bytes,
    start: u64,
    declared: Option<u64>,
    range: (u64, u64),
    depth: usize,
) -> BoxStream<'static, Result<FileBlock, DagError>> {
    if depth > MAX_FILE_DEPTH {
        return stream::once(async { Err(DagError::TooDeep(MAX_FILE_DEPTH)) }).boxed();
    }
    // Parsed once per node: this runs for every block of every file served.
    let parsed = Node::decode(&cid, block.clone()).and_then(|node| {
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
        Ok(part)
    });
    let part = match parsed {
        Ok(part) => part,
        Err(e) => return stream::once(async { Err(e) }).boxed(),
    };
    match part {
        FilePart::Leaf(data) => {
            let data = clip(&data, start, range);
            stream::once(async move { Ok(FileBlock { cid, block, data }) }).boxed()
        }
        FilePart::Inner { data, children } => {
            let own = clip(&data, start, range);
            let mut offset = start + data.len() as u64;
            let wanted: Vec<(Cid, u64, u64)> = children
                .into_iter()
                .filter_map(|(child, size)| {
                    let child_start = offset;
                    offset += size;
                    (child_start < range.1 && child_start + size > range.0).then_some((
                        child,
                        child_start,
                        size,
                    ))
                })
                .collect();
            let head = stream::once(async move {
                Ok(FileBlock {
                    cid,
                    block,
                    data: own,
                })
            });
            head.chain(children_stream(blocks, wanted, range, depth + 1))
                .boxed()
        }
    }
}

fn children_stream(
    blocks: BlockService,
    children: Vec<(Cid, u64, u64)>,
    range: (u64, u64),
    depth: usize,
) -> BoxStream<'static, Result<FileBlock, DagError>> {
    let fetcher = blocks.clone();
    stream::iter(children)
        .map(move |(cid, start, size)| {
            let fetcher = fetcher.clone();
            async move { (fetcher.get(&cid).await, cid, start, size) }
        })
        .buffered(READ_AHEAD)
        .flat_map(move |(fetched, cid, start, size)| match fetched {
            Ok(block) => node_stream(blocks.clone(), cid, block, start, Some(size), range, depth),
            Err(e) => stream::once(async move { Err(e.into()) }).boxed(),
        })
        .boxed()
}
