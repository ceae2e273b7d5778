//! UnixFS: files, directories, HAMT-sharded directories and symlinks
//! encoded in dag-pb nodes (and raw leaves).
//!
//! This module knows the UnixFS data format (its protobuf written by hand
//! as prost structs, so no protoc is needed) and how to read files and list
//! directories; path resolution across nodes lives in the DAG layer.

pub mod builder;
mod file;
mod hamt;

use bytes::Bytes;
use cid::Cid;
use prost::Message;

pub use file::{file_size, file_stream, FileBlock, Repeats};
pub use hamt::{hamt_list, hamt_lookup, shard_links, HamtLookup, ShardLink, MAX_HAMT_ENTRIES};

/// The protobuf inside a dag-pb node's `Data` field (unixfs.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Data {
    #[prost(enumeration = "DataType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub data: Option<Bytes>,
    #[prost(uint64, optional, tag = "3")]
    pub filesize: Option<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub blocksizes: Vec<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub hash_type: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    pub fanout: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
pub enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

/// What a dag-pb node means in UnixFS.
#[derive(Debug, Clone, PartialEq)]
pub enum UnixfsNode {
    /// A file (or a raw-typed leaf): its own bytes, then its children's.
    File {
        data: Bytes,
        blocksizes: Vec<u64>,
    },
    Directory,
    HamtShard {
        fanout: u64,
    },
    Symlink {
        target: Bytes,
    },
    Metadata,
}

/// The HAMT hash function UnixFS uses: murmur3-x64-64.
const HAMT_HASH_MURMUR3: u64 = 0x22;

impl UnixfsNode {
    pub fn decode(data: &[u8]) -> Result<UnixfsNode, String> {
        let msg = Data::decode(data).map_err(|e| e.to_string())?;
        let kind = DataType::try_from(msg.r#type)
            .map_err(|_| format!("unknown UnixFS type {}", msg.r#type))?;
        Ok(match kind {
            DataType::Raw | DataType::File => UnixfsNode::File {
                data: msg.data.unwrap_or_default(),
                blocksizes: msg.blocksizes,
            },
            DataType::Directory => UnixfsNode::Directory,
            DataType::HamtShard => {
                if msg.hash_type != Some(HAMT_HASH_MURMUR3) {
                    return Err(format!(
                        "unsupported HAMT hash function {:?}",
                        msg.hash_type
                    ));
                }
                let fanout = msg.fanout.unwrap_or(0);
                if !(2..=1024).contains(&fanout) || !fanout.is_power_of_two() {
                    return Err(format!(
                        "HAMT fanout {fanout} is not a power of two in 2..=1024"
                    ));
                }
                UnixfsNode::HamtShard { fanout }
            }
            DataType::Symlink => UnixfsNode::Symlink {
                target: msg.data.unwrap_or_default(),
            },
            DataType::Metadata => UnixfsNode::Metadata,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            UnixfsNode::File { .. } => "file",
            UnixfsNode::Directory => "directory",
            UnixfsNode::HamtShard { .. } => "sharded directory",
            UnixfsNode::Symlink { .. } => "symlink",
            UnixfsNode::Metadata => "metadata node",
        }
    }

    pub fn is_directory(&self) -> bool {
        matches!(self, UnixfsNode::Directory | UnixfsNode::HamtShard { .. })
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DirEntry {
    pub name: String,
    pub cid: Cid,
    /// The link's cumulative size (`Tsize`): what the listing shows, as it
    /// costs no block reads.
    pub size: Option<u64>,
}

/// Encodes a UnixFS `Data` message (used by tests that build their own DAGs).
pub fn encode_data(
    kind: DataType,
    data: Option<Bytes>,
    filesize: Option<u64>,
    blocksizes: Vec<u64>,
) -> Vec<u8> {
    Data {
        r#type: kind as i32,
        data,
        filesize,
        blocksizes,
        hash_type: None,
        fanout: None,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_file_node() {
        let bytes = encode_data(
            DataType::File,
            Some(Bytes::from_static(b"hi")),
            Some(2),
            vec![],
        );
        assert_eq!(
            UnixfsNode::decode(&bytes).unwrap(),
            UnixfsNode::File {
                data: Bytes::from_static(b"hi"),
                blocksizes: vec![]
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(UnixfsNode::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(UnixfsNode::decode(&[0x08, 0x63]).is_err());
    }
}
