//! Inbound streams for a fixed set of protocols (Bitswap), handed to the
//! protocol's reader through a queue deep enough that none is lost.
//!
//! `libp2p-stream` accepts inbound streams through a one-slot channel and
//! drops any stream that arrives while that slot is taken. JS peers (Helia)
//! open a new stream for every Bitswap message, so several streams often
//! arrive in one turn of the swarm task, and the answers on the dropped ones
//! were lost (the want then waited for a hedge or a re-send). This behaviour
//! only listens; outbound streams still go through `libp2p-stream`.
//!
//! The queue is shared by every connection, and a stream waiting in it is
//! not read (its yamux window fills): each connection may have only so
//! many streams queued, so one peer opening thousands at once cannot take
//! every slot and have other peers' streams dropped.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, InboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

/// Streams waiting for their reader. Each connection already caps its open
/// streams (yamux), this caps what one slow reader lets pile up.
const QUEUE: usize = 1024;

/// A stream a peer opened to us, with the protocol it negotiated. It holds
/// its connection's place in the queue until dropped.
pub struct InboundStream {
    pub peer: PeerId,
    pub protocol: StreamProtocol,
    pub stream: Stream,
    _queued: QueueSlot,
}

/// One of a connection's places in the queue; given back when dropped.
struct QueueSlot(Arc<AtomicUsize>);

impl QueueSlot {
    /// Takes a place if fewer than `max` are taken.
    fn take(queued: &Arc<AtomicUsize>, max: usize) -> Option<QueueSlot> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QueueSlot(queued.clone()))
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Listens for `protocols` on every connection.
pub struct Behaviour {
    protocols: Vec<StreamProtocol>,
    streams: mpsc::Sender<InboundStream>,
    queued_per_connection: usize,
}

impl Behaviour {
    /// The behaviour and the receiving end of its stream queue; each
    /// connection may have `queued_per_connection` streams in it.
    pub fn new(
        protocols: Vec<StreamProtocol>,
        queued_per_connection: usize,
    ) -> (Behaviour, mpsc::Receiver<InboundStream>) {
        let (streams, receiver) = mpsc::channel(QUEUE);
        let behaviour = Behaviour {
            protocols,
            streams,
            queued_per_connection: queued_per_connection.max(1),
        };
        (behaviour, receiver)
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            protocols: self.protocols.clone(),
            streams: self.streams.clone(),
            queued: Arc::default(),
            max_queued: self.queued_per_connection,
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

pub struct Handler {
    peer: PeerId,
    protocols: Vec<StreamProtocol>,
    streams: mpsc::Sender<InboundStream>,
    /// This connection's streams in the queue.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Listen;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Listen> {
        SubstreamProtocol::new(Listen(self.protocols.clone()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Listen, DeniedUpgrade, (), Infallible>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            let Some(slot) = QueueSlot::take(&self.queued, self.max_queued) else {
                tracing::debug!(peer = %self.peer, "inbound stream dropped: the connection has its share of the reader queue");
                crate::metrics::Metrics::global()
                    .inbound_streams_dropped
                    .inc();
                return;
            };
            let queued = InboundStream {
                peer: self.peer,
                protocol,
                stream,
                _queued: slot,
            };
            if self.streams.try_send(queued).is_err() {
                tracing::debug!(peer = %self.peer, "inbound stream dropped: reader queue full or gone");
                crate::metrics::Metrics::global()
                    .inbound_streams_dropped
                    .inc();
            }
        }
    }
}

/// The inbound upgrade: any of the listened protocols, nothing to negotiate
/// beyond the name.
#[derive(Clone)]
pub struct Listen(Vec<StreamProtocol>);

impl UpgradeInfo for Listen {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Listen {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_takes_at_most_its_share_of_the_queue() {
        let queued = Arc::default();
        let first = QueueSlot::take(&queued, 2).unwrap();
        let _second = QueueSlot::take(&queued, 2).unwrap();
        assert!(QueueSlot::take(&queued, 2).is_none());
        drop(first);
        assert!(
            QueueSlot::take(&queued, 2).is_some(),
            "a place is given back"
        );
    }
}
