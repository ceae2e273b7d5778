//! The DAG layer: decoding blocks of every supported codec, resolving
//! content paths through them, and walking DAGs in the orders the trustless
//! gateway needs.
//!
//! Everything here reads blocks through the [`BlockService`], one CID at a
//! time, and never holds more of a DAG than the path being walked.
//!
//! Codecs: raw, dag-pb, dag-cbor, dag-json, json and cbor ([`codec`]).
//! They are decoded with `ipld-core`, `serde_ipld_dagcbor`,
//! `serde_ipld_dagjson` and `ipld-dagpb` (with `cid` 0.11 and `multihash`
//! 0.19): the older `libipld` no longer resolves on a fresh checkout (it is
//! deprecated and its `core2` dependency was yanked).
//!
//! [`BlockService`]: crate::blocks::BlockService

mod resolve;
mod walk;

use bytes::Bytes;
use cid::Cid;
use ipld_core::codec::Links;
use ipld_core::ipld::Ipld;

pub use resolve::{resolve_path, ResolvedPath, MAX_PATH_SEGMENTS};
pub use walk::{walk_blocks, DagScope, EntityBytes, WalkOptions};

use crate::blocks::BlockError;
use crate::unixfs::{self, UnixfsNode};

/// Multicodec codes of the codecs the gateway understands.
pub mod codec {
    pub const RAW: u64 = 0x55;
    pub const DAG_PB: u64 = 0x70;
    pub const DAG_CBOR: u64 = 0x71;
    pub const DAG_JSON: u64 = 0x0129;
    pub const JSON: u64 = 0x0200;
    pub const CBOR: u64 = 0x51;
    pub const LIBP2P_KEY: u64 = 0x72;
}

#[derive(Debug, thiserror::Error)]
pub enum DagError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("block {cid} is not valid {codec}: {reason}")]
    Decode {
        cid: Cid,
        codec: &'static str,
        reason: String,
    },
    #[error("unsupported codec 0x{codec:x} in {cid}")]
    UnsupportedCodec { cid: Cid, codec: u64 },
    #[error("no link named {name:?} under {parent}")]
    NoSuchLink { parent: Cid, name: String },
    #[error("cannot traverse {segment:?}: {parent} is a {kind}, not a directory")]
    NotTraversable {
        parent: Cid,
        segment: String,
        kind: &'static str,
    },
    #[error("UnixFS DAG under {cid} is inconsistent: {reason}")]
    Inconsistent { cid: Cid, reason: String },
    #[error("DAG is deeper than {0} levels")]
    TooDeep(usize),
}

/// A decoded block.
#[derive(Debug, Clone)]
pub enum Node {
    /// Raw codec: the bytes are the content.
    Raw(Bytes),
    /// dag-pb, with its UnixFS meaning when it has one.
    Pb(ipld_dagpb::PbNode, Option<UnixfsNode>),
    /// dag-cbor or dag-json: an IPLD data model value that may hold links.
    Ipld(Ipld),
    /// Plain json or cbor: data without links.
    Plain(Bytes),
}

impl Node {
    pub fn decode(cid: &Cid, block: Bytes) -> Result<Node, DagError> {
        let decode_err = |codec: &'static str, reason: String| DagError::Decode {
            cid: *cid,
            codec,
            reason,
        };
        match cid.codec() {
            codec::RAW => Ok(Node::Raw(block)),
            codec::DAG_PB => {
                let node = ipld_dagpb::PbNode::from_bytes(block)
                    .map_err(|e| decode_err("dag-pb", e.to_string()))?;
                let unixfs = match &node.data {
                    Some(data) => unixfs::UnixfsNode::decode(data).ok(),
                    None => None,
                };
                Ok(Node::Pb(node, unixfs))
            }
            codec::DAG_CBOR => serde_ipld_dagcbor::from_slice(&block)
                .map(Node::Ipld)
                .map_err(|e| decode_err("dag-cbor", e.to_string())),
            codec::DAG_JSON => serde_ipld_dagjson::from_slice(&block)
                .map(Node::Ipld)
                .map_err(|e| decode_err("dag-json", e.to_string())),
            codec::JSON | codec::CBOR | codec::LIBP2P_KEY => Ok(Node::Plain(block)),
            other => Err(DagError::UnsupportedCodec {
                cid: *cid,
                codec: other,
            }),
        }
    }

    /// What this node is, in words, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Raw(_) => "raw block",
            Node::Pb(_, Some(fs)) => fs.kind_name(),
            Node::Pb(_, None) => "dag-pb node",
            Node::Ipld(_) => "IPLD node",
            Node::Plain(_) => "plain data block",
        }
    }
}

/// The CIDs a block links to, in the order they appear in its encoding
/// (the order of a depth-first CAR).
pub fn links_of(cid: &Cid, block: &[u8]) -> Result<Vec<Cid>, DagError> {
    let decode_err = |codec: &'static str, reason: String| DagError::Decode {
        cid: *cid,
        codec,
        reason,
    };
    match cid.codec() {
        codec::DAG_PB => ipld_dagpb::PbNode::from_bytes(Bytes::copy_from_slice(block))
            .map(|node| node.links.into_iter().map(|l| l.cid).collect())
            .map_err(|e| decode_err("dag-pb", e.to_string())),
        codec::DAG_CBOR => serde_ipld_dagcbor::codec::DagCborCodec::links(block)
            .map(|links| links.collect())
            .map_err(|e| decode_err("dag-cbor", e.to_string())),
        codec::DAG_JSON => serde_ipld_dagjson::codec::DagJsonCodec::links(block)
            .map(|links| links.collect())
            .map_err(|e| decode_err("dag-json", e.to_string())),
        codec::RAW | codec::JSON | codec::CBOR | codec::LIBP2P_KEY => Ok(Vec::new()),
        other => Err(DagError::UnsupportedCodec {
            cid: *cid,
            codec: other,
        }),
    }
}

/// Human name of a codec, as used in `?format=` values and messages.
pub fn codec_name(code: u64) -> &'static str {
    match code {
        codec::RAW => "raw",
        codec::DAG_PB => "dag-pb",
        codec::DAG_CBOR => "dag-cbor",
        codec::DAG_JSON => "dag-json",
        codec::JSON => "json",
        codec::CBOR => "cbor",
        codec::LIBP2P_KEY => "libp2p-key",
        _ => "unknown",
    }
}
