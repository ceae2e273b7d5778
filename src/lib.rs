//! sluice: an IPFS HTTP gateway.
//!
//! # Layout
//!
//! Top to bottom, as in the README's diagram: a module imports only
//! modules listed after it, except that the two of a pair (`server` and
//! `config`, `gateway` and `control`, `dag` and `unixfs`) use each other.
//!
//! - [`server`]: wiring a [`config::Config`] into stores, the node, the
//!   fetcher, the block service and the listening servers; the gateway
//!   port's accept loop (connection cap, accept back-off), and its
//!   per-connection header, idle and write timeouts (`server::conn`).
//! - [`config`]: the TOML configuration, its embedded defaults and the
//!   `SLUICE_*` environment overrides; it only assembles the sections,
//!   each defined in the module that owns it.
//! - [`gateway`]: the HTTP layer — the site a request's host names (the
//!   path gateway, subdomain and DNSLink sites: `gateway::origin`, rewritten
//!   before routing by `gateway::hosts`), sites' `_redirects` rules
//!   (`gateway::redirects`), the request layers (`gateway::middleware`),
//!   request parsing, the one response-kind decision (`gateway::dispatch`)
//!   and the representations a node has without codec conversion
//!   (`gateway::representations`), one handler per response type (the TAR
//!   format in `gateway::tar_format`), the `?uri=` router
//!   (`gateway::uri_router`), the page at `/` (`gateway::landing`), Etags,
//!   response headers, limits, panics as 500s (`gateway::panics`), and the
//!   single place errors become HTTP statuses.
//! - [`control`]: the control address — health, Prometheus metrics,
//!   `/debug/sessions`, `/debug/dht`.
//! - [`dag`]: decoding blocks of every codec, content path resolution, and
//!   depth-first walks for CAR responses.
//! - [`unixfs`]: the UnixFS data format: files streamed by byte range,
//!   directories, HAMT shards, symlinks, and a builder.
//! - [`blocks`]: the block service — verification of every block against
//!   its CID, the byte-weighted cache, the local stores (CAR files served
//!   in place, the on-disk store in the data directory, filled by
//!   `blocks::import_car`), then the fetcher; and the read-ahead budgets
//!   walks fetch ahead within (`blocks::read_ahead`).
//! - [`fetch`]: getting blocks that are not local, inside the current
//!   session, behind the `BlockFetcher` port the block service calls — the
//!   want logic (`fetch::wants`: the shared want table, a planning core
//!   without I/O, the loop that runs it), the Bitswap wire format, streams
//!   and inbound byte budget (`fetch::bitswap`), trustless HTTP gateways
//!   (`fetch::http`).
//! - [`car`]: reading (v1 and v2) and writing CAR files.
//! - [`routing`]: provider hints, the delegated routing client, and
//!   content routing across sources (the DHT and delegated routers asked in
//!   parallel, `routing::ContentRouting`).
//! - [`p2p`]: the libp2p node (TCP, QUIC, Noise, Yamux, Identify, Ping;
//!   Ed25519 and RSA peers), the Kademlia DHT client (`p2p::dht`), and its
//!   inbound protocol streams.
//! - [`dial`]: where sluice may connect — the address policy every
//!   outbound connection passes on the address actually dialled, and the
//!   HTTP client that applies it.
//! - [`session`]: implicit per-request sessions in task-local state
//!   (`begin`, `fork`, `leave`, `current`, `spawn`), the per-session
//!   provider ranking, and the process-wide peer book.
//! - [`verify`]: checking a block against its CID, and the block size limit.
//! - [`names`]: IPNS names — records from every record source (the DHT,
//!   delegated routers) verified, the highest valid sequence used, cached
//!   for their TTL, names pointing at names followed a bounded number of
//!   times, loops refused; DNSLink domains (`names::dnslink`: `_dnslink`
//!   TXT answers read and cached by TTL, looked up through hickory over the
//!   `[dns]` servers or DNS-over-HTTPS).
//! - [`metrics`]: the process-wide Prometheus registry.
//! - [`log`]: the `[log]` section and the `tracing` subscriber set-up.

#![forbid(unsafe_code)]
// Outside tests a failure is an error value, never a panic on `unwrap()`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Errors carry the CID they are about (96 bytes inline), which makes them
// larger than clippy likes; they are built only on failure paths.
#![allow(clippy::result_large_err)]

pub mod blocks;
pub mod car;
pub mod config;
pub mod control;
pub mod dag;
pub mod dial;
pub mod fetch;
pub mod gateway;
pub mod log;
pub mod metrics;
pub mod names;
pub mod p2p;
pub mod routing;
pub mod server;
pub mod session;
pub mod unixfs;
pub mod verify;
