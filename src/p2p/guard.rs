//! The address policy applied inside the libp2p transport: every dial —
//! of a hinted peer, a routed one, an address a peer announced through
//! Identify, a DHT record — reaches [`Guarded::dial`] with the IP address
//! and port about to be dialled (the DNS transport sits above it and hands
//! down resolved addresses), and a refused one fails before any packet is
//! sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;

use crate::dial::{count_refusal, AddressPolicy};

/// A transport whose dials pass an [`AddressPolicy`].
pub struct Guarded<T> {
    inner: T,
    policy: AddressPolicy,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, policy: AddressPolicy) -> Guarded<T> {
        Guarded { inner, policy }
    }
}

impl<T> Transport for Guarded<T>
where
    T: Transport<Error = std::io::Error> + Unpin,
{
    type Output = T::Output;
    type Error = std::io::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if let Err((socket, refusal)) = self.policy.check_multiaddr(&addr) {
            count_refusal("libp2p", socket, refusal);
            return Err(TransportError::Other(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{socket} is not dialled: {refusal}"),
            )));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
