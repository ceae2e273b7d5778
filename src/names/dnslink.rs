//! DNSLink names (the DNSLink spec): `/ipns/<domain>` points where the
//! domain's `_dnslink.<domain>` TXT records say, `dnslink=/ipfs/<cid>[/path]`
//! or `dnslink=/ipns/<name>[/path]`. This module owns `[dns]`.
//!
//! The pure part, without I/O:
//!
//! - a domain ([`parse_domain`]) is ASCII letters, digits, `-` and `_`, in
//!   labels of 1 to [`MAX_LABEL_BYTES`] bytes that neither start nor end
//!   with `-`, at most [`MAX_DOMAIN_BYTES`] bytes in all (one trailing dot
//!   allowed); it is compared in lower case;
//! - a TXT answer ([`read_answer`]) is at most [`MAX_TXT_RECORDS`] records;
//!   records that do not start with `dnslink=` and links into other
//!   namespaces (`dnslink=/foo/…`) are ignored; exactly one distinct
//!   `/ipfs/` or `/ipns/` path must remain, as in boxo (two different ones
//!   are an error: which one a client sees would depend on the order the
//!   server happened to send them in); a `dnslink=/ipfs/…` or `/ipns/…`
//!   value that is not a valid path (or longer than [`MAX_TXT_BYTES`]) is
//!   an error when no valid one is there.
//!
//! The I/O part: [`DnsLinkResolver`] asks hickory's resolver: the DNS-over-
//! HTTPS resolver of the longest `[dns] doh` suffix the domain ends in, or
//! else `[dns] nameservers` (UDP, then TCP when the answer is truncated or
//! UDP fails) or, when that list is empty, the system's `resolv.conf`.
//! Every lookup is bounded by `timeout_ms`. A DNSLink is cached for the
//! answer's TTL, at most `max_ttl_secs`; "no such domain" and "no DNSLink
//! here" for the zone's negative TTL, at most `negative_ttl_secs`; a
//! malformed answer or a failed lookup never. At most `max_cached_domains`
//! domains are kept. Requests for a domain whose lookup is under way share
//! it (hickory sends one query for identical queries in flight).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name as DnsName, RData};
use hickory_resolver::{ResolverBuilder, TokioResolver};
use serde::{Deserialize, Serialize};

use super::{parse_target, Target};

/// Longest domain name, in bytes, without the trailing dot (RFC 1035).
pub const MAX_DOMAIN_BYTES: usize = 253;
/// Longest label (RFC 1035).
pub const MAX_LABEL_BYTES: usize = 63;
/// Most TXT records read from one answer.
pub const MAX_TXT_RECORDS: usize = 32;
/// Longest TXT record read (its strings joined); longer ones that claim to
/// be a DNSLink are refused, others ignored.
pub const MAX_TXT_BYTES: usize = 2048;

const PREFIX: &str = "dnslink=";

/// `[dns]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `"ip:port"` (or a bare IP, port 53) of the DNS servers asked; empty:
    /// the system's `resolv.conf`.
    pub nameservers: Vec<String>,
    /// DNS-over-HTTPS resolvers by domain suffix (`"eth." = "https://…"`);
    /// `"."` for every domain.
    pub doh: BTreeMap<String, String>,
    /// Milliseconds one lookup may take.
    pub timeout_ms: u64,
    /// Longest a DNSLink is cached (and served with `max-age`), whatever its TTL.
    pub max_ttl_secs: u64,
    /// Longest "no such domain" or "no DNSLink" is cached.
    pub negative_ttl_secs: u64,
    /// Domains cached at most.
    pub max_cached_domains: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            doh: BTreeMap::new(),
            timeout_ms: 5_000,
            max_ttl_secs: 3_600,
            negative_ttl_secs: 60,
            max_cached_domains: 10_000,
        }
    }
}

