//! The one decision of how a content request is answered: from what the
//! request asks for (`?format=` or `Accept`, whether it wants HTML, the
//! trailing slash) and what its path resolved to, a [`ResponseKind`]. It
//! is pure, so every combination is a line of a table test, and the
//! handlers never choose for one another: [`super::serve`] gathers the
//! facts [`decide`] asks for, then calls the one handler it names.
//!
//! A block is served in its own codec only (IPIP-0524): asking for another
//! is [`ResponseKind::NotAcceptable`], unless `[gateway]
//! allow_codec_conversion` is on ([`serves_as_is`] says which formats need
//! no conversion).
//!
//! `HEAD`, `Range` and `Cache-Control: only-if-cached` do not change the
//! kind: the first two are answered inside each handler, the last by the
//! block service the handlers read from.

use super::errors::GatewayError;
use super::request::{ContentRequest, Format};
use crate::dag::{codec, Node, ResolvedPath};
use crate::metrics::ResponseType;
use crate::unixfs::UnixfsNode;

/// How a request is answered, one value per handler entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// One block as stored (`application/vnd.ipld.raw`).
    RawBlock,
    /// A CAR of the DAG under the path.
    Car,
    /// A TAR of the UnixFS DAG under the path.
    Tar,
    /// A UnixFS file, or a raw block served as one.
    File,
    /// A UnixFS symlink: its target text.
    Symlink,
    /// A directory asked for without the trailing slash: a redirect to it.
    DirectoryRedirect,
    /// A directory with an `index.html` file: that file.
    DirectoryIndex,
    /// A directory without one: the HTML listing.
    DirectoryListing,
    /// The block's data model in this codec (as stored or converted).
    Codec(Format),
    /// A browser's HTML view of a dag-json or dag-cbor node.
    DagHtml,
    /// The path ends inside a block, which is not served (501).
    PathRemainder,
    /// The node exists only in other representations than the one asked
    /// for (`None`: than the implicit one) without converting codecs: a 406
    /// naming them (`super::representations`).
    NotAcceptable(Option<Format>),
}

impl ResponseKind {
    /// The response type metrics count it under. A request with an explicit
    /// codec format counts as a codec response even when it is answered as
    /// UnixFS (json or cbor of a file or directory).
    pub fn response_type(self, format: Option<Format>) -> ResponseType {
        match (self, format) {
            (ResponseKind::RawBlock, _) => ResponseType::Raw,
            (ResponseKind::Car, _) => ResponseType::Car,
            (ResponseKind::Tar, _) => ResponseType::Tar,
            (_, Some(_)) => ResponseType::Codec,
            (ResponseKind::File | ResponseKind::Symlink, None) => ResponseType::File,
            (
                ResponseKind::DirectoryRedirect
                | ResponseKind::DirectoryIndex
                | ResponseKind::DirectoryListing,
                None,
            ) => ResponseType::Directory,
            (
                ResponseKind::Codec(_)
                | ResponseKind::DagHtml
                | ResponseKind::PathRemainder
                | ResponseKind::NotAcceptable(_),
                None,
            ) => ResponseType::Codec,
        }
    }
}

/// What the request asks for, as far as the kind of answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub format: Option<Format>,
    pub wants_html: bool,
    pub trailing_slash: bool,
    /// `[gateway] allow_codec_conversion`: other codecs are converted to.
    pub convert_codecs: bool,
}

impl Asked {
    pub fn of(request: &ContentRequest, convert_codecs: bool) -> Asked {
        Asked {
            format: request.format,
            wants_html: request.wants_html,
            trailing_slash: request.trailing_slash,
            convert_codecs,
        }
    }
}

/// What is known of the content path when deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Not resolved (yet).
    Unresolved,
    /// The path ends inside a block: a remainder is left.
    InsideBlock,
    /// The path ends on a node; `codec` is its CID's.
    Node { codec: u64, node: NodeKind },
}

/// The node a path ends on, as far as the kind of answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    File,
    Symlink,
    /// A plain or HAMT-sharded directory.
    Directory(Index),
    /// Anything else: served as its data model.
    Data,
}

/// Whether a directory has an `index.html` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    NotLookedUp,
    Absent,
    File,
}

