//! The block service: every block the gateway serves passes through here.
//!
//! It applies block verification ([`crate::verify`]: a block is accepted only
//! if its bytes hash to its CID; network blocks are verified once by the
//! fetcher, where they come off the wire), and owns the byte-weighted
//! in-memory cache (moka), the local stores behind it (CAR files indexed
//! in place, and the on-disk store in the data directory), and, when a
//! block is not local, the network fetcher. `sluice import` writes into the
//! on-disk store through [`import_car`]. Reads
//! happen inside the request's session (see [`crate::session`]): the
//! service tells it where each block came from, and a cache hit tells it
//! which provider delivered the block, a likely holder of its siblings.
//! The callers above — the DAG layer and the gateway — only ever ask for a
//! CID.
//!
//! [`read_ahead`] bounds the bytes those callers hold fetched ahead of a
//! response's writer, per response and across the process.

mod import;
pub mod read_ahead;
mod store;

use std::sync::Arc;

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::fetch::{BlockFetcher, FetchError};
use crate::routing::ProviderHint;
use crate::session::BlockSource;
use crate::session::{self, ProviderId, ProviderSource};

use crate::verify::{verify_block, VerifyError, IDENTITY};
pub use import::{import_car, ImportSummary};
pub use store::{BlockStore, CarFileStore, FlatFsStore, MemoryStore};

/// Blocks read from a local store are cached only up to this size: small
/// blocks (directory and file roots, small files) are read on every request
/// for their content, while large leaves streamed through the gateway would
/// only push them out, and are served from the OS page cache as fast.
/// Blocks fetched from the network are always cached.
const MAX_CACHED_LOCAL_BLOCK: usize = 64 * 1024;

/// `[store]`: the local stores and the cache in front of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Holds the on-disk block store (`blocks/`). `~` expands to `$HOME`.
    pub data_dir: PathBuf,
    /// Upper bound of the in-memory block cache, in bytes.
    pub cache_bytes: u64,
    /// CAR files served in place (in addition to `--car`).
    pub car_files: Vec<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("~/.local/share/sluice"),
            cache_bytes: 256 * 1024 * 1024,
            car_files: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// No store has the block, and no provider was found that has it;
    /// `search` says what the search did (empty when there is no network).
    #[error("block {cid} is not available locally and no provider has it{search}")]
    NotFound { cid: Cid, search: String },
    /// The caller asked not to go to the network (`Cache-Control: only-if-cached`).
    #[error("block {0} is not in the local store")]
    NotCached(Cid),
    #[error("block {cid} failed verification: {source}")]
    Invalid {
        cid: Cid,
        #[source]
        source: VerifyError,
    },
    #[error("{0}")]
    Timeout(FetchError),
    #[error(transparent)]
    OverBudget(#[from] session::BudgetExceeded),
    #[error("store error reading {cid}: {source}")]
    Io {
        cid: Cid,
        #[source]
        source: std::io::Error,
    },
}

/// Block metrics: how many blocks came from where, and what failed.
fn count(found: &Result<(Bytes, BlockSource), BlockError>) {
    use crate::metrics::{BlockLabels, BlockOrigin, BlockOutcome, SourceLabel};
    let metrics = crate::metrics::Metrics::global();
    let (source, outcome) = match found {
        Ok((data, source)) => {
            let origin = match source {
                BlockSource::Inline | BlockSource::Cache => BlockOrigin::Cache,
                BlockSource::Store => BlockOrigin::Store,
                BlockSource::Network(ProviderId::Peer(_)) => BlockOrigin::Bitswap,
                BlockSource::Network(ProviderId::Http(_)) => BlockOrigin::Http,
            };
            metrics
                .bytes
                .get_or_create(&SourceLabel { source: origin })
                .inc_by(data.len() as u64);
            (origin, BlockOutcome::Ok)
        }
        Err(BlockError::NotFound { .. } | BlockError::NotCached(_)) => {
            (BlockOrigin::Network, BlockOutcome::NotFound)
        }
        Err(BlockError::Timeout(_)) => (BlockOrigin::Network, BlockOutcome::Timeout),
        Err(BlockError::Invalid { .. } | BlockError::Io { .. }) => {
            (BlockOrigin::Store, BlockOutcome::Invalid)
        }
        // Refused before any source was asked: not a block outcome.
        Err(BlockError::OverBudget(_)) => return,
    };
    metrics
        .blocks
        .get_or_create(&BlockLabels { source, outcome })
        .inc();
}

/// The one way to read blocks. Cheap to clone.
#[derive(Clone)]
pub struct BlockService {
    inner: Arc<Inner>,
    /// Set for `Cache-Control: only-if-cached` requests: a miss is
    /// [`BlockError::NotCached`] and nothing is fetched.
    local_only: bool,
}

/// A cached block and the provider that delivered it, if it came from the network.
#[derive(Clone)]
struct Cached {
    data: Bytes,
    provider: Option<ProviderId>,
}

struct Inner {
    cache: moka::sync::Cache<Cid, Cached>,
    cache_bytes: u64,
    /// Searched in order; the first that has a block wins.
    stores: Vec<Arc<dyn BlockStore>>,
    fetcher: Option<Arc<dyn BlockFetcher>>,
}

impl BlockService {
    /// `cache_bytes` bounds the in-memory cache by the total size of the
    /// blocks it holds, not by their count.
    pub fn new(
        cache_bytes: u64,
        stores: Vec<Arc<dyn BlockStore>>,
        fetcher: Option<Arc<dyn BlockFetcher>>,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .weigher(|_cid: &Cid, cached: &Cached| cached.data.len().try_into().unwrap_or(u32::MAX))
            .max_capacity(cache_bytes)
            .build();
        BlockService {
            inner: Arc::new(Inner {
                cache,
                cache_bytes,
                stores,
                fetcher,
            }),
            local_only: false,
        }
    }

