//! `application/x-tar` (`?format=tar`, or by `Accept`): the UnixFS DAG
//! under the path as a TAR archive, its top entry named by the CID the
//! path ends on, streamed depth-first as the body is read: entry headers
//! as their nodes arrive, file bytes block by block (never a whole file,
//! nor the archive), with the next entries' blocks fetched ahead within
//! the response's read-ahead budget.
//!
//! A directory's names are all checked against [`entry_path`] when it is
//! opened, before any of its entries is written (a sharded directory's,
//! shard by shard: it is read one shard at a time as the walk reaches
//! it, each shard once, and never listed whole). The first bytes of the
//! archive (up to [`STATUS_WINDOW`]) are made before the status is sent,
//! so a DAG whose bad name is met there (the root directory's own entries,
//! any small DAG) is refused with a status; one met later ends the body
//! abnormally after a line saying why, so a TAR with an entry outside its
//! root is never delivered whole. Content that is not UnixFS is a 400, as
//! the path gateway spec says.

use std::collections::{HashSet, VecDeque};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::body::streamed_body;
use super::errors::GatewayError;
use super::etag::{not_modified, not_modified_response};
use super::headers::{content_disposition, content_headers, nosniff};
use super::state::Ctx;
use super::tar_format::{
    end_of_archive, entry_header, entry_path, padding, through_symlink, EntryKind, NameProblem,
    TarError, MAX_LINK_BYTES,
};
use crate::blocks::read_ahead::{FetchId, FetchTasks, Prefetcher, ReadAheadBudget};
use crate::blocks::BlockService;
use crate::dag::{DagError, Node, ResolvedPath, MAX_PATH_SEGMENTS};
use crate::unixfs::{
    file_size, file_stream, shard_links, DirEntry, FileBlock, Repeats, ShardLink, UnixfsNode,
    MAX_HAMT_ENTRIES,
};

/// Bytes of the archive made before the status is sent: enough for the
/// headers of a few hundred entries, so a small DAG with a bad name gets a
/// status rather than a cut body.
const STATUS_WINDOW: usize = 64 * 1024;
/// Most directories open at once (nested): the longest content path.
const MAX_OPEN_DIRECTORIES: usize = MAX_PATH_SEGMENTS;
/// Most entries listed but not yet written, over all open directories
/// (as for the CAR walk: far more than real directories hold).
const MAX_PENDING_ENTRIES: usize = 1 << 18;
/// Most bytes of their names.
const MAX_PENDING_NAME_BYTES: usize = 16 << 20;
/// Most bytes of symlink paths remembered (see [`through_symlink`]):
/// tens of thousands of symlinks.
const MAX_SYMLINK_PATH_BYTES: usize = 8 << 20;
/// Entries of the current directory whose blocks are fetched ahead.
const ENTRIES_AHEAD: usize = 16;
/// Bytes expected of an entry's block when its link declares more (a
/// file's or directory's total): a chunk of the common size and framing.
/// A larger block is accounted at its real size when it arrives.
const ENTRY_ESTIMATE: u64 = 1024 * 1024 + 1024;