/// A checked domain name: lower case, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes, over the {MAX_DOMAIN_BYTES}-byte limit")]
    TooLong(usize),
    #[error("it has an empty label")]
    EmptyLabel,
    #[error("its label {label:?} is {len} bytes, over the {MAX_LABEL_BYTES}-byte limit")]
    LabelTooLong { label: String, len: usize },
    #[error("its label {0:?} starts or ends with '-'")]
    Hyphen(String),
    #[error("it holds {0:?}; only ASCII letters, digits, '-' and '_' are allowed")]
    Character(char),
}

/// Checks `text` as a domain name.
pub fn parse_domain(text: &str) -> Result<Domain, DomainError> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::Character(c));
    }
    if name.len() > MAX_DOMAIN_BYTES {
        return Err(DomainError::TooLong(name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(DomainError::LabelTooLong {
                label: label.chars().take(MAX_LABEL_BYTES + 1).collect(),
                len: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen(label.to_string()));
        }
    }
    Ok(Domain(name.to_ascii_lowercase()))
}

/// Why a domain has no usable DNSLink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsLinkError {
    #[error("{name:?} is not a valid DNSLink domain name: {reason}")]
    BadDomain { name: String, reason: DomainError },
    #[error("{domain} has no DNSLink: _dnslink.{domain} does not exist (NXDOMAIN)")]
    NoDomain { domain: String },
    #[error("{domain} has no DNSLink: no TXT record at _dnslink.{domain} is dnslink=/ipfs/… or dnslink=/ipns/…")]
    NoLink { domain: String },
    #[error("the DNSLink TXT record of {domain}, {record:?}, is not a valid /ipfs/<cid> or /ipns/<name> path: {reason}")]
    BadLink {
        domain: String,
        record: String,
        reason: String,
    },
    #[error("{domain} has {count} different DNSLink paths ({first} and {second}, …): its owner must keep one")]
    Ambiguous {
        domain: String,
        count: usize,
        first: String,
        second: String,
    },
    #[error("_dnslink.{domain} has {count} TXT records, more than the {MAX_TXT_RECORDS} read")]
    TooManyRecords { domain: String, count: usize },
    #[error("the DNS lookup of _dnslink.{domain} failed: {reason}")]
    Lookup { domain: String, reason: String },
    #[error("the DNS lookup of _dnslink.{domain} took longer than {ms} ms ([dns] timeout_ms)")]
    Timeout { domain: String, ms: u64 },
}

/// Where a domain's DNSLink points, and for how long that may be cached.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsLink {
    pub target: Target,
    pub ttl: Duration,
}

/// The DNSLink in the TXT records of `_dnslink.<domain>` (each record's
/// strings joined, as received).
pub fn read_answer(domain: &Domain, records: &[Vec<u8>]) -> Result<Target, DnsLinkError> {
    if records.len() > MAX_TXT_RECORDS {
        return Err(DnsLinkError::TooManyRecords {
            domain: domain.to_string(),
            count: records.len(),
        });
    }
    let mut links: Vec<(String, Target)> = Vec::new();
    let mut first_bad: Option<(String, String)> = None;
    for record in records {
        let Some(value) = record.strip_prefix(PREFIX.as_bytes()) else {
            continue;
        };
        let shown = || {
            let text = String::from_utf8_lossy(record);
            text.chars().take(200).collect::<String>()
        };
        let refused = if record.len() > MAX_TXT_BYTES {
            Some(format!(
                "it is {} bytes, over the {MAX_TXT_BYTES}-byte limit",
                record.len()
            ))
        } else {
            match std::str::from_utf8(value) {
                Err(_) => Some("it is not UTF-8".to_string()),
                // Links into other namespaces are for other systems.
                Ok(v) if v.starts_with('/') && !is_ipfs_or_ipns(v) => continue,
                Ok(v) => match parse_target(v) {
                    Ok(target) => {
                        if !links.iter().any(|(seen, _)| seen == v) {
                            links.push((v.to_string(), target));
                        }
                        None
                    }
                    Err(reason) => Some(reason),
                },
            }
        };
        if let Some(reason) = refused {
            first_bad.get_or_insert((shown(), reason));
        }
    }
    match links.len() {
        1 => Ok(links.remove(0).1),
        0 => Err(match first_bad {
            Some((record, reason)) => DnsLinkError::BadLink {
                domain: domain.to_string(),
                record,
                reason,
            },
            None => DnsLinkError::NoLink {
                domain: domain.to_string(),
            },
        }),
        count => Err(DnsLinkError::Ambiguous {
            domain: domain.to_string(),
            count,
            first: links[0].0.clone(),
            second: links[1].0.clone(),
        }),
    }
}

