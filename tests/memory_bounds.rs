//! Memory under clients that do not read: the real `sluice` binary, a
//! 64 MiB file of 1 MiB blocks in its on-disk store, and 150 connections
//! that each ask for the whole file (or a CAR or a TAR of it, or a TAR of
//! the same bytes as a directory of 64 files) and never read a byte.
//! The read-ahead budget (`[limits] read_ahead_bytes_*`) must keep the
//! process's resident memory under baseline + the process-wide budget + a
//! stated allowance per connection, while a client that does read still
//! gets every byte.

mod common;

use common::binary::{free_port, listening, Running, SLUICE};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use common::sha256_hex;
use sluice::car::CarWriter;
use sluice::unixfs::builder::{build_file, FileLayout};

const MIB: u64 = 1024 * 1024;
const FILE_BYTES: usize = 64 * MIB as usize;
const BLOCK_BYTES: usize = MIB as usize;
/// Small budgets, so that 150 stalled readers would exceed them many times
/// over without the bound (each held 16 blocks, 16 MiB, before it).
const PER_RESPONSE: u64 = 4 * MIB;
const TOTAL: u64 = 32 * MIB;
const STALLED: usize = 150;
/// What each stalled connection may hold outside the read-ahead budget:
/// hyper's write buffer (the chunk it is writing, up to a 1 MiB block, and
/// the next one it asks for once less than its 400 KiB buffer limit of the
/// first is left: two blocks at most) and the connection's own state
/// (buffers, task, session: 64 KiB is generous).
const PER_CONNECTION: u64 = 2 * BLOCK_BYTES as u64 + 64 * 1024;
/// The allocator's slack: arenas per thread, and the fragmentation of
/// 1 MiB blocks (and CAR sections, which copy them) freed and reused.
/// Measured on this machine: about 1.2 MiB per stalled file reader and
/// 1.7 MiB per stalled CAR reader in all, under `PER_CONNECTION` alone.
const SLACK: u64 = 64 * MIB;

