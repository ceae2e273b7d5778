//! Clients that hold connections: slowloris headers, idle keep-alive
//! connections (HTTP/1 and HTTP/2), more connections than allowed, and
//! more than the process has file descriptors for. Driven over raw
//! sockets against a real gateway (and the real binary); each closure is
//! checked against the configured time with a generous margin for a
//! loaded machine.

mod common;

use common::binary::free_port;

use std::time::{Duration, Instant};

use common::bitswap_peer::{Behaviour, TestPeer};
use common::TestGateway;
use multihash_codetable::{Code, MultihashDigest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Allowance on top of a configured timeout before a connection that is
/// still open counts as not closed: timers fire late, never early, on a
/// busy 2-core machine, but seconds late is plenty.
const MARGIN: Duration = Duration::from_secs(8);
/// Timers never fire early; this only absorbs clock granularity.
const EARLY: Duration = Duration::from_millis(200);

fn addr(gw: &TestGateway) -> String {
    gw.base.trim_start_matches("http://").to_string()
}

/// The value of `name` in the control server's metrics, summed over labels
/// that contain `labels`.
async fn metric(gw: &TestGateway, name: &str, labels: &str) -> f64 {
    let text = gw
        .text(&format!("{}/debug/metrics/prometheus", gw.control))
        .await;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Writes `bytes` one at a time, `every` apart, until the server closes
/// the connection; returns how long after starting to connect that was
/// (or `None` if it was still open after `give_up`). Timed from before
/// the connect, so never from later than the server's own clock starts.
async fn trickle(
    address: &str,
    bytes: &'static [u8],
    every: Duration,
    give_up: Duration,
) -> Option<Duration> {
    let connecting = Instant::now();
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = async {
        for byte in bytes.iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    };
    let reader = async {
        let mut buf = [0u8; 1024];
        // Closed: end of stream or a reset. Anything the server sends
        // first (a 408 or 400) is read and ignored.
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let closed = async {
        tokio::select! {
            () = reader => {}
            () = writer => {}
        }
    };
    tokio::time::timeout(give_up, closed)
        .await
        .ok()
        .map(|()| connecting.elapsed())
}

/// How long after `since` the server closes `stream` (reads nothing but
/// the end), or `None` if still open after `give_up`.
async fn until_closed(
    stream: &mut TcpStream,
    since: Instant,
    give_up: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let closed = async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(give_up, closed)
        .await
        .ok()
        .map(|()| since.elapsed())
}

/// One HTTP/1.1 response: status and body (Content-Length or chunked).
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    if let Some(length) = length {
        while body.len() < length {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-body");
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        return (status, body);
    }
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    while find(&body, b"0\r\n\r\n").is_none() {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, dechunk(&body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

async fn get(stream: &mut TcpStream, path: &str, extra: &str) -> (u16, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await
}

const SLOW_HTTP1: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SLOW_HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_while_a_normal_client_is_served() {
    const HEADER_TIMEOUT: u64 = 2;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.server.header_read_timeout_secs = HEADER_TIMEOUT;
        c.server.idle_timeout_secs = 60;
    })
    .await;
    let address = addr(&gw);
    let before = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"HeaderTimeout\"",
    )
    .await;
    let limit = Duration::from_secs(HEADER_TIMEOUT) + MARGIN;
    // 200 clients, each sending a byte every 1-2 s: an HTTP/1 header, or
    // (one in ten) the HTTP/2 preface; none ever completes.
    let slow: Vec<_> = (0..200u64)
        .map(|i| {
            let address = address.clone();
            let bytes = if i % 10 == 0 {
                SLOW_HTTP2_PREFACE
            } else {
                SLOW_HTTP1
            };
            let every = Duration::from_millis(1000 + (i % 5) * 250);
            tokio::spawn(async move { trickle(&address, bytes, every, limit * 2).await })
        })
        .collect();
    // Meanwhile a normal client is served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = gw.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let mut stream = TcpStream::connect(&address).await.unwrap();
    assert_eq!(get(&mut stream, "/healthz", "").await.0, 200);

    for (i, task) in slow.into_iter().enumerate() {
        let closed = task.await.unwrap();
        let Some(after) = closed else {
            panic!("slow client {i} was still connected after {:?}", limit * 2);
        };
        assert!(
            after <= limit,
            "slow client {i} was closed only after {after:?} (timeout {HEADER_TIMEOUT}s)"
        );
        assert!(
            after + EARLY >= Duration::from_secs(HEADER_TIMEOUT),
            "slow client {i} was closed before its time, after {after:?}"
        );
    }
    let after = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"HeaderTimeout\"",
    )
    .await;
    assert!(
        after - before >= 200.0,
        "header timeouts counted: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_but_not_one_with_a_response_in_flight() {
    const IDLE: u64 = 2;
    const SLOW_ANSWER: Duration = Duration::from_secs(5);
    let data = b"slow to arrive\n".to_vec();
    let leaf = cid::Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
    let blocks = [(leaf, bytes::Bytes::from(data.clone()))].into();
    let peer = TestPeer::start(blocks, Behaviour::Slow(SLOW_ANSWER)).await;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.server.idle_timeout_secs = IDLE;
        c.server.header_read_timeout_secs = 30;
        c.retrieval.block_timeout_secs = 30;
    })
    .await;
    let address = addr(&gw);
    let limit = Duration::from_secs(IDLE) + MARGIN;

    // A request whose answer takes longer than the idle timeout.
    let slow_address = address.clone();
    let hint = peer.hint();
    let in_flight = tokio::spawn(async move {
        let mut stream = TcpStream::connect(&slow_address).await.unwrap();
        let started = Instant::now();
        let response = get(
            &mut stream,
            &format!("/ipfs/{leaf}"),
            &format!("X-Ipfs-Provider: {hint}\r\n"),
        )
        .await;
        (response, started.elapsed(), stream)
    });

    // Connections that made one request and then say nothing.
    let idle: Vec<_> = (0..20)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(&address).await.unwrap();
                // Before the request: the server's idle time starts later.
                let sent = Instant::now();
                assert_eq!(get(&mut stream, "/healthz", "").await.0, 200);
                until_closed(&mut stream, sent, limit * 2).await
            })
        })
        .collect();
    for (i, task) in idle.into_iter().enumerate() {
        let after = task
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("idle connection {i} still open after {:?}", limit * 2));
        assert!(
            after <= limit,
            "idle connection {i} closed only after {after:?}"
        );
        assert!(
            after + EARLY >= Duration::from_secs(IDLE),
            "idle connection {i} closed early, after {after:?}"
        );
    }

    let ((status, body), took, mut stream) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, data);
    assert!(
        took >= Duration::from_secs(IDLE),
        "the answer was meant to take longer than the idle timeout; took {took:?}"
    );
    // Once answered, that connection is idle too, and closed in its turn.
    let after = until_closed(&mut stream, Instant::now(), limit * 2).await;
    assert!(after.is_some_and(|a| a <= limit), "{after:?}");

    // A later HTTP/1 header that trickles is cut off at the header timeout
    // (30 s here), not the idle one: the connection is alive at 2 x idle.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    assert_eq!(get(&mut stream, "/healthz", "").await.0, 200);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2 * IDLE), stream.read(&mut buf)).await;
    assert!(read.is_err(), "a header in progress is not idle: {read:?}");
    stream.write_all(b"Host: gateway\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    const IDLE: u64 = 2;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.server.idle_timeout_secs = IDLE;
    })
    .await;
    let stream = TcpStream::connect(addr(&gw)).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get("/healthz")
        .header("host", "gateway")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    // Before the request: the server's idle time starts later.
    let idle_from = Instant::now();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    drop(response);
    let limit = Duration::from_secs(IDLE) + MARGIN;
    tokio::time::timeout(limit, connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap()
        .ok();
    let after = idle_from.elapsed();
    assert!(
        after + EARLY >= Duration::from_secs(IDLE),
        "closed early, after {after:?}"
    );
    // The client kept its side open all along.
    drop(sender);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_client_waits_until_one_closes() {
    const MAX: usize = 4;
    let gw = TestGateway::start_with(Vec::new(), |c| {
        c.server.max_connections = MAX;
        c.server.header_read_timeout_secs = 60;
        c.server.idle_timeout_secs = 60;
    })
    .await;
    let address = addr(&gw);
    let mut held = Vec::new();
    for _ in 0..MAX {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        assert_eq!(get(&mut stream, "/healthz", "").await.0, 200);
        held.push(stream);
    }
    // The next one connects (the kernel's backlog) but is not served...
    let mut waiting = TcpStream::connect(&address).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(2), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served past max_connections: {early:?}");
    // ...until one of the others closes.
    drop(held.pop());
    let response = tokio::time::timeout(MARGIN, read_response(&mut waiting))
        .await
        .expect("served once a connection closed");
    assert_eq!(response.0, 200);
    // The ones held still work.
    assert_eq!(get(&mut held[0], "/healthz", "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    const WRITE_TIMEOUT: u64 = 2;
    // Far more than the socket buffers on both sides hold.
    const SIZE: usize = 24 << 20;
    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("big.car");
    let (root, _, blocks) = common::generated_file(SIZE, 7, 256 * 1024);
    let mut car =
        sluice::car::CarWriter::new(std::fs::File::create(&car_path).unwrap(), &[root]).unwrap();
    for (cid, data) in &blocks {
        car.write_block(cid, data).unwrap();
    }
    car.finish().unwrap();
    let gw = TestGateway::start_with(vec![car_path], |c| {
        c.server.write_timeout_secs = WRITE_TIMEOUT;
    })
    .await;
    let before = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"WriteTimeout\"",
    )
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr(&gw).parse().unwrap()).await.unwrap();
    stream
        .write_all(format!("GET /ipfs/{root} HTTP/1.1\r\nHost: gateway\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Read nothing for longer than the write timeout, then everything.
    tokio::time::sleep(Duration::from_secs(WRITE_TIMEOUT) + MARGIN).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(MARGIN, stream.read_to_end(&mut received)).await;
    let read = read.expect("the connection was closed, so reading it ends");
    assert!(
        read.is_err() || received.len() < SIZE,
        "the whole response arrived ({} bytes): the stalled connection was kept",
        received.len()
    );
    let after = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"WriteTimeout\"",
    )
    .await;
    assert!(
        after > before,
        "write timeouts counted: {before} -> {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_reading_is_cut_off_after_the_write_timeout() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    const WRITE_TIMEOUT: u64 = 2;
    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("file.car");
    let (root, _, blocks) = common::generated_file(1 << 20, 3, 64 * 1024);
    let mut car =
        sluice::car::CarWriter::new(std::fs::File::create(&car_path).unwrap(), &[root]).unwrap();
    for (cid, data) in &blocks {
        car.write_block(cid, data).unwrap();
    }
    car.finish().unwrap();
    let gw = TestGateway::start_with(vec![car_path], |c| {
        c.server.write_timeout_secs = WRITE_TIMEOUT;
    })
    .await;
    let before = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"WriteTimeout\"",
    )
    .await;
    let stream = TcpStream::connect(addr(&gw)).await.unwrap();
    // A 16 KiB window the client never reopens: the server's stream stops
    // on flow control, with nothing blocked on the socket.
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("/ipfs/{root}"))
        .header("host", "gateway")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let started = Instant::now();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    // Hold the response, read nothing.
    let limit = Duration::from_secs(WRITE_TIMEOUT) + MARGIN;
    tokio::time::timeout(limit, connection)
        .await
        .expect("the server closes a connection whose client does not read")
        .unwrap()
        .ok();
    assert!(started.elapsed() + EARLY >= Duration::from_secs(WRITE_TIMEOUT));
    let after = metric(
        &gw,
        "sluice_http_connections_closed_total",
        "reason=\"WriteTimeout\"",
    )
    .await;
    assert!(
        after > before,
        "write timeouts counted: {before} -> {after}"
    );
    drop((sender, response));
}

/// The real binary under a low open-file limit, with more clients than it
/// has descriptors: accepting fails, and the server must wait (not spin)
/// and serve again once descriptors are free.
#[test]
fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};

    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let port = free_port();
    let control_port = free_port();
    let data_dir = tempfile::tempdir().unwrap();
    // About a dozen descriptors are taken at start; this leaves some for
    // clients, and far fewer than the clients below.
    const NOFILE: u32 = 48;
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("SLUICE_P2P_LISTEN", "[]")
        .env("SLUICE_ROUTING_ENDPOINTS", "[]")
        .env("SLUICE_METRICS_LISTEN", format!("127.0.0.1:{control_port}"))
        // Clients that never send a request keep their descriptors.
        .env("SLUICE_SERVER_HEADER_READ_TIMEOUT_SECS", "120")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let child = Kill(child);
    loop {
        let line = lines
            .next()
            .expect("sluice exited before listening")
            .unwrap();
        let listening = line.contains("gateway listening");
        log.lock().unwrap().push(line);
        if listening {
            break;
        }
    }
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("open-file limit in force")
                && l.contains(&format!("limit={NOFILE}"))),
        "the limit in force is logged"
    );

    // Three times as many clients as descriptors, all silent.
    let clients: Vec<std::net::TcpStream> = (0..NOFILE * 3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(pid) - cpu_before;
    assert!(
        cpu < 0.5,
        "the server used {cpu:.2} CPU seconds in 3 s while out of descriptors: it spins"
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("cannot accept a connection")),
        "accept errors are logged: {:?}",
        log.lock().unwrap()
    );

    // Once the clients go, it serves again (retrying while it catches up).
    drop(clients);
    let deadline = Instant::now() + MARGIN * 2;
    let status = loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })();
        match attempt {
            Ok(text) if text.starts_with("HTTP/1.1 200") => break 200,
            _ if Instant::now() > deadline => panic!("not serving again: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(status, 200);
    let metrics = http_get_text(control_port, "/debug/metrics/prometheus");
    let errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sluice_http_accept_errors_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(errors > 0.0, "accept errors are counted");
    drop(child);
}

fn http_get_text(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// User plus system CPU time of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses); utime and
    // stime are fields 14 and 15 of the whole line.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}