fn is_ipfs_or_ipns(value: &str) -> bool {
    let namespace = value[1..].split('/').next().unwrap_or("");
    namespace == "ipfs" || namespace == "ipns"
}

/// What a DNS server said about `_dnslink.<domain>` TXT.
#[derive(Debug, Clone, PartialEq)]
pub enum TxtAnswer {
    Records {
        records: Vec<Vec<u8>>,
        ttl: Duration,
    },
    /// NXDOMAIN, with the zone's negative TTL when it sent its SOA.
    NoDomain { negative_ttl: Option<Duration> },
    /// The name exists but has no TXT records.
    NoRecords { negative_ttl: Option<Duration> },
}

/// What `answer` means for `domain`, and how long that may be cached
/// (`None`: not at all).
pub fn outcome(
    domain: &Domain,
    answer: TxtAnswer,
    config: &DnsConfig,
) -> (Result<DnsLink, DnsLinkError>, Option<Duration>) {
    let max_ttl = Duration::from_secs(config.max_ttl_secs);
    let negative = |zone: Option<Duration>| {
        let cap = Duration::from_secs(config.negative_ttl_secs);
        Some(zone.map_or(cap, |z| z.min(cap))).filter(|d| !d.is_zero())
    };
    match answer {
        TxtAnswer::Records { records, ttl } => match read_answer(domain, &records) {
            Ok(target) => {
                let ttl = ttl.min(max_ttl);
                (
                    Ok(DnsLink { target, ttl }),
                    Some(ttl).filter(|d| !d.is_zero()),
                )
            }
            Err(e @ DnsLinkError::NoLink { .. }) => (Err(e), negative(Some(ttl))),
            // Malformed: never kept, so a fix is seen at once.
            Err(e) => (Err(e), None),
        },
        TxtAnswer::NoDomain { negative_ttl } => (
            Err(DnsLinkError::NoDomain {
                domain: domain.to_string(),
            }),
            negative(negative_ttl),
        ),
        TxtAnswer::NoRecords { negative_ttl } => (
            Err(DnsLinkError::NoLink {
                domain: domain.to_string(),
            }),
            negative(negative_ttl),
        ),
    }
}

/// A `[dns]` setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DnsConfigError {
    #[error("[dns] nameservers: {0:?} is not \"ip:port\" or an IP address")]
    Nameserver(String),
    #[error("[dns] doh: {suffix:?} = {url:?}: {reason}")]
    Doh {
        suffix: String,
        url: String,
        reason: String,
    },
    #[error("[dns]: cannot build a DNS resolver: {0}")]
    Build(String),
}

/// A DNS-over-HTTPS resolver, built on first use (its host name, if it is
/// not an IP address, is resolved through the plain resolver then).
struct Doh {
    suffix: String,
    url: String,
    host: String,
    port: u16,
    path: String,
    resolver: tokio::sync::OnceCell<TokioResolver>,
}

/// Resolves DNSLink names, with a cache.
pub struct DnsLinkResolver {
    config: DnsConfig,
    /// `Err`: why the system's resolver could not be built.
    plain: Result<TokioResolver, String>,
    /// Which servers `plain` asks, for error messages.
    plain_servers: String,
    /// Longest suffix first.
    doh: Vec<Doh>,
    cache: moka::sync::Cache<Domain, (Instant, Result<DnsLink, DnsLinkError>)>,
}