pub async fn serve_tar(ctx: &Ctx<'_>, resolved: ResolvedPath) -> Result<Response, GatewayError> {
    if !is_unixfs(&resolved.node) {
        return Err(TarError::NotUnixfs {
            cid: resolved.cid,
            kind: resolved.node.kind(),
        }
        .into());
    }
    // Weak: another gateway (or version) may order or frame entries
    // differently; the content is the same.
    let etag = format!("W/\"{}.x-tar\"", resolved.cid);
    let mut headers = content_headers(&ctx.request, &resolved.roots, &etag);
    if not_modified(&ctx.http.headers, &etag) {
        return Ok(not_modified_response(headers));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    let name = ctx
        .request
        .filename
        .clone()
        .unwrap_or_else(|| format!("{}.tar", resolved.cid));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition("attachment", &name),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    let (nosniff_name, nosniff_value) = nosniff();
    headers.insert(nosniff_name, nosniff_value);
    if ctx.is_head() {
        return Ok((StatusCode::OK, headers).into_response());
    }

    let mut archive = tar_stream(
        ctx.blocks.clone(),
        ctx.gateway.read_ahead.response(),
        resolved,
        ctx.gateway.limits.max_bytes_per_request,
    );
    let mut made = Vec::new();
    let mut made_bytes = 0;
    while made_bytes < STATUS_WINDOW {
        match archive.try_next().await? {
            Some(chunk) => {
                made_bytes += chunk.len();
                made.push(Ok(chunk));
            }
            None => break,
        }
    }
    let rest = archive.flat_map(|item| {
        let chunks = match item {
            Ok(chunk) => vec![Ok(chunk)],
            Err(e) => {
                // The status is sent: say why at the end of what was sent
                // (a reader sees garbage where a header should be), then
                // end the body abnormally.
                tracing::warn!(error = %e, "TAR stream aborted");
                let message = format!("\n{e}\n");
                vec![
                    Ok(Bytes::from(message)),
                    Err(std::io::Error::other(e.to_string())),
                ]
            }
        };
        stream::iter(chunks)
    });
    let body = stream::iter(made).chain(rest).boxed();
    Ok((StatusCode::OK, headers, streamed_body(body)).into_response())
}

fn is_unixfs(node: &Node) -> bool {
    match node {
        Node::Raw(_) => true,
        Node::Pb(_, Some(fs)) => !matches!(fs, UnixfsNode::Metadata),
        _ => false,
    }
}

/// The archive of the DAG at `root`, in chunks as the body reads them.
fn tar_stream(
    blocks: BlockService,
    budget: ReadAheadBudget,
    root: ResolvedPath,
    max_file_bytes: u64,
) -> BoxStream<'static, Result<Bytes, TarError>> {
    let walk = TarWalk {
        // Spawned: the next entries arrive while a file's bytes are written.
        prefetcher: Prefetcher::new(blocks.clone(), budget.clone(), FetchTasks::Spawned),
        blocks,
        budget,
        root: Some(root),
        dirs: Vec::new(),
        pending_entries: 0,
        pending_name_bytes: 0,
        file: None,
        symlinks: HashSet::new(),
        symlink_path_bytes: 0,
        max_file_bytes,
        finished: false,
    };
    stream::try_unfold(walk, |mut walk| async move {
        Ok(walk.next().await?.map(|chunk| (chunk, walk)))
    })
    .boxed()
}

/// A directory being written (or one shard of a sharded one): its path
/// and the entries still to write.
struct OpenDir {
    cid: Cid,
    path: String,
    entries: VecDeque<Entry>,
    hamt: Option<Hamt>,
}

/// What a shard of a sharded directory knows of the directory.
struct Hamt {
    fanout: u64,
    /// Shards of the directory read so far: each is read once, however
    /// often it is linked (as in [`crate::unixfs::hamt_list`]). Held by the
    /// shard being written, handed back to its parent when it closes.
    seen: HashSet<Cid>,
    /// A child shard (its parent is the next `OpenDir` down), not the
    /// directory's root shard.
    nested: bool,
}

struct Entry {
    /// `None` for a child shard of a sharded directory.
    name: Option<String>,
    cid: Cid,
    estimate: u64,
    fetch: Option<FetchId>,
}

/// The file whose bytes are being written.
struct OpenFile {
    cid: Cid,
    data: BoxStream<'static, Result<FileBlock, DagError>>,
    size: u64,
    written: u64,
}

struct TarWalk {
    blocks: BlockService,
    budget: ReadAheadBudget,
    prefetcher: Prefetcher,
    root: Option<ResolvedPath>,
    /// The directories open, the one being written last.
    dirs: Vec<OpenDir>,
    pending_entries: usize,
    pending_name_bytes: usize,
    file: Option<OpenFile>,
    /// Paths of the symlinks written so far, and their bytes.
    symlinks: HashSet<String>,
    symlink_path_bytes: usize,
    /// What one request may read (`[limits] max_bytes_per_request`): a
    /// file declaring more is refused at its header, not cut halfway.
    max_file_bytes: u64,
    finished: bool,
}

