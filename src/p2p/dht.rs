//! The Kademlia DHT client (rust-libp2p's `libp2p-kad`, client mode): how
//! the node finds providers of a CID and the addresses of a peer without
//! anyone telling it.
//!
//! - Joining: the `[dht] bootstrap` peers plus the routing table remembered
//!   from the previous run (`dht-peers.json` in the data directory), so a
//!   restart does not depend on any one bootstrapper being up; refreshed
//!   by a random walk every `refresh_interval_secs`.
//! - Provider lookups (GET_PROVIDERS) stream: each provider is passed on
//!   as soon as a DHT server names it. libp2p-kad reports provider peer IDs
//!   only; their addresses live in the running query, so they are read
//!   from it at once, and a provider it gave no address for is looked up
//!   with FIND_PEER. Lookups of the same key share one query.
//! - A provider whose every address failed to dial gets one fresh
//!   FIND_PEER before it is given up (`Dht::on_dial_failed`).
//! - Accelerated mode keeps a routing table of the whole DHT (buckets
//!   large enough to hold it, up to `crawl_max_peers`), filled by a crawl:
//!   random-key FIND_NODE walks, `crawl_parallelism` at a time, until
//!   `crawl_quiet_lookups` walks in a row add no peer (at most
//!   `crawl_max_lookups`), repeated every `crawl_interval_secs`. A lookup
//!   then starts at the peers truly closest to its key, all asked at once,
//!   so the providers come from the first hop; until the first crawl ends
//!   the same table answers as in client mode.
//!
//! Addresses from the DHT pass the address policy like every other
//! address (refusals counted with client `dht`). This module owns the
//! `[dht]` section; the swarm task (`super::SwarmTask`) feeds it the kad
//! events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::kad::{self, store::MemoryStore, QueryId, QueryResult, RecordKey};
use libp2p::swarm::{ConnectionId, NetworkBehaviour};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::dial::{count_refusal, AddressPolicy};

/// `[dht]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DhtConfig {
    /// `off` or `client` (ask the DHT, never answer it).
    pub mode: DhtMode,
    /// The DHT's protocol: `/ipfs/kad/1.0.0` is the public Amino DHT;
    /// `/ipfs/lan/kad/1.0.0` is Kubo's LAN DHT (which serves private
    /// addresses).
    pub protocol: String,
    /// Peers to join through (multiaddrs ending in `/p2p/<id>`).
    pub bootstrap: Vec<String>,
    /// Milliseconds one provider or peer lookup may run.
    pub lookup_timeout_ms: u64,
    /// Lookups running at once; more wait for a slot (within their deadline).
    pub max_concurrent_lookups: usize,
    /// Most providers passed on from one lookup.
    pub max_providers_per_lookup: usize,
    /// Seconds between random walks that refresh the routing table.
    pub refresh_interval_secs: u64,
    /// Routing table peers remembered for the next start (0: none).
    pub remembered_peers: usize,
    /// Accelerated mode: crawl walks running at once.
    pub crawl_parallelism: usize,
    /// Accelerated mode: a crawl ends after this many walks in a row found
    /// no new peer ...
    pub crawl_quiet_lookups: usize,
    /// ... or after this many walks.
    pub crawl_max_lookups: usize,
    /// Accelerated mode: most peers in the routing table.
    pub crawl_max_peers: usize,
    /// Accelerated mode: seconds from one crawl's start to the next.
    pub crawl_interval_secs: u64,
}

/// Whether the node uses the DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    Off,
    Client,
    /// Client, with a routing table of the whole DHT built by crawling it.
    Accelerated,
}

impl DhtMode {
    fn label(self) -> &'static str {
        match self {
            DhtMode::Off => "off",
            DhtMode::Client => "client",
            DhtMode::Accelerated => "accelerated",
        }
    }
}

/// Long-lived public Amino DHT servers that are not run by the team that
/// retired its bootstrappers, gateways and delegated router on 2026-09-30
/// (`bootstrap.libp2p.io`, `mars.i.ipfs.io`): Pinata's host nodes, which
/// Kubo's documentation lists as public peers. Any DHT server can be a
/// bootstrapper; each entry can be replaced in the config, and after the
/// first start the remembered routing table is used as well.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/fra1-1.hostnodes.pinata.cloud/p2p/QmWaik1eJcGHq1ybTWe7sezRfqKNcDRNkeBaLnGwQJz1Cj",
    "/dnsaddr/fra1-2.hostnodes.pinata.cloud/p2p/QmNfpLrQQZr5Ns9FAJKpyzgnDL2GgC6xBug1yUZozKFgu4",
    "/dnsaddr/fra1-3.hostnodes.pinata.cloud/p2p/QmPo1ygpngghu5it8u4Mr3ym6SEU2Wp2wA66Z91Y1S1g29",
    "/dnsaddr/nyc1-1.hostnodes.pinata.cloud/p2p/QmRjLSisUCHVpFa5ELVvX3qVPfdxajxWJEHs9kN3EcxAW6",
    "/dnsaddr/nyc1-2.hostnodes.pinata.cloud/p2p/QmPySsdmbczdZYBpbi2oq2WMJ8ErbfxtkG8Mo192UHkfGP",
    "/dnsaddr/nyc1-3.hostnodes.pinata.cloud/p2p/QmSarArpxemsPESa6FNkmuu9iSE1QWqPX2R3Aw6f5jq4D5",
];

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            mode: DhtMode::Client,
            protocol: "/ipfs/kad/1.0.0".into(),
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            lookup_timeout_ms: 10_000,
            max_concurrent_lookups: 64,
            max_providers_per_lookup: 20,
            refresh_interval_secs: 300,
            remembered_peers: 200,
            crawl_parallelism: 8,
            crawl_quiet_lookups: 32,
            crawl_max_lookups: 4096,
            crawl_max_peers: 20_000,
            crawl_interval_secs: 3600,
        }
    }
}

