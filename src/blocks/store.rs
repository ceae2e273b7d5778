//! Local block stores. None of them verifies: the [`BlockService`] does,
//! on the way into the cache.
//!
//! [`BlockService`]: super::BlockService

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::future::BoxFuture;
use parking_lot::RwLock;

use crate::car::{CarError, CarReader};
use crate::verify::{verify_block, MAX_BLOCK_SIZE};

/// A place blocks are kept. Object-safe so the block service can hold a list.
pub trait BlockStore: Send + Sync + 'static {
    fn get<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, io::Result<Option<Bytes>>>;

    /// True if every block was verified when the store was opened and the
    /// store cannot change underneath (then reads need not be re-hashed).
    fn verified_at_open(&self) -> bool {
        false
    }

    /// Replaces a copy of `cid` that failed verification with `data`, a
    /// verified copy from elsewhere. Stores that cannot be written keep
    /// what they have.
    fn repair(&self, _cid: Cid, _data: Bytes) -> BoxFuture<'static, io::Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Stores find a block by its multihash, as Kubo's do: the bytes are the
/// same whatever the CID's version (a CIDv0 site asked for by its CIDv1
/// on a subdomain) or codec.
type BlockKey = cid::multihash::Multihash<64>;

/// Blocks in memory; used by tests and for small ad-hoc content.
#[derive(Default)]
pub struct MemoryStore {
    blocks: RwLock<HashMap<BlockKey, Bytes>>,
}

impl MemoryStore {
    pub fn insert(&self, cid: Cid, data: Bytes) {
        self.blocks.write().insert(*cid.hash(), data);
    }
}

impl BlockStore for MemoryStore {
    fn get<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, io::Result<Option<Bytes>>> {
        let found = self.blocks.read().get(cid.hash()).cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// A CAR file served in place: an index of where each block sits, and
/// positional reads on demand, so a large CAR costs no memory beyond its
/// index.
pub struct CarFileStore {
    file: Arc<std::fs::File>,
    index: HashMap<BlockKey, (u64, u32)>,
    roots: Vec<Cid>,
}

impl CarFileStore {
    /// Reads the whole CAR once, verifying every block; a corrupt CAR is
    /// rejected whole.
    pub fn open(path: &Path) -> Result<Self, CarError> {
        let file = std::fs::File::open(path).map_err(CarError::Io)?;
        let mut reader = CarReader::new(io::BufReader::with_capacity(
            1 << 20,
            file.try_clone().map_err(CarError::Io)?,
        ))?;
        let roots = reader.roots().to_vec();
        let mut index = HashMap::new();
        while let Some(section) = reader.next_section()? {
            index.insert(
                *section.cid.hash(),
                (section.data_offset, section.data.len() as u32),
            );
        }
        Ok(CarFileStore {
            file: Arc::new(file),
            index,
            roots,
        })
    }

    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl BlockStore for CarFileStore {
    fn get<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, io::Result<Option<Bytes>>> {
        Box::pin(async move {
            let Some(&(offset, len)) = self.index.get(cid.hash()) else {
                return Ok(None);
            };
            let file = self.file.clone();
            let data = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset).map(|_| buf)
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some(Bytes::from(data)))
        })
    }

    /// Every block was hashed when the CAR was indexed; the file is then
    /// only read, through an open handle. (Rewriting a served CAR in place
    /// is outside what this store supports.)
    fn verified_at_open(&self) -> bool {
        true
    }
}

/// One file per block under `<data-dir>/blocks/`, named by the block's
/// multihash and spread over 2-character shard directories (the layout of
/// Kubo's flatfs). Writes go to a temporary file and are renamed into place,
/// so a crash never leaves a half-written block under a real name.
#[derive(Clone)]
pub struct FlatFsStore {
    root: PathBuf,
}

/// Temporary files start with this, then the writer's process id.
const TEMP_PREFIX: &str = ".tmp-";

impl FlatFsStore {
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blocks");
        std::fs::create_dir_all(&root)?;
        Ok(FlatFsStore { root })
    }