impl TarWalk {
    /// The next chunk of the archive: a file's bytes, its padding, an
    /// entry's header, or the end of the archive.
    async fn next(&mut self) -> Result<Option<Bytes>, TarError> {
        loop {
            if let Some(file) = &mut self.file {
                match file.data.try_next().await? {
                    Some(block) if block.data.is_empty() => continue,
                    Some(block) => {
                        file.written += block.data.len() as u64;
                        if file.written > file.size {
                            return Err(file_inconsistent(file));
                        }
                        return Ok(Some(block.data));
                    }
                    None => {
                        if file.written != file.size {
                            return Err(file_inconsistent(file));
                        }
                        let pad = padding(file.size);
                        self.file = None;
                        if pad.is_empty() {
                            continue;
                        }
                        return Ok(Some(pad));
                    }
                }
            }
            if let Some(root) = self.root.take() {
                let name = root.cid.to_string();
                return self
                    .entry(name, root.cid, root.block, root.node)
                    .await
                    .map(Some);
            }
            let Some(dir) = self.dirs.last_mut() else {
                if self.finished {
                    return Ok(None);
                }
                self.finished = true;
                return Ok(Some(end_of_archive()));
            };
            let Some(entry) = dir.entries.pop_front() else {
                let closed = self.dirs.pop();
                if let Some(Hamt {
                    nested: true, seen, ..
                }) = closed.and_then(|d| d.hamt)
                {
                    if let Some(parent) = self.dirs.last_mut().and_then(|d| d.hamt.as_mut()) {
                        parent.seen = seen;
                    }
                }
                continue;
            };
            self.pending_entries -= 1;
            let Some(name) = entry.name else {
                self.open_child_shard(entry.cid, entry.fetch).await?;
                continue;
            };
            self.pending_name_bytes -= name.len();
            let bad_name = |problem| TarError::BadName {
                dir: dir.cid,
                name: name.clone(),
                problem,
            };
            // Checked when the directory was opened; made again rather
            // than held for every entry listed.
            let path = entry_path(&dir.path, &name).map_err(bad_name)?;
            if let Some(link) = through_symlink(&path, &self.symlinks) {
                let link = link.to_string();
                return Err(bad_name(NameProblem::ThroughSymlink { path, link }));
            }
            let id = entry
                .fetch
                .unwrap_or_else(|| self.prefetcher.start_needed(entry.cid));
            self.fetch_ahead();
            let block = self
                .prefetcher
                .take(id, &entry.cid)
                .await
                .map_err(DagError::from)?;
            let node = Node::decode(&entry.cid, block.clone())?;
            return self.entry(path, entry.cid, block, node).await.map(Some);
        }
    }

    /// Opens the child shard `cid` of the sharded directory being written,
    /// unless the directory has read it already.
    async fn open_child_shard(&mut self, cid: Cid, fetch: Option<FetchId>) -> Result<(), TarError> {
        let Some(dir) = self.dirs.last_mut() else {
            return Ok(());
        };
        let Some(hamt) = dir.hamt.as_mut() else {
            return Err(DagError::Inconsistent {
                cid: dir.cid,
                reason: "a plain directory listed a HAMT shard".into(),
            }
            .into());
        };
        if !hamt.seen.insert(cid) {
            if let Some(id) = fetch {
                self.prefetcher.abandon(id);
            }
            return Ok(());
        }
        if hamt.seen.len() > MAX_HAMT_ENTRIES {
            return Err(TarError::TooLarge(format!(
                "a sharded directory of more than {MAX_HAMT_ENTRIES} shards"
            )));
        }
        let (fanout, seen, path) = (
            hamt.fanout,
            std::mem::take(&mut hamt.seen),
            dir.path.clone(),
        );
        let id = fetch.unwrap_or_else(|| self.prefetcher.start_needed(cid));
        self.fetch_ahead();
        let block = self
            .prefetcher
            .take(id, &cid)
            .await
            .map_err(DagError::from)?;
        let node = Node::decode(&cid, block)?;
        let (_, links) = shard_links(&cid, &node, Some(fanout))?;
        let hamt = Hamt {
            fanout,
            seen,
            nested: true,
        };
        self.open_dir(cid, &path, links, Some(hamt))
    }

    /// Starts fetching the next entries of the directory being written
    /// while the budget has room. Runs only when the body asks for more.
    fn fetch_ahead(&mut self) {
        let Some(dir) = self.dirs.last_mut() else {
            return;
        };
        for entry in dir.entries.iter_mut().take(ENTRIES_AHEAD) {
            if entry.fetch.is_some() {
                continue;
            }
            match self.prefetcher.start(entry.cid, entry.estimate) {
                Some(id) => entry.fetch = Some(id),
                None => return,
            }
        }
    }