/// A provider the DHT named, with the addresses it came with (already
/// checked against the address policy).
#[derive(Debug, Clone, PartialEq)]
pub struct DhtProvider {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// What the DHT is doing, for `/readyz`, `/debug` and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DhtStatus {
    pub mode: String,
    pub protocol: String,
    /// Peers in the routing table.
    pub routing_table_peers: usize,
    /// Bootstrap and remembered peers the node tried to join through.
    pub bootstrap_peers: usize,
    pub remembered_peers: usize,
    /// Whether a peer of this DHT answered (connected and identified as
    /// speaking its protocol); `None` while the first join runs, `false`
    /// once it ended with nobody.
    pub joined: Option<bool>,
    pub lookups_running: usize,
    /// Accelerated mode only.
    pub crawl: Option<CrawlStatus>,
}

/// How far the accelerated mode's crawl got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrawlStatus {
    /// `crawling` or `done` (the last crawl ended; the next is due later).
    pub state: String,
    /// Walks of the crawl running now (or of the last one).
    pub lookups: usize,
    /// Crawls finished since start.
    pub crawls_done: u64,
    /// Seconds the last finished crawl took.
    pub last_crawl_secs: Option<f64>,
}

/// Commands the node's handles send to the swarm task for the DHT.
pub(super) enum DhtCommand {
    FindProviders {
        key: Vec<u8>,
        found: mpsc::Sender<DhtProvider>,
    },
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// GET_VALUE: every record DHT servers hold under `key`, unverified.
    GetRecords {
        key: Vec<u8>,
        found: mpsc::Sender<Vec<u8>>,
    },
}

/// Most addresses kept per peer.
const MAX_ADDRS_PER_PEER: usize = 8;
/// Providers remembered for the one FIND_PEER they get when every dial fails.
const MAX_REFIND_CANDIDATES: usize = 4096;
/// Lookups waiting for a slot.
const MAX_WAITING_LOOKUPS: usize = 1024;
/// Records passed on from one GET_VALUE.
const MAX_RECORDS_PER_LOOKUP: usize = 16;
/// Largest remembered-peers file read.
const MAX_REMEMBERED_FILE_BYTES: u64 = 1024 * 1024;

struct ProviderQuery {
    key: Vec<u8>,
    /// Everyone waiting on this key; closed ones are dropped as found.
    waiting: Vec<mpsc::Sender<DhtProvider>>,
    /// Providers passed on so far, replayed to a lookup that joins late.
    found: Vec<DhtProvider>,
    seen: HashSet<PeerId>,
}

enum PeerQueryFor {
    /// A provider the lookup on `key` named without an address.
    Provider { key: Vec<u8> },
    /// A provider whose addresses all failed: redial with what comes back.
    Redial,
    /// A caller of [`super::P2pNode::find_peer`].
    Caller(oneshot::Sender<Vec<Multiaddr>>),
}

/// The DHT side of the swarm task.
pub(super) struct Dht {
    config: DhtConfig,
    policy: AddressPolicy,
    protocol: StreamProtocol,
    providers: HashMap<QueryId, ProviderQuery>,
    provider_query_of: HashMap<Vec<u8>, QueryId>,
    peer_queries: HashMap<QueryId, (PeerId, Vec<PeerQueryFor>)>,
    /// GET_VALUE queries and who gets their records.
    record_queries: HashMap<QueryId, (mpsc::Sender<Vec<u8>>, usize)>,
    waiting: VecDeque<DhtCommand>,
    /// DHT-found providers that have not yet had their one re-find.
    refind: HashSet<PeerId>,
    refind_order: VecDeque<PeerId>,
    remembered_path: Option<PathBuf>,
    /// The routing table changed since it was last written.
    dirty: bool,
    bootstrap_query: Option<QueryId>,
    crawl: Option<Crawl>,
    status: Arc<RwLock<DhtStatus>>,
}

/// The accelerated mode's crawl.
struct Crawl {
    running: HashSet<QueryId>,
    /// Walks started in this crawl, and how many in a row found nobody new.
    started: usize,
    quiet: usize,
    /// Routing table size when the last walk ended.
    last_size: usize,
    began: Option<std::time::Instant>,
    next_at: std::time::Instant,
    crawls_done: u64,
    last_took: Option<Duration>,
}