impl Resolved {
    pub fn of(path: &ResolvedPath, index: Index) -> Resolved {
        if !path.remainder.is_empty() {
            return Resolved::InsideBlock;
        }
        let node = match &path.node {
            Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. })) => NodeKind::File,
            Node::Pb(_, Some(UnixfsNode::Symlink { .. })) => NodeKind::Symlink,
            Node::Pb(_, Some(fs)) if fs.is_directory() => NodeKind::Directory(index),
            _ => NodeKind::Data,
        };
        Resolved::Node {
            codec: path.cid.codec(),
            node,
        }
    }
}

/// The answer to [`decide`]: a kind, or the fact it needs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Respond(ResponseKind),
    /// Resolve the content path, then decide again.
    ResolvePath,
    /// Look for the directory's `index.html`, then decide again.
    FindIndex,
}

/// How to answer `asked` given what is known of its path. Asks for the
/// path (and a directory's index) only when the answer depends on them:
/// raw blocks and CARs are served without decoding the node.
pub fn decide(asked: &Asked, resolved: Resolved) -> Decision {
    use Decision::Respond;
    match asked.format {
        Some(Format::Raw) => return Respond(ResponseKind::RawBlock),
        Some(Format::Car) => return Respond(ResponseKind::Car),
        _ => {}
    }
    let (codec, node) = match resolved {
        Resolved::Unresolved => return Decision::ResolvePath,
        Resolved::InsideBlock => return Respond(ResponseKind::PathRemainder),
        Resolved::Node { codec, node } => (codec, node),
    };
    let is_unixfs = matches!(codec, codec::RAW | codec::DAG_PB);
    match asked.format {
        // Asking a UnixFS node for plain json/cbor is not a conversion: the
        // client gets the file or directory as a path gateway serves it.
        Some(Format::Json | Format::Cbor) if is_unixfs => as_path_gateway(asked, codec, node),
        // Whatever the node: the handler refuses what is not UnixFS.
        Some(Format::Tar) => Respond(ResponseKind::Tar),
        Some(format) if asked.convert_codecs || serves_as_is(format, codec) => {
            Respond(ResponseKind::Codec(format))
        }
        Some(format) => Respond(ResponseKind::NotAcceptable(Some(format))),
        None => as_path_gateway(asked, codec, node),
    }
}

/// Whether a block of `codec` is served as `format` without converting it:
/// its own codec, or (the bytes as they are, with the plain type) JSON of
/// dag-json and CBOR of dag-cbor, which are valid JSON and CBOR.
/// gateway-conformance v0.13 still expects those two as 200s (TestNativeDag),
/// and IPIP-0524 leaves json/cbor of other codecs to the implementation.
pub fn serves_as_is(format: Format, block_codec: u64) -> bool {
    match format {
        // Representations of any block (TAR refuses what is not UnixFS itself).
        Format::Raw | Format::Car | Format::Tar => true,
        Format::DagJson => block_codec == codec::DAG_JSON,
        Format::DagCbor => block_codec == codec::DAG_CBOR,
        Format::Json => matches!(block_codec, codec::JSON | codec::DAG_JSON),
        Format::Cbor => matches!(block_codec, codec::CBOR | codec::DAG_CBOR),
    }
}

/// The format a data block is served in when none is asked for: its own.
fn own_format(block_codec: u64) -> Option<Format> {
    match block_codec {
        codec::DAG_JSON => Some(Format::DagJson),
        codec::DAG_CBOR => Some(Format::DagCbor),
        codec::JSON => Some(Format::Json),
        codec::CBOR => Some(Format::Cbor),
        _ => None,
    }
}

/// Data-model codecs a browser gets an HTML view of (IPIP-0524 names
/// `text/html` as the way to browse dag-pb data too).
pub fn has_html_view(block_codec: u64) -> bool {
    matches!(
        block_codec,
        codec::DAG_JSON | codec::DAG_CBOR | codec::DAG_PB
    )
}

