//! Bitswap streams: one outbound queue per peer (batching entries into
//! messages on a long-lived stream, reopened when it breaks, falling back
//! from 1.2.0 to 1.1.0 and 1.0.0), and readers for the streams peers open
//! to us (Go and JS peers send many length-prefixed messages on one stream),
//! each message charged to the peer's inbound budget (see [`super::budget`])
//! as it arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use libp2p::{PeerId, Stream, StreamProtocol};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::budget::{InboundBudget, Reservation, StreamTicket};
use super::protocol::{
    cid_of_block, cid_of_v0_block, decode_message, read_body, read_length, want_entry,
    write_message, Entry, Message, PresenceType, WantType, Wantlist, BITSWAP_100, PROTOCOLS,
};
use crate::fetch::progress::ProgressReader;
use crate::fetch::{LinkProgress, WantKind};
use crate::metrics::Metrics;
use crate::p2p::{InboundStream, P2pNode};
use crate::session::ProviderId;
use crate::verify::MAX_BLOCK_SIZE;

/// An outbound queue with nothing to send closes its stream after this.
const IDLE: Duration = Duration::from_secs(30);
/// Most entries in one message.
const MAX_ENTRIES_PER_MESSAGE: usize = 512;
/// Messages read from a peer's stream ahead of the one being verified (each
/// holds its share of the peer's inbound budget until verified).
const FRAMES_AHEAD: usize = 2;
/// Time allowed to open a stream (including dialling).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A message of CANCELs alone waits this long for a want to go with it.
/// Every message costs the peer a read and a pass over its ledger (Helia
/// answers each in a stream of its own), and a small file is one WANT_BLOCK
/// and one CANCEL: with requests in flight the next want comes within this,
/// so the two share a message. A CANCEL only clears the peer's ledger once
/// the block is here, so waiting costs nothing the client sees.
const CANCEL_LINGER: Duration = Duration::from_millis(5);

/// What peers told us.
#[derive(Debug)]
pub enum Inbound {
    Block {
        peer: PeerId,
        cid: Cid,
        data: Bytes,
    },
    Presence {
        peer: PeerId,
        cid: Cid,
        have: bool,
    },
    /// Wants for these CIDs could not be delivered to the peer.
    Unreachable {
        peer: PeerId,
        cids: Vec<Cid>,
    },
    /// The peer sent something that is not a block it could have meant.
    Malformed {
        peer: PeerId,
        reason: String,
    },
}

/// Outbound queues, one per peer.
pub struct Outbound {
    node: P2pNode,
    queues: Mutex<HashMap<PeerId, mpsc::UnboundedSender<Entry>>>,
    inbound: mpsc::UnboundedSender<Inbound>,
}

impl Outbound {
    pub fn new(node: P2pNode, inbound: mpsc::UnboundedSender<Inbound>) -> Arc<Outbound> {
        Arc::new(Outbound {
            node,
            queues: Mutex::default(),
            inbound,
        })
    }

    /// Asks `peer` for `cid`.
    pub fn want(&self, peer: PeerId, cid: &Cid, kind: WantKind) {
        self.send(peer, want_entry(cid, kind.into(), false));
    }

    /// Tells `peer` that the want of `kind` for `cid` is over.
    pub fn cancel(&self, peer: PeerId, cid: &Cid, kind: WantKind) {
        self.send(peer, want_entry(cid, kind.into(), true));
    }

    /// Queues `entry` for `peer`, starting its queue task if needed.
    fn send(&self, peer: PeerId, entry: Entry) {
        let mut queues = self.queues.lock();
        let entry = match queues.get(&peer) {
            Some(tx) => match tx.send(entry) {
                Ok(()) => return,
                Err(mpsc::error::SendError(entry)) => entry,
            },
            None => entry,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(entry).expect("receiver is alive");
        queues.insert(peer, tx);
        tokio::spawn(peer_queue(
            self.node.clone(),
            peer,
            rx,
            self.inbound.clone(),
        ));
    }
}

async fn open(node: &P2pNode, peer: PeerId) -> Result<(Stream, StreamProtocol), String> {
    // Connect first: a stream opened while the dial is still queued fails
    // with "no addresses".
    if !node.is_connected(&peer) {
        node.connect(peer, OPEN_TIMEOUT).await?;
    }
    let mut control = node.stream_control();
    for protocol in PROTOCOLS {
        match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, protocol.clone())).await
        {
            Ok(Ok(stream)) => return Ok((stream, protocol)),
            Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => continue,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out opening a stream".into()),
        }
    }
    Err("peer speaks no Bitswap version".into())
}

