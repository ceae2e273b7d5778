//! Memory a Bitswap peer can make the gateway hold with messages it never
//! finishes, checked on the real binary: a hostile peer opens many streams
//! and on each sends all but the last 100 bytes of an announced 4,000,000
//! byte message, or trickles one; the process's peak RSS must stay within
//! the configured `[bitswap]` budget, the peer's streams must be reset and
//! counted, and an honest peer must meanwhile be fetched from in full.

mod common;

use common::binary::{free_port, until_listening, SLUICE};

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::bitswap_peer::{Behaviour, TestPeer};
use common::{generated_file, sha256_hex};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId};
use sluice::fetch::bitswap::protocol::BITSWAP_120;
use sluice::p2p::{P2pConfig, P2pNode};

const MIB: u64 = 1024 * 1024;
/// What the hostile peer announces on each stream (under the 4 MiB cap, so
/// the length alone is not refused).
const ANNOUNCED: usize = 4_000_000;
/// Bytes it never sends.
const HELD_BACK: usize = 100;
/// A message timeout no run of these tests reaches, where streams left
/// incomplete must be closed by something else or stay open.
const LONG_TIMEOUT_SECS: u64 = 600;

/// `sluice serve`, killed when dropped.
struct Sluice {
    child: Child,
    http: u16,
    control: u16,
    peer: PeerId,
    p2p: Multiaddr,
    _dir: tempfile::TempDir,
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sluice {
    /// Starts the binary on loopback ports with `bitswap` as its `[bitswap]`
    /// section, and waits until it serves.
    fn start(bitswap: &str) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        // A known identity, so the test knows the peer ID to dial.
        let key = libp2p::identity::Keypair::generate_ed25519();
        std::fs::write(
            data_dir.join("identity.key"),
            key.to_protobuf_encoding().unwrap(),
        )
        .unwrap();
        let (http, control, p2p) = (free_port(), free_port(), free_port());
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n\
             [store]\ndata_dir = {data_dir:?}\n\
             [hints]\nallow_private = true\n\
             [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/{p2p}\"]\n\
             [routing]\nendpoints = []\n\
             [metrics]\nlisten = \"127.0.0.1:{control}\"\n\
             {bitswap}\n"
        );
        let config_path = dir.path().join("sluice.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(SLUICE)
            .args(["serve", "--config", config_path.to_str().unwrap()])
            .env("RUST_LOG", "warn,sluice=info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let lines = until_listening(&mut child);
        // Warnings show with a failing test's output; the pipe must be drained.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if !line.contains(" INFO ") {
                    eprintln!("sluice: {line}");
                }
            }
        });
        Sluice {
            child,
            http,
            control,
            peer: key.public().to_peer_id(),
            p2p: format!("/ip4/127.0.0.1/tcp/{p2p}").parse().unwrap(),
            _dir: dir,
        }
    }

    /// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`: peak RSS).
    fn memory(&self, field: &str) -> u64 {
        proc_status_bytes(self.child.id(), field)
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!(
            "http://127.0.0.1:{}/debug/metrics/prometheus",
            self.control
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not exported"))
    }
}

fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc status"));
    kib * 1024
}

/// A libp2p node connected to `sluice`, for the hostile side.
async fn connect_to(sluice: &Sluice) -> P2pNode {
    let node = P2pNode::start(
        &P2pConfig {
            listen: Vec::new(),
            ..P2pConfig::default()
        },
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
    node.dial(sluice.peer, vec![sluice.p2p.clone()]);
    node.connect(sluice.peer, Duration::from_secs(20))
        .await
        .unwrap();
    node
}

/// How a hostile stream ended, seen from the hostile peer.
#[derive(Debug, PartialEq)]
enum End {
    /// Sluice ended the stream (a write or the read failed, or EOF).
    ClosedBySluice,
    /// The stream could not even be opened.
    NotOpened(String),
}

fn length_prefix(len: usize) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::usize_buffer();
    unsigned_varint::encode::usize(len, &mut buf).to_vec()
}