    /// The header of the entry at `path`; a directory is opened (its names
    /// checked), a file's bytes follow.
    async fn entry(
        &mut self,
        path: String,
        cid: Cid,
        block: Bytes,
        node: Node,
    ) -> Result<Bytes, TarError> {
        match &node {
            Node::Raw(_) | Node::Pb(_, Some(UnixfsNode::File { .. })) => {
                let size = file_size(&cid, &node)?;
                if size > self.max_file_bytes {
                    return Err(TarError::TooLarge(format!(
                        "the file {path:?} of {size} bytes, more than the {} one request may read ([limits] max_bytes_per_request)",
                        self.max_file_bytes
                    )));
                }
                if size > 0 {
                    self.file = Some(OpenFile {
                        cid,
                        data: file_stream(
                            self.blocks.clone(),
                            self.budget.clone(),
                            cid,
                            block,
                            (0, size),
                            Repeats::Visit,
                        ),
                        size,
                        written: 0,
                    });
                }
                Ok(entry_header(&path, EntryKind::File { size }))
            }
            Node::Pb(pb, Some(UnixfsNode::Directory)) => {
                let entries = pb.links.iter().map(|link| {
                    ShardLink::Entry(DirEntry {
                        name: link.name.clone().unwrap_or_default(),
                        cid: link.cid,
                        size: link.size,
                    })
                });
                self.open_dir(cid, &path, entries, None)?;
                Ok(entry_header(&path, EntryKind::Directory))
            }
            Node::Pb(_, Some(UnixfsNode::HamtShard { .. })) => {
                // Read a shard at a time as the walk reaches it: a sharded
                // directory of any size is never listed whole.
                let (fanout, links) = shard_links(&cid, &node, None)?;
                let hamt = Hamt {
                    fanout,
                    seen: HashSet::from([cid]),
                    nested: false,
                };
                self.open_dir(cid, &path, links, Some(hamt))?;
                Ok(entry_header(&path, EntryKind::Directory))
            }
            Node::Pb(_, Some(UnixfsNode::Symlink { target })) => {
                let bad_link = |reason: String| TarError::BadLink { cid, reason };
                if target.contains(&0) {
                    return Err(bad_link("holds a NUL byte".into()));
                }
                if target.len() > MAX_LINK_BYTES {
                    return Err(bad_link(format!(
                        "is {} bytes, longer than {MAX_LINK_BYTES}",
                        target.len()
                    )));
                }
                self.symlink_path_bytes += path.len();
                if self.symlink_path_bytes > MAX_SYMLINK_PATH_BYTES {
                    return Err(TarError::TooLarge(format!(
                        "more symlinks than {} MiB of their paths remembered",
                        MAX_SYMLINK_PATH_BYTES >> 20
                    )));
                }
                let header = entry_header(&path, EntryKind::Symlink { target });
                self.symlinks.insert(path);
                Ok(header)
            }
            other => Err(TarError::NotUnixfs {
                cid,
                kind: other.kind(),
            }),
        }
    }

    /// Opens the directory (or shard) `cid` at `path` with its entries,
    /// every name checked now: a bad one refuses the archive before any
    /// entry of the directory (of the shard, for a sharded one) is written.
    fn open_dir(
        &mut self,
        cid: Cid,
        path: &str,
        listed: impl IntoIterator<Item = ShardLink>,
        hamt: Option<Hamt>,
    ) -> Result<(), TarError> {
        if self.dirs.len() >= MAX_OPEN_DIRECTORIES {
            return Err(DagError::TooDeep(MAX_OPEN_DIRECTORIES).into());
        }
        let mut entries = VecDeque::new();
        for link in listed {
            let (name, child, size) = match link {
                ShardLink::Entry(entry) => (Some(entry.name), entry.cid, entry.size),
                ShardLink::Shard { cid, size } => (None, cid, size),
            };
            if let Some(name) = &name {
                if let Err(problem) = entry_path(path, name) {
                    return Err(TarError::BadName {
                        dir: cid,
                        name: name.clone(),
                        problem,
                    });
                }
                self.pending_name_bytes += name.len();
            }
            self.pending_entries += 1;
            if self.pending_entries > MAX_PENDING_ENTRIES
                || self.pending_name_bytes > MAX_PENDING_NAME_BYTES
            {
                return Err(TarError::TooLarge(format!(
                    "more than {MAX_PENDING_ENTRIES} directory entries (or {} MiB of their names) listed and not yet written",
                    MAX_PENDING_NAME_BYTES >> 20
                )));
            }
            entries.push_back(Entry {
                name,
                cid: child,
                estimate: size.unwrap_or(ENTRY_ESTIMATE).min(ENTRY_ESTIMATE),
                fetch: None,
            });
        }
        self.dirs.push(OpenDir {
            cid,
            path: path.to_string(),
            entries,
            hamt,
        });
        Ok(())
    }
}

fn file_inconsistent(file: &OpenFile) -> TarError {
    DagError::Inconsistent {
        cid: file.cid,
        reason: format!(
            "the file's blocks hold other than the {} bytes it declares",
            file.size
        ),
    }
    .into()
}