/// Only one of these tests runs at a time: each measures a process of its
/// own, but 150 connections apiece on a 2-core machine are enough.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 64 MiB of pseudo-random bytes.
fn file_data() -> Vec<u8> {
    let mut state = 0x9E3779B97F4A7C15u64;
    (0..FILE_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The 64 MiB as a UnixFS file of 1 MiB raw leaves under 16-link inner
/// nodes (so reads go through two levels), written as a CAR; returns the
/// root and the bytes.
fn make_car(path: &Path) -> (String, Vec<u8>) {
    let data = file_data();
    let layout = FileLayout {
        chunk_size: BLOCK_BYTES,
        max_links: 16,
        ..FileLayout::MODERN
    };
    let mut blocks = Vec::new();
    let root = build_file(&data[..], layout, &mut |b| blocks.push(b)).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut car = CarWriter::new(file, &[root.cid]).unwrap();
    for block in &blocks {
        car.write_block(&block.cid, &block.data).unwrap();
    }
    car.finish().unwrap();
    (root.cid.to_string(), data)
}

/// Imports the CAR into a data directory (blocks are then read from disk,
/// the flatfs store) and serves it with the small budgets.
fn serve(car: &Path, data_dir: &Path, port: u16, metrics_port: u16) -> Running {
    let import = Command::new(SLUICE)
        .args(["import", "--data-dir", data_dir.to_str().unwrap()])
        .arg(car)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let child = Command::new(SLUICE)
        .args(["serve", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("SLUICE_P2P_LISTEN", "[]")
        .env("SLUICE_ROUTING_ENDPOINTS", "[]")
        .env("SLUICE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("SLUICE_STORE_CACHE_BYTES", (8 * MIB).to_string())
        // The readers here are closed by no timeout: what is measured is
        // the read-ahead bound, not `[server] write_timeout_secs`.
        .env("SLUICE_SERVER_WRITE_TIMEOUT_SECS", "3600")
        .env(
            "SLUICE_LIMITS_READ_AHEAD_BYTES_PER_RESPONSE",
            PER_RESPONSE.to_string(),
        )
        .env("SLUICE_LIMITS_READ_AHEAD_BYTES_TOTAL", TOTAL.to_string())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    listening(child)
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Waits until the RSS has not grown by more than 1 MiB for 5 s (or 120 s
/// have passed, or it is over `bound` already) and returns the highest
/// value seen.
async fn settled_rss(pid: u32, bound: u64) -> u64 {
    let started = Instant::now();
    let mut highest = rss_bytes(pid);
    let mut steady_since = Instant::now();
    while started.elapsed() < Duration::from_secs(120) && highest <= bound {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_bytes(pid);
        if now > highest + MIB {
            steady_since = Instant::now();
        }
        highest = highest.max(now);
        if steady_since.elapsed() >= Duration::from_secs(5) {
            break;
        }
    }
    highest
}

/// A connection that asks for `path` and never reads the answer, with a
/// small receive buffer so the kernel absorbs little of it.
async fn stalled_reader(port: u16, path: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// `sluice_read_ahead_bytes` from the control address's metrics.
async fn read_ahead_bytes(metrics_port: u16) -> u64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::get(format!(
        "http://127.0.0.1:{metrics_port}/debug/metrics/prometheus"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sluice_read_ahead_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sluice_read_ahead_bytes in:\n{text}"))
}

async fn full_body(port: u16, path: &str) -> Vec<u8> {
    // reqwest is built without a default TLS backend (sluice picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

/// Serves the file, takes a baseline after one complete download, opens the
/// stalled readers of `path`, and checks the bound and a reading client.
async fn stalled_readers_stay_bounded(path_of: impl Fn(&str) -> String, check: fn(&[u8], &[u8])) {
    stalled_readers_of(make_car, path_of, check).await
}

/// As [`stalled_readers_stay_bounded`], for the content `make` writes.
async fn stalled_readers_of(
    make: fn(&Path) -> (String, Vec<u8>),
    path_of: impl Fn(&str) -> String,
    check: fn(&[u8], &[u8]),
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("content.car");
    let (root, data) = make(&car);
    let (port, metrics_port) = (free_port(), free_port());
    let server = serve(&car, &dir.path().join("data"), port, metrics_port);
    let pid = server.0.id();
    let path = path_of(&root);

    check(&full_body(port, &path).await, &data);
    let baseline = settled_rss(pid, u64::MAX).await;
    let bound = baseline + TOTAL + STALLED as u64 * PER_CONNECTION + SLACK;

    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(stalled_reader(port, &path).await);
    }
    let with_stalled = settled_rss(pid, bound).await;
    eprintln!(
        "{path}: RSS {} MiB at baseline, {} MiB with {STALLED} stalled readers (bound {} MiB); read-ahead holds {} KiB",
        baseline / MIB,
        with_stalled / MIB,
        bound / MIB,
        read_ahead_bytes(metrics_port).await / 1024
    );
    assert!(
        with_stalled < bound,
        "{STALLED} stalled readers of {path} grew the process from {} MiB to {} MiB, over the bound of {} MiB",
        baseline / MIB,
        with_stalled / MIB,
        bound / MIB
    );

    let held = read_ahead_bytes(metrics_port).await;
    assert!(
        held <= TOTAL,
        "the read-ahead holds {held} bytes, over its total budget of {TOTAL}"
    );

    // A client that reads still gets everything, with every budget in use.
    check(&full_body(port, &path).await, &data);
    // Not asserted: a download beside the stalled connections grows RSS by
    // 60-120 MiB once, with the read-ahead off too (hyper and the
    // allocator, not blocks held ahead: the gauge says what is held).
    let after = settled_rss(pid, u64::MAX).await;
    eprintln!(
        "{path}: RSS {} MiB after a full download beside them",
        after / MIB
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_file_readers_stay_under_the_read_ahead_budget() {
    stalled_readers_stay_bounded(
        |root| format!("/ipfs/{root}"),
        |body, data| assert_eq!(sha256_hex(body), sha256_hex(data)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_car_readers_stay_under_the_read_ahead_budget() {
    stalled_readers_stay_bounded(
        |root| format!("/ipfs/{root}?format=car&dag-scope=all"),
        |body, data| {
            // The file's bytes are the raw leaves' bytes, in order.
            let (_, blocks) = common::parse_car(body);
            let leaves: Vec<u8> = blocks
                .iter()
                .filter(|(cid, _)| cid.codec() == 0x55)
                .flat_map(|(_, bytes)| bytes.iter().copied())
                .collect();
            assert_eq!(sha256_hex(&leaves), sha256_hex(data));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_tar_readers_stay_under_the_read_ahead_budget() {
    stalled_readers_stay_bounded(
        |root| format!("/ipfs/{root}?format=tar"),
        |body, data| {
            // One entry, named by the root, holding the file's bytes.
            let mut archive = tar::Archive::new(body);
            let mut entries = archive.entries().unwrap();
            let mut entry = entries.next().expect("one entry").unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            assert_eq!(sha256_hex(&bytes), sha256_hex(data));
            drop(entry);
            assert!(entries.next().is_none(), "only the file");
        },
    )
    .await;
}

/// The 64 MiB as a directory of 64 files of one 1 MiB raw block each, so a
/// TAR of it fetches the next entries ahead (within the same budget).
fn make_dir_car(path: &Path) -> (String, Vec<u8>) {
    use sluice::unixfs::builder::build_directory;
    let data = file_data();
    let mut blocks = Vec::new();
    let entries = data
        .chunks(BLOCK_BYTES)
        .enumerate()
        .map(|(i, chunk)| {
            let layout = FileLayout {
                chunk_size: BLOCK_BYTES,
                ..FileLayout::MODERN
            };
            let file = build_file(chunk, layout, &mut |b| blocks.push(b)).unwrap();
            (format!("part-{i:03}"), file)
        })
        .collect();
    let root = build_directory(entries, false, &mut |b| blocks.push(b));
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut car = CarWriter::new(file, &[root.cid]).unwrap();
    for block in &blocks {
        car.write_block(&block.cid, &block.data).unwrap();
    }
    car.finish().unwrap();
    (root.cid.to_string(), data)
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_tar_readers_of_a_directory_stay_under_the_read_ahead_budget() {
    stalled_readers_of(
        make_dir_car,
        |root| format!("/ipfs/{root}?format=tar"),
        |body, data| {
            // The directory, then its files in name order: the bytes again.
            let mut archive = tar::Archive::new(body);
            let mut files = Vec::new();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                std::io::Read::read_to_end(&mut entry, &mut files).unwrap();
            }
            assert_eq!(sha256_hex(&files), sha256_hex(data));
        },
    )
    .await;
}