impl DnsLinkResolver {
    /// A resolver for `config`. An unusable setting is an error; a missing
    /// `resolv.conf` is not (it is reported when a lookup needs it).
    pub fn new(config: &DnsConfig) -> Result<DnsLinkResolver, DnsConfigError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let plain_servers = if config.nameservers.is_empty() {
            "the system's resolv.conf servers".to_string()
        } else {
            format!("[dns] nameservers {}", config.nameservers.join(", "))
        };
        let plain = if config.nameservers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => Ok(finish(builder, config)?),
                Err(e) => {
                    tracing::warn!(error = %e, "no system DNS configuration: DNSLink names need [dns] nameservers");
                    Err(format!("no DNS servers ([dns] nameservers is empty and the system's resolv.conf cannot be read: {e})"))
                }
            }
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|s| parse_nameserver(s).ok_or_else(|| DnsConfigError::Nameserver(s.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            let servers = servers
                .into_iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let builder = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            Ok(finish(builder, config)?)
        };
        let mut doh = Vec::new();
        for (suffix, url) in &config.doh {
            doh.push(parse_doh(suffix, url)?);
        }
        doh.sort_by_key(|d| std::cmp::Reverse(d.suffix.len()));
        let keep = Duration::from_secs(config.max_ttl_secs.max(config.negative_ttl_secs).max(1));
        Ok(DnsLinkResolver {
            config: config.clone(),
            plain,
            plain_servers,
            doh,
            cache: moka::sync::Cache::builder()
                .max_capacity(config.max_cached_domains.max(1))
                .time_to_live(keep)
                .build(),
        })
    }

    /// The DNSLink of `domain`: cached, or looked up.
    pub async fn resolve(&self, domain: &Domain) -> Result<DnsLink, DnsLinkError> {
        if let Some((until, outcome)) = self.cache.get(domain) {
            let now = Instant::now();
            if until > now {
                return outcome.map(|link| DnsLink {
                    ttl: until - now,
                    ..link
                });
            }
            self.cache.invalidate(domain);
        }
        let ms = self.config.timeout_ms.max(1);
        let lookup = tokio::time::timeout(Duration::from_millis(ms), self.lookup(domain));
        let answer = match lookup.await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(DnsLinkError::Timeout {
                    domain: domain.to_string(),
                    ms,
                })
            }
        };
        let (result, keep) = outcome(domain, answer, &self.config);
        match &result {
            Ok(link) => tracing::debug!(%domain, target = ?link.target, ttl = ?link.ttl, "DNSLink"),
            Err(e) => tracing::debug!(%domain, error = %e, "no DNSLink"),
        }
        if let Some(keep) = keep {
            self.cache
                .insert(domain.clone(), (Instant::now() + keep, result.clone()));
        }
        result
    }

    /// Asks the resolver for `domain` for `_dnslink.<domain>` TXT.
    async fn lookup(&self, domain: &Domain) -> Result<TxtAnswer, DnsLinkError> {
        let doh = self.doh.iter().find(|d| has_suffix(domain, &d.suffix));
        let asked = match doh {
            Some(doh) => format!("asked the DNS-over-HTTPS resolver {} of [dns] doh", doh.url),
            None => format!("asked {}", self.plain_servers),
        };
        let failed = |reason: String| DnsLinkError::Lookup {
            domain: domain.to_string(),
            reason: format!("{reason} ({asked})"),
        };
        let resolver = match doh {
            Some(doh) => doh
                .resolver
                .get_or_try_init(|| self.build_doh(doh))
                .await
                .map_err(failed)?,
            None => self.plain.as_ref().map_err(|e| failed(e.clone()))?,
        };
        let name = DnsName::from_ascii(format!("_dnslink.{domain}."))
            .map_err(|e| failed(format!("not a DNS name: {e}")))?;
        match resolver.txt_lookup(name).await {
            Ok(lookup) => {
                let mut ttl = u32::MAX;
                let mut records = Vec::new();
                for record in lookup.answers() {
                    ttl = ttl.min(record.ttl);
                    if let RData::TXT(txt) = &record.data {
                        // Joined up to one byte past the limit, which is
                        // enough to refuse it.
                        let mut joined = Vec::new();
                        for part in txt.txt_data.iter() {
                            let room = (MAX_TXT_BYTES + 1).saturating_sub(joined.len());
                            joined.extend_from_slice(&part[..part.len().min(room)]);
                        }
                        records.push(joined);
                    }
                }
                if records.is_empty() {
                    return Ok(TxtAnswer::NoRecords { negative_ttl: None });
                }
                Ok(TxtAnswer::Records {
                    records,
                    ttl: Duration::from_secs(u64::from(ttl)),
                })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => {
                let negative_ttl = none.negative_ttl.map(|s| Duration::from_secs(u64::from(s)));
                if none.response_code == ResponseCode::NXDomain {
                    Ok(TxtAnswer::NoDomain { negative_ttl })
                } else {
                    Ok(TxtAnswer::NoRecords { negative_ttl })
                }
            }
            Err(NetError::Timeout) => Err(DnsLinkError::Timeout {
                domain: domain.to_string(),
                ms: self.config.timeout_ms,
            }),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    async fn build_doh(&self, doh: &Doh) -> Result<TokioResolver, String> {
        let ip = match doh.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let plain = self.plain.as_ref().map_err(Clone::clone)?;
                let found = plain
                    .lookup_ip(format!("{}.", doh.host))
                    .await
                    .map_err(|e| {
                        format!("cannot resolve the DNS-over-HTTPS host {}: {e}", doh.host)
                    })?;
                found
                    .iter()
                    .next()
                    .ok_or_else(|| format!("the DNS-over-HTTPS host {} has no address", doh.host))?
            }
        };
        let mut https = ConnectionConfig::new(ProtocolConfig::Https {
            server_name: Arc::from(doh.host.trim_matches(['[', ']'])),
            path: Arc::from(doh.path.as_str()),
        });
        https.port = doh.port;
        let builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![NameServerConfig::new(ip, true, vec![https])]),
            TokioRuntimeProvider::default(),
        );
        finish(builder, &self.config).map_err(|e| e.to_string())
    }
}

