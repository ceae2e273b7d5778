//! Which representations of a node this gateway serves without converting
//! between codecs (IPIP-0524), and the 406 that names them when a client
//! asks for one that does not exist. Pure: [`super::dispatch`] decides that
//! a request is not acceptable, this says what would have been.

use cid::Cid;

use super::dispatch::{has_html_view, serves_as_is, Index, NodeKind, Resolved};
use super::errors::GatewayError;
use super::request::Format;
use crate::dag::{codec, codec_name, ResolvedPath};

/// One way a node can be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// `?format=raw`: the block as stored, for any codec.
    RawBlock,
    /// `?format=car`: the blocks under it, for any codec.
    Car,
    /// With no format: the UnixFS file, directory or symlink target.
    Unixfs(NodeKind),
    /// The block as stored, typed as this format.
    Codec(Format),
    /// `Accept: text/html`: the gateway's page about the node.
    Html,
}

impl Representation {
    /// How a client asks for it, for messages.
    pub fn describe(self) -> String {
        match self {
            Representation::RawBlock => "the raw block (?format=raw)".into(),
            Representation::Car => "a CAR (?format=car)".into(),
            Representation::Unixfs(NodeKind::Directory(_)) => {
                "the directory's index.html or listing (no format)".into()
            }
            Representation::Unixfs(NodeKind::Symlink) => "the symlink's target (no format)".into(),
            Representation::Unixfs(_) => "the file itself (no format)".into(),
            Representation::Codec(format) => {
                format!("{} (?format={})", format.media_type(), format.name())
            }
            Representation::Html => "an HTML view (Accept: text/html)".into(),
        }
    }
}

/// Every representation of a node of `block_codec` served as it is, in
/// the order a message lists them.
pub fn representations(block_codec: u64, node: NodeKind) -> Vec<Representation> {
    let mut found = Vec::new();
    let is_unixfs = matches!(block_codec, codec::RAW | codec::DAG_PB) && node != NodeKind::Data;
    if is_unixfs {
        found.push(Representation::Unixfs(node));
    }
    found.extend(
        [Format::DagJson, Format::DagCbor, Format::Json, Format::Cbor]
            .into_iter()
            .filter(|format| serves_as_is(*format, block_codec))
            .map(Representation::Codec),
    );
    if node == NodeKind::Data && has_html_view(block_codec) {
        found.push(Representation::Html);
    }
    found.extend([Representation::RawBlock, Representation::Car]);
    found
}

/// What the node is, for messages: "a UnixFS file (dag-pb)".
fn what_it_is(block_codec: u64, node: NodeKind) -> String {
    let codec = codec_name(block_codec);
    match (block_codec, node) {
        (codec::RAW, _) => "a raw block (a UnixFS file)".into(),
        (codec::DAG_PB, NodeKind::File) => "a UnixFS file (dag-pb)".into(),
        (codec::DAG_PB, NodeKind::Directory(_)) => "a UnixFS directory (dag-pb)".into(),
        (codec::DAG_PB, NodeKind::Symlink) => "a UnixFS symlink (dag-pb)".into(),
        (codec::DAG_PB, NodeKind::Data) => "a dag-pb node without UnixFS data".into(),
        _ => format!("a {codec} block"),
    }
}

/// The 406 for a resolved path [`super::dispatch::decide`] found not
/// acceptable as `asked`.
pub fn refuse(path: &ResolvedPath, asked: Option<Format>) -> GatewayError {
    let node = match Resolved::of(path, Index::NotLookedUp) {
        Resolved::Node { node, .. } => node,
        Resolved::InsideBlock | Resolved::Unresolved => NodeKind::Data,
    };
    not_acceptable(&path.cid, path.cid.codec(), node, asked)
}

