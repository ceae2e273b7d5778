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
        // Names are untrusted: only the ASCII prefix is matched, and what
        // follows it is compared as a whole, never sliced at a guess.
        let mut child = None;
        for link in &shard.links {
            let Some(rest) = link.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if rest.is_empty() {
                child.get_or_insert(link.cid);
            } else if rest == name {
                return Ok(HamtLookup {
                    found: Some(link.cid),
                    shards,
                });
            }
        }
        let Some(child) = child else {
            return Ok(HamtLookup {
                found: None,
                shards,
            });
        };
        shard_cid = child;
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

/// What follows the slot prefix of a shard link's name: empty for a link
/// to a child shard, else the entry's name. The prefix must be `width`
/// hex digits naming a slot below `fanout`.
fn entry_name(name: &str, width: usize, fanout: u64) -> Result<&str, String> {
    let Some(prefix) = name
        .get(..width)
        .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Err(format!("it does not start with a {width}-digit hex slot"));
    };
    match u64::from_str_radix(prefix, 16) {
        Ok(slot) if slot < fanout => {}
        _ => return Err(format!("slot {prefix} is outside a fanout of {fanout}")),
    }
    // The prefix is ASCII, so `width` is a character boundary.
    Ok(name.get(width..).unwrap_or_default())
}

/// One link of a HAMT shard node.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardLink {
    /// An entry of the directory, its name without the slot prefix.
    Entry(DirEntry),
    /// A child shard of the same directory.
    Shard { cid: Cid, size: Option<u64> },
}

/// The links of one shard node, in order, for walks that read a sharded
/// directory one shard at a time rather than listing it whole
/// ([`hamt_list`]). `fanout` is the directory's (its root shard's), which
/// every child shard must share; `None` for the root itself. Returns the
/// shard's fanout too.
pub fn shard_links(
    cid: &Cid,
    node: &Node,
    fanout: Option<u64>,
) -> Result<(u64, Vec<ShardLink>), DagError> {
    let (pb, own) = shard_fanout(cid, node)?;
    if fanout.is_some_and(|f| f != own) {
        return Err(DagError::Inconsistent {
            cid: *cid,
            reason: "child shard has a different fanout".into(),
        });
    }
    let width = slot_width(own);
    let links = pb
        .links
        .into_iter()
        .map(|link| {
            let name = link.name.unwrap_or_default();
            let rest = entry_name(&name, width, own).map_err(|reason| DagError::Inconsistent {
                cid: *cid,
                reason: format!("it has a link named {name:?}: {reason}"),
            })?;
            Ok(if rest.is_empty() {
                ShardLink::Shard {
                    cid: link.cid,
                    size: link.size,
                }
            } else {
                ShardLink::Entry(DirEntry {
                    name: rest.to_string(),
                    cid: link.cid,
                    size: link.size,
                })
            })
        })
        .collect::<Result<_, DagError>>()?;
    Ok((own, links))
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
    // Depth-first, in link order: a stack of (shard, links being walked).
    let mut stack = vec![(*root, root_pb.links.into_iter())];
    while let Some((shard_cid, links)) = stack.last_mut() {
        let shard_cid = *shard_cid;
        let Some(link) = links.next() else {
            stack.pop();
            continue;
        };
        let name = link.name.unwrap_or_default();
        let rest = entry_name(&name, width, fanout).map_err(|reason| DagError::Inconsistent {
            cid: *root,
            reason: format!("shard {shard_cid} has a link named {name:?}: {reason}"),
        })?;
        if !rest.is_empty() {
            if entries.len() >= MAX_HAMT_ENTRIES {
                return Err(DagError::Inconsistent {
                    cid: *root,
                    reason: format!("directory has more than {MAX_HAMT_ENTRIES} entries"),
                });
            }
            entries.push(DirEntry {
                name: rest.to_string(),
                cid: link.cid,
                size: link.size,
            });
        } else if walked.insert(link.cid) {
            // Each shard is read once however often it is linked, and
            // distinct shards are bounded too.
            if shards.len() >= MAX_HAMT_ENTRIES {
                return Err(DagError::Inconsistent {
                    cid: *root,
                    reason: format!("directory has more than {MAX_HAMT_ENTRIES} shard nodes"),
                });
            }
            if stack.len() > 64 {
                return Err(DagError::TooDeep(64));
            }
            let block = blocks.get(&link.cid).await?;
            let node = Node::decode(&link.cid, block)?;
            let (child, child_fanout) = shard_fanout(&link.cid, &node)?;
            if child_fanout != fanout {
                return Err(DagError::Inconsistent {
                    cid: *root,
                    reason: format!("shard {} has a different fanout from its parent", link.cid),
                });
            }
            shards.push(link.cid);
            stack.push((link.cid, child.links.into_iter()));
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
    fn entry_names_are_split_after_an_ascii_hex_prefix() {
        assert_eq!(entry_name("0Aéx", 2, 256), Ok("éx"));
        assert_eq!(entry_name("FF", 2, 256), Ok(""));
        assert_eq!(entry_name("3", 1, 16), Ok(""));
        // A multi-byte character inside the prefix, a short or empty name,
        // a non-hex prefix, a slot past the fanout.
        assert!(entry_name("0éx", 2, 256).is_err());
        assert!(entry_name("é", 2, 256).is_err());
        assert!(entry_name("", 2, 256).is_err());
        assert!(entry_name("0", 2, 256).is_err());
        assert!(entry_name("ZZname", 2, 256).is_err());
        assert!(entry_name("+1name", 2, 256).is_err());
        assert!(entry_name("1Fname", 2, 16).is_err());
        assert!(entry_name("Fname", 1, 8).is_err());
    }

    fn shard(fanout: u64, names: &[&str]) -> (Cid, Node) {
        use multihash_codetable::{Code, MultihashDigest};
        let cid = Cid::new_v1(0x70, Code::Sha2_256.digest(b"shard"));
        let links = names
            .iter()
            .map(|name| ipld_dagpb::PbLink {
                cid,
                name: Some(name.to_string()),
                size: Some(7),
            })
            .collect();
        let pb = PbNode { links, data: None };
        (cid, Node::Pb(pb, Some(UnixfsNode::HamtShard { fanout })))
    }

    #[test]
    fn shard_links_split_entries_from_child_shards() {
        let (cid, node) = shard(256, &["0Aa.txt", "FF", "1Bé"]);
        let (fanout, links) = shard_links(&cid, &node, None).unwrap();
        assert_eq!(fanout, 256);
        let entry = |name: &str| {
            ShardLink::Entry(DirEntry {
                name: name.into(),
                cid,
                size: Some(7),
            })
        };
        assert_eq!(
            links,
            vec![
                entry("a.txt"),
                ShardLink::Shard { cid, size: Some(7) },
                entry("é"),
            ]
        );
        // A child of another fanout, a name without its slot: refused.
        assert!(shard_links(&cid, &node, Some(16)).is_err());
        let (cid, node) = shard(256, &["a.txt"]);
        assert!(shard_links(&cid, &node, None).is_err());
        let not_a_shard = Node::Raw(bytes::Bytes::from_static(b"x"));
        assert!(shard_links(&cid, &not_a_shard, None).is_err());
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