/// The options every resolver here shares, and the resolver.
fn finish(
    mut builder: ResolverBuilder<TokioRuntimeProvider>,
    config: &DnsConfig,
) -> Result<TokioResolver, DnsConfigError> {
    let options = builder.options_mut();
    options.timeout = Duration::from_millis(config.timeout_ms.max(1));
    options.attempts = 1;
    // The cache here keeps the TTL accounting in one place.
    options.cache_size = 0;
    options.try_tcp_on_error = true;
    options.use_hosts_file = ResolveHosts::Never;
    options.edns0 = true;
    builder
        .build()
        .map_err(|e| DnsConfigError::Build(e.to_string()))
}

/// `ip:port`, `[ipv6]:port` or a bare IP (port 53).
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// `suffix` in lower case with one trailing dot (`"."`: every domain).
fn normal_suffix(suffix: &str) -> String {
    let trimmed = suffix.trim_matches('.').to_ascii_lowercase();
    if trimmed.is_empty() {
        ".".to_string()
    } else {
        format!("{trimmed}.")
    }
}

fn has_suffix(domain: &Domain, suffix: &str) -> bool {
    if suffix == "." {
        return true;
    }
    let full = format!("{domain}.");
    full == suffix || full.ends_with(&format!(".{suffix}"))
}

