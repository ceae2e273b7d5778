//! A Bitswap provider built by the tests, for behaviours no real peer will
//! show on demand: corrupt blocks, silence, slowness, going away. Built on
//! sluice's own libp2p node and Bitswap wire format, serving from memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Stream};
use sluice::fetch::bitswap::protocol::{
    cid_prefix, read_message, write_message, Block, BlockPresence, Entry, Message, PresenceType,
    WantType, Wantlist, BITSWAP_120,
};
use sluice::p2p::{P2pConfig, P2pNode};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    Honest,
    /// Answers WANT_BLOCK with bytes that do not hash to the CID.
    Corrupt,
    /// Reads wants and never answers.
    Silent,
    /// Answers after a delay.
    Slow(Duration),
    /// Sends this many blocks, then goes silent.
    StallAfter(usize),
    /// Sends each block in its own message on a new stream, all opened at
    /// once, as Helia does.
    StreamPerBlock,
    /// Keeps a want it answered until it is cancelled and ignores it when
    /// it comes again meanwhile, as Helia's ledger does.
    KeepsAnsweredWants,
    /// Answers honestly, padding each message with a wantlist entry of this
    /// many bytes (ignored by the receiver, but part of the message body).
    Padded(usize),
}

/// What the peer saw, for assertions.
#[derive(Default)]
pub struct Seen {
    pub want_blocks: Vec<Cid>,
    pub want_haves: Vec<Cid>,
    pub cancels: Vec<Cid>,
}

pub struct TestPeer {
    pub node: Option<P2pNode>,
    pub peer_id: PeerId,
    pub addr: Multiaddr,
    pub seen: Arc<Mutex<Seen>>,
    pub blocks_sent: Arc<AtomicUsize>,
}

impl TestPeer {
    pub async fn start(blocks: HashMap<Cid, Bytes>, behaviour: Behaviour) -> TestPeer {
        let config = P2pConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..P2pConfig::default()
        };
        let node = P2pNode::start(
            &config,
            &sluice::p2p::DhtConfig {
                mode: sluice::p2p::DhtMode::Off,
                ..Default::default()
            },
            None,
            libp2p::identity::Keypair::generate_ed25519(),
            &[],
            sluice::dial::AddressPolicy::new(true),
        )
        .await
        .unwrap();
        let addr = node.listen_addrs().into_iter().next().expect("listening");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let blocks_sent = Arc::new(AtomicUsize::new(0));
        let mut incoming = node.stream_control().accept(BITSWAP_120).unwrap();
        let blocks = Arc::new(blocks);
        let (serve_node, serve_seen, serve_sent) =
            (node.clone(), seen.clone(), blocks_sent.clone());
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                tokio::spawn(serve(
                    serve_node.clone(),
                    peer,
                    stream,
                    blocks.clone(),
                    behaviour,
                    serve_seen.clone(),
                    serve_sent.clone(),
                ));
            }
        });
        TestPeer {
            peer_id: node.peer_id(),
            node: Some(node),
            addr,
            seen,
            blocks_sent,
        }
    }

    /// The value of an `X-Ipfs-Provider` header naming this peer.
    pub fn hint(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the peer: its connections close and it answers nothing more.
    pub fn stop(&mut self) {
        self.node = None;
    }
}

async fn serve(
    node: P2pNode,
    peer: PeerId,
    mut inbound: Stream,
    blocks: Arc<HashMap<Cid, Bytes>>,
    behaviour: Behaviour,
    seen: Arc<Mutex<Seen>>,
    sent: Arc<AtomicUsize>,
) {
    let mut control = node.stream_control();
    let mut outbound: Option<Stream> = None;
    let mut answered: std::collections::HashSet<Cid> = Default::default();
    while let Ok(Some(message)) = read_message(&mut inbound).await {
        let Some(wantlist) = message.wantlist else {
            continue;
        };
        let mut reply = Message::default();
        for entry in wantlist.entries {
            let Ok(cid) = Cid::try_from(&entry.block[..]) else {
                continue;
            };
            let want_block = entry.want_type == WantType::Block as i32;
            {
                let mut seen = seen.lock().unwrap();
                match (entry.cancel, want_block) {
                    (true, _) => seen.cancels.push(cid),
                    (false, true) => seen.want_blocks.push(cid),
                    (false, false) => seen.want_haves.push(cid),
                }
            }
            if entry.cancel {
                answered.remove(&cid);
                continue;
            }
            if behaviour == Behaviour::Silent {
                continue;
            }
            if behaviour == Behaviour::KeepsAnsweredWants && !answered.insert(cid) {
                continue;
            }
            if let Behaviour::StallAfter(limit) = behaviour {
                if sent.load(Ordering::Relaxed) + reply.payload.len() >= limit {
                    continue;
                }
            }
            match (blocks.get(&cid), want_block) {
                (Some(data), true) => {
                    let data = if behaviour == Behaviour::Corrupt {
                        let mut bad = data.to_vec();
                        bad[0] ^= 0xff;
                        Bytes::from(bad)
                    } else {
                        data.clone()
                    };
                    reply.payload.push(Block {
                        prefix: cid_prefix(&cid),
                        data,
                    });
                }
                (found, _) => reply.block_presences.push(BlockPresence {
                    cid: Bytes::from(cid.to_bytes()),
                    r#type: if found.is_some() {
                        PresenceType::Have
                    } else {
                        PresenceType::DontHave
                    } as i32,
                }),
            }
        }
        if reply.payload.is_empty() && reply.block_presences.is_empty() {
            continue;
        }
        if let Behaviour::Slow(delay) = behaviour {
            tokio::time::sleep(delay).await;
        }
        if outbound.is_none() {
            outbound = control.open_stream(peer, BITSWAP_120).await.ok();
        }
        let Some(stream) = outbound.as_mut() else {
            return;
        };
        if behaviour == Behaviour::StreamPerBlock {
            for block in reply.payload {
                let mut control = node.stream_control();
                let sent = sent.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = control.open_stream(peer, BITSWAP_120).await else {
                        return;
                    };
                    let message = Message {
                        payload: vec![block],
                        ..Default::default()
                    };
                    if write_message(&mut stream, &message).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            continue;
        }
        if let Behaviour::Padded(bytes) = behaviour {
            reply.wantlist = Some(Wantlist {
                entries: vec![Entry {
                    block: Bytes::from(vec![0; bytes]),
                    ..Default::default()
                }],
                full: false,
            });
        }
        let count = reply.payload.len();
        if write_message(stream, &reply).await.is_err() {
            outbound = None;
            continue;
        }
        sent.fetch_add(count, Ordering::Relaxed);
    }
}
