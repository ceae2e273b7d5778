//! Prometheus metrics: one process-wide registry, counters and histograms
//! updated where things happen, and gauges read when scraped.

use std::sync::OnceLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What kind of response a request got (the handler that answered).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ResponseType {
    File,
    Directory,
    Raw,
    Car,
    Tar,
    Codec,
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub response_type: ResponseType,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub response_type: ResponseType,
}

/// Where a block came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BlockOrigin {
    Cache,
    Store,
    Bitswap,
    Http,
    /// A network fetch that failed (no provider to attribute it to).
    Network,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum BlockOutcome {
    Ok,
    NotFound,
    Timeout,
    Invalid,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlockLabels {
    pub source: BlockOrigin,
    pub outcome: BlockOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: BlockOrigin,
}

/// Labels of `sluice_dials_refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DialRefusedLabels {
    /// What wanted the connection: `http` (providers), `routing`, `libp2p`.
    pub client: String,
    /// Why the address policy refused it (`dial::Refusal::label`).
    pub reason: String,
}

/// Labels of `sluice_hints_ignored`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HintsIgnoredLabels {
    /// `client_rate` or `total_rate` (`routing::hint_limits`).
    pub reason: String,
}

/// Why the server closed a client connection.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
}

/// Labels of a content routing source's lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouterLabels {
    /// `dht`, or `delegated` (every `[routing] endpoints` router).
    pub source: String,
    /// `found` (at least one provider), `none`, `failed`, `timeout`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouterLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabel {
    pub reason: CloseReason,
}

pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RequestLabels, Histogram>,
    pub time_to_first_byte: Family<TypeLabel, Histogram>,
    pub in_flight: Gauge,
    pub blocks: Family<BlockLabels, Counter>,
    pub bytes: Family<SourceLabel, Counter>,
    pub routing_lookups: Counter,
    /// Lookups by content routing source and outcome.
    pub router_lookups: Family<RouterLabels, Counter>,
    pub router_providers_found: Family<RouterLabel, Counter>,
    pub router_first_provider: Family<RouterLabel, Histogram>,
    /// Peers in the DHT routing table.
    pub dht_routing_table_peers: Gauge,
    /// Providers looked up again (FIND_PEER) after every dial failed, and
    /// how many of those came back with fresh addresses.
    pub dht_refinds: Counter,
    pub dht_refinds_found: Counter,
    /// Accelerated mode: crawl walks started, crawls finished.
    pub dht_crawl_lookups: Counter,
    pub dht_crawls_done: Counter,
    /// Requests a provider lookup had sent when its first provider came
    /// (at most the lookup parallelism: answered in the first hop).
    pub dht_requests_to_first_provider: Histogram,
    /// WANT_HAVEs sent to connected peers the session did not know.
    pub broadcast_wants: Counter,
    /// Requests that started as a fork of their root's earlier session.
    pub sessions_forked: Counter,
    /// Providers a fetch found stalled (wants out, nothing sent for a hedge delay).
    pub stalled_providers: Counter,
    pub retrieval_timeouts: Counter,
    /// Blocks from providers that did not hash to the CID asked for.
    pub bad_blocks: Family<SourceLabel, Counter>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    /// Streams peers opened that were dropped because their reader lagged.
    pub inbound_streams_dropped: Counter,
    /// Streams refused: too many from the peer, or the peer over its budget.
    pub inbound_streams_refused: Counter,
    /// Peers that went over their inbound Bitswap budget (streams reset).
    pub inbound_budget_exceeded: Counter,
    /// Bytes of inbound Bitswap messages buffered, not yet handed on.
    pub inbound_bytes_buffered: Gauge,
    /// Dials refused by the address policy.
    pub dials_refused: Family<DialRefusedLabels, Counter>,
    /// Providers named by hints that were new for their client (dials counted).
    pub hint_dials: Counter,
    /// Hints ignored because a dial limit was reached, by which.
    pub hints_ignored: Family<HintsIgnoredLabels, Counter>,
    /// Client connections to the gateway port open now.
    pub open_connections: Gauge,
    /// Client connections the server closed, by why.
    pub connections_closed: Family<CloseLabel, Counter>,
    /// Failed accepts (e.g. out of file descriptors).
    pub accept_errors: Counter,
    /// Panics caught in request handling (each a 500 or an ended body).
    pub panics: Counter,
    /// Read at scrape time.
    pub live_sessions: Gauge,
    pub peers_connected: Gauge,
    pub cache_bytes: Gauge,
    /// Bytes of blocks held fetched ahead of response writers.
    pub read_ahead_bytes: Gauge,
    registry: Registry,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn global() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(Metrics::new)
    }

    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            time_to_first_byte: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            blocks: Family::default(),
            bytes: Family::default(),
            routing_lookups: Counter::default(),
            router_lookups: Family::default(),
            router_providers_found: Family::default(),
            router_first_provider: Family::new_with_constructor(latency_histogram),
            dht_routing_table_peers: Gauge::default(),
            dht_refinds: Counter::default(),
            dht_refinds_found: Counter::default(),
            dht_crawl_lookups: Counter::default(),
            dht_crawls_done: Counter::default(),
            dht_requests_to_first_provider: Histogram::new([
                1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
            ]),
            broadcast_wants: Counter::default(),
            sessions_forked: Counter::default(),
            stalled_providers: Counter::default(),
            retrieval_timeouts: Counter::default(),
            bad_blocks: Family::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            inbound_streams_dropped: Counter::default(),
            inbound_streams_refused: Counter::default(),
            inbound_budget_exceeded: Counter::default(),
            inbound_bytes_buffered: Gauge::default(),
            dials_refused: Family::default(),
            hint_dials: Counter::default(),
            hints_ignored: Family::default(),
            open_connections: Gauge::default(),
            connections_closed: Family::default(),
            accept_errors: Counter::default(),
            panics: Counter::default(),
            live_sessions: Gauge::default(),
            peers_connected: Gauge::default(),
            cache_bytes: Gauge::default(),
            read_ahead_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "Content requests answered",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to the end of the response body",
            m.request_duration.clone(),
        );
        registry.register(
            "http_time_to_first_byte_seconds",
            "Time from request to the response headers",
            m.time_to_first_byte.clone(),
        );
        registry.register(
            "http_in_flight_requests",
            "Content requests being answered",
            m.in_flight.clone(),
        );
        registry.register(
            "blocks",
            "Blocks read, by source and outcome",
            m.blocks.clone(),
        );
        registry.register(
            "block_bytes",
            "Bytes of blocks read, by source",
            m.bytes.clone(),
        );
        registry.register(
            "routing_lookups",
            "Delegated routing lookups sent",
            m.routing_lookups.clone(),
        );
        registry.register(
            "router_lookups",
            "Content routing lookups, by source (dht, delegated) and outcome (found, none, failed, timeout)",
            m.router_lookups.clone(),
        );
        registry.register(
            "router_providers_found",
            "Providers content routing found, by source",
            m.router_providers_found.clone(),
        );
        registry.register(
            "router_first_provider_seconds",
            "Time from a lookup's start to its first provider, by source",
            m.router_first_provider.clone(),
        );
        registry.register(
            "dht_routing_table_peers",
            "Peers in the DHT routing table",
            m.dht_routing_table_peers.clone(),
        );
        registry.register(
            "dht_refinds",
            "DHT providers looked up again (FIND_PEER) after every dial of theirs failed",
            m.dht_refinds.clone(),
        );
        registry.register(
            "dht_refinds_found",
            "Re-finds that came back with new addresses (the provider was redialled)",
            m.dht_refinds_found.clone(),
        );
        registry.register(
            "dht_crawl_lookups",
            "Accelerated mode: random-key walks the DHT crawl started",
            m.dht_crawl_lookups.clone(),
        );
        registry.register(
            "dht_crawls_done",
            "Accelerated mode: crawls of the whole DHT finished",
            m.dht_crawls_done.clone(),
        );
        registry.register(
            "dht_requests_to_first_provider",
            "DHT requests a provider lookup had sent when its first provider came (<= the lookup parallelism: the first hop)",
            m.dht_requests_to_first_provider.clone(),
        );
        registry.register(
            "broadcast_wants",
            "WANT_HAVEs sent to connected peers outside the session when it widened its search",
            m.broadcast_wants.clone(),
        );
        registry.register(
            "sessions_forked",
            "Requests that started from a copy of an earlier session under the same root ([sessions] fork)",
            m.sessions_forked.clone(),
        );
        registry.register(
            "stalled_providers",
            "Providers found stalled: wants outstanding and nothing sent for a hedge delay (their wants moved)",
            m.stalled_providers.clone(),
        );
        registry.register(
            "retrieval_timeouts",
            "Blocks or responses that timed out",
            m.retrieval_timeouts.clone(),
        );
        registry.register(
            "bad_blocks",
            "Blocks from providers that did not match their CID (the provider is dropped)",
            m.bad_blocks.clone(),
        );
        registry.register("cache_hits", "Block cache hits", m.cache_hits.clone());
        registry.register("cache_misses", "Block cache misses", m.cache_misses.clone());
        registry.register(
            "inbound_streams_dropped",
            "Streams peers opened that were dropped because their reader lagged",
            m.inbound_streams_dropped.clone(),
        );
        registry.register(
            "inbound_streams_refused",
            "Bitswap streams peers opened that were refused: too many from the peer, or the peer over its inbound budget",
            m.inbound_streams_refused.clone(),
        );
        registry.register(
            "inbound_budget_exceeded",
            "Bitswap peers that went over their inbound byte budget (their streams were reset)",
            m.inbound_budget_exceeded.clone(),
        );
        registry.register(
            "inbound_buffered_bytes",
            "Bytes of inbound Bitswap messages buffered and not yet verified",
            m.inbound_bytes_buffered.clone(),
        );
        registry.register(
            "dials_refused",
            "Outbound connections refused by the address policy, by client and reason",
            m.dials_refused.clone(),
        );
        registry.register(
            "hint_dials",
            "Providers named by hints that were new for their client in the last minute (dials counted against [hints] limits)",
            m.hint_dials.clone(),
        );
        registry.register(
            "hints_ignored",
            "Provider hints ignored because their request would pass a dial limit, by reason (client_rate, total_rate)",
            m.hints_ignored.clone(),
        );
        registry.register(
            "http_open_connections",
            "Client connections to the gateway port open now",
            m.open_connections.clone(),
        );
        registry.register(
            "http_connections_closed",
            "Client connections closed by the server, by reason",
            m.connections_closed.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts on the gateway port (e.g. out of file descriptors)",
            m.accept_errors.clone(),
        );
        registry.register(
            "panics",
            "Panics caught while answering requests",
            m.panics.clone(),
        );
        registry.register("sessions_live", "Sessions alive", m.live_sessions.clone());
        registry.register(
            "peers_connected",
            "libp2p peers connected",
            m.peers_connected.clone(),
        );
        registry.register(
            "cache_size_bytes",
            "Bytes held by the block cache",
            m.cache_bytes.clone(),
        );
        registry.register(
            "read_ahead_bytes",
            "Bytes of blocks held fetched ahead of response writers",
            m.read_ahead_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