    /// True if the service can serve anything: a store is open or a fetcher is set.
    pub fn is_ready(&self) -> bool {
        !self.inner.stores.is_empty() || self.inner.fetcher.is_some()
    }

    /// True if blocks that are not local can be fetched from the network.
    pub fn can_fetch(&self) -> bool {
        self.inner.fetcher.is_some()
    }

    /// Seeds the current session with a request's provider hints.
    pub fn seed_hints(&self, hints: &[ProviderHint]) {
        if let Some(fetcher) = &self.inner.fetcher {
            fetcher.seed_hints(hints);
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
        let started = Instant::now();
        let session = session::current();
        if let Some(session) = &session {
            session.check_budget()?;
        }
        let found = self.find(cid).await;
        if let (Ok((data, source)), Some(session)) = (&found, &session) {
            session.note_block(source.clone(), data.len(), started.elapsed());
        }
        count(&found);
        found
    }

    async fn find(&self, cid: &Cid) -> Result<(Bytes, BlockSource), BlockError> {
        if cid.hash().code() == IDENTITY {
            let data = Bytes::copy_from_slice(cid.hash().digest());
            return Ok((data, BlockSource::Inline));
        }
        let cached = self.inner.cache.get(cid);
        let metrics = crate::metrics::Metrics::global();
        let counter = if cached.is_some() {
            &metrics.cache_hits
        } else {
            &metrics.cache_misses
        };
        counter.inc();
        if let Some(cached) = cached {
            if let (Some(provider), Some(session)) = (cached.provider, session::current()) {
                session.add_provider(provider, ProviderSource::Provenance);
            }
            return Ok((cached.data, BlockSource::Cache));
        }
        // Stores whose copy failed verification, and why: repaired when a
        // good copy turns up, reported when none does.
        let mut damaged: Vec<(&Arc<dyn BlockStore>, VerifyError)> = Vec::new();
        for store in &self.inner.stores {
            let found = store
                .get(cid)
                .await
                .map_err(|source| BlockError::Io { cid: *cid, source })?;
            if let Some(data) = found {
                // Stores are only trusted as far as the hash: a flipped bit on
                // disk must not reach a client or the cache.
                if !store.verified_at_open() {
                    if let Err(source) = verify_block(cid, &data) {
                        tracing::warn!(%cid, error = %source, "stored block failed verification");
                        crate::metrics::Metrics::global()
                            .bad_blocks
                            .get_or_create(&crate::metrics::SourceLabel {
                                source: crate::metrics::BlockOrigin::Store,
                            })
                            .inc();
                        damaged.push((store, source));
                        continue;
                    }
                }
                if data.len() <= MAX_CACHED_LOCAL_BLOCK {
                    self.insert(cid, data.clone(), None);
                }
                self.repair(cid, &data, &damaged);
                return Ok((data, BlockSource::Store));
            }
        }
        let invalid = |damaged: Vec<(&Arc<dyn BlockStore>, VerifyError)>| {
            damaged
                .into_iter()
                .next()
                .map(|(_, source)| BlockError::Invalid { cid: *cid, source })
        };
        if self.local_only {
            return Err(invalid(damaged).unwrap_or(BlockError::NotCached(*cid)));
        }
        let Some(fetcher) = &self.inner.fetcher else {
            return Err(invalid(damaged).unwrap_or(BlockError::NotFound {
                cid: *cid,
                search: String::new(),
            }));
        };
        let (data, provider) = match fetcher.fetch(cid).await {
            Ok(found) => found,
            Err(e) => {
                return Err(invalid(damaged).unwrap_or(match e {
                    FetchError::NoProviders { cid, search } => BlockError::NotFound {
                        cid,
                        search: format!(" ({search})"),
                    },
                    timeout @ FetchError::Timeout { .. } => BlockError::Timeout(timeout),
                }))
            }
        };
        // Verified by the fetcher where the bytes came off the wire (see
        // `BlockFetcher::fetch`); hashing again here would double the cost.
        debug_assert!(verify_block(cid, &data).is_ok());
        self.insert(cid, data.clone(), Some(provider.clone()));
        self.repair(cid, &data, &damaged);
        Ok((data, BlockSource::Network(provider)))
    }

    /// Writes the verified `data` over each damaged copy, in the background.
    fn repair(&self, cid: &Cid, data: &Bytes, damaged: &[(&Arc<dyn BlockStore>, VerifyError)]) {
        for (store, _) in damaged {
            let (repairing, cid) = (store.repair(*cid, data.clone()), *cid);
            tokio::spawn(async move {
                match repairing.await {
                    Ok(()) => {
                        tracing::info!(%cid, "damaged stored block replaced by a verified copy")
                    }
                    Err(e) => {
                        tracing::warn!(%cid, error = %e, "could not replace a damaged stored block")
                    }
                }
            });
        }
    }

    fn insert(&self, cid: &Cid, data: Bytes, provider: Option<ProviderId>) {
        // A block larger than the whole cache would only push everything
        // else out before it is itself evicted.
        if data.len() as u64 > self.inner.cache_bytes {
            return;
        }
        self.inner.cache.insert(*cid, Cached { data, provider });
    }

    /// Bytes currently held by the cache.
    pub fn cache_weight(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.weighted_size()
    }
}