/// Builds the kad behaviour for `config` (client mode), or `None` when off.
pub(super) fn behaviour(
    config: &DhtConfig,
    local: PeerId,
) -> Result<Option<kad::Behaviour<MemoryStore>>, String> {
    if config.mode == DhtMode::Off {
        return Ok(None);
    }
    let protocol = StreamProtocol::try_from_owned(config.protocol.clone())
        .map_err(|e| format!("[dht] protocol {:?}: {e}", config.protocol))?;
    let mut kad_config = kad::Config::new(protocol);
    if config.mode == DhtMode::Accelerated {
        // Buckets hold the whole DHT: the farthest holds half of it.
        let bucket = (config.crawl_max_peers / 2).max(20);
        kad_config.set_kbucket_size(NonZeroUsize::new(bucket).expect("nonzero"));
    }
    let parallelism = match config.mode {
        // With the true closest peers known, ask them all in the first hop.
        DhtMode::Accelerated => 20,
        _ => 10,
    };
    kad_config
        .set_query_timeout(Duration::from_millis(config.lookup_timeout_ms.max(1)))
        .set_periodic_bootstrap_interval(Some(Duration::from_secs(
            config.refresh_interval_secs.max(10),
        )))
        // A client stores nothing for others and caches no records.
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_caching(kad::Caching::Disabled)
        .set_parallelism(NonZeroUsize::new(parallelism).expect("nonzero"));
    let mut behaviour = kad::Behaviour::with_config(local, MemoryStore::new(local), kad_config);
    behaviour.set_mode(Some(kad::Mode::Client));
    Ok(Some(behaviour))
}

/// Splits `/.../p2p/<id>` into the peer and its address.
pub(super) fn peer_of(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut addr = addr.clone();
    match addr.pop() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some((peer, addr)),
        _ => None,
    }
}

/// The remembered routing table: peers and their addresses, as text.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Remembered {
    peers: Vec<RememberedPeer>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct RememberedPeer {
    id: String,
    addrs: Vec<String>,
}

/// Parses a remembered-peers file; entries that do not parse are skipped,
/// at most `limit` peers and [`MAX_ADDRS_PER_PEER`] addresses each are kept.
fn parse_remembered(text: &str, limit: usize) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let Ok(file) = serde_json::from_str::<Remembered>(text) else {
        return Vec::new();
    };
    file.peers
        .into_iter()
        .filter_map(|p| {
            let peer: PeerId = p.id.parse().ok()?;
            let addrs: Vec<Multiaddr> = p
                .addrs
                .iter()
                .filter_map(|a| a.parse().ok())
                .take(MAX_ADDRS_PER_PEER)
                .collect();
            (!addrs.is_empty()).then_some((peer, addrs))
        })
        .take(limit)
        .collect()
}