/// A node as the path gateway serves it when no format is asked for.
fn as_path_gateway(asked: &Asked, block_codec: u64, node: NodeKind) -> Decision {
    use Decision::Respond;
    match node {
        NodeKind::File => Respond(ResponseKind::File),
        NodeKind::Symlink => Respond(ResponseKind::Symlink),
        // Relative links in a listing or an index.html only work under a slash.
        NodeKind::Directory(_) if !asked.trailing_slash => Respond(ResponseKind::DirectoryRedirect),
        NodeKind::Directory(Index::NotLookedUp) => Decision::FindIndex,
        NodeKind::Directory(Index::File) => Respond(ResponseKind::DirectoryIndex),
        NodeKind::Directory(Index::Absent) => Respond(ResponseKind::DirectoryListing),
        NodeKind::Data if asked.wants_html && has_html_view(block_codec) => {
            Respond(ResponseKind::DagHtml)
        }
        NodeKind::Data => match own_format(block_codec) {
            Some(format) => Respond(ResponseKind::Codec(format)),
            // dag-pb without UnixFS data, libp2p keys: their data model as
            // dag-json is a conversion.
            None if asked.convert_codecs => Respond(ResponseKind::Codec(Format::DagJson)),
            None => Respond(ResponseKind::NotAcceptable(asked.format)),
        },
    }
}

