//! The libp2p node: TCP and QUIC, Noise, Yamux, Identify, Ping, connection
//! limits, a persistent Ed25519 identity, static peers kept connected, the
//! Kademlia DHT client ([`dht`]), and raw protocol streams (for Bitswap):
//! outbound through `libp2p-stream`, inbound through [`inbound`], which
//! queues them instead of dropping them.
//!
//! The swarm runs in its own task (`SwarmTask`); the rest of the gateway
//! talks to it through [`P2pNode`]: dial a peer, list connected peers, find
//! providers and peers in the DHT, open or accept streams.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::{upgrade, Transport};
use libp2p::identity::Keypair;
use libp2p::kad;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{dns, identify, noise, ping, quic, tcp, yamux, Multiaddr, PeerId, Swarm};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::dial::AddressPolicy;

pub mod dht;
mod guard;
pub mod inbound;

pub use dht::{DhtConfig, DhtMode, DhtProvider, DhtStatus};
pub use inbound::InboundStream;

use dht::{Dht, DhtCommand};

/// Settings of the libp2p node (`[p2p]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Addresses to listen on; empty means dial-only.
    pub listen: Vec<String>,
    /// Peers (multiaddrs ending in `/p2p/<id>`) dialled at start and redialled when they drop.
    pub peers: Vec<String>,
    /// Most established connections.
    pub max_connections: u32,
    /// Most connections to one peer.
    pub max_connections_per_peer: u32,
    /// Most connections being dialled, and most being accepted, at once
    /// (each request may name several peers to dial).
    pub max_pending_connections: u32,
    /// Seconds a connection with no open stream stays up.
    pub idle_timeout_secs: u64,
    /// Streams one connection may have waiting for their reader; more are dropped.
    pub max_queued_inbound_streams_per_connection: usize,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            peers: Vec::new(),
            max_connections: 512,
            max_connections_per_peer: 2,
            max_pending_connections: 128,
            idle_timeout_secs: 60,
            max_queued_inbound_streams_per_connection: 128,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("identity file {path}: {reason}")]
    Identity { path: String, reason: String },
    #[error("invalid multiaddr {addr:?} in [p2p]: {reason}")]
    Addr { addr: String, reason: String },
    #[error("libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("{0}")]
    Dht(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
    inbound: inbound::Behaviour,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
}

enum Command {
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    Dht(DhtCommand),
}

/// Yamux with stream receive windows of at most 1 MiB. rust-yamux rejects
/// frames over 1 MiB and tears the connection down, while JS peers (Helia)
/// send frames as large as the receive window; left to auto-tune, windows
/// grow past 1 MiB and Helia's 1 MiB blocks then arrive in frames too large.
/// The connection's receive budget is fixed at 1 GiB and every stream is
/// guaranteed 256 KiB of it: with 4093 streams allowed, 768 KiB are left to
/// grow into, so one stream (a peer sends its Bitswap messages on one) can
/// reach 1 MiB by doubling and none can pass it.
/// TCP (Noise, Yamux) and QUIC under the address policy, with DNS names
/// resolved above it, so the policy sees the addresses actually dialled.
fn transport(
    key: &Keypair,
    policy: AddressPolicy,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, P2pError> {
    let guarded = || -> Result<guard::Guarded<Boxed<(PeerId, StreamMuxerBox)>>, P2pError> {
        let noise = noise::Config::new(key).map_err(|e| P2pError::Transport(e.to_string()))?;
        let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux_config())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
        let quic = quic::tokio::Transport::new(quic::Config::new(key))
            .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)));
        let ip = quic
            .or_transport(tcp)
            .map(|either, _| either.into_inner())
            .boxed();
        Ok(guard::Guarded::new(ip, policy.clone()))
    };
    Ok(match dns::tokio::Transport::system(guarded()?) {
        Ok(dns) => dns.boxed(),
        Err(e) => {
            tracing::warn!(error = %e, "no system DNS configuration: /dns multiaddrs cannot be dialled");
            guarded()?.boxed()
        }
    })
}

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(4093);
    config
}

/// A handle to the running node. Cheap to clone.
#[derive(Clone)]
pub struct P2pNode {
    peer_id: PeerId,
    /// Addresses learned from hints and config, so a stream can be opened
    /// (and the peer redialled) without waiting on the swarm task.
    addresses: Arc<RwLock<HashMap<PeerId, Vec<Multiaddr>>>>,
    control: libp2p_stream::Control,
    /// Taken once, by the protocol that reads inbound streams.
    inbound: Arc<Mutex<Option<mpsc::Receiver<InboundStream>>>>,
    commands: mpsc::UnboundedSender<Command>,
    /// Connected peers and the remote address of a connection to each.
    connected: Arc<RwLock<HashMap<PeerId, Multiaddr>>>,
    /// Woken when a peer joins `connected`, so [`P2pNode::connect`] waits on
    /// the swarm's event instead of polling.
    connection_established: Arc<Notify>,
    listening: Arc<RwLock<Vec<Multiaddr>>>,
    dht: Option<Arc<RwLock<DhtStatus>>>,
    /// `[p2p] peers`.
    configured: Arc<Vec<PeerId>>,
}

