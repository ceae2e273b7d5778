//! sluice: an IPFS HTTP gateway.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, its embedded defaults and the
//!   `SLUICE_*` environment overrides.
//! - [`blocks`]: the block service — verification of every block against
//!   its CID, the byte-weighted cache, and the local stores (CAR files
//!   served in place, the on-disk store in the data directory).
//! - [`car`]: reading (v1 and v2), writing and importing CAR files.
//! - [`dag`]: decoding blocks of every codec, content path resolution, and
//!   depth-first walks for CAR responses.
//! - [`unixfs`]: the UnixFS data format: files streamed by byte range,
//!   directories, HAMT shards, symlinks.
//! - [`gateway`]: the HTTP layer — request parsing, one handler per
//!   response type, response headers, and the single place errors become
//!   HTTP statuses.
//! - [`server`]: wiring a [`config::Config`] into stores, the block
//!   service and a listening HTTP server.

// Errors carry the CID they are about (96 bytes inline), which makes them
// larger than clippy likes; they are built only on failure paths.
#![allow(clippy::result_large_err)]

pub mod blocks;
pub mod car;
pub mod config;
pub mod dag;
pub mod fetch;
pub mod gateway;
pub mod p2p;
pub mod routing;
pub mod server;
pub mod session;
pub mod unixfs;