    /// Removes temporary files left by writers that died mid-write (a
    /// killed import); those of live processes (an import running beside
    /// the server) are left alone. Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> io::Result<usize> {
        let mut removed = 0;
        for shard in std::fs::read_dir(&self.root)? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&shard)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(writer) = name.to_str().and_then(temp_file_writer) else {
                    continue;
                };
                let alive = writer == std::process::id()
                    || Path::new("/proc").join(writer.to_string()).exists();
                if !alive {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn path_for(&self, cid: &Cid) -> PathBuf {
        // Keyed by multihash, not CID: the same bytes under CIDv0 and CIDv1
        // or another codec are one file.
        let name = multibase::encode(multibase::Base::Base32Upper, cid.hash().to_bytes());
        let name = &name[1..]; // drop the multibase prefix
        let shard = &name[name.len() - 3..name.len() - 1];
        self.root.join(shard).join(format!("{name}.data"))
    }

    /// Stores an already verified block. A file already there is kept only
    /// if it still verifies: a copy damaged on disk is replaced.
    pub fn put_blocking(&self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        use std::io::{Read, Write};
        let path = self.path_for(cid);
        match std::fs::File::open(&path) {
            Ok(file) => {
                let mut existing = Vec::new();
                file.take(MAX_BLOCK_SIZE as u64 + 1)
                    .read_to_end(&mut existing)?;
                if verify_block(cid, &existing).is_ok() {
                    return Ok(());
                }
                tracing::warn!(%cid, path = %path.display(), "stored block failed verification; replacing it");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let Some(dir) = path.parent() else {
            return Err(io::Error::other("block path has no shard directory"));
        };
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(data)?;
        tmp.1.sync_data()?;
        std::fs::rename(&tmp.0, &path)
    }

    pub fn sync_dirs_blocking(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.root)? {
            std::fs::File::open(entry?.path())?.sync_all()?;
        }
        std::fs::File::open(&self.root)?.sync_all()
    }
}

fn tempfile_in(dir: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

/// The process id in a temporary file's name (`.tmp-<pid>-<n>`).
fn temp_file_writer(name: &str) -> Option<u32> {
    name.strip_prefix(TEMP_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

impl BlockStore for FlatFsStore {
    fn repair(&self, cid: Cid, data: Bytes) -> BoxFuture<'static, io::Result<()>> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.put_blocking(&cid, &data))
                .await
                .map_err(io::Error::other)?
        })
    }

    fn get<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, io::Result<Option<Bytes>>> {
        // The open is done here, not on the blocking pool: most lookups are
        // misses for blocks about to be fetched, and a miss answered at once
        // keeps the fetches' network wants in the order they were asked for
        // (a round trip through the pool finished them in any order, and
        // providers serve wants in the order they arrive).
        let file = match std::fs::File::open(self.path_for(cid)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Box::pin(std::future::ready(Ok(None)))
            }
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut data = Vec::new();
                // One byte over the limit tells a too-large file from a full one.
                file.take(MAX_BLOCK_SIZE as u64 + 1)
                    .read_to_end(&mut data)?;
                if data.len() > MAX_BLOCK_SIZE {
                    return Err(io::Error::other(format!(
                        "stored block is over the {MAX_BLOCK_SIZE}-byte limit"
                    )));
                }
                Ok(Some(Bytes::from(data)))
            })
            .await
            .map_err(io::Error::other)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    #[tokio::test]
    async fn flatfs_reads_back_misses_and_refuses_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlatFsStore::open(dir.path()).unwrap();
        let cid = |data: &[u8]| Cid::new_v1(0x55, Code::Sha2_256.digest(data));

        let kept = cid(b"kept");
        store.put_blocking(&kept, b"kept").unwrap();
        assert_eq!(
            store.get(&kept).await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(store.get(&cid(b"absent")).await.unwrap(), None);

        // A file grown past the block limit on disk is not read whole.
        let grown = cid(b"grown");
        store.put_blocking(&grown, b"grown").unwrap();
        std::fs::write(store.path_for(&grown), vec![0u8; MAX_BLOCK_SIZE + 10]).unwrap();
        let error = store.get(&grown).await.unwrap_err();
        assert!(error.to_string().contains("over the"), "{error}");
    }

    #[tokio::test]
    async fn a_damaged_block_is_replaced_and_a_good_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlatFsStore::open(dir.path()).unwrap();
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(b"block"));
        store.put_blocking(&cid, b"block").unwrap();
        std::fs::write(store.path_for(&cid), b"blocc").unwrap();
        store.put_blocking(&cid, b"block").unwrap();
        assert_eq!(std::fs::read(store.path_for(&cid)).unwrap(), b"block");
        // A good copy is not rewritten (its modification time stays).
        let before = std::fs::metadata(store.path_for(&cid))
            .unwrap()
            .modified()
            .unwrap();
        store.put_blocking(&cid, b"block").unwrap();
        let after = std::fs::metadata(store.path_for(&cid))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn stale_temp_files_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FlatFsStore::open(dir.path()).unwrap();
        let shard = store.root.join("AB");
        std::fs::create_dir_all(&shard).unwrap();
        // No process has pid 4194304 + 1 (above Linux's pid_max).
        let dead = shard.join(format!("{TEMP_PREFIX}4194305-0"));
        let live = shard.join(format!("{TEMP_PREFIX}{}-7", std::process::id()));
        let block = shard.join("CIQXYZAB.data");
        for f in [&dead, &live, &block] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(store.remove_stale_temp_files().unwrap(), 1);
        assert!(!dead.exists() && live.exists() && block.exists());
    }
}