fn render_remembered(peers: &[(PeerId, Vec<Multiaddr>)]) -> String {
    let file = Remembered {
        peers: peers
            .iter()
            .map(|(peer, addrs)| RememberedPeer {
                id: peer.to_string(),
                addrs: addrs.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// Writes `text` to `path` whole or not at all.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

impl Dht {
    /// Adds the bootstrap and remembered peers to `kad` and starts joining.
    pub(super) fn start(
        config: DhtConfig,
        policy: AddressPolicy,
        data_dir: Option<&Path>,
        kad: &mut kad::Behaviour<MemoryStore>,
    ) -> Result<Dht, String> {
        let protocol = StreamProtocol::try_from_owned(config.protocol.clone())
            .map_err(|e| format!("[dht] protocol {:?}: {e}", config.protocol))?;
        let mut bootstrap = 0;
        for text in &config.bootstrap {
            let addr: Multiaddr = text
                .parse()
                .map_err(|e| format!("[dht] bootstrap {text:?}: {e}"))?;
            let (peer, addr) = peer_of(&addr)
                .ok_or_else(|| format!("[dht] bootstrap {text:?}: must end in /p2p/<peer-id>"))?;
            // The operator named it: it may be private.
            if let Some(socket) = crate::dial::multiaddr_socket(&addr) {
                policy.trust(socket);
            }
            kad.add_address(&peer, addr);
            bootstrap += 1;
        }
        let remembered_path = data_dir.map(|d| d.join("dht-peers.json"));
        let mut remembered = 0;
        if let Some(path) = remembered_path
            .as_ref()
            .filter(|_| config.remembered_peers > 0)
        {
            let text = std::fs::File::open(path).and_then(|f| {
                use std::io::Read;
                let mut text = String::new();
                f.take(MAX_REMEMBERED_FILE_BYTES)
                    .read_to_string(&mut text)?;
                Ok(text)
            });
            if let Ok(text) = text {
                for (peer, addrs) in parse_remembered(&text, config.remembered_peers) {
                    // Remembered addresses came from the network: policed.
                    for addr in addrs {
                        if policy.check_multiaddr(&addr).is_ok() {
                            kad.add_address(&peer, addr);
                        }
                    }
                    remembered += 1;
                }
            }
        }
        let status = DhtStatus {
            mode: config.mode.label().into(),
            protocol: config.protocol.clone(),
            bootstrap_peers: bootstrap,
            remembered_peers: remembered,
            ..DhtStatus::default()
        };
        let accelerated = config.mode == DhtMode::Accelerated;
        let mut dht = Dht {
            config,
            policy,
            protocol,
            providers: HashMap::new(),
            provider_query_of: HashMap::new(),
            peer_queries: HashMap::new(),
            record_queries: HashMap::new(),
            waiting: VecDeque::new(),
            refind: HashSet::new(),
            refind_order: VecDeque::new(),
            remembered_path,
            dirty: false,
            bootstrap_query: None,
            crawl: accelerated.then(|| Crawl {
                running: HashSet::new(),
                started: 0,
                quiet: 0,
                last_size: 0,
                began: None,
                next_at: std::time::Instant::now(),
                crawls_done: 0,
                last_took: None,
            }),
            status: Arc::new(RwLock::new(status)),
        };
        match kad.bootstrap() {
            Ok(id) => dht.bootstrap_query = Some(id),
            Err(_) => {
                tracing::warn!(
                    "DHT: no bootstrap peers and none remembered ([dht] bootstrap is empty): \
                     content is found only through hints, [routing] endpoints and connected peers"
                );
                dht.set_status(|s| s.joined = Some(false));
            }
        }
        Ok(dht)
    }

    pub(super) fn status(&self) -> Arc<RwLock<DhtStatus>> {
        self.status.clone()
    }

    fn set_status(&self, change: impl FnOnce(&mut DhtStatus)) {
        change(&mut self.status.write());
    }

    fn running(&self) -> usize {
        self.providers.len() + self.peer_queries.len() + self.record_queries.len()
    }

    /// Runs `command` now, or queues it while `max_concurrent_lookups` run.
    pub(super) fn execute(&mut self, command: DhtCommand, kad: &mut kad::Behaviour<MemoryStore>) {
        // A lookup of a key already being looked up joins that query.
        if let DhtCommand::FindProviders { key, found } = &command {
            if let Some(query) = self
                .provider_query_of
                .get(key)
                .and_then(|id| self.providers.get_mut(id))
            {
                for provider in &query.found {
                    let _ = found.try_send(provider.clone());
                }
                query.waiting.push(found.clone());
                return;
            }
        }
        if self.running() >= self.config.max_concurrent_lookups.max(1) {
            if self.waiting.len() < MAX_WAITING_LOOKUPS {
                self.waiting.push_back(command);
            }
            // Past that, dropping the command closes the caller's channel:
            // it sees a lookup that found nothing.
            return;
        }
        match command {
            DhtCommand::FindProviders { key, found } => {
                let id = kad.get_providers(RecordKey::new(&key));
                self.provider_query_of.insert(key.clone(), id);
                self.providers.insert(
                    id,
                    ProviderQuery {
                        key,
                        waiting: vec![found],
                        found: Vec::new(),
                        seen: HashSet::new(),
                    },
                );
            }
            DhtCommand::FindPeer { peer, reply } => {
                self.find_peer(peer, PeerQueryFor::Caller(reply), kad);
            }
            DhtCommand::GetRecords { key, found } => {
                let id = kad.get_record(RecordKey::new(&key));
                self.record_queries.insert(id, (found, 0));
            }
        }
        self.set_status(|s| s.lookups_running = self.running());
    }

    fn find_peer(
        &mut self,
        peer: PeerId,
        purpose: PeerQueryFor,
        kad: &mut kad::Behaviour<MemoryStore>,
    ) {
        if let Some((_, purposes)) = self.peer_queries.values_mut().find(|(p, _)| *p == peer) {
            purposes.push(purpose);
            return;
        }
        let id = kad.get_closest_peers(peer);
        self.peer_queries.insert(id, (peer, vec![purpose]));
    }

    /// Starts queued lookups while slots are free.
    fn start_waiting(&mut self, kad: &mut kad::Behaviour<MemoryStore>) {
        while self.running() < self.config.max_concurrent_lookups.max(1) {
            let Some(command) = self.waiting.pop_front() else {
                break;
            };
            let abandoned = match &command {
                DhtCommand::FindProviders { found, .. } => found.is_closed(),
                DhtCommand::FindPeer { reply, .. } => reply.is_closed(),
                DhtCommand::GetRecords { found, .. } => found.is_closed(),
            };
            if !abandoned {
                self.execute(command, kad);
            }
        }
        self.set_status(|s| s.lookups_running = self.running());
    }

    /// The addresses kad holds for `peer`: its routing table entry and the
    /// running queries that heard of it (where a provider's addresses live).
    /// Read through the dial hook kad offers the swarm, which only reads.
    fn addresses_of(
        &mut self,
        peer: PeerId,
        kad: &mut kad::Behaviour<MemoryStore>,
    ) -> Vec<Multiaddr> {
        let mut addrs = kad
            .handle_pending_outbound_connection(
                ConnectionId::new_unchecked(0),
                Some(peer),
                &[],
                Endpoint::Dialer,
            )
            .unwrap_or_default();
        addrs.dedup();
        self.allowed(addrs)
    }

    /// `addrs` without the ones the address policy refuses (counted).
    fn allowed(&self, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        let mut kept = Vec::new();
        for mut addr in addrs {
            // Kept without the peer's own `/p2p/<id>`, like every other source.
            if matches!(
                addr.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                addr.pop();
            }
            // A relayed or circuit address cannot be dialled by this node.
            if addr
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
            {
                continue;
            }
            match self.policy.check_multiaddr(&addr) {
                Ok(()) => {
                    if !kept.contains(&addr) && kept.len() < MAX_ADDRS_PER_PEER {
                        kept.push(addr);
                    }
                }
                Err((socket, refusal)) => count_refusal("dht", socket, refusal),
            }
        }
        kept
    }

    /// Passes a provider on to everyone waiting on `key`.
    fn pass_on(&mut self, key: &[u8], provider: DhtProvider) {
        let Some(query) = self
            .provider_query_of
            .get(key)
            .and_then(|id| self.providers.get_mut(id))
        else {
            return;
        };
        if query.found.len() >= self.config.max_providers_per_lookup {
            return;
        }
        query.waiting.retain(|w| !w.is_closed());
        for waiting in &query.waiting {
            let _ = waiting.try_send(provider.clone());
        }
        query.found.push(provider.clone());
        if self.refind.insert(provider.peer) {
            self.refind_order.push_back(provider.peer);
            while self.refind_order.len() > MAX_REFIND_CANDIDATES {
                if let Some(old) = self.refind_order.pop_front() {
                    self.refind.remove(&old);
                }
            }
        }
    }

    /// Every dial of `peer` failed: a provider the DHT named gets one
    /// FIND_PEER for fresh addresses before it is given up.
    pub(super) fn on_dial_failed(&mut self, peer: PeerId, kad: &mut kad::Behaviour<MemoryStore>) {
        if self.refind.remove(&peer) {
            tracing::debug!(%peer, "DHT provider unreachable at its addresses: looking it up again");
            crate::metrics::Metrics::global().dht_refinds.inc();
            self.find_peer(peer, PeerQueryFor::Redial, kad);
        }
    }

    /// A peer identified itself: if it speaks this DHT, it joins the
    /// routing table at the addresses it listens on.
    pub(super) fn on_identified(
        &mut self,
        peer: PeerId,
        protocols: &[StreamProtocol],
        listen_addrs: Vec<Multiaddr>,
        kad: &mut kad::Behaviour<MemoryStore>,
    ) {
        if !protocols.contains(&self.protocol) {
            return;
        }
        for addr in self.allowed(listen_addrs) {
            kad.add_address(&peer, addr);
        }
        // Peers in the table may be only addresses from the config or the
        // remembered file: joined means one of them answered.
        if self.status.read().joined != Some(true) {
            tracing::info!(%peer, "DHT joined: a DHT peer answered");
            self.set_status(|s| s.joined = Some(true));
        }
    }

    /// Handles a kad event; returns peers to dial with the addresses found
    /// for them (re-finds of unreachable providers).
    pub(super) fn on_event(
        &mut self,
        event: kad::Event,
        kad: &mut kad::Behaviour<MemoryStore>,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut dials = Vec::new();
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => match result {
                QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    key,
                    providers,
                })) => {
                    let key = key.to_vec();
                    if self.providers.get(&id).is_some_and(|q| q.seen.is_empty()) {
                        crate::metrics::Metrics::global()
                            .dht_requests_to_first_provider
                            .observe(f64::from(stats.num_requests()));
                    }
                    for peer in providers {
                        let fresh = self
                            .providers
                            .get_mut(&id)
                            .is_some_and(|q| q.seen.insert(peer));
                        if !fresh {
                            continue;
                        }
                        let addrs = self.addresses_of(peer, kad);
                        if addrs.is_empty() {
                            // One answer can name hundreds of providers
                            // without addresses: look up only as many as
                            // the lookup can still use, within the
                            // lookup slots.
                            let wanted = self.providers.get(&id).map_or(0, |q| {
                                self.config
                                    .max_providers_per_lookup
                                    .saturating_sub(q.found.len())
                            });
                            let pending = self.peer_queries.values().filter(|(_, purposes)| {
                                purposes.iter().any(|p| matches!(p, PeerQueryFor::Provider { key: k } if *k == key))
                            }).count();
                            if pending < wanted
                                && self.running() < self.config.max_concurrent_lookups.max(1)
                            {
                                self.find_peer(
                                    peer,
                                    PeerQueryFor::Provider { key: key.clone() },
                                    kad,
                                );
                            }
                        } else {
                            self.pass_on(&key, DhtProvider { peer, addrs });
                        }
                    }
                    self.finish_if_abandoned(id, kad);
                }
                QueryResult::GetProviders(_) if step.last => self.end_provider_query(id),
                QueryResult::GetRecord(result) => {
                    let mut done = step.last;
                    if let (Ok(kad::GetRecordOk::FoundRecord(found)), Some((to, count))) =
                        (result, self.record_queries.get_mut(&id))
                    {
                        *count += 1;
                        // Values are bounded by kad's packet size; records by count.
                        if to.try_send(found.record.value).is_err()
                            || *count >= MAX_RECORDS_PER_LOOKUP
                        {
                            done = true;
                            if let Some(mut query) = kad.query_mut(&id) {
                                query.finish();
                            }
                        }
                    }
                    if done {
                        self.record_queries.remove(&id);
                    }
                }
                QueryResult::GetClosestPeers(_) if self.crawl_walk_done(id, kad) => {}
                QueryResult::GetClosestPeers(result) => {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    if let Some((target, purposes)) = self.peer_queries.remove(&id) {
                        let addrs = peers
                            .into_iter()
                            .find(|p| p.peer_id == target)
                            .map(|p| self.allowed(p.addrs))
                            .unwrap_or_default();
                        for purpose in purposes {
                            match purpose {
                                PeerQueryFor::Provider { key } if !addrs.is_empty() => {
                                    self.pass_on(
                                        &key,
                                        DhtProvider {
                                            peer: target,
                                            addrs: addrs.clone(),
                                        },
                                    );
                                }
                                PeerQueryFor::Provider { .. } => {}
                                PeerQueryFor::Redial if !addrs.is_empty() => {
                                    crate::metrics::Metrics::global().dht_refinds_found.inc();
                                    dials.push((target, addrs.clone()));
                                }
                                PeerQueryFor::Redial => {}
                                PeerQueryFor::Caller(reply) => {
                                    let _ = reply.send(addrs.clone());
                                }
                            }
                        }
                        // A provider query may have been waiting on this
                        // FIND_PEER to end.
                        let ended: Vec<QueryId> = self
                            .providers
                            .keys()
                            .filter(|q| kad.query(q).is_none())
                            .copied()
                            .collect();
                        for q in ended {
                            self.end_provider_query(q);
                        }
                    }
                    // Could be a kad-internal lookup (bootstrap steps):
                    // nothing of ours to do.
                }
                QueryResult::Bootstrap(result) if step.last && Some(id) == self.bootstrap_query => {
                    self.bootstrap_query = None;
                    let peers = kad.kbuckets().map(|b| b.num_entries()).sum::<usize>();
                    let joined = self.status.read().joined == Some(true);
                    if joined {
                        tracing::info!(routing_table_peers = peers, "DHT join walk done");
                    } else {
                        let status = self.status.read().clone();
                        tracing::warn!(
                            bootstrap = status.bootstrap_peers,
                            remembered = status.remembered_peers,
                            error = ?result.err(),
                            "DHT: no bootstrap peer answered; content is found only through \
                             hints, [routing] endpoints and connected peers until one does"
                        );
                    }
                    self.set_status(|s| s.joined = Some(joined));
                }
                _ => {}
            },
            kad::Event::RoutingUpdated { .. } => self.dirty = true,
            _ => {}
        }
        self.refresh_table_size(kad);
        self.start_waiting(kad);
        dials
    }

    fn refresh_table_size(&self, kad: &mut kad::Behaviour<MemoryStore>) {
        let peers = kad.kbuckets().map(|b| b.num_entries()).sum::<usize>();
        self.set_status(|s| s.routing_table_peers = peers);
        crate::metrics::Metrics::global()
            .dht_routing_table_peers
            .set(peers as i64);
    }

    /// Stops a lookup nobody waits on any more (all callers gave up).
    fn finish_if_abandoned(&mut self, id: QueryId, kad: &mut kad::Behaviour<MemoryStore>) {
        let abandoned = self.providers.get_mut(&id).is_some_and(|q| {
            q.waiting.retain(|w| !w.is_closed());
            q.waiting.is_empty() || q.found.len() >= self.config.max_providers_per_lookup
        });
        if abandoned {
            if let Some(mut query) = kad.query_mut(&id) {
                query.finish();
            }
        }
    }

    /// The query ended: waiting callers see their channel close, unless a
    /// FIND_PEER for one of its providers still runs.
    fn end_provider_query(&mut self, id: QueryId) {
        let Some(key) = self.providers.get(&id).map(|q| q.key.clone()) else {
            return;
        };
        let pending_find = self.peer_queries.values().any(|(_, purposes)| {
            purposes
                .iter()
                .any(|p| matches!(p, PeerQueryFor::Provider { key: k } if *k == key))
        });
        if pending_find {
            return;
        }
        self.providers.remove(&id);
        if self.provider_query_of.get(&key) == Some(&id) {
            self.provider_query_of.remove(&key);
        }
        self.set_status(|s| s.lookups_running = self.running());
    }

    /// Starts a crawl when one is due and keeps `crawl_parallelism` walks
    /// running until it ends (accelerated mode; called every second and as
    /// walks end).
    pub(super) fn crawl(&mut self, kad: &mut kad::Behaviour<MemoryStore>) {
        let (parallelism, quiet_limit, max_lookups, interval) = (
            self.config.crawl_parallelism.max(1),
            self.config.crawl_quiet_lookups.max(1),
            self.config.crawl_max_lookups.max(1),
            Duration::from_secs(self.config.crawl_interval_secs.max(60)),
        );
        let Some(crawl) = self.crawl.as_mut() else {
            return;
        };
        let now = std::time::Instant::now();
        if crawl.began.is_none() {
            // Nobody to ask yet: wait for the join.
            if now < crawl.next_at || kad.kbuckets().next().is_none() {
                return;
            }
            crawl.began = Some(now);
            crawl.started = 0;
            crawl.quiet = 0;
            tracing::info!("DHT crawl started");
        }
        let over = crawl.quiet >= quiet_limit || crawl.started >= max_lookups;
        if over {
            if crawl.running.is_empty() {
                let took = crawl.began.take().map(|b| b.elapsed());
                crawl.crawls_done += 1;
                crawl.last_took = took;
                crawl.next_at = now + interval;
                crate::metrics::Metrics::global().dht_crawls_done.inc();
                tracing::info!(
                    walks = crawl.started,
                    routing_table_peers = crawl.last_size,
                    took = ?took,
                    "DHT crawl done"
                );
            }
        } else {
            while crawl.running.len() < parallelism && crawl.started < max_lookups {
                let id = kad.get_closest_peers(PeerId::random());
                crawl.running.insert(id);
                crawl.started += 1;
                crate::metrics::Metrics::global().dht_crawl_lookups.inc();
            }
        }
        let status = CrawlStatus {
            state: if crawl.began.is_some() {
                "crawling"
            } else {
                "done"
            }
            .into(),
            lookups: crawl.started,
            crawls_done: crawl.crawls_done,
            last_crawl_secs: crawl.last_took.map(|d| d.as_secs_f64()),
        };
        self.set_status(|s| s.crawl = Some(status));
    }

    /// A crawl walk ended: did it add anyone?
    fn crawl_walk_done(&mut self, id: QueryId, kad: &mut kad::Behaviour<MemoryStore>) -> bool {
        let Some(crawl) = self.crawl.as_mut() else {
            return false;
        };
        if !crawl.running.remove(&id) {
            return false;
        }
        let size = kad.kbuckets().map(|b| b.num_entries()).sum::<usize>();
        if size > crawl.last_size {
            crawl.quiet = 0;
        } else {
            crawl.quiet += 1;
        }
        crawl.last_size = size;
        self.crawl(kad);
        true
    }

    /// Writes the routing table for the next start if it changed.
    pub(super) fn remember(&mut self, kad: &mut kad::Behaviour<MemoryStore>) {
        if !self.dirty || self.config.remembered_peers == 0 {
            return;
        }
        let Some(path) = self.remembered_path.clone() else {
            return;
        };
        self.dirty = false;
        let mut peers = Vec::new();
        for bucket in kad.kbuckets() {
            for entry in bucket.iter() {
                let addrs: Vec<Multiaddr> = entry
                    .node
                    .value
                    .iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .cloned()
                    .collect();
                peers.push((*entry.node.key.preimage(), addrs));
            }
        }
        peers.truncate(self.config.remembered_peers);
        let text = render_remembered(&peers);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = write_atomically(&path, &text) {
                tracing::warn!(path = %path.display(), error = %e, "could not remember the DHT routing table");
            }
        });
    }

    /// When the remembered table is next written (if it changed).
    pub(super) fn remember_interval() -> Duration {
        Duration::from_secs(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn remembered_peers_round_trip() {
        let a = peer();
        let addrs: Vec<Multiaddr> = vec!["/ip4/1.2.3.4/tcp/4001".parse().unwrap()];
        let text = render_remembered(&[(a, addrs.clone())]);
        assert_eq!(parse_remembered(&text, 10), vec![(a, addrs)]);
    }

    #[test]
    fn a_damaged_remembered_file_gives_what_parses_and_no_more_than_asked() {
        assert!(parse_remembered("not json", 10).is_empty());
        let (a, b) = (peer(), peer());
        let text = format!(
            r#"{{"peers":[{{"id":"nope","addrs":["/ip4/1.2.3.4/tcp/1"]}},
                {{"id":"{a}","addrs":["garbage","/ip4/1.2.3.4/tcp/1"]}},
                {{"id":"{b}","addrs":[]}},
                {{"id":"{b}","addrs":["/ip4/5.6.7.8/tcp/1"]}}]}}"#
        );
        let parsed = parse_remembered(&text, 10);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, a);
        assert_eq!(parsed[0].1.len(), 1);
        assert_eq!(parse_remembered(&text, 1).len(), 1);
    }

    /// A DHT client with no peers, its kad behaviour, and one provider
    /// lookup started (its query id and the channel its providers reach).
    fn client_with_lookup() -> (
        Dht,
        kad::Behaviour<MemoryStore>,
        QueryId,
        Vec<u8>,
        mpsc::Receiver<DhtProvider>,
    ) {
        let config = DhtConfig {
            bootstrap: Vec::new(),
            ..DhtConfig::default()
        };
        let mut kad = behaviour(&config, peer()).unwrap().unwrap();
        let mut dht = Dht::start(config, AddressPolicy::new(false), None, &mut kad).unwrap();
        let key = b"a multihash".to_vec();
        let (found, receiver) = mpsc::channel(8);
        dht.execute(
            DhtCommand::FindProviders {
                key: key.clone(),
                found,
            },
            &mut kad,
        );
        let id = *dht.providers.keys().next().expect("a provider query");
        (dht, kad, id, key, receiver)
    }

    fn step(last: bool) -> kad::ProgressStep {
        kad::ProgressStep {
            count: NonZeroUsize::new(1).unwrap(),
            last,
        }
    }

    fn providers_found(id: QueryId, key: &[u8], providers: &[PeerId]) -> kad::Event {
        kad::Event::OutboundQueryProgressed {
            id,
            result: QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                key: RecordKey::new(&key),
                providers: providers.iter().copied().collect(),
            })),
            stats: kad::QueryStats::empty(),
            step: step(false),
        }
    }

    fn peer_found(id: QueryId, peer: PeerId, addrs: Vec<Multiaddr>) -> kad::Event {
        kad::Event::OutboundQueryProgressed {
            id,
            result: QueryResult::GetClosestPeers(Ok(kad::GetClosestPeersOk {
                key: peer.to_bytes(),
                peers: vec![kad::PeerInfo {
                    peer_id: peer,
                    addrs,
                }],
            })),
            stats: kad::QueryStats::empty(),
            step: step(true),
        }
    }

    fn only_peer_query(dht: &Dht) -> QueryId {
        assert_eq!(dht.peer_queries.len(), 1, "one FIND_PEER running");
        *dht.peer_queries.keys().next().unwrap()
    }

    #[test]
    fn a_provider_is_passed_on_with_the_addresses_kad_holds_and_private_ones_dropped() {
        let (mut dht, mut kad, id, key, mut found) = client_with_lookup();
        let provider = peer();
        let public: Multiaddr = "/ip4/8.8.8.8/tcp/4001".parse().unwrap();
        let private: Multiaddr = "/ip4/10.0.0.7/tcp/4001".parse().unwrap();
        kad.add_address(&provider, public.clone());
        kad.add_address(&provider, private);
        dht.on_event(providers_found(id, &key, &[provider]), &mut kad);
        let passed = found.try_recv().expect("the provider was passed on");
        assert_eq!(passed.peer, provider);
        assert_eq!(passed.addrs, vec![public]);
    }

    #[test]
    fn a_provider_named_without_an_address_is_looked_up_before_it_is_passed_on() {
        let (mut dht, mut kad, id, key, mut found) = client_with_lookup();
        let provider = peer();
        dht.on_event(providers_found(id, &key, &[provider]), &mut kad);
        assert!(found.try_recv().is_err(), "passed on with no address");
        let find = only_peer_query(&dht);
        let fresh: Multiaddr = "/ip4/8.8.4.4/tcp/4001".parse().unwrap();
        let dials = dht.on_event(peer_found(find, provider, vec![fresh.clone()]), &mut kad);
        assert!(dials.is_empty());
        let passed = found.try_recv().expect("passed on after FIND_PEER");
        assert_eq!(passed.addrs, vec![fresh]);
    }

    #[test]
    fn an_answer_naming_hundreds_of_providers_without_addresses_starts_few_lookups() {
        let (mut dht, mut kad, id, key, _found) = client_with_lookup();
        let many: Vec<PeerId> = (0..300).map(|_| peer()).collect();
        dht.on_event(providers_found(id, &key, &many), &mut kad);
        let limit = DhtConfig::default().max_providers_per_lookup;
        assert_eq!(dht.peer_queries.len(), limit, "FIND_PEERs started");
    }

    #[test]
    fn a_dht_provider_whose_dials_all_failed_gets_one_fresh_lookup() {
        let (mut dht, mut kad, id, key, mut found) = client_with_lookup();
        let provider = peer();
        let stale: Multiaddr = "/ip4/8.8.8.8/tcp/4001".parse().unwrap();
        kad.add_address(&provider, stale);
        dht.on_event(providers_found(id, &key, &[provider]), &mut kad);
        assert!(found.try_recv().is_ok());
        dht.on_dial_failed(provider, &mut kad);
        let find = only_peer_query(&dht);
        let fresh: Multiaddr = "/ip4/8.8.4.4/tcp/4002".parse().unwrap();
        let dials = dht.on_event(peer_found(find, provider, vec![fresh.clone()]), &mut kad);
        assert_eq!(dials, vec![(provider, vec![fresh])]);
        // Only one: failing again gives it up.
        dht.on_dial_failed(provider, &mut kad);
        assert!(dht.peer_queries.is_empty());
        // A peer the DHT never named is not looked up at all.
        dht.on_dial_failed(peer(), &mut kad);
        assert!(dht.peer_queries.is_empty());
    }

    #[test]
    fn defaults_name_a_dht_protocol_and_parse() {
        let config = DhtConfig::default();
        assert!(behaviour(&config, peer()).unwrap().is_some());
        for entry in &config.bootstrap {
            let addr: Multiaddr = entry.parse().unwrap();
            assert!(peer_of(&addr).is_some(), "{entry}");
        }
        let off = DhtConfig {
            mode: DhtMode::Off,
            ..config
        };
        assert!(behaviour(&off, peer()).unwrap().is_none());
    }
}
