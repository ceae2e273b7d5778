//! Building UnixFS DAGs: files chunked into fixed-size leaves under a
//! balanced tree, and plain directories. Used by `sluice`'s tests and load
//! tests to make their own content; blocks are handed to a callback as they
//! are made, so a file of any size is built in constant memory.

use std::io::{self, Read};

use bytes::Bytes;
use cid::Cid;
use ipld_dagpb::{PbLink, PbNode};
use multihash_codetable::{Code, MultihashDigest};

use super::{encode_data, DataType};
use crate::dag::codec;

/// A block made by the builder.
pub struct Block {
    pub cid: Cid,
    pub data: Bytes,
}

/// How a file is cut into blocks.
#[derive(Debug, Clone, Copy)]
pub struct FileLayout {
    pub chunk_size: usize,
    /// Most children of one inner node.
    pub max_links: usize,
    /// Leaves as raw blocks (CIDv1) rather than dag-pb nodes.
    pub raw_leaves: bool,
    /// CIDv0 for dag-pb nodes (Kubo's classic default).
    pub cid_v0: bool,
}

impl FileLayout {
    /// Helia's and Kubo's modern layout: CIDv1, raw leaves, 1 MiB chunks, 1024 links.
    pub const MODERN: FileLayout = FileLayout {
        chunk_size: 1024 * 1024,
        max_links: 1024,
        raw_leaves: true,
        cid_v0: false,
    };
    /// Kubo's classic layout: CIDv0, dag-pb leaves, 256 KiB chunks, 174 links.
    pub const CLASSIC: FileLayout = FileLayout {
        chunk_size: 256 * 1024,
        max_links: 174,
        raw_leaves: false,
        cid_v0: true,
    };
}

/// A node made by the builder: its CID, the file bytes under it, and its
/// cumulative block size (a link's `Tsize`).
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub cid: Cid,
    pub file_size: u64,
    pub dag_size: u64,
}

fn pb_cid(layout_v0: bool, data: &[u8]) -> Cid {
    let hash = Code::Sha2_256.digest(data);
    if layout_v0 {
        Cid::new_v0(hash).expect("sha2-256 makes a valid CIDv0")
    } else {
        Cid::new_v1(codec::DAG_PB, hash)
    }
}

fn pb_block(
    links: Vec<PbLink>,
    data: Vec<u8>,
    cid_v0: bool,
    emit: &mut impl FnMut(Block),
) -> (Cid, u64) {
    let bytes = Bytes::from(
        PbNode {
            links,
            data: Some(Bytes::from(data)),
        }
        .into_bytes(),
    );
    let cid = pb_cid(cid_v0, &bytes);
    let len = bytes.len() as u64;
    emit(Block { cid, data: bytes });
    (cid, len)
}

/// Chunks `reader` into a balanced UnixFS file, emitting every block
/// (leaves first, each parent after its children).
pub fn build_file(
    mut reader: impl Read,
    layout: FileLayout,
    emit: &mut impl FnMut(Block),
) -> io::Result<Built> {
    assert!(
        layout.chunk_size > 0 && layout.max_links > 1,
        "invalid layout"
    );
    let mut level: Vec<Built> = Vec::new();
    let mut chunk = vec![0u8; layout.chunk_size];
    loop {
        let filled = read_full(&mut reader, &mut chunk)?;
        if filled == 0 && !level.is_empty() {
            break;
        }
        let data = &chunk[..filled];
        let leaf = if layout.raw_leaves {
            let cid = Cid::new_v1(codec::RAW, Code::Sha2_256.digest(data));
            emit(Block {
                cid,
                data: Bytes::copy_from_slice(data),
            });
            Built {
                cid,
                file_size: filled as u64,
                dag_size: filled as u64,
            }
        } else {
            let unixfs = encode_data(
                DataType::File,
                Some(Bytes::copy_from_slice(data)),
                Some(filled as u64),
                vec![],
            );
            let (cid, len) = pb_block(Vec::new(), unixfs, layout.cid_v0, emit);
            Built {
                cid,
                file_size: filled as u64,
                dag_size: len,
            }
        };
        level.push(leaf);
        if filled < layout.chunk_size {
            break;
        }
    }
    while level.len() > 1 {
        level = level
            .chunks(layout.max_links)
            .map(|children| file_node(children, layout.cid_v0, emit))
            .collect();
    }
    Ok(level[0])
}

fn file_node(children: &[Built], cid_v0: bool, emit: &mut impl FnMut(Block)) -> Built {
    let file_size = children.iter().map(|c| c.file_size).sum();
    let links = children
        .iter()
        .map(|c| PbLink {
            cid: c.cid,
            name: Some(String::new()),
            size: Some(c.dag_size),
        })
        .collect();
    let blocksizes = children.iter().map(|c| c.file_size).collect();
    let unixfs = encode_data(DataType::File, None, Some(file_size), blocksizes);
    let (cid, len) = pb_block(links, unixfs, cid_v0, emit);
    Built {
        cid,
        file_size,
        dag_size: len + children.iter().map(|c| c.dag_size).sum::<u64>(),
    }
}

/// A plain (unsharded) directory of `entries`, sorted by name as UnixFS
/// requires.
pub fn build_directory(
    mut entries: Vec<(String, Built)>,
    cid_v0: bool,
    emit: &mut impl FnMut(Block),
) -> Built {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let dag_size: u64 = entries.iter().map(|(_, b)| b.dag_size).sum();
    let links = entries
        .into_iter()
        .map(|(name, built)| PbLink {
            cid: built.cid,
            name: Some(name),
            size: Some(built.dag_size),
        })
        .collect();
    let unixfs = encode_data(DataType::Directory, None, None, vec![]);
    let (cid, len) = pb_block(links, unixfs, cid_v0, emit);
    Built {
        cid,
        file_size: 0,
        dag_size: dag_size + len,
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verify_block;

    #[test]
    fn file_tree_is_balanced_and_verifiable() {
        let data = vec![7u8; 10_000];
        let mut blocks = Vec::new();
        let layout = FileLayout {
            chunk_size: 1000,
            max_links: 3,
            raw_leaves: true,
            cid_v0: false,
        };
        let root = build_file(&data[..], layout, &mut |b| blocks.push(b)).unwrap();
        assert_eq!(root.file_size, 10_000);
        // 10 leaves -> 4 -> 2 -> 1 inner nodes; identical leaves share a CID
        // but are each emitted.
        assert_eq!(blocks.len(), 10 + 4 + 2 + 1);
        for b in &blocks {
            verify_block(&b.cid, &b.data).unwrap();
        }
        assert_eq!(blocks.last().unwrap().cid, root.cid);
    }

    #[test]
    fn empty_file_is_one_leaf() {
        let mut blocks = Vec::new();
        let root = build_file(&b""[..], FileLayout::CLASSIC, &mut |b| blocks.push(b)).unwrap();
        assert_eq!(root.file_size, 0);
        assert_eq!(blocks.len(), 1);
        assert_eq!(root.cid.version(), cid::Version::V0);
    }
}