/// Bitswap 1.0.0 has no want types: wants are for blocks, and WANT_HAVE
/// cannot be expressed.
fn message_for(protocol: &StreamProtocol, entries: &[Entry]) -> Message {
    let entries = if *protocol == BITSWAP_100 {
        entries
            .iter()
            .filter(|e| e.cancel || e.want_type == WantType::Block as i32)
            .cloned()
            .collect()
    } else {
        entries.to_vec()
    };
    Message {
        wantlist: Some(Wantlist {
            entries,
            full: false,
        }),
        ..Default::default()
    }
}

async fn peer_queue(
    node: P2pNode,
    peer: PeerId,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let mut stream: Option<(Stream, StreamProtocol)> = None;
    while let Some(entries) = next_message(&mut rx).await {
        let mut sent = false;
        let mut last_error = String::new();
        // A stream that broke since the last message gets one reopen.
        for _attempt in 0..2 {
            if stream.is_none() {
                match open(&node, peer).await {
                    Ok(opened) => stream = Some(opened),
                    Err(e) => {
                        last_error = e;
                        break;
                    }
                }
            }
            let (io, protocol) = stream.as_mut().expect("opened above");
            match write_message(io, &message_for(protocol, &entries)).await {
                Ok(()) => {
                    for e in &entries {
                        if let Ok(cid) = Cid::try_from(&e.block[..]) {
                            tracing::trace!(%peer, %cid, cancel = e.cancel, want_type = e.want_type, "want sent");
                        }
                    }
                    sent = true;
                    break;
                }
                Err(e) => {
                    last_error = e.to_string();
                    stream = None;
                }
            }
        }
        if !sent {
            tracing::debug!(%peer, error = %last_error, "bitswap send failed");
            let cids = entries
                .iter()
                .filter(|e| !e.cancel)
                .filter_map(|e| Cid::try_from(&e.block[..]).ok())
                .collect();
            let _ = inbound.send(Inbound::Unreachable { peer, cids });
        }
    }
}

/// The entries of the next message: what is queued (waiting up to
/// [`IDLE`] for the first), and if that is CANCELs alone, what comes within
/// [`CANCEL_LINGER`] up to the first want. `None` once the queue is closed
/// or idle.
async fn next_message(rx: &mut mpsc::UnboundedReceiver<Entry>) -> Option<Vec<Entry>> {
    let first = tokio::time::timeout(IDLE, rx.recv()).await.ok()??;
    let mut entries = vec![first];
    drain_into(&mut entries, rx);
    if entries.iter().all(|e| e.cancel) {
        let until = tokio::time::Instant::now() + CANCEL_LINGER;
        while entries.len() < MAX_ENTRIES_PER_MESSAGE {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(entry)) => {
                    let want = !entry.cancel;
                    entries.push(entry);
                    drain_into(&mut entries, rx);
                    if want {
                        break;
                    }
                }
                // Out of time, or the queue is closing: send what there is.
                _ => break,
            }
        }
    }
    Some(entries)
}

