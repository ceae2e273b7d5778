//! Names: IPNS names and DNSLink domains resolved to the `/ipfs/` path
//! they point at.
//!
//! Records come from every [`RecordSource`] at once (the DHT's GET_VALUE,
//! each delegated router's `/routing/v1/ipns/{name}`, and record files in
//! the data directory's `ipns/`); each is verified
//! ([`ipns::verify`]) before it is used and the valid one with the highest
//! sequence wins. A name is cached for its record's TTL, never past the
//! record's validity. A name with a dot in it is a DNSLink domain, looked
//! up in DNS ([`dnslink`]). A record or DNSLink pointing at another name is
//! followed, at most `[names] max_recursion` times, and a name met twice on
//! the way is a loop. This module owns `[names]`; [`dnslink`] owns `[dns]`.

pub mod dnslink;
pub mod ipns;
mod sources;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cid::Cid;
use libp2p::PeerId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use dnslink::{DnsConfig, DnsLinkError, DnsLinkResolver, Domain};
pub use ipns::{IpnsRecord, RecordError};
pub use sources::{DelegatedRecords, DhtRecords, LocalRecords};

/// `[names]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NamesConfig {
    /// Most names followed for one request (a record pointing at a name ...).
    pub max_recursion: usize,
    /// Milliseconds one name's record search may take.
    pub lookup_timeout_ms: u64,
    /// Milliseconds to wait for newer records once a valid one came.
    pub record_wait_ms: u64,
    /// Names cached at most.
    pub max_cached_names: usize,
}

impl Default for NamesConfig {
    fn default() -> Self {
        NamesConfig {
            max_recursion: 32,
            lookup_timeout_ms: 10_000,
            record_wait_ms: 300,
            max_cached_names: 10_000,
        }
    }
}

/// What a record source says about a name.
#[derive(Debug)]
pub enum SourceAnswer {
    /// Record bytes, not verified yet.
    Record(Vec<u8>),
    /// The source could not be asked or answered badly.
    Failed(String),
}

/// Somewhere IPNS records come from.
pub trait RecordSource: Send + Sync + 'static {
    /// `dht`, `delegated`.
    fn label(&self) -> &'static str;
    /// Starts asking for `name`'s records; the channel closes when the
    /// source has nothing more.
    fn records(&self, name: PeerId) -> mpsc::Receiver<SourceAnswer>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(transparent)]
    BadName(RecordError),
    #[error("no IPNS record for {name} was found ({sources})")]
    NoRecord { name: String, sources: String },
    #[error("no valid IPNS record for {name}: {reasons}")]
    Broken { name: String, reasons: String },
    #[error(
        "the IPNS record of {name} points at {value:?}, which is not an /ipfs/ or /ipns/ path: {reason}"
    )]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("resolving {name} followed more than {max} names ([names] max_recursion)")]
    TooDeep { name: String, max: usize },
    #[error("resolving {name} went round in a loop: {chain}")]
    Loop { name: String, chain: String },
    #[error(transparent)]
    DnsLink(DnsLinkError),
    #[error("DNSLink names cannot be resolved: {0}")]
    NoDns(String),
    #[error("IPNS names cannot be resolved: no record source ([dht] mode = \"off\" and no [routing] endpoints)")]
    NoSources,
}

impl NameError {
    /// Whether the name is a domain with no DNSLink (NXDOMAIN, or no
    /// `dnslink=` TXT record): for a caller that tries a host name as a
    /// DNSLink and serves something else when it is none.
    pub fn is_no_dnslink(&self) -> bool {
        matches!(
            self,
            NameError::DnsLink(DnsLinkError::NoDomain { .. } | DnsLinkError::NoLink { .. })
        )
    }
}

impl From<DnsLinkError> for NameError {
    fn from(err: DnsLinkError) -> Self {
        NameError::DnsLink(err)
    }
}

/// A name as it appears in `/ipns/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Name {
    /// An IPNS name: a libp2p key.
    Key(PeerId),
    /// A DNSLink domain.
    Domain(Domain),
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Key(peer) => write!(f, "{peer}"),
            Name::Domain(domain) => write!(f, "{domain}"),
        }
    }
}