/// Paths that end inside a dag-cbor/dag-json node (not on a link) are not
/// served: the specs leave it to a future IPIP.
pub fn remainder_error(remainder: &[String]) -> GatewayError {
    GatewayError::NotImplemented(format!(
        "path remainder {:?} addresses a value inside a block: reading IPLD Kinds other than Links (CBOR Tag 42) is not implemented",
        remainder.join("/")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{FindIndex, ResolvePath, Respond};
    use ResponseKind as K;

    const NONE: Option<Format> = None;

    fn asked(format: Option<Format>, wants_html: bool, trailing_slash: bool) -> Asked {
        Asked {
            format,
            wants_html,
            trailing_slash,
            convert_codecs: false,
        }
    }

    /// The same request to a gateway with `allow_codec_conversion` on.
    fn converting(asked: Asked) -> Asked {
        Asked {
            convert_codecs: true,
            ..asked
        }
    }

    fn node(codec: u64, node: NodeKind) -> Resolved {
        Resolved::Node { codec, node }
    }

    /// Every combination the handlers answer, with what answers it.
    #[test]
    fn decides_every_combination() {
        use codec::{CBOR, DAG_CBOR, DAG_JSON, DAG_PB, JSON, LIBP2P_KEY, RAW};
        use Format::{Car, Cbor, DagCbor, DagJson, Json, Raw, Tar};
        use NodeKind::{Data, Directory, File, Symlink};
        let dir = |index| node(DAG_PB, Directory(index));
        #[rustfmt::skip]
        let table: &[(Asked, Resolved, Decision)] = &[
            // Trustless formats are answered before the path is resolved.
            (asked(Some(Raw), false, false), Resolved::Unresolved, Respond(K::RawBlock)),
            (asked(Some(Raw), true, true), Resolved::Unresolved, Respond(K::RawBlock)),
            (asked(Some(Car), false, false), Resolved::Unresolved, Respond(K::Car)),
            (asked(Some(Car), true, true), Resolved::Unresolved, Respond(K::Car)),
            // Everything else needs the path first.
            (asked(NONE, false, false), Resolved::Unresolved, ResolvePath),
            (asked(Some(DagJson), false, false), Resolved::Unresolved, ResolvePath),
            (asked(Some(Json), false, false), Resolved::Unresolved, ResolvePath),
            // A path ending inside a block, whatever was asked.
            (asked(NONE, false, false), Resolved::InsideBlock, Respond(K::PathRemainder)),
            (asked(NONE, true, true), Resolved::InsideBlock, Respond(K::PathRemainder)),
            (asked(Some(DagCbor), false, false), Resolved::InsideBlock, Respond(K::PathRemainder)),
            (asked(Some(Json), false, false), Resolved::InsideBlock, Respond(K::PathRemainder)),
            // Files: dag-pb UnixFS files and raw blocks.
            (asked(NONE, false, false), node(DAG_PB, File), Respond(K::File)),
            (asked(NONE, true, true), node(DAG_PB, File), Respond(K::File)),
            (asked(NONE, false, false), node(RAW, File), Respond(K::File)),
            (asked(NONE, true, false), node(RAW, File), Respond(K::File)),
            (asked(NONE, false, false), node(DAG_PB, Symlink), Respond(K::Symlink)),
            // Directories: redirect, then index.html or a listing.
            (asked(NONE, false, false), dir(Index::NotLookedUp), Respond(K::DirectoryRedirect)),
            (asked(NONE, true, false), dir(Index::NotLookedUp), Respond(K::DirectoryRedirect)),
            (asked(NONE, false, true), dir(Index::NotLookedUp), FindIndex),
            (asked(NONE, true, true), dir(Index::NotLookedUp), FindIndex),
            (asked(NONE, true, true), dir(Index::File), Respond(K::DirectoryIndex)),
            (asked(NONE, false, true), dir(Index::Absent), Respond(K::DirectoryListing)),
            (asked(NONE, true, true), dir(Index::Absent), Respond(K::DirectoryListing)),
            // Plain json/cbor of UnixFS is the UnixFS response.
            (asked(Some(Json), false, false), node(DAG_PB, File), Respond(K::File)),
            (asked(Some(Cbor), false, false), node(RAW, File), Respond(K::File)),
            (asked(Some(Json), false, false), node(DAG_PB, Symlink), Respond(K::Symlink)),
            (asked(Some(Json), false, false), dir(Index::NotLookedUp), Respond(K::DirectoryRedirect)),
            (asked(Some(Cbor), false, true), dir(Index::NotLookedUp), FindIndex),
            (asked(Some(Json), false, true), dir(Index::Absent), Respond(K::DirectoryListing)),
            // ... but dag-pb without UnixFS data has no JSON of its own.
            (asked(Some(Json), false, false), node(DAG_PB, Data), Respond(K::NotAcceptable(Some(Json)))),
            (converting(asked(Some(Json), false, false)), node(DAG_PB, Data), Respond(K::Codec(DagJson))),
            // dag-json/dag-cbor of UnixFS is a conversion: 406 unless allowed.
            (asked(Some(DagJson), false, false), node(DAG_PB, File), Respond(K::NotAcceptable(Some(DagJson)))),
            (asked(Some(DagCbor), false, true), dir(Index::NotLookedUp), Respond(K::NotAcceptable(Some(DagCbor)))),
            (asked(Some(DagJson), true, false), node(RAW, File), Respond(K::NotAcceptable(Some(DagJson)))),
            (converting(asked(Some(DagJson), false, false)), node(DAG_PB, File), Respond(K::Codec(DagJson))),
            (converting(asked(Some(DagCbor), false, true)), dir(Index::NotLookedUp), Respond(K::Codec(DagCbor))),
            (converting(asked(Some(DagJson), true, false)), node(RAW, File), Respond(K::Codec(DagJson))),
            // An explicit codec format of a data block, HTML or not: its own
            // codec (and plain json/cbor of dag-json/dag-cbor) as stored...
            (asked(Some(DagJson), true, false), node(DAG_JSON, Data), Respond(K::Codec(DagJson))),
            (asked(Some(DagCbor), false, false), node(DAG_CBOR, Data), Respond(K::Codec(DagCbor))),
            (asked(Some(Json), false, false), node(JSON, Data), Respond(K::Codec(Json))),
            (asked(Some(Cbor), false, false), node(CBOR, Data), Respond(K::Codec(Cbor))),
            (asked(Some(Json), false, false), node(DAG_JSON, Data), Respond(K::Codec(Json))),
            (asked(Some(Cbor), true, false), node(DAG_CBOR, Data), Respond(K::Codec(Cbor))),
            // ... any other is a conversion.
            (asked(Some(DagJson), true, false), node(DAG_CBOR, Data), Respond(K::NotAcceptable(Some(DagJson)))),
            (asked(Some(DagCbor), false, false), node(DAG_JSON, Data), Respond(K::NotAcceptable(Some(DagCbor)))),
            (asked(Some(DagJson), false, false), node(JSON, Data), Respond(K::NotAcceptable(Some(DagJson)))),
            (asked(Some(DagCbor), false, false), node(CBOR, Data), Respond(K::NotAcceptable(Some(DagCbor)))),
            (asked(Some(Cbor), false, false), node(DAG_JSON, Data), Respond(K::NotAcceptable(Some(Cbor)))),
            (asked(Some(Json), false, false), node(DAG_CBOR, Data), Respond(K::NotAcceptable(Some(Json)))),
            (asked(Some(Json), false, false), node(LIBP2P_KEY, File), Respond(K::NotAcceptable(Some(Json)))),
            (converting(asked(Some(DagJson), true, false)), node(DAG_CBOR, Data), Respond(K::Codec(DagJson))),
            (converting(asked(Some(DagCbor), false, false)), node(DAG_JSON, Data), Respond(K::Codec(DagCbor))),
            (converting(asked(Some(Json), false, false)), node(LIBP2P_KEY, File), Respond(K::Codec(Json))),
            // Raw blocks and CARs of anything, conversions or not.
            (converting(asked(Some(Raw), false, false)), Resolved::Unresolved, Respond(K::RawBlock)),
            (converting(asked(Some(Car), true, false)), Resolved::Unresolved, Respond(K::Car)),
            // No format: a browser gets the HTML view of dag-json, dag-cbor
            // and dag-pb without UnixFS data...
            (asked(NONE, true, false), node(DAG_JSON, Data), Respond(K::DagHtml)),
            (asked(NONE, true, true), node(DAG_CBOR, Data), Respond(K::DagHtml)),
            (asked(NONE, true, false), node(DAG_PB, Data), Respond(K::DagHtml)),
            // ... other clients the block's own codec...
            (asked(NONE, false, false), node(DAG_JSON, Data), Respond(K::Codec(DagJson))),
            (asked(NONE, false, false), node(DAG_CBOR, Data), Respond(K::Codec(DagCbor))),
            (asked(NONE, true, false), node(JSON, Data), Respond(K::Codec(Json))),
            (asked(NONE, false, false), node(CBOR, Data), Respond(K::Codec(Cbor))),
            // ... and blocks with no data-model codec of their own nothing
            // without a conversion.
            (asked(NONE, false, false), node(DAG_PB, Data), Respond(K::NotAcceptable(None))),
            (asked(NONE, true, false), node(LIBP2P_KEY, Data), Respond(K::NotAcceptable(None))),
            (converting(asked(NONE, false, false)), node(DAG_PB, Data), Respond(K::Codec(DagJson))),
            (converting(asked(NONE, false, false)), node(LIBP2P_KEY, Data), Respond(K::Codec(DagJson))),
            // A TAR needs the path, then is the answer for any node (a
            // directory without its slash too: no redirect, no index.html).
            (asked(Some(Tar), false, false), Resolved::Unresolved, ResolvePath),
            (asked(Some(Tar), true, false), dir(Index::NotLookedUp), Respond(K::Tar)),
            (asked(Some(Tar), false, true), dir(Index::NotLookedUp), Respond(K::Tar)),
            (asked(Some(Tar), false, false), node(RAW, File), Respond(K::Tar)),
            (asked(Some(Tar), false, false), node(DAG_PB, Symlink), Respond(K::Tar)),
            (asked(Some(Tar), true, false), node(DAG_CBOR, Data), Respond(K::Tar)),
            (asked(Some(Tar), false, false), Resolved::InsideBlock, Respond(K::PathRemainder)),
        ];
        for (asked, resolved, expected) in table {
            assert_eq!(
                decide(asked, *resolved),
                *expected,
                "{asked:?} with {resolved:?}"
            );
        }
    }

    #[test]
    fn metrics_count_explicit_formats_as_codec() {
        assert_eq!(
            K::RawBlock.response_type(Some(Format::Raw)),
            ResponseType::Raw
        );
        assert_eq!(K::Car.response_type(Some(Format::Car)), ResponseType::Car);
        assert_eq!(K::Tar.response_type(Some(Format::Tar)), ResponseType::Tar);
        assert_eq!(K::File.response_type(None), ResponseType::File);
        assert_eq!(K::Symlink.response_type(None), ResponseType::File);
        assert_eq!(
            K::File.response_type(Some(Format::Json)),
            ResponseType::Codec
        );
        assert_eq!(
            K::DirectoryRedirect.response_type(None),
            ResponseType::Directory
        );
        assert_eq!(
            K::DirectoryListing.response_type(Some(Format::Cbor)),
            ResponseType::Codec
        );
        assert_eq!(
            K::DirectoryIndex.response_type(None),
            ResponseType::Directory
        );
        assert_eq!(K::DagHtml.response_type(None), ResponseType::Codec);
        assert_eq!(
            K::NotAcceptable(None).response_type(None),
            ResponseType::Codec
        );
        assert_eq!(
            K::Codec(Format::DagJson).response_type(None),
            ResponseType::Codec
        );
    }
}