/// Opens a Bitswap stream, sends the length of a message of [`ANNOUNCED`]
/// bytes and the first `sent` of them, then waits for sluice to end the
/// stream (sluice never writes on streams peers open to it, so a read
/// returns only when the stream is closed or reset).
async fn hold_partial_message(node: P2pNode, peer: PeerId, body: Arc<Vec<u8>>, sent: usize) -> End {
    let mut stream = match node.stream_control().open_stream(peer, BITSWAP_120).await {
        Ok(stream) => stream,
        Err(e) => return End::NotOpened(e.to_string()),
    };
    if stream.write_all(&length_prefix(ANNOUNCED)).await.is_err()
        || stream.write_all(&body[..sent]).await.is_err()
        || stream.flush().await.is_err()
    {
        return End::ClosedBySluice;
    }
    let mut byte = [0u8; 1];
    let _ = stream.read(&mut byte).await;
    End::ClosedBySluice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_messages_stay_within_the_budget_and_honest_peers_are_served() {
    const PER_PEER: u64 = 8 * MIB;
    const TOTAL: u64 = 64 * MIB;
    const STREAMS: usize = 250;
    let sluice = Sluice::start(&format!(
        "[bitswap]\nmax_inbound_bytes_per_peer = {PER_PEER}\n\
         max_inbound_bytes_total = {TOTAL}\n\
         max_inbound_streams_per_peer = 512\n\
         inbound_message_timeout_secs = {LONG_TIMEOUT_SECS}\n"
    ));
    let (root, data, blocks) = generated_file(6 * MIB as usize, 7, 256 * 1024);
    let honest = TestPeer::start(blocks, Behaviour::StreamPerBlock).await;
    let baseline = sluice.memory("VmHWM");

    // A peer that holds partial messages within its budget is left alone
    // (its memory is bounded): two of 3.9 MB are under 8 MiB.
    let holder = connect_to(&sluice).await;
    let body = Arc::new(vec![0x5a; ANNOUNCED]);
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(hold_partial_message(
                holder.clone(),
                sluice.peer,
                body.clone(),
                3_900_000,
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sluice.metric("sluice_inbound_buffered_bytes").await < 7_800_000.0 {
        assert!(
            Instant::now() < deadline,
            "the held messages were not read within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sluice.metric("sluice_inbound_buffered_bytes").await <= PER_PEER as f64);

    let hostile = connect_to(&sluice).await;
    let attack: Vec<_> = (0..STREAMS)
        .map(|_| {
            tokio::spawn(hold_partial_message(
                hostile.clone(),
                sluice.peer,
                body.clone(),
                ANNOUNCED - HELD_BACK,
            ))
        })
        .collect();

    // The honest peer is fetched from while the attack is under way.
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/ipfs/{root}", sluice.http))
        .header("x-ipfs-provider", honest.hint())
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let fetched = response.bytes().await.unwrap();

    let ends =
        tokio::time::timeout(Duration::from_secs(90), futures::future::join_all(attack)).await;
    // Peak RSS, whatever happened since the baseline: the budget, plus an
    // allowance for what is not inbound message bodies (the holder's 8 MiB
    // are within the budget; yamux buffers of
    // 250 streams before their reader runs, the honest 6 MiB file in the
    // cache and in flight, allocator slack). Unbounded, the attack holds
    // about 250 × 3.8 MB ≈ 950 MB.
    let allowance = 64 * MIB;
    let peak = sluice.memory("VmHWM");
    assert!(
        peak < baseline + TOTAL + allowance,
        "peak RSS {} MiB, baseline {} MiB: more than the {} MiB budget plus {} MiB",
        peak / MIB,
        baseline / MIB,
        TOTAL / MIB,
        allowance / MIB
    );
    assert_eq!(
        sha256_hex(&fetched),
        sha256_hex(&data),
        "the honest peer's file, fetched during the attack"
    );
    let ends = ends.expect("sluice ended every hostile stream within 90 s");
    for end in ends {
        assert_eq!(end.unwrap(), End::ClosedBySluice);
    }
    // Only the attacker went over: neither the honest peer nor the holder.
    assert_eq!(
        sluice.metric("sluice_inbound_budget_exceeded_total").await,
        1.0
    );
    assert!(
        held.iter().all(|task| !task.is_finished()),
        "a peer within its budget keeps its streams"
    );

    // While penalised, a new stream from the peer is refused at once: its
    // partial message is never buffered.
    let end = tokio::time::timeout(
        Duration::from_secs(30),
        hold_partial_message(
            hostile.clone(),
            sluice.peer,
            body.clone(),
            ANNOUNCED - HELD_BACK,
        ),
    )
    .await
    .expect("a stream from a penalised peer is closed");
    assert_eq!(end, End::ClosedBySluice);
    assert!(sluice.metric("sluice_inbound_streams_refused_total").await >= 1.0);
    eprintln!(
        "baseline {} MiB, peak {} MiB, now {} MiB",
        baseline / MIB,
        sluice.memory("VmHWM") / MIB,
        sluice.memory("VmRSS") / MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_message_is_dropped_after_the_message_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let sluice = Sluice::start(&format!(
        "[bitswap]\ninbound_message_timeout_secs = {}\n",
        TIMEOUT.as_secs()
    ));
    let node = connect_to(&sluice).await;
    let mut stream = node
        .stream_control()
        .open_stream(sluice.peer, BITSWAP_120)
        .await
        .unwrap();
    let started = Instant::now();
    stream.write_all(&length_prefix(1000)).await.unwrap();
    // A byte every 100 ms: never idle, never finished (1000 bytes would take 100 s).
    let mut ended = false;
    for _ in 0..600 {
        if stream.write_all(&[0]).await.is_err() || stream.flush().await.is_err() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    assert!(ended, "sluice kept a trickling stream for {elapsed:?}");
    // Sluice starts its clock after the length arrived, later than ours; the
    // upper margin is wide for a loaded 2-core machine.
    assert!(
        elapsed >= TIMEOUT && elapsed < TIMEOUT + Duration::from_secs(30),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_per_peer_bound_are_refused() {
    const MAX: usize = 8;
    const OPENED: usize = 12;
    let sluice = Sluice::start(&format!(
        "[bitswap]\nmax_inbound_streams_per_peer = {MAX}\n\
         inbound_message_timeout_secs = {LONG_TIMEOUT_SECS}\n"
    ));
    let node = connect_to(&sluice).await;
    let body = Arc::new(vec![0x5a; ANNOUNCED]);
    // Each sends the start of a message and waits: admitted ones stay open
    // (until the message timeout), refused ones are reset at once.
    let streams: Vec<_> = (0..OPENED)
        .map(|_| {
            tokio::spawn(hold_partial_message(
                node.clone(),
                sluice.peer,
                body.clone(),
                10,
            ))
        })
        .collect();
    let closed = || streams.iter().filter(|s| s.is_finished()).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while closed() < OPENED - MAX {
        assert!(
            Instant::now() < deadline,
            "{} of {OPENED} streams closed within 30 s, expected {}",
            closed(),
            OPENED - MAX
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment later (far inside the message timeout) the admitted ones
    // are still open.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(closed(), OPENED - MAX);
    assert_eq!(
        sluice.metric("sluice_inbound_streams_refused_total").await,
        (OPENED - MAX) as f64
    );
    assert_eq!(
        sluice.metric("sluice_inbound_budget_exceeded_total").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_blocks_in_padded_messages_do_not_keep_the_padding() {
    // Every answer carries 3.5 MB of padding beside a few 4 KiB blocks. The
    // cache weighs a block by its length; were the blocks slices of their
    // messages, the 3 MB of blocks cached would hold every message they
    // came in.
    const PADDING: usize = 3_500_000;
    let sluice = Sluice::start(&format!(
        "[bitswap]\nmax_inbound_bytes_per_peer = {}\nmax_inbound_bytes_total = {}\n",
        8 * MIB,
        64 * MIB
    ));
    let (root, data, blocks) = generated_file(3_000_000, 9, 4096);
    let padded = TestPeer::start(blocks, Behaviour::Padded(PADDING)).await;
    let baseline = sluice.memory("VmHWM");
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/ipfs/{root}", sluice.http))
        .header("x-ipfs-provider", padded.hint())
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sha256_hex(&response.bytes().await.unwrap()),
        sha256_hex(&data)
    );
    let blocks_sent = padded
        .blocks_sent
        .load(std::sync::atomic::Ordering::Relaxed);
    // The messages in flight at once are bounded by the budget (8 MiB); the
    // rest is allowance as in the test above.
    let allowance = 64 * MIB;
    let peak = sluice.memory("VmHWM");
    assert!(
        peak < baseline + 8 * MIB + allowance,
        "peak RSS {} MiB, baseline {} MiB, after {blocks_sent} blocks in padded messages",
        peak / MIB,
        baseline / MIB
    );
    eprintln!("baseline {} MiB, peak {} MiB", baseline / MIB, peak / MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_total_is_spent_readers_wait_for_room() {
    const PER_PEER: u64 = 8 * MIB;
    const TOTAL: u64 = 12 * MIB;
    const HELD: usize = 3_900_000;
    let sluice = Sluice::start(&format!(
        "[bitswap]\nmax_inbound_bytes_per_peer = {PER_PEER}\n\
         max_inbound_bytes_total = {TOTAL}\n\
         inbound_message_timeout_secs = {LONG_TIMEOUT_SECS}\n"
    ));
    let body = Arc::new(vec![0x5a; ANNOUNCED]);
    let hold = |node: &P2pNode| -> Vec<_> {
        (0..2)
            .map(|_| {
                tokio::spawn(hold_partial_message(
                    node.clone(),
                    sluice.peer,
                    body.clone(),
                    HELD,
                ))
            })
            .collect()
    };
    let buffered_reaches = |range: std::ops::RangeInclusive<f64>, what: &'static str| {
        let sluice = &sluice;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let buffered = sluice.metric("sluice_inbound_buffered_bytes").await;
                if range.contains(&buffered) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: {buffered} bytes buffered"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Two peers, each holding two 3.9 MB partial messages: within their
    // own budgets, over the total together.
    let first = connect_to(&sluice).await;
    let first_streams = hold(&first);
    buffered_reaches(7.8e6..=PER_PEER as f64, "the first peer's messages read").await;
    let second = connect_to(&sluice).await;
    let second_streams = hold(&second);
    buffered_reaches(
        (TOTAL - MIB) as f64..=TOTAL as f64,
        "the second peer's messages read up to the total",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sluice.metric("sluice_inbound_buffered_bytes").await <= TOTAL as f64);
    assert!(
        second_streams.iter().all(|s| !s.is_finished()),
        "a reader waiting for room is not reset"
    );
    // The first peer gives up its streams: the second's readers go on.
    for stream in &first_streams {
        stream.abort();
    }
    buffered_reaches(
        7.8e6..=PER_PEER as f64,
        "the second peer's messages read once there was room",
    )
    .await;
    assert!(second_streams.iter().all(|s| !s.is_finished()));
    assert_eq!(
        sluice.metric("sluice_inbound_budget_exceeded_total").await,
        0.0
    );
    drop(first);
}