/// Reads `text` as a name: a libp2p key, or else, if it has a dot in it, a
/// DNSLink domain (single-label domains are not looked up).
pub fn parse_name(text: &str) -> Result<Name, NameError> {
    match ipns::parse_name(text) {
        Ok(peer) => Ok(Name::Key(peer)),
        Err(_) if text.contains('.') => {
            dnslink::parse_domain(text)
                .map(Name::Domain)
                .map_err(|reason| {
                    NameError::DnsLink(DnsLinkError::BadDomain {
                        name: text.chars().take(300).collect(),
                        reason,
                    })
                })
        }
        Err(e) => Err(NameError::BadName(e)),
    }
}

/// Where a record or a DNSLink points.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Ipfs { root: Cid, inner: Vec<String> },
    Ipns { name: Name, inner: Vec<String> },
}

/// Reads a record's or a DNSLink's value, `/ipfs/<cid>[/path]` or
/// `/ipns/<name>[/path]`; the error says what is wrong with it.
pub fn parse_target(value: &str) -> Result<Target, String> {
    let mut parts = value
        .strip_prefix('/')
        .ok_or_else(|| "a path must start with /ipfs/ or /ipns/".to_string())?
        .split('/');
    let (kind, target) = (parts.next().unwrap_or(""), parts.next());
    let inner: Vec<String> = parts
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    // As in request URLs: a path never climbs out of its root.
    if inner.iter().any(|p| p == "." || p == "..") {
        return Err("a path may not have . or .. segments".to_string());
    }
    match (kind, target) {
        ("ipfs", Some(cid)) => cid
            .parse::<Cid>()
            .map(|root| Target::Ipfs { root, inner })
            .map_err(|_| format!("{:?} is not a CID", shorten(cid))),
        ("ipns", Some(name)) => parse_name(name)
            .map(|name| Target::Ipns { name, inner })
            .map_err(|e| {
                format!(
                    "{:?} is not an IPNS name or a domain name ({e})",
                    shorten(name)
                )
            }),
        _ => Err("a path must start with /ipfs/ or /ipns/".to_string()),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(100).collect()
}

/// Where a name led.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedName {
    pub root: Cid,
    /// Path segments inside `root` (from the records), then the request's.
    pub segments: Vec<String>,
    /// How long the answer may be cached (the shortest TTL on the way: of
    /// records, never past their validity, and of DNS answers).
    pub ttl: Duration,
    /// The first IPNS name's record, if an IPNS name was on the way.
    pub record: Option<IpnsRecord>,
}

/// Resolves names through every record source, and DNSLink domains.
pub struct Resolver {
    config: NamesConfig,
    sources: Vec<Arc<dyn RecordSource>>,
    cache: Mutex<HashMap<PeerId, (Instant, IpnsRecord)>>,
    dnslink: Option<Arc<DnsLinkResolver>>,
}

impl Resolver {
    pub fn new(config: NamesConfig, sources: Vec<Arc<dyn RecordSource>>) -> Resolver {
        Resolver {
            config,
            sources,
            cache: Mutex::default(),
            dnslink: None,
        }
    }

    /// Resolves DNSLink domains through `dnslink` (without it they fail).
    pub fn with_dnslink(mut self, dnslink: Arc<DnsLinkResolver>) -> Resolver {
        self.dnslink = Some(dnslink);
        self
    }

    /// The record `name` has now: cached, or the best valid one found.
    pub async fn record(&self, name: &PeerId) -> Result<IpnsRecord, NameError> {
        if let Some((until, record)) = self.cache.lock().get(name) {
            if *until > Instant::now() && record.eol > SystemTime::now() {
                return Ok(record.clone());
            }
        }
        if self.sources.is_empty() {
            return Err(NameError::NoSources);
        }
        let record = self.search(name).await?;
        let lifetime = cache_lifetime(&record, SystemTime::now());
        let mut cache = self.cache.lock();
        if cache.len() >= self.config.max_cached_names.max(1) {
            let now = Instant::now();
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= self.config.max_cached_names.max(1) {
                cache.clear();
            }
        }
        cache.insert(*name, (Instant::now() + lifetime, record.clone()));
        Ok(record)
    }

