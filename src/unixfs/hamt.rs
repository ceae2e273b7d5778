//! HAMT-sharded UnixFS directories: finding one name without reading the
//! whole directory, and listing every entry.
//!
//! Each shard node has `fanout` slots; a link name starts with the slot
//! index in upper-case hex. A name of exactly that width points to a child
//! shard, a longer one is an entry whose name follows the prefix. The slot
//! at each level is taken from successive bits of murmur3-x64-64(name).

use cid::Cid;
use ipld_dagpb::PbNode;

use super::{DirEntry, UnixfsNode};
use crate::blocks::BlockService;
use crate::dag::{DagError, Node};

/// Hard cap on entries listed from one sharded directory.
pub const MAX_HAMT_ENTRIES: usize = 1_000_000;

pub struct HamtLookup {
    /// The entry's CID, if the name is in the directory.
    pub found: Option<Cid>,
    /// Every shard block read below the root to get the answer, in order.
    pub shards: Vec<Cid>,
}

fn slot_width(fanout: u64) -> usize {
    format!("{:X}", fanout - 1).len()
}

fn hash_name(name: &str) -> [u8; 8] {
    let hash = murmur3::murmur3_x64_128(&mut name.as_bytes(), 0)
        .expect("reading from a slice cannot fail");
    // The 64-bit variant is the first half of the 128-bit hash, big-endian.
    (hash as u64).to_be_bytes()
}

/// Reads `bits` bits at a time from the front of a hash.
struct HashBits {
    hash: [u8; 8],
    consumed: usize,
}

impl HashBits {
    fn next(&mut self, bits: usize) -> Option<usize> {
        if self.consumed + bits > 64 {
            return None;
        }
        let word = u64::from_be_bytes(self.hash);
        let value = (word << self.consumed) >> (64 - bits);
        self.consumed += bits;
        Some(value as usize)
    }
}

fn shard_fanout(cid: &Cid, node: &Node) -> Result<(PbNode, u64), DagError> {
    match node {
        Node::Pb(pb, Some(UnixfsNode::HamtShard { fanout })) => Ok((pb.clone(), *fanout)),
        other => Err(DagError::Inconsistent {
            cid: *cid,
            reason: format!("expected a HAMT shard, found a {}", other.kind()),
        }),
    }
}

/// Finds `name` in the sharded directory whose root shard is `root`.
pub async fn hamt_lookup(
    blocks: &BlockService,
    root: &Cid,
    root_node: &Node,
    name: &str,
) -> Result<HamtLookup, DagError> {
    let (mut shard, fanout) = shard_fanout(root, root_node)?;
    let mut shard_cid = *root;
    let bits = fanout.trailing_zeros() as usize;
    let width = slot_width(fanout);
    let mut hash = HashBits {
        hash: hash_name(name),
        consumed: 0,
    };
    let mut shards = Vec::new();
    loop {
        let Some(slot) = hash.next(bits) else {
            return Err(DagError::Inconsistent {
                cid: shard_cid,
                reason: "HAMT is deeper than the hash is long".into(),
            });
        };
        let prefix = format!("{slot:0width$X}");
        let link = shard
            .links
            .iter()
            .find(|l| l.name.as_deref().is_some_and(|n| n.starts_with(&prefix)));
        let Some(link) = link else {
            return Ok(HamtLookup {
                found: None,
                shards,
            });
        };
        let link_name = link.name.as_deref().unwrap_or_default();
        if link_name.len() > width {
            let found = (&link_name[width..] == name).then_some(link.cid);
            return Ok(HamtLookup { found, shards });
        }
        shard_cid = link.cid;
        let block = blocks.get(&shard_cid).await?;
        let node = Node::decode(&shard_cid, block)?;
        let (child, child_fanout) = shard_fanout(&shard_cid, &node)?;
        if child_fanout != fanout {
            return Err(DagError::Inconsistent {
                cid: shard_cid,
                reason: "child shard has a different fanout".into(),
            });
        }
        shards.push(shard_cid);
        shard = child;
    }
}

/// Lists every entry of a sharded directory (in shard order), and the CIDs
/// of every shard node read, root first. A shard linked more than once (no
/// valid HAMT does that) is read and listed once, so a directory that
/// links one sub-shard from every slot costs one read per distinct shard.
pub async fn hamt_list(
    blocks: &BlockService,
    root: &Cid,
    root_node: &Node,
) -> Result<(Vec<DirEntry>, Vec<Cid>), DagError> {
    let (root_pb, fanout) = shard_fanout(root, root_node)?;
    let width = slot_width(fanout);
    let mut entries = Vec::new();
    let mut shards = vec![*root];
    let mut walked = std::collections::HashSet::from([*root]);
    // Depth-first, in link order: a stack of link lists being walked.
    let mut stack = vec![root_pb.links.into_iter()];
    while let Some(links) = stack.last_mut() {
        let Some(link) = links.next() else {
            stack.pop();
            continue;
        };
        let name = link.name.unwrap_or_default();
        if name.len() > width {
            if entries.len() >= MAX_HAMT_ENTRIES {
                return Err(DagError::Inconsistent {
                    cid: *root,
                    reason: format!("directory has more than {MAX_HAMT_ENTRIES} entries"),
                });
            }
            entries.push(DirEntry {
                name: name[width..].to_string(),
                cid: link.cid,
                size: link.size,
            });
        } else if walked.insert(link.cid) {
            let block = blocks.get(&link.cid).await?;
            let node = Node::decode(&link.cid, block)?;
            let (child, _) = shard_fanout(&link.cid, &node)?;
            shards.push(link.cid);
            if stack.len() > 64 {
                return Err(DagError::TooDeep(64));
            }
            stack.push(child.links.into_iter());
        }
    }
    Ok((entries, shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_width_matches_fanout() {
        assert_eq!(slot_width(256), 2);
        assert_eq!(slot_width(16), 1);
        assert_eq!(slot_width(1024), 3);
    }

    #[test]
    fn hash_bits_read_from_the_front() {
        let mut bits = HashBits {
            hash: [0xAB, 0xCD, 0, 0, 0, 0, 0, 0],
            consumed: 0,
        };
        assert_eq!(bits.next(8), Some(0xAB));
        assert_eq!(bits.next(4), Some(0xC));
        assert_eq!(bits.next(4), Some(0xD));
    }
}
