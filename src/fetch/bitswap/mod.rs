//! Bitswap client, split like rust-libp2p's protocol crates:
//! [`protocol`] is the wire format only, [`peer`] owns the streams to and
//! from each peer, and [`client`] holds the want logic, which knows nothing
//! of bytes on the wire.

pub mod client;
mod peer;
pub mod protocol;

pub use client::{BitswapClient, BitswapConfig};
