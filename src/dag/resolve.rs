//! Content path resolution: from a root CID and path segments to the block
//! the path names, through UnixFS directories (plain and HAMT-sharded) and
//! through the links of dag-cbor and dag-json nodes.

use bytes::Bytes;
use cid::Cid;
use ipld_core::ipld::Ipld;

use super::{DagError, Node};
use crate::blocks::BlockService;
use crate::unixfs::{hamt_lookup, UnixfsNode};

/// Longest path, in segments, that will be resolved.
pub const MAX_PATH_SEGMENTS: usize = 256;

/// Where a content path led.
#[derive(Debug, Clone)]
pub struct ResolvedPath {
    /// The block the path names.
    pub cid: Cid,
    pub block: Bytes,
    pub node: Node,
    /// One CID per logical path segment, starting with the root: the
    /// `X-Ipfs-Roots` header.
    pub roots: Vec<Cid>,
    /// Every block read on the way to `cid`, in order, not including it
    /// (HAMT shard nodes included): what a CAR must carry to prove the path.
    pub path_blocks: Vec<Cid>,
    /// Segments that address a value inside the final dag-cbor / dag-json
    /// node rather than a linked block.
    pub remainder: Vec<String>,
}

pub async fn resolve_path(
    blocks: &BlockService,
    root: Cid,
    segments: &[String],
) -> Result<ResolvedPath, DagError> {
    let block = blocks.get(&root).await?;
    let node = Node::decode(&root, block.clone())?;
    let mut at = ResolvedPath {
        cid: root,
        block,
        node,
        roots: vec![root],
        path_blocks: Vec::new(),
        remainder: Vec::new(),
    };
    let mut rest = segments;
    while let Some(segment) = rest.first() {
        let (next, consumed) = match &at.node {
            Node::Pb(pb, fs) => {
                let next = match fs {
                    Some(UnixfsNode::HamtShard { .. }) => {
                        let lookup = hamt_lookup(blocks, &at.cid, &at.node, segment).await?;
                        at.path_blocks.push(at.cid);
                        at.path_blocks.extend(lookup.shards.iter().copied());
                        // Shards already recorded: don't push the current block again below.
                        lookup.found.map(|cid| (cid, true))
                    }
                    Some(UnixfsNode::Directory) | None => pb
                        .links
                        .iter()
                        .find(|l| l.name.as_deref() == Some(segment.as_str()))
                        .map(|l| (l.cid, false)),
                    Some(other) => {
                        return Err(DagError::NotTraversable {
                            parent: at.cid,
                            segment: segment.clone(),
                            kind: other.kind_name(),
                        })
                    }
                };
                let Some((cid, shards_pushed)) = next else {
                    return Err(DagError::NoSuchLink {
                        parent: at.cid,
                        name: segment.clone(),
                    });
                };
                if !shards_pushed {
                    at.path_blocks.push(at.cid);
                }
                (cid, 1)
            }
            Node::Ipld(value) => match follow_ipld(&at.cid, value, rest)? {
                IpldStep::Link(cid, consumed) => {
                    at.path_blocks.push(at.cid);
                    (cid, consumed)
                }
                IpldStep::Inside => {
                    at.remainder = rest.to_vec();
                    return Ok(at);
                }
            },
            other => {
                return Err(DagError::NotTraversable {
                    parent: at.cid,
                    segment: segment.clone(),
                    kind: other.kind(),
                })
            }
        };
        let block = blocks.get(&next).await?;
        at.node = Node::decode(&next, block.clone())?;
        at.block = block;
        at.cid = next;
        at.roots.push(next);
        rest = &rest[consumed..];
    }
    Ok(at)
}

enum IpldStep {
    /// A link was reached after consuming this many segments.
    Link(Cid, usize),
    /// The path ends at a value inside this node.
    Inside,
}

fn follow_ipld(cid: &Cid, value: &Ipld, segments: &[String]) -> Result<IpldStep, DagError> {
    let mut value = value;
    for (i, segment) in segments.iter().enumerate() {
        let next = match value {
            Ipld::Map(map) => map.get(segment.as_str()),
            Ipld::List(list) => segment.parse::<usize>().ok().and_then(|i| list.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            return Err(DagError::NoSuchLink {
                parent: *cid,
                name: segments[..=i].join("/"),
            });
        };
        if let Ipld::Link(link) = next {
            return Ok(IpldStep::Link(*link, i + 1));
        }
        value = next;
    }
    Ok(IpldStep::Inside)
}
