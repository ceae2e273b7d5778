//! The Bitswap transport, split like rust-libp2p's protocol crates:
//! [`protocol`] is the wire format only, [`peer`] owns the streams to and
//! from each peer. The want logic that decides what to send lives in
//! [`crate::fetch`] and knows nothing of bytes on the wire. [`budget`]
//! bounds the bytes peers make us buffer.
//!
//! The project's own: no published Bitswap crate builds with libp2p 0.57.
//! Outbound streams go through `libp2p-stream`; inbound ones through
//! `p2p::inbound`, which queues them where `libp2p-stream` would drop them.

pub mod budget;
pub mod peer;
pub mod protocol;

pub use budget::BitswapConfig;
