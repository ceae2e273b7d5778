//! sluice: an IPFS HTTP gateway.
//!
//! # Layout
//!
//! - [`dial`]: where sluice may connect — the address policy every
//!   outbound connection passes on the address actually dialled, and the
//!   HTTP client that applies it.
//! - [`config`]: the TOML configuration, its embedded defaults and the
//!   `SLUICE_*` environment overrides; it only assembles the sections,
//!   each defined in the module that owns it.
//! - [`session`]: implicit per-request sessions in task-local state
//!   (`begin`, `fork`, `leave`, `current`, `spawn`), the per-session
//!   provider ranking, and the process-wide peer book.
//! - [`routing`]: provider hints and the delegated routing client (their
//!   addresses checked against [`dial`]'s policy).
//! - [`fetch`]: getting blocks that are not local, inside the current
//!   session — the want logic (`fetch::wants`: the shared want table, a
//!   planning core without I/O, the loop that runs it), the Bitswap wire
//!   format, streams and inbound byte budget (`fetch::bitswap`), trustless
//!   HTTP gateways (`fetch::http`).
//! - [`p2p`]: the libp2p node (TCP, QUIC, Noise, Yamux, Identify, Ping) and
//!   its inbound protocol streams.
//! - [`verify`]: checking a block against its CID, and the block size limit
//!   (a leaf: imports nothing of the crate).
//! - [`blocks`]: the block service — verification of every block against
//!   its CID, the byte-weighted cache, the local stores (CAR files served
//!   in place, the on-disk store in the data directory), then the fetcher;
//!   and the read-ahead budgets walks fetch ahead within
//!   (`blocks::read_ahead`).
//! - [`car`]: reading (v1 and v2) and writing CAR files (importing one is
//!   `blocks::import_car`, beside the store it writes).
//! - [`dag`]: decoding blocks of every codec, content path resolution, and
//!   depth-first walks for CAR responses.
//! - [`unixfs`]: the UnixFS data format: files streamed by byte range,
//!   directories, HAMT shards, symlinks, and a builder.
//! - [`gateway`]: the HTTP layer — the request layers (`gateway::middleware`),
//!   request parsing, the one response-kind decision (`gateway::dispatch`),
//!   one handler per response type, Etags, response headers, limits, and the
//!   single place errors become HTTP statuses.
//! - [`control`]: the control address — health, Prometheus metrics,
//!   `/debug/sessions`.
//! - [`metrics`]: the process-wide Prometheus registry.
//! - [`log`]: the `[log]` section and the `tracing` subscriber set-up.
//! - [`server`]: wiring a [`config::Config`] into stores, the node, the
//!   fetcher, the block service and the listening servers.
//!   The gateway port's accept loop (connection cap, accept back-off) is
//!   there too, and its per-connection header, idle and write timeouts in
//!   `server::conn`; panics become 500s in `gateway::panics`.

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
pub mod p2p;
pub mod routing;
pub mod server;
pub mod session;
pub mod unixfs;
pub mod verify;