    /// Asks every source at once; verified records only, highest sequence
    /// wins; once one is valid, newer ones get `record_wait_ms` to arrive.
    async fn search(&self, name: &PeerId) -> Result<IpnsRecord, NameError> {
        let (answers, mut all) = mpsc::channel(64);
        for source in &self.sources {
            let (label, mut records) = (source.label(), source.records(*name));
            let answers = answers.clone();
            tokio::spawn(async move {
                while let Some(answer) = records.recv().await {
                    if answers.send((label, answer)).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(answers);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.config.lookup_timeout_ms.max(1));
        let mut best: Option<IpnsRecord> = None;
        let mut refused = Vec::new();
        let mut failed = Vec::new();
        let mut stop_at = deadline;
        loop {
            let next = tokio::time::timeout_at(stop_at, all.recv()).await;
            let Ok(Some((label, answer))) = next else {
                break;
            };
            match answer {
                SourceAnswer::Failed(why) => failed.push(format!("{label}: {why}")),
                SourceAnswer::Record(bytes) => {
                    match ipns::verify(name, &bytes, SystemTime::now()) {
                        Ok(record) => {
                            if best.as_ref().is_none_or(|b| newer(&record, b)) {
                                best = Some(record);
                            }
                            stop_at = stop_at.min(
                                tokio::time::Instant::now()
                                    + Duration::from_millis(self.config.record_wait_ms),
                            );
                        }
                        Err(e) => {
                            tracing::debug!(%name, source = label, error = %e, "IPNS record refused");
                            if refused.len() < 8 {
                                refused.push(format!("{label}: {e}"));
                            }
                        }
                    }
                }
            }
        }
        if let Some(best) = best {
            return Ok(best);
        }
        if !refused.is_empty() {
            return Err(NameError::Broken {
                name: name.to_string(),
                reasons: refused.join("; "),
            });
        }
        let asked: Vec<&str> = self.sources.iter().map(|s| s.label()).collect();
        let mut sources = format!("asked: {}", asked.join(", "));
        if !failed.is_empty() {
            sources.push_str(&format!("; {}", failed.join("; ")));
        }
        Err(NameError::NoRecord {
            name: name.to_string(),
            sources,
        })
    }

    /// Follows `name` (as it appears in `/ipns/<name>`: an IPNS name or a
    /// DNSLink domain) to an `/ipfs/` root, appending `rest` to the path
    /// the records and DNSLinks give.
    pub async fn resolve(&self, name: &str, rest: &[String]) -> Result<ResolvedName, NameError> {
        let mut current = parse_name(name)?;
        let mut first: Option<IpnsRecord> = None;
        let mut ttl = Duration::MAX;
        let mut trail: Vec<String> = Vec::new();
        let mut seen: Vec<Name> = Vec::new();
        for _ in 0..self.config.max_recursion.max(1) {
            if seen.contains(&current) {
                let mut chain: Vec<String> = seen.iter().map(ToString::to_string).collect();
                chain.push(current.to_string());
                return Err(NameError::Loop {
                    name: name.to_string(),
                    chain: chain.join(" -> "),
                });
            }
            seen.push(current.clone());
            let target = match &current {
                Name::Key(peer) => {
                    let record = self.record(peer).await?;
                    ttl = ttl.min(cache_lifetime(&record, SystemTime::now()));
                    let target =
                        parse_target(&record.value).map_err(|reason| NameError::BadValue {
                            name: current.to_string(),
                            value: record.value.clone(),
                            reason,
                        })?;
                    first.get_or_insert(record);
                    target
                }
                Name::Domain(domain) => {
                    let dnslink = self.dnslink.as_ref().ok_or_else(|| {
                        NameError::NoDns("this gateway has no DNS resolver".into())
                    })?;
                    let link = dnslink.resolve(domain).await?;
                    ttl = ttl.min(link.ttl);
                    link.target
                }
            };
            match target {
                Target::Ipfs { root, inner } => {
                    // Inner paths of later names come before those of earlier ones.
                    trail.splice(0..0, inner);
                    trail.extend(rest.iter().cloned());
                    return Ok(ResolvedName {
                        root,
                        segments: trail,
                        ttl,
                        record: first,
                    });
                }
                Target::Ipns { name: next, inner } => {
                    trail.splice(0..0, inner);
                    current = next;
                }
            }
        }
        Err(NameError::TooDeep {
            name: name.to_string(),
            max: self.config.max_recursion,
        })
    }
}

/// Whether `a` replaces `b`: a higher sequence, or the same one valid for
/// longer.
fn newer(a: &IpnsRecord, b: &IpnsRecord) -> bool {
    (a.sequence, a.eol) > (b.sequence, b.eol)
}

/// A record's TTL, never past its validity.
pub fn cache_lifetime(record: &IpnsRecord, now: SystemTime) -> Duration {
    let left = record.eol.duration_since(now).unwrap_or(Duration::ZERO);
    record.ttl.min(left)
}

#[cfg(test)]
mod tests {
    use super::ipns::tests::Draft;
    use super::*;
    use libp2p::identity::Keypair;

    /// A source that answers from a fixed list.
    struct Fixed(&'static str, Vec<Vec<u8>>);

    impl RecordSource for Fixed {
        fn label(&self) -> &'static str {
            self.0
        }
        fn records(&self, _: PeerId) -> mpsc::Receiver<SourceAnswer> {
            let (tx, rx) = mpsc::channel(16);
            for record in &self.1 {
                let _ = tx.try_send(SourceAnswer::Record(record.clone()));
            }
            rx
        }
    }

    fn resolver(sources: Vec<Arc<dyn RecordSource>>) -> Resolver {
        Resolver::new(NamesConfig::default(), sources)
    }

    const A: &str = "/ipfs/bafkqaaa";
    const B: &str = "/ipfs/bafkqabbb";

    #[tokio::test]
    async fn the_highest_valid_sequence_wins_across_sources() {
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let other = Keypair::generate_ed25519();
        let old = Draft::new(A, 1).sign(&key);
        let new = Draft::new("/ipfs/bafkqaaa/x", 5).sign(&key);
        // A forged record with a higher sequence must not win.
        let forged = Draft::new(B, 99).sign(&other);
        let names = resolver(vec![
            Arc::new(Fixed("dht", vec![old, forged])),
            Arc::new(Fixed("delegated", vec![new])),
        ]);
        let record = names.record(&name).await.unwrap();
        assert_eq!(record.sequence, 5);
        let resolved = names
            .resolve(&name.to_string(), &["y".to_string()])
            .await
            .unwrap();
        assert_eq!(resolved.root.to_string(), "bafkqaaa");
        assert_eq!(resolved.segments, vec!["x".to_string(), "y".to_string()]);
        assert_eq!(resolved.ttl, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn only_broken_records_give_an_error_that_says_why() {
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let mut v1_only = Draft::new(A, 1);
        v1_only.with_v2 = false;
        let names = resolver(vec![Arc::new(Fixed("dht", vec![v1_only.sign(&key)]))]);
        let err = names.resolve(&name.to_string(), &[]).await.unwrap_err();
        assert!(
            matches!(&err, NameError::Broken { reasons, .. } if reasons.contains("V1-only")),
            "{err}"
        );
        let none = resolver(vec![Arc::new(Fixed("dht", vec![]))]);
        assert!(matches!(
            none.resolve(&name.to_string(), &[]).await,
            Err(NameError::NoRecord { .. })
        ));
    }

    #[tokio::test]
    async fn names_pointing_at_names_are_followed_a_bounded_number_of_times() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let (na, nb) = (a.public().to_peer_id(), b.public().to_peer_id());
        let to_b = Draft::new(&format!("/ipns/{nb}/sub"), 1).sign(&a);
        let to_a = Draft::new(&format!("/ipns/{na}"), 1).sign(&b);
        let to_cid = Draft::new(A, 1).sign(&b);
        // a -> b -> /ipfs/...: followed.
        let names = resolver(vec![Arc::new(KeyedFixed(vec![
            (na, to_b.clone()),
            (nb, to_cid),
        ]))]);
        let resolved = names.resolve(&na.to_string(), &[]).await.unwrap();
        assert_eq!(resolved.root.to_string(), "bafkqaaa");
        assert_eq!(resolved.segments, vec!["sub".to_string()]);
        // a -> b -> a: a loop, named as such.
        let looping = resolver(vec![Arc::new(KeyedFixed(vec![
            (na, to_b.clone()),
            (nb, to_a),
        ]))]);
        let err = looping.resolve(&na.to_string(), &[]).await.unwrap_err();
        assert!(
            matches!(&err, NameError::Loop { chain, .. } if chain == &format!("{na} -> {nb} -> {na}")),
            "{err}"
        );
        // a -> b -> /ipfs/... with room for one name only: too deep.
        let shallow = Resolver::new(
            NamesConfig {
                max_recursion: 1,
                ..NamesConfig::default()
            },
            vec![Arc::new(KeyedFixed(vec![
                (na, to_b),
                (nb, Draft::new(A, 1).sign(&b)),
            ]))],
        );
        assert!(matches!(
            shallow.resolve(&na.to_string(), &[]).await,
            Err(NameError::TooDeep { max: 1, .. })
        ));
    }

    #[test]
    fn values_are_read_as_ipfs_or_ipns_paths() {
        let key = Keypair::generate_ed25519().public().to_peer_id();
        assert!(matches!(
            parse_target("/ipfs/bafkqaaa/a//b/"),
            Ok(Target::Ipfs { inner, .. }) if inner == ["a", "b"]
        ));
        assert!(matches!(
            parse_target(&format!("/ipns/{key}/x")),
            Ok(Target::Ipns { name: Name::Key(k), inner }) if k == key && inner == ["x"]
        ));
        assert!(matches!(
            parse_target("/ipns/example.org"),
            Ok(Target::Ipns { name: Name::Domain(d), .. }) if d.as_str() == "example.org"
        ));
        for (bad, says) in [
            ("ipfs/bafkqaaa", "start with"),
            ("/ipfs/nope", "not a CID"),
            ("/ipfs", "start with"),
            ("/ipns/nope", "not an IPNS name"),
            ("/ipns/a..b", "empty label"),
            ("/other/x", "start with"),
            ("/ipfs/bafkqaaa/../x", ". or .."),
        ] {
            let reason = parse_target(bad).unwrap_err();
            assert!(reason.contains(says), "{bad}: {reason}");
        }
    }

    #[tokio::test]
    async fn a_domain_without_a_dns_resolver_is_a_clear_error() {
        let names = resolver(vec![Arc::new(Fixed("dht", vec![]))]);
        assert!(matches!(
            names.resolve("example.org", &[]).await,
            Err(NameError::NoDns(_))
        ));
        let long = format!("{}.org", "a".repeat(64));
        assert!(matches!(
            names.resolve(&long, &[]).await,
            Err(NameError::DnsLink(DnsLinkError::BadDomain { .. }))
        ));
        assert!(matches!(
            names.resolve("notakey", &[]).await,
            Err(NameError::BadName(_))
        ));
        let none = NameError::DnsLink(DnsLinkError::NoLink {
            domain: "example.org".into(),
        });
        assert!(none.is_no_dnslink());
        assert!(!NameError::NoDns(String::new()).is_no_dnslink());
    }

    /// A source with a record per name.
    struct KeyedFixed(Vec<(PeerId, Vec<u8>)>);

    impl RecordSource for KeyedFixed {
        fn label(&self) -> &'static str {
            "test"
        }
        fn records(&self, name: PeerId) -> mpsc::Receiver<SourceAnswer> {
            let (tx, rx) = mpsc::channel(16);
            for (n, record) in &self.0 {
                if *n == name {
                    let _ = tx.try_send(SourceAnswer::Record(record.clone()));
                }
            }
            rx
        }
    }

    #[test]
    fn a_record_is_cached_for_its_ttl_but_never_past_its_validity() {
        let key = Keypair::generate_ed25519();
        let name = key.public().to_peer_id();
        let mut draft = Draft::new(A, 1);
        draft.ttl_ns = 3_600_000_000_000;
        let record = ipns::verify(&name, &draft.sign(&key), SystemTime::now()).unwrap();
        let now = SystemTime::now();
        assert_eq!(cache_lifetime(&record, now), Duration::from_secs(3600));
        let near_end = record.eol - Duration::from_secs(10);
        assert_eq!(cache_lifetime(&record, near_end), Duration::from_secs(10));
    }
}
