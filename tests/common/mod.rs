//! Shared by the integration tests: a real gateway on a loopback port,
//! the conformance fixtures, and CAR helpers.
#![allow(dead_code)]

pub mod binary;
pub mod bitswap_peer;
pub mod dht;
pub mod dns;
pub mod peers;
pub mod routing;

use std::path::{Path, PathBuf};

use cid::Cid;
use sluice::car::CarReader;
use sluice::config::Config;
use sluice::server::Server;

/// The gateway-conformance fixtures, from `../shared/conformance/fixtures`
/// beside the repository (or `$SLUICE_FIXTURES`). Absent on a lone clone:
/// the tests that need them say so and are skipped, except under CI, where
/// absence is a failure.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("SLUICE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/fixtures")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "conformance fixtures not found at {} (required under CI)",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: conformance fixtures not found at {}",
        dir.display()
    );
    None
}

/// Every fixture CAR under `dir`.
pub fn all_fixture_cars(dir: &Path) -> Vec<PathBuf> {
    all_fixture_files(dir, "car")
}

/// Every file under `dir` whose name ends in `.{extension}`.
pub fn all_fixture_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut cars = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                cars.push(path);
            }
        }
    }
    cars.sort();
    cars
}

/// A gateway serving `cars`, listening on an ephemeral loopback port for as
/// long as this value lives.
pub struct TestGateway {
    pub base: String,
    /// The control server (metrics, /debug/sessions, health).
    pub control: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestGateway {
    pub async fn start(cars: Vec<PathBuf>) -> TestGateway {
        Self::start_with(cars, |_| {}).await
    }

    pub async fn start_with(cars: Vec<PathBuf>, adjust: impl FnOnce(&mut Config)) -> TestGateway {
        // Warnings (and more with SLUICE_TEST_LOG=debug) show with a failing test's output.
        let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_TEST_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.store.data_dir = data_dir.path().to_path_buf();
        config.store.car_files = cars;
        // Dial-only libp2p (no fixed port to clash between parallel tests),
        // and loopback providers allowed, as test peers live there.
        config.p2p.listen = Vec::new();
        config.hints.allow_private = true;
        config.routing.endpoints = Vec::new();
        // No DHT unless a test builds one: nothing is found behind its back.
        config.dht.mode = sluice::p2p::DhtMode::Off;
        config.metrics.listen = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        let server = Server::bind(&config).await.expect("gateway starts");
        let base = format!("http://{}", server.local_addr());
        let control = format!("http://{}", server.control_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestGateway {
            base,
            control,
            client,
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts a gateway with every conformance fixture loaded, or `None`
    /// when the fixtures are absent (see [`fixtures`]).
    /// A gateway serving every fixture CAR, with every fixture IPNS
    /// record in its data directory's `ipns/` (as the conformance suite
    /// provisions a gateway: `routing put` of each record).
    pub async fn with_fixtures() -> Option<TestGateway> {
        Self::with_fixtures_and(|_| {}).await
    }

    /// [`TestGateway::with_fixtures`], with `adjust` applied to its config.
    pub async fn with_fixtures_and(
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Option<TestGateway> {
        let dir = fixtures()?;
        let records = all_fixture_files(&dir, "ipns-record");
        Some(
            Self::start_with(all_fixture_cars(&dir), move |c| {
                adjust(c);
                let into = c.store.data_dir.join("ipns");
                std::fs::create_dir_all(&into).unwrap();
                // Named by the name before any `_variant` suffix, as the
                // suite reads the key from the file name.
                for record in &records {
                    let stem = record.file_stem().unwrap().to_str().unwrap();
                    let name = stem.split('_').next().unwrap();
                    std::fs::copy(record, into.join(format!("{name}.ipns-record"))).unwrap();
                }
            })
            .await,
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The body of `GET url` (any URL: gateway or control address) as text.
    pub async fn text(&self, url: &str) -> String {
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// `GET path` with `hints` (one, or several comma-separated) as its
    /// `X-Ipfs-Provider` header.
    pub async fn get_hinted(&self, path: &str, hints: &str) -> reqwest::Response {
        self.get_with(path, &[("x-ipfs-provider", hints)]).await
    }

    /// The sum of a metric's samples on the control address whose line
    /// contains every one of `labels` (`name` is the sample name, e.g.
    /// `sluice_blocks_total`).
    pub async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self
            .text(&format!("{}/debug/metrics/prometheus", self.control))
            .await;
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn head_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.head(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }
}

impl TestGateway {
    /// Signals shutdown (as SIGTERM would) and waits for the server to stop.
    pub fn shut_down(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The single value of a response header (panics if repeated), or "".
pub fn header(response: &reqwest::Response, name: &str) -> String {
    let values: Vec<_> = response.headers().get_all(name).iter().collect();
    assert!(
        values.len() <= 1,
        "header {name} appears {} times",
        values.len()
    );
    values
        .first()
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Every line of a header.
pub fn header_lines(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Parses a CAR body: its roots and its blocks in order (each verified).
pub fn parse_car(bytes: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let mut reader = CarReader::new(bytes).expect("valid CAR header");
    let roots = reader.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some(section) = reader.next_section().expect("valid CAR section") {
        blocks.push((section.cid, section.data));
    }
    (roots, blocks)
}

/// The CIDs of a CAR body, in order.
pub fn car_cids(bytes: &[u8]) -> Vec<String> {
    parse_car(bytes)
        .1
        .into_iter()
        .map(|(cid, _)| cid.to_string())
        .collect()
}

/// The bytes of block `cid` in the CAR file at `path`.
pub fn block_from_car(path: &Path, cid: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let (_, blocks) = parse_car(&bytes);
    blocks
        .into_iter()
        .find(|(c, _)| c.to_string() == cid)
        .unwrap_or_else(|| panic!("{cid} not in {}", path.display()))
        .1
}

/// Asserts a `200` whose body is `expected` (compared by SHA-256, so a
/// mismatch prints two digests rather than two bodies).
pub async fn assert_body(response: reqwest::Response, expected: &[u8]) {
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha256_hex(expected));
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CID at `names` under the root of the fixture CAR at `car` (its
/// dag-pb links, read here, not by the gateway).
pub fn fixture_cid(car: &Path, names: &[&str]) -> Cid {
    let (roots, blocks) = parse_car(&std::fs::read(car).unwrap());
    let mut at = roots[0];
    for name in names {
        let block = &blocks.iter().find(|(c, _)| *c == at).unwrap().1;
        let node = ipld_dagpb::PbNode::from_bytes(block.clone().into()).unwrap();
        at = node
            .links
            .iter()
            .find(|l| l.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {}", car.display()))
            .cid;
    }
    at
}

/// Sends `GET path` exactly as written (clients such as reqwest normalise
/// `..` away) and returns the status and body.
pub async fn raw_get(gw: &TestGateway, path: &str) -> (u16, String) {
    let addr = gw.base.trim_start_matches("http://").to_string();
    let (status, text) = raw_request(
        gw,
        &format!("GET {path} HTTP/1.1"),
        &[&format!("Host: {addr}")],
    )
    .await;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sends `request_line` and `headers` exactly as written (absolute-form
/// targets, odd `Host` headers, none at all) and returns the status and
/// the whole response as text.
pub async fn raw_request(gw: &TestGateway, request_line: &str, headers: &[&str]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = gw.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{request_line}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// `size` pseudo-random bytes (xorshift, so no two chunks are alike) as a
/// UnixFS file of raw leaves of `chunk_size`: its root, the bytes, and every
/// block by CID, for test peers to serve.
pub fn generated_file(
    size: usize,
    seed: u8,
    chunk_size: usize,
) -> (Cid, Vec<u8>, std::collections::HashMap<Cid, bytes::Bytes>) {
    use sluice::unixfs::builder::{build_file, FileLayout};
    let mut state = 0x2545F4914F6CDD1Du64 ^ u64::from(seed);
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let layout = FileLayout {
        chunk_size,
        max_links: 64,
        ..FileLayout::MODERN
    };
    let mut blocks = std::collections::HashMap::new();
    let root = build_file(&data[..], layout, &mut |b| {
        blocks.insert(b.cid, b.data);
    })
    .unwrap();
    (root.cid, data, blocks)
}
