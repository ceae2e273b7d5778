//! The one decision of how a content request is answered: from what the
//! request asks for (`?format=` or `Accept`, whether it wants HTML, the
//! trailing slash) and what its path resolved to, a [`ResponseKind`]. It
//! is pure, so every combination is a line of a table test, and the
//! handlers never choose for one another: [`super::serve`] gathers the
//! facts [`decide`] asks for, then calls the one handler it names.
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
                ResponseKind::Codec(_) | ResponseKind::DagHtml | ResponseKind::PathRemainder,
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
}

impl Asked {
    pub fn of(request: &ContentRequest) -> Asked {
        Asked {
            format: request.format,
            wants_html: request.wants_html,
            trailing_slash: request.trailing_slash,
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
        Some(format) => Respond(ResponseKind::Codec(format)),
        None => as_path_gateway(asked, codec, node),
    }
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
        NodeKind::Data
            if asked.wants_html && matches!(block_codec, codec::DAG_JSON | codec::DAG_CBOR) =>
        {
            Respond(ResponseKind::DagHtml)
        }
        NodeKind::Data => Respond(ResponseKind::Codec(match block_codec {
            codec::DAG_JSON => Format::DagJson,
            codec::DAG_CBOR => Format::DagCbor,
            codec::JSON => Format::Json,
            codec::CBOR => Format::Cbor,
            // dag-pb without UnixFS data, libp2p keys: show the data model.
            _ => Format::DagJson,
        })),
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
            (asked(Some(Json), false, false), node(DAG_PB, Data), Respond(K::Codec(DagJson))),
            // ... but dag-json/dag-cbor of UnixFS is a conversion.
            (asked(Some(DagJson), false, false), node(DAG_PB, File), Respond(K::Codec(DagJson))),
            (asked(Some(DagCbor), false, true), dir(Index::NotLookedUp), Respond(K::Codec(DagCbor))),
            (asked(Some(DagJson), true, false), node(RAW, File), Respond(K::Codec(DagJson))),
            // An explicit codec format of a data block, HTML or not.
            (asked(Some(DagJson), true, false), node(DAG_CBOR, Data), Respond(K::Codec(DagJson))),
            (asked(Some(DagCbor), false, false), node(DAG_JSON, Data), Respond(K::Codec(DagCbor))),
            (asked(Some(Json), false, false), node(DAG_JSON, Data), Respond(K::Codec(Json))),
            (asked(Some(Cbor), true, false), node(DAG_CBOR, Data), Respond(K::Codec(Cbor))),
            (asked(Some(Json), false, false), node(LIBP2P_KEY, File), Respond(K::Codec(Json))),
            // No format: a browser gets the HTML view of dag-json/dag-cbor...
            (asked(NONE, true, false), node(DAG_JSON, Data), Respond(K::DagHtml)),
            (asked(NONE, true, true), node(DAG_CBOR, Data), Respond(K::DagHtml)),
            // ... other clients (and other codecs) the block's own codec.
            (asked(NONE, false, false), node(DAG_JSON, Data), Respond(K::Codec(DagJson))),
            (asked(NONE, false, false), node(DAG_CBOR, Data), Respond(K::Codec(DagCbor))),
            (asked(NONE, true, false), node(JSON, Data), Respond(K::Codec(Json))),
            (asked(NONE, false, false), node(CBOR, Data), Respond(K::Codec(Cbor))),
            (asked(NONE, true, false), node(DAG_PB, Data), Respond(K::Codec(DagJson))),
            (asked(NONE, false, false), node(LIBP2P_KEY, Data), Respond(K::Codec(DagJson))),
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
            K::Codec(Format::DagJson).response_type(None),
            ResponseType::Codec
        );
    }
}
