//! A real DNS server for the DNSLink tests: Debian's dnsmasq (installed by
//! `tests/install_debian.sh`) on a free loopback port, answering only the
//! `_dnslink.<domain>` TXT records it is given, and NXDOMAIN for any other
//! name under the domains' zones. Absent dnsmasq, the tests that need it say
//! SKIPPED, except under CI, where absence is a failure.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TTL dnsmasq gives its answers unless told otherwise.
pub const DEFAULT_TTL: u32 = 300;

/// A running dnsmasq, stopped when dropped.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: Child,
    /// dnsmasq's log (a file, so a full pipe never blocks it).
    log: tempfile::NamedTempFile,
}

/// Where dnsmasq is, or `None` (with a SKIPPED line) when it is absent
/// outside CI.
pub fn dnsmasq_binary() -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"] {
        let path = Path::new(dir).join("dnsmasq");
        if path.is_file() {
            return Some(path);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "dnsmasq not found (required under CI; tests/install_debian.sh installs dnsmasq-base)"
        );
    }
    eprintln!("SKIPPED: dnsmasq not found (tests/install_debian.sh installs dnsmasq-base)");
    None
}

impl Dnsmasq {
    /// Answers `_dnslink.<domain>` TXT with `txt` for each `(domain, txt)`
    /// (a domain may come more than once: several records), with TTL
    /// [`DEFAULT_TTL`].
    pub fn start(records: &[(String, String)]) -> Option<Dnsmasq> {
        Self::start_with(records, DEFAULT_TTL, None)
    }

    /// As [`Dnsmasq::start`], with answers of `ttl` seconds, on `port` if
    /// given (to replace a server that was stopped) or a free one.
    pub fn start_with(
        records: &[(String, String)],
        ttl: u32,
        port: Option<u16>,
    ) -> Option<Dnsmasq> {
        let binary = dnsmasq_binary()?;
        for attempt in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let mut command = Command::new(&binary);
            command.args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--log-facility=-",
                "--log-queries",
            ]);
            command.arg(format!("--port={port}"));
            command.arg(format!("--local-ttl={ttl}"));
            // dnsmasq caches nothing of its own here, but say so anyway.
            command.arg("--cache-size=0");
            let mut zones: Vec<String> = Vec::new();
            for (domain, txt) in records {
                // dnsmasq splits a TXT value into strings at commas (which
                // a client joins back without them) and takes quotes
                // literally: the fixtures have neither.
                assert!(
                    !txt.contains(',') && !txt.contains('"'),
                    "dnsmasq cannot serve {txt:?} as one string"
                );
                command.arg(format!("--txt-record=_dnslink.{domain},{txt}"));
                // NXDOMAIN, not REFUSED, for other names near the domain.
                let zone = zone_of(domain);
                if !zones.contains(&zone) {
                    command.arg(format!("--local=/{zone}/"));
                    zones.push(zone);
                }
            }
            let log = tempfile::NamedTempFile::new().unwrap();
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap());
            let mut child = command.spawn().expect("dnsmasq starts");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let err = std::fs::read_to_string(log.path()).unwrap_or_default();
                    // Someone took the port between the probe and the bind.
                    if attempt < 4 && err.contains("in use") {
                        break;
                    }
                    panic!("dnsmasq exited ({status}): {err}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Some(Dnsmasq { addr, child, log });
                }
                assert!(
                    Instant::now() < deadline,
                    "dnsmasq did not listen on {addr}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for dnsmasq after 5 attempts");
    }

    /// How many queries for `name` (e.g. `_dnslink.example.org`) it got.
    pub fn queries(&self, name: &str) -> usize {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("query[") && l.contains(&format!(" {name} from ")))
            .count()
    }

    /// `"127.0.0.1:<port>"`, for `[dns] nameservers`.
    pub fn nameserver(&self) -> String {
        self.addr.to_string()
    }
}

/// A gateway with every conformance fixture (IPNS records provisioned)
/// that asks `dns` for DNSLink records; `None` without the fixtures.
pub async fn gateway_asking(dns: &Dnsmasq) -> Option<super::TestGateway> {
    let nameserver = dns.nameserver();
    super::TestGateway::with_fixtures_and(move |c| {
        c.dns.nameservers = vec![nameserver];
        c.dns.timeout_ms = 3_000;
    })
    .await
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last two labels of `domain` (`example.org`), or all of a shorter one.
fn zone_of(domain: &str) -> String {
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

/// A port free for both UDP and TCP on loopback just now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Every DNSLink of the fixtures' `dnslink.yml` files as `(domain,
/// "dnslink=<path>")`, read by hand: each file is
/// `dnslinks: { <id>: { domain: …, path: … } }` with `#` comments.
pub fn fixture_dnslinks(fixtures: &Path) -> Vec<(String, String)> {
    let mut links = Vec::new();
    for file in super::all_fixture_files(fixtures, "yml") {
        if file.file_name().is_none_or(|n| n != "dnslink.yml") {
            continue;
        }
        links.extend(
            read_dnslink_yml(&std::fs::read_to_string(&file).unwrap())
                .into_iter()
                .map(|(_, domain, path)| (domain, format!("dnslink={path}"))),
        );
    }
    assert!(links.len() >= 8, "the fixtures have DNSLinks: {links:?}");
    links
}

/// `(id, domain, path)` of each entry of a `dnslink.yml`.
pub fn read_dnslink_yml(text: &str) -> Vec<(String, String, String)> {
    let mut entries = Vec::new();
    let mut id: Option<String> = None;
    let mut domain: Option<String> = None;
    let mut path: Option<String> = None;
    for line in text.lines() {
        let code = line.split(" #").next().unwrap_or("");
        if code.trim_start().starts_with('#') || code.trim().is_empty() {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        let (key, value) = code.trim().split_once(':').unwrap_or((code.trim(), ""));
        let value = value.trim().trim_matches(['"', '\'']).to_string();
        match (indent, key) {
            (0, _) => {}
            (2, _) => {
                if let (Some(i), Some(d), Some(p)) = (id.take(), domain.take(), path.take()) {
                    entries.push((i, d, p));
                }
                id = Some(key.to_string());
            }
            (_, "domain") => domain = Some(value),
            (_, "path") => path = Some(value),
            _ => {}
        }
    }
    if let (Some(i), Some(d), Some(p)) = (id, domain, path) {
        entries.push((i, d, p));
    }
    entries
}