/// Loads the node's Ed25519 key from `data_dir/identity.key`, making one on
/// first start.
pub fn load_or_create_identity(data_dir: &Path) -> Result<Keypair, P2pError> {
    let path = data_dir.join("identity.key");
    let err = |reason: String| P2pError::Identity {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
            let tmp = data_dir.join("identity.key.tmp");
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| err(e.to_string()))?;
                file.write_all(&bytes)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| err(e.to_string()))?;
            }
            std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn parse_addr(addr: &str) -> Result<Multiaddr, P2pError> {
    addr.parse()
        .map_err(|e: libp2p::multiaddr::Error| P2pError::Addr {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

use dht::peer_of;

impl P2pNode {
    /// Starts the swarm in a background task, listening for streams of
    /// `inbound_protocols` (read them with [`P2pNode::take_inbound_streams`]).
    /// Every dial passes `policy`; the node's own listening addresses are
    /// added to it as they come up. The DHT client runs as `dht` says,
    /// remembering its routing table in `data_dir` (if given).
    pub async fn start(
        config: &P2pConfig,
        dht_config: &DhtConfig,
        data_dir: Option<&Path>,
        key: Keypair,
        inbound_protocols: &[libp2p::StreamProtocol],
        policy: AddressPolicy,
    ) -> Result<P2pNode, P2pError> {
        // libp2p links two rustls crypto providers; QUIC needs one chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let limits = ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_outgoing(Some(config.max_pending_connections))
            .with_max_pending_incoming(Some(config.max_pending_connections));
        let (inbound_behaviour, inbound_streams) = inbound::Behaviour::new(
            inbound_protocols.to_vec(),
            config.max_queued_inbound_streams_per_connection,
        );
        let transport = transport(&key, policy.clone())?;
        let local = key.public().to_peer_id();
        let mut kad = dht::behaviour(dht_config, local).map_err(P2pError::Dht)?;
        let dht = match kad.as_mut() {
            Some(kad) => Some(
                Dht::start(dht_config.clone(), policy.clone(), data_dir, kad)
                    .map_err(P2pError::Dht)?,
            ),
            None => None,
        };
        let behaviour = Behaviour {
            kad: Toggle::from(kad),
            inbound: inbound_behaviour,
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new("/ipfs/0.1.0".into(), key.public())
                    .with_agent_version(format!("sluice/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        };
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            key.public().to_peer_id(),
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(Duration::from_secs(config.idle_timeout_secs)),
        );
        for addr in &config.listen {
            let parsed = parse_addr(addr)?;
            swarm.listen_on(parsed).map_err(|e| P2pError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut static_peers = Vec::new();
        for addr in &config.peers {
            let parsed = parse_addr(addr)?;
            let (peer, addr) = peer_of(&parsed).ok_or_else(|| P2pError::Addr {
                addr: addr.clone(),
                reason: "a static peer must end in /p2p/<peer-id>".into(),
            })?;
            // The operator named it: it may be private.
            if let Some(socket) = crate::dial::multiaddr_socket(&addr) {
                policy.trust(socket);
            }
            static_peers.push((peer, addr));
        }
        let peer_id = *swarm.local_peer_id();
        let control = swarm.behaviour().stream.new_control();
        let (commands, receiver) = mpsc::unbounded_channel();
        let node = P2pNode {
            peer_id,
            addresses: Arc::default(),
            control,
            inbound: Arc::new(Mutex::new(Some(inbound_streams))),
            commands,
            connected: Arc::default(),
            connection_established: Arc::default(),
            listening: Arc::default(),
            dht: dht.as_ref().map(Dht::status),
            configured: Arc::new(static_peers.iter().map(|(peer, _)| *peer).collect()),
        };
        for (peer, addr) in &static_peers {
            node.dial(*peer, vec![addr.clone()]);
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut task = SwarmTask {
            swarm,
            commands: receiver,
            static_peers,
            connected: node.connected.clone(),
            connection_established: node.connection_established.clone(),
            listening: node.listening.clone(),
            addresses: node.addresses.clone(),
            expected_listeners: config.listen.len(),
            ready: Some(ready_tx),
            dht,
        };
        if task.expected_listeners == 0 {
            task.signal_ready();
        }
        tokio::spawn(task.run());
        // Wait (briefly) until listeners are up so callers can advertise them.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        for addr in node.listening.read().iter() {
            if let Some(socket) = crate::dial::multiaddr_socket(addr) {
                policy.add_own_listener(socket);
            }
        }
        Ok(node)
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Addresses the node listens on (with `/p2p/<id>` appended).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let own = libp2p::multiaddr::Protocol::P2p(self.peer_id);
        self.listening
            .read()
            .iter()
            .map(|a| a.clone().with(own.clone()))
            .collect()
    }

    /// Connects to `peer` (if not connected) using `addrs`; remembers the
    /// addresses for later stream opens.
    pub fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == self.peer_id {
            return;
        }
        let all_known = {
            let known = self.addresses.read();
            known
                .get(&peer)
                .is_some_and(|entry| addrs.iter().all(|a| entry.contains(a)))
        };
        // Every request hinting a connected provider lands here: nothing
        // for the swarm task to do then.
        if all_known && self.is_connected(&peer) {
            return;
        }
        if !all_known {
            let mut known = self.addresses.write();
            let entry = known.entry(peer).or_default();
            for addr in &addrs {
                if !entry.contains(addr) && entry.len() < 16 {
                    entry.push(addr.clone());
                }
            }
        }
        let _ = self.commands.send(Command::Dial { peer, addrs });
    }

    /// Connects to `peer` with the addresses known for it, waiting up to
    /// `timeout` for the connection.
    pub async fn connect(&self, peer: PeerId, timeout: Duration) -> Result<(), String> {
        if self.is_connected(&peer) {
            return Ok(());
        }
        let addrs = self
            .addresses
            .read()
            .get(&peer)
            .cloned()
            .unwrap_or_default();
        if addrs.is_empty() {
            return Err(format!("no known address for {peer}"));
        }
        let _ = self.commands.send(Command::Dial { peer, addrs });
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a connection made between the
            // check and the wait still wakes it.
            let established = self.connection_established.notified();
            tokio::pin!(established);
            established.as_mut().enable();
            if self.is_connected(&peer) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, established)
                .await
                .is_err()
            {
                return Err(format!("could not connect to {peer} within {timeout:?}"));
            }
        }
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.read().contains_key(peer)
    }

    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.connected.read().keys().copied().collect()
    }

    /// Connected peers with the remote address of a connection to each.
    pub fn connected_peers_at(&self) -> Vec<(PeerId, Multiaddr)> {
        self.connected
            .read()
            .iter()
            .map(|(peer, addr)| (*peer, addr.clone()))
            .collect()
    }

    /// Whether `peer` is one of `[p2p] peers`.
    pub fn is_configured(&self, peer: &PeerId) -> bool {
        self.configured.contains(peer)
    }

    /// Whether the DHT client runs.
    pub fn has_dht(&self) -> bool {
        self.dht.is_some()
    }

    /// What the DHT is doing; `None` when it is off.
    pub fn dht_status(&self) -> Option<DhtStatus> {
        self.dht.as_ref().map(|status| status.read().clone())
    }

    /// Providers of `cid` from the DHT, as they are found; the channel
    /// closes when the lookup ends (its deadline is `[dht]
    /// lookup_timeout_ms`). `None` when the DHT is off.
    pub fn find_providers(&self, cid: &cid::Cid) -> Option<mpsc::Receiver<DhtProvider>> {
        self.dht.as_ref()?;
        let (found, receiver) = mpsc::channel(64);
        let key = cid.hash().to_bytes();
        let _ = self
            .commands
            .send(Command::Dht(DhtCommand::FindProviders { key, found }));
        Some(receiver)
    }

    /// The records DHT servers hold under `key` (GET_VALUE), unverified,
    /// as they come; `None` when the DHT is off.
    pub fn get_records(&self, key: Vec<u8>) -> Option<mpsc::Receiver<Vec<u8>>> {
        self.dht.as_ref()?;
        let (found, receiver) = mpsc::channel(16);
        let _ = self
            .commands
            .send(Command::Dht(DhtCommand::GetRecords { key, found }));
        Some(receiver)
    }

    /// The addresses the DHT knows for `peer` (FIND_PEER); empty when it
    /// is off or the peer was not found.
    pub async fn find_peer(&self, peer: PeerId) -> Vec<Multiaddr> {
        if self.dht.is_none() {
            return Vec::new();
        }
        let (reply, answer) = oneshot::channel();
        let _ = self
            .commands
            .send(Command::Dht(DhtCommand::FindPeer { peer, reply }));
        answer.await.unwrap_or_default()
    }

    /// The streams peers open for the protocols given to [`P2pNode::start`];
    /// `None` after the first call.
    pub fn take_inbound_streams(&self) -> Option<mpsc::Receiver<InboundStream>> {
        self.inbound.lock().take()
    }

    /// Stream control for protocols layered on the node (Bitswap).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }
}

/// The swarm's own task: it owns the [`Swarm`], carries out the
/// [`P2pNode`] handles' commands, redials static peers, and publishes what the
/// handles read (connected peers, listening addresses).
struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::UnboundedReceiver<Command>,
    static_peers: Vec<(PeerId, Multiaddr)>,
    connected: Arc<RwLock<HashMap<PeerId, Multiaddr>>>,
    connection_established: Arc<Notify>,
    listening: Arc<RwLock<Vec<Multiaddr>>>,
    /// The handles' address book, updated with addresses the DHT finds.
    addresses: Arc<RwLock<HashMap<PeerId, Vec<Multiaddr>>>>,
    dht: Option<Dht>,
    /// Listeners not up yet; [`P2pNode::start`] waits (briefly) for all of them.
    expected_listeners: usize,
    ready: Option<oneshot::Sender<()>>,
}

impl SwarmTask {
    /// Runs until every [`P2pNode`] handle is dropped.
    async fn run(mut self) {
        let mut redial = tokio::time::interval(Duration::from_secs(10));
        let mut remember = tokio::time::interval(Dht::remember_interval());
        let mut crawl = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.execute(command),
                    None => return,
                },
                _ = redial.tick() => self.redial_static_peers(),
                _ = remember.tick() => {
                    if let (Some(dht), Some(kad)) = (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut()) {
                        dht.remember(kad);
                    }
                }
                _ = crawl.tick() => {
                    if let (Some(dht), Some(kad)) = (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut()) {
                        dht.crawl(kad);
                    }
                }
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
    }

    /// Dials `peer` at `addrs` unless it is connected or being dialled.
    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        for addr in &addrs {
            self.swarm.add_peer_address(peer, addr.clone());
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "dial not started");
        }
    }

    fn execute(&mut self, command: Command) {
        match command {
            Command::Dial { peer, addrs } => self.dial(peer, addrs),
            Command::Dht(command) => {
                if let (Some(dht), Some(kad)) =
                    (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut())
                {
                    dht.execute(command, kad);
                }
            }
        }
    }

    fn redial_static_peers(&mut self) {
        for (peer, addr) in &self.static_peers {
            if !self.swarm.is_connected(peer) {
                let opts = DialOpts::peer_id(*peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                let _ = self.swarm.dial(opts);
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "libp2p listening");
                self.listening.write().push(address);
                self.expected_listeners = self.expected_listeners.saturating_sub(1);
                if self.expected_listeners == 0 {
                    self.signal_ready();
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::debug!(peer = %peer_id, "connected");
                self.connected
                    .write()
                    .entry(peer_id)
                    .or_insert_with(|| endpoint.get_remote_address().clone());
                self.connection_established.notify_waiters();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                endpoint,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, dialer = endpoint.is_dialer(), "disconnected");
                self.connected.write().remove(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    if let (Some(dht), Some(kad)) =
                        (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut())
                    {
                        dht.on_dial_failed(peer, kad);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                tracing::trace!(peer = %peer_id, agent = %info.agent_version, "identified");
                if let (Some(dht), Some(kad)) =
                    (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut())
                {
                    dht.on_identified(peer_id, &info.protocols, info.listen_addrs, kad);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => {
                let dials = match (self.dht.as_mut(), self.swarm.behaviour_mut().kad.as_mut()) {
                    (Some(dht), Some(kad)) => dht.on_event(event, kad),
                    _ => Vec::new(),
                };
                for (peer, addrs) in dials {
                    self.remember_addresses(peer, &addrs);
                    self.dial(peer, addrs);
                }
            }
            _ => {}
        }
    }

    /// Addresses found for `peer` replace what the handles knew, so a
    /// stream open redials where the peer is now.
    fn remember_addresses(&self, peer: PeerId, addrs: &[Multiaddr]) {
        let mut known = self.addresses.write();
        let entry = known.entry(peer).or_default();
        entry.retain(|a| !addrs.contains(a));
        let mut fresh = addrs.to_vec();
        fresh.append(entry);
        fresh.truncate(16);
        *entry = fresh;
    }

    fn signal_ready(&mut self) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(());
        }
    }
}