/// Moves the entries already queued into `entries`, up to a message's worth.
fn drain_into(entries: &mut Vec<Entry>, rx: &mut mpsc::UnboundedReceiver<Entry>) {
    while entries.len() < MAX_ENTRIES_PER_MESSAGE {
        match rx.try_recv() {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
    }
}

/// Reads every message on the streams peers open to us (the node must have
/// been started with the Bitswap [`PROTOCOLS`]), within `budget`.
pub fn accept_inbound(
    node: &P2pNode,
    inbound: mpsc::UnboundedSender<Inbound>,
    progress: LinkProgress,
    budget: Arc<InboundBudget>,
) {
    let Some(mut incoming) = node.take_inbound_streams() else {
        tracing::warn!("bitswap inbound streams already taken");
        return;
    };
    tokio::spawn(async move {
        while let Some(queued) = incoming.recv().await {
            let InboundStream {
                peer,
                protocol,
                stream,
                ..
            } = queued;
            let ticket = match budget.admit(peer) {
                Ok(ticket) => ticket,
                Err(refusal) => {
                    // Dropping the stream resets it.
                    tracing::debug!(%peer, ?refusal, "inbound bitswap stream refused");
                    Metrics::global().inbound_streams_refused.inc();
                    continue;
                }
            };
            let stream = progress.reader(ProviderId::Peer(peer), stream);
            tokio::spawn(read_stream(
                peer,
                stream,
                protocol,
                inbound.clone(),
                ticket,
                budget.message_timeout(),
            ));
        }
    });
}

/// Reading and interpreting (which hashes every block) run as two tasks, so
/// the stream is read, and its flow-control window reopened, while the
/// previous message is verified; the sender would otherwise stall on the
/// window for as long as each message takes to hash. Each message holds
/// its reservation until it has been interpreted and handed on.
async fn read_stream(
    peer: PeerId,
    mut stream: ProgressReader<Stream>,
    protocol: StreamProtocol,
    inbound: mpsc::UnboundedSender<Inbound>,
    ticket: StreamTicket,
    message_timeout: Duration,
) {
    let (frames, mut to_interpret) = mpsc::channel::<(Bytes, Reservation)>(FRAMES_AHEAD);
    let interpreter = tokio::spawn(async move {
        while let Some((body, reservation)) = to_interpret.recv().await {
            let body_len = body.len();
            let message = match decode_message(body) {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "undecodable bitswap message");
                    return;
                }
            };
            for event in interpret(peer, &protocol, message, body_len) {
                if inbound.send(event).is_err() {
                    return;
                }
            }
            drop(reservation);
        }
    });
    let reading = async {
        // Waiting for the next message is not timed (Go peers keep one
        // stream open between messages); a message once started is.
        while let Some(len) = read_length(&mut stream).await? {
            let mut reservation = ticket.reservation();
            let body = tokio::time::timeout(
                message_timeout,
                read_body(&mut stream, len, &mut reservation),
            )
            .await
            .map_err(|_| {
                std::io::Error::other(format!(
                    "message of {len} bytes incomplete after {message_timeout:?}"
                ))
            })??;
            if frames.send((body, reservation)).await.is_err() {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let read = tokio::select! {
        read = reading => Some(read),
        () = ticket.reset().cancelled() => None,
    };
    match read {
        Some(read) => {
            if let Err(e) = read {
                tracing::debug!(%peer, error = %e, "bitswap stream closed");
            }
            drop(stream);
            drop(frames);
            let _ = interpreter.await;
        }
        // Over budget: what this stream holds is dropped unverified, and
        // dropping the stream resets it.
        None => interpreter.abort(),
    }
}

/// Turns a message of `body_len` bytes into events. Wantlists from peers
/// are ignored: this node fetches, it does not serve.
fn interpret(
    peer: PeerId,
    protocol: &StreamProtocol,
    message: Message,
    body_len: usize,
) -> Vec<Inbound> {
    // Blocks share the message body's memory, and the cache weighs a block
    // by its own length: a small block would keep a large message alive
    // (a peer could pad each answer to 4 MB). One under half its message is
    // copied out, so what a block holds is at most twice what it weighs.
    let own = |data: Bytes| {
        if data.len() * 2 < body_len {
            Bytes::copy_from_slice(&data)
        } else {
            data
        }
    };
    let mut events = Vec::new();
    let malformed = |reason: String| Inbound::Malformed { peer, reason };
    for block in message.payload {
        if block.data.len() > MAX_BLOCK_SIZE {
            events.push(malformed(format!("block of {} bytes", block.data.len())));
            continue;
        }
        match cid_of_block(&block.prefix, &block.data) {
            Ok(cid) => events.push(Inbound::Block {
                peer,
                cid,
                data: own(block.data),
            }),
            Err(reason) => events.push(malformed(reason)),
        }
    }
    if *protocol == BITSWAP_100 || !message.blocks.is_empty() {
        for data in message.blocks {
            if data.len() > MAX_BLOCK_SIZE {
                events.push(malformed(format!("block of {} bytes", data.len())));
                continue;
            }
            events.push(Inbound::Block {
                peer,
                cid: cid_of_v0_block(&data),
                data: own(data),
            });
        }
    }
    for presence in message.block_presences {
        match Cid::try_from(&presence.cid[..]) {
            Ok(cid) => events.push(Inbound::Presence {
                peer,
                cid,
                have: presence.r#type == PresenceType::Have as i32,
            }),
            Err(e) => events.push(malformed(format!("bad CID in presence: {e}"))),
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use multihash_codetable::{Code, MultihashDigest};
    use prost::Message as _;

    use super::super::protocol::{cid_prefix, Block, BITSWAP_120};
    use super::*;

    fn shares(body: &Bytes, data: &Bytes) -> bool {
        let range = body.as_ptr_range();
        range.contains(&data.as_ptr())
    }

    /// The blocks of `message`, decoded from its encoding as read off the wire.
    fn blocks_of(message: &Message) -> (Bytes, Vec<Bytes>) {
        let body = Bytes::from(message.encode_to_vec());
        let decoded = decode_message(body.clone()).unwrap();
        let events = interpret(PeerId::random(), &BITSWAP_120, decoded, body.len());
        let blocks = events
            .into_iter()
            .filter_map(|e| match e {
                Inbound::Block { data, .. } => Some(data),
                _ => None,
            })
            .collect();
        (body, blocks)
    }

    fn block(data: Vec<u8>) -> Block {
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        Block {
            prefix: cid_prefix(&cid),
            data: Bytes::from(data),
        }
    }

    fn entry(seed: u8, cancel: bool) -> Entry {
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&[seed]));
        want_entry(&cid, WantType::Block, cancel)
    }

    #[tokio::test]
    async fn a_cancel_waits_briefly_for_a_want_to_share_its_message() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A want goes out at once.
        tx.send(entry(1, false)).unwrap();
        assert_eq!(next_message(&mut rx).await.unwrap().len(), 1);
        // A CANCEL waits for the next want, which rides with it.
        tx.send(entry(1, true)).unwrap();
        let sender = tx.clone();
        // On this single-threaded runtime the task runs once the CANCEL is
        // taken and the queue waits.
        tokio::spawn(async move {
            sender.send(entry(2, false)).unwrap();
            sender.send(entry(3, false)).unwrap();
        });
        let message = next_message(&mut rx).await.unwrap();
        assert_eq!(
            message.iter().map(|e| e.cancel).collect::<Vec<_>>(),
            vec![true, false, false],
            "the CANCEL first, then the wants that came"
        );
        // With no want coming, the CANCEL goes after the linger.
        tx.send(entry(2, true)).unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(next_message(&mut rx).await.unwrap().len(), 1);
        assert!(started.elapsed() >= CANCEL_LINGER);
        drop(tx);
        assert!(next_message(&mut rx).await.is_none(), "closed");
    }

    #[test]
    fn a_small_block_does_not_keep_a_padded_message_alive() {
        // One wanted 100-byte block beside 2 MB of padding.
        let message = Message {
            payload: vec![block(vec![1; 100]), block(vec![0; 2_000_000])],
            ..Default::default()
        };
        let (body, blocks) = blocks_of(&message);
        assert_eq!(blocks.len(), 2);
        assert_eq!(&blocks[0][..], &[1; 100][..]);
        assert!(!shares(&body, &blocks[0]), "the small block is copied out");
        assert!(
            shares(&body, &blocks[1]),
            "most of the message is not copied"
        );

        // A message of one block is not copied either.
        let (body, blocks) = blocks_of(&Message {
            payload: vec![block(vec![2; 300_000])],
            ..Default::default()
        });
        assert!(shares(&body, &blocks[0]));
    }
}