/// The 406 for asking `cid` (a `block_codec` node) for `asked`, or, with
/// `None`, for its implicit form where it has none without a conversion.
pub fn not_acceptable(
    cid: &Cid,
    block_codec: u64,
    node: NodeKind,
    asked: Option<Format>,
) -> GatewayError {
    let offered = representations(block_codec, node)
        .into_iter()
        .map(Representation::describe)
        .collect::<Vec<_>>()
        .join(", ");
    let what = what_it_is(block_codec, node);
    let refusal = match asked {
        Some(format) => format!("{cid} is {what} and is not converted to {}", format.name()),
        None => format!("{cid} is {what}, which has no deserialized form of its own"),
    };
    GatewayError::NotAcceptable(format!(
        "{refusal}: this gateway serves blocks in their own codec only (IPIP-0524; \
         [gateway] allow_codec_conversion is off). It is available as: {offered}. \
         Fetch ?format=raw and convert it client-side."
    ))
}

#[cfg(test)]
mod tests {
    use super::Representation as R;
    use super::*;

    #[test]
    fn lists_what_each_node_has_without_conversion() {
        use codec::{CBOR, DAG_CBOR, DAG_JSON, DAG_PB, JSON, LIBP2P_KEY, RAW};
        let dir = NodeKind::Directory(Index::NotLookedUp);
        #[rustfmt::skip]
        let table: &[(u64, NodeKind, &[Representation])] = &[
            (DAG_PB, NodeKind::File, &[R::Unixfs(NodeKind::File), R::RawBlock, R::Car]),
            (RAW, NodeKind::File, &[R::Unixfs(NodeKind::File), R::RawBlock, R::Car]),
            (DAG_PB, dir, &[R::Unixfs(dir), R::RawBlock, R::Car]),
            (DAG_PB, NodeKind::Symlink, &[R::Unixfs(NodeKind::Symlink), R::RawBlock, R::Car]),
            (DAG_PB, NodeKind::Data, &[R::Html, R::RawBlock, R::Car]),
            (DAG_JSON, NodeKind::Data, &[
                R::Codec(Format::DagJson), R::Codec(Format::Json), R::Html, R::RawBlock, R::Car,
            ]),
            (DAG_CBOR, NodeKind::Data, &[
                R::Codec(Format::DagCbor), R::Codec(Format::Cbor), R::Html, R::RawBlock, R::Car,
            ]),
            (JSON, NodeKind::Data, &[R::Codec(Format::Json), R::RawBlock, R::Car]),
            (CBOR, NodeKind::Data, &[R::Codec(Format::Cbor), R::RawBlock, R::Car]),
            (LIBP2P_KEY, NodeKind::Data, &[R::RawBlock, R::Car]),
        ];
        for (block_codec, node, expected) in table {
            assert_eq!(
                representations(*block_codec, *node),
                expected.to_vec(),
                "{} {node:?}",
                codec_name(*block_codec)
            );
        }
    }

    /// A representation listed is one `decide` serves: no list offers
    /// what a request would then be refused.
    #[test]
    fn every_listed_codec_format_is_served_as_is() {
        for block_codec in [codec::DAG_JSON, codec::DAG_CBOR, codec::JSON, codec::CBOR] {
            for listed in representations(block_codec, NodeKind::Data) {
                if let R::Codec(format) = listed {
                    assert!(serves_as_is(format, block_codec), "{format:?}");
                }
            }
        }
    }

    #[test]
    fn the_refusal_says_what_was_asked_and_what_exists() {
        let cid: Cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
            .parse()
            .unwrap();
        let err = not_acceptable(&cid, codec::RAW, NodeKind::File, Some(Format::DagJson));
        let text = err.to_string();
        assert!(matches!(err, GatewayError::NotAcceptable(_)));
        for part in [
            cid.to_string().as_str(),
            "a raw block",
            "not converted to dag-json",
            "allow_codec_conversion",
            "the file itself (no format)",
            "?format=raw",
            "?format=car",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text:?}");
        }
        let implicit = not_acceptable(&cid, codec::LIBP2P_KEY, NodeKind::Data, None).to_string();
        assert!(
            implicit.contains("a libp2p-key block, which has no deserialized form"),
            "{implicit}"
        );
        assert!(!implicit.contains("HTML"), "{implicit}");
    }
}
