//! The block service: every block the gateway serves passes through here.
//!
//! It owns block verification (a block is accepted only if its bytes hash to
//! its CID), the byte-weighted in-memory cache, and the local stores behind
//! it (CAR files indexed in place, and the on-disk store in the data
//! directory). Later layers (network fetchers) plug in below the cache; the
//! callers above — the DAG layer and the gateway — only ever ask for a CID.

mod store;
mod verify;

use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;

pub use store::{BlockStore, CarFileStore, FlatFsStore, MemoryStore};
pub use verify::{verify_block, VerifyError};

/// Largest block accepted from any source (the Bitswap and trustless
/// gateway conventions both cap blocks at 2 MiB).
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// Multihash code of the identity "hash": the digest is the data itself.
const IDENTITY: u64 = 0x00;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// No store has the block, and nothing may fetch it.
    #[error("block {0} is not available locally and no provider has it")]
    NotFound(Cid),
    /// The caller asked not to go to the network (`Cache-Control: only-if-cached`).
    #[error("block {0} is not in the local store")]
    NotCached(Cid),
    #[error("block {cid} failed verification: {source}")]
    Invalid {
        cid: Cid,
        #[source]
        source: VerifyError,
    },
    #[error("store error reading {cid}: {source}")]
    Io {
        cid: Cid,
        #[source]
        source: std::io::Error,
    },
}

/// Where a block was found, for metrics and (later) session provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    Inline,
    Cache,
    Store,
}

/// The one way to read blocks. Cheap to clone.
#[derive(Clone)]
pub struct BlockService {
    inner: Arc<Inner>,
    /// Set for `Cache-Control: only-if-cached` requests: a miss is
    /// [`BlockError::NotCached`] and nothing is fetched.
    local_only: bool,
}

struct Inner {
    cache: moka::sync::Cache<Cid, Bytes>,
    /// Searched in order; the first that has a block wins.
    stores: Vec<Arc<dyn BlockStore>>,
}

impl BlockService {
    /// `cache_bytes` bounds the in-memory cache by the total size of the
    /// blocks it holds, not by their count.
    pub fn new(cache_bytes: u64, stores: Vec<Arc<dyn BlockStore>>) -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|_cid: &Cid, data: &Bytes| data.len().try_into().unwrap_or(u32::MAX))
            .max_capacity(cache_bytes)
            .build();
        BlockService {
            inner: Arc::new(Inner { cache, stores }),
            local_only: false,
        }
    }

    /// Fetches a block, verified against its CID.
    pub async fn get(&self, cid: &Cid) -> Result<Bytes, BlockError> {
        self.get_with_source(cid).await.map(|(data, _)| data)
    }

    /// The same service, restricted to blocks already held locally.
    pub fn local_only(&self) -> BlockService {
        BlockService {
            inner: self.inner.clone(),
            local_only: true,
        }
    }

    pub async fn get_with_source(&self, cid: &Cid) -> Result<(Bytes, BlockSource), BlockError> {
        if cid.hash().code() == IDENTITY {
            let data = Bytes::copy_from_slice(cid.hash().digest());
            return Ok((data, BlockSource::Inline));
        }
        if let Some(data) = self.inner.cache.get(cid) {
            return Ok((data, BlockSource::Cache));
        }
        for store in &self.inner.stores {
            let found = store
                .get(cid)
                .await
                .map_err(|source| BlockError::Io { cid: *cid, source })?;
            if let Some(data) = found {
                // Stores are only trusted as far as the hash: a flipped bit on
                // disk must not reach a client or the cache.
                verify_block(cid, &data)
                    .map_err(|source| BlockError::Invalid { cid: *cid, source })?;
                self.inner.cache.insert(*cid, data.clone());
                return Ok((data, BlockSource::Store));
            }
        }
        if self.local_only {
            return Err(BlockError::NotCached(*cid));
        }
        Err(BlockError::NotFound(*cid))
    }

    /// True if the block is local (inline, cached or stored), without reading it.
    pub async fn has_local(&self, cid: &Cid) -> bool {
        if cid.hash().code() == IDENTITY || self.inner.cache.contains_key(cid) {
            return true;
        }
        for store in &self.inner.stores {
            if store.has(cid).await.unwrap_or(false) {
                return true;
            }
        }
        false
    }

    /// Bytes currently held by the cache.
    pub fn cache_weight(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.weighted_size()
    }
}