fn parse_doh(suffix: &str, text: &str) -> Result<Doh, DnsConfigError> {
    let bad = |reason: &str| DnsConfigError::Doh {
        suffix: suffix.to_string(),
        url: text.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(bad("a DNS-over-HTTPS URL starts with https://"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("the URL has no host"))?
        .to_string();
    let suffix = normal_suffix(suffix);
    if suffix != "." {
        parse_domain(&suffix).map_err(|e| bad(&format!("the suffix is not a domain: {e}")))?;
    }
    Ok(Doh {
        suffix,
        url: text.to_string(),
        host,
        port: url.port().unwrap_or(443),
        path: url.path().to_string(),
        resolver: tokio::sync::OnceCell::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Domain {
        parse_domain(text).unwrap()
    }

    fn txt(records: &[&str]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    const CID: &str = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am";
    const KEY: &str = "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam";

    #[test]
    fn domain_names_are_checked_label_by_label() {
        assert_eq!(domain("Example.ORG.").as_str(), "example.org");
        assert_eq!(
            domain("_dnslink.a-b.example").as_str(),
            "_dnslink.a-b.example"
        );
        let long = "a".repeat(64);
        assert!(matches!(
            parse_domain(&format!("{long}.example.org")),
            Err(DomainError::LabelTooLong { len: 64, .. })
        ));
        assert!(parse_domain(&format!("{}.example.org", "a".repeat(63))).is_ok());
        let many = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            parse_domain(&many),
            Err(DomainError::TooLong(259))
        ));
        assert_eq!(parse_domain(""), Err(DomainError::Empty));
        assert_eq!(parse_domain("."), Err(DomainError::Empty));
        assert_eq!(parse_domain("a..org"), Err(DomainError::EmptyLabel));
        assert_eq!(
            parse_domain("-a.org"),
            Err(DomainError::Hyphen("-a".into()))
        );
        assert_eq!(parse_domain("a b.org"), Err(DomainError::Character(' ')));
        assert_eq!(
            parse_domain("exämple.org"),
            Err(DomainError::Character('ä'))
        );
        assert_eq!(parse_domain("a/b.org"), Err(DomainError::Character('/')));
    }

    #[test]
    fn one_ipfs_or_ipns_path_is_the_link() {
        let d = domain("example.org");
        let target = read_answer(&d, &txt(&[&format!("dnslink=/ipfs/{CID}/a/b")])).unwrap();
        assert!(
            matches!(&target, Target::Ipfs { root, inner } if root.to_string() == CID && inner == &["a", "b"])
        );
        let target = read_answer(&d, &txt(&[&format!("dnslink=/ipns/{KEY}")])).unwrap();
        assert!(matches!(target, Target::Ipns { .. }));
        let target = read_answer(&d, &txt(&["dnslink=/ipns/other.example.net/x"])).unwrap();
        assert!(
            matches!(&target, Target::Ipns { name: crate::names::Name::Domain(n), inner } if n.as_str() == "other.example.net" && inner == &["x"])
        );
    }

    #[test]
    fn other_records_and_namespaces_are_ignored_and_duplicates_are_one() {
        let d = domain("example.org");
        let link = format!("dnslink=/ipfs/{CID}");
        let records = txt(&[
            "v=spf1 -all",
            "dnslink=/foo/bar",
            &link,
            &link,
            "broken dnslink=/ipns/example.invalid",
        ]);
        assert!(matches!(read_answer(&d, &records), Ok(Target::Ipfs { .. })));
        // A bad one next to a good one: the good one is used.
        let records = txt(&["dnslink=/ipfs/notacid", &link]);
        assert!(read_answer(&d, &records).is_ok());
    }

    #[test]
    fn two_different_paths_are_an_error() {
        let d = domain("example.org");
        let records = txt(&[
            &format!("dnslink=/ipfs/{CID}"),
            &format!("dnslink=/ipns/{KEY}"),
        ]);
        let err = read_answer(&d, &records).unwrap_err();
        assert!(
            matches!(err, DnsLinkError::Ambiguous { count: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_value_that_is_not_a_path_is_named() {
        let d = domain("example.org");
        for (record, says) in [
            ("dnslink=/ipfs/notacid", "CID"),
            ("dnslink=", "/ipfs/"),
            ("dnslink=ipfs/x", "/ipfs/"),
            ("dnslink=/ipns/", "name"),
            ("dnslink=/ipns/not a name", "name"),
            ("dnslink=/ipfs/", "CID"),
        ] {
            let err = read_answer(&d, &txt(&[record])).unwrap_err();
            match &err {
                DnsLinkError::BadLink {
                    record: r, reason, ..
                } => {
                    assert_eq!(r, record);
                    assert!(reason.contains(says), "{record}: {reason}");
                }
                other => panic!("{record}: {other}"),
            }
        }
        let huge = format!("dnslink=/ipfs/{CID}/{}", "a".repeat(MAX_TXT_BYTES));
        assert!(matches!(
            read_answer(&d, &txt(&[&huge])),
            Err(DnsLinkError::BadLink { reason, .. }) if reason.contains("limit")
        ));
        assert!(matches!(
            read_answer(&d, &[b"dnslink=/ipfs/\xff".to_vec()]),
            Err(DnsLinkError::BadLink { reason, .. }) if reason.contains("UTF-8")
        ));
    }

    #[test]
    fn no_dnslink_and_too_many_records() {
        let d = domain("example.org");
        assert!(matches!(
            read_answer(&d, &txt(&["hello", "dnslink=/foo/bar"])),
            Err(DnsLinkError::NoLink { .. })
        ));
        let many: Vec<String> = (0..=MAX_TXT_RECORDS).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            read_answer(&d, &txt(&many)),
            Err(DnsLinkError::TooManyRecords { count: 33, .. })
        ));
    }

    #[test]
    fn links_are_cached_for_their_ttl_and_malformed_answers_not_at_all() {
        let d = domain("example.org");
        let config = DnsConfig::default();
        let answer = |records: &[&str], secs| TxtAnswer::Records {
            records: txt(records),
            ttl: Duration::from_secs(secs),
        };
        let good = format!("dnslink=/ipfs/{CID}");
        let (link, keep) = outcome(&d, answer(&[&good], 300), &config);
        assert_eq!(link.unwrap().ttl, Duration::from_secs(300));
        assert_eq!(keep, Some(Duration::from_secs(300)));
        // Capped.
        let (link, keep) = outcome(&d, answer(&[&good], 86_400), &config);
        assert_eq!(link.unwrap().ttl, Duration::from_secs(3_600));
        assert_eq!(keep, Some(Duration::from_secs(3_600)));
        // TTL 0: served, not kept.
        assert_eq!(outcome(&d, answer(&[&good], 0), &config).1, None);
        for bad in [
            answer(&["dnslink=/ipfs/notacid"], 300),
            answer(&[&good, &format!("dnslink=/ipns/{KEY}")], 300),
        ] {
            let (result, keep) = outcome(&d, bad, &config);
            assert!(result.is_err());
            assert_eq!(keep, None);
        }
        // Negative answers: the zone's negative TTL, capped.
        let nx = |secs: Option<u64>| TxtAnswer::NoDomain {
            negative_ttl: secs.map(Duration::from_secs),
        };
        assert_eq!(
            outcome(&d, nx(Some(5)), &config).1,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            outcome(&d, nx(Some(900)), &config).1,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            outcome(&d, nx(None), &config).1,
            Some(Duration::from_secs(60))
        );
        assert!(matches!(
            outcome(&d, nx(None), &config).0,
            Err(DnsLinkError::NoDomain { .. })
        ));
        let none = TxtAnswer::NoRecords { negative_ttl: None };
        assert!(matches!(
            outcome(&d, none, &config).0,
            Err(DnsLinkError::NoLink { .. })
        ));
    }

    #[test]
    fn the_longest_suffix_picks_the_doh_resolver() {
        assert!(has_suffix(&domain("a.eth"), &normal_suffix("eth.")));
        assert!(has_suffix(&domain("eth"), &normal_suffix("eth")));
        assert!(!has_suffix(&domain("ageth"), &normal_suffix("eth")));
        assert!(has_suffix(&domain("x.org"), &normal_suffix(".")));
        assert!(parse_doh("eth.", "http://x/dns-query").is_err());
        assert!(parse_doh("bad suffix", "https://x/dns-query").is_err());
        let doh = parse_doh("ETH", "https://dns.example:8443/q").unwrap();
        assert_eq!(
            (
                doh.suffix.as_str(),
                doh.host.as_str(),
                doh.port,
                doh.path.as_str()
            ),
            ("eth.", "dns.example", 8443, "/q")
        );
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_nameserver("dns.example:53"), None);
    }
}
