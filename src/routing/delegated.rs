//! Content routing through the Delegated Routing HTTP API v1
//! (`GET /routing/v1/providers/{cid}`, JSON or streamed NDJSON): bounded
//! concurrent lookups with a timeout, lookups for the same CID coalesced,
//! answers cached for their `Cache-Control` lifetime, and returned
//! addresses held to the same private-address policy as hints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use futures::future::{BoxFuture, FutureExt, Shared};
use libp2p::{Multiaddr, PeerId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::hints::http_url_of;
use super::ProviderHint;
use crate::dial::http::HttpClient;
use crate::dial::{count_refusal, AddressPolicy};

/// `[routing]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Delegated routing endpoints (base URLs); empty turns routing off.
    pub endpoints: Vec<String>,
    /// Milliseconds one lookup may take.
    pub lookup_timeout_ms: u64,
    /// Lookups in flight at once, across all requests.
    pub max_concurrent_lookups: usize,
    /// Most providers taken from one answer.
    pub max_providers_per_lookup: usize,
    /// Seconds an answer is cached when the server gives no max-age.
    pub default_cache_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            // The public router the defaults named (delegated-ipfs.dev) was
            // shut down on 2026-09-30; no default names a single operator.
            endpoints: Vec::new(),
            lookup_timeout_ms: 5000,
            max_concurrent_lookups: 16,
            max_providers_per_lookup: 32,
            default_cache_secs: 60,
        }
    }
}

/// Longest answer read from a routing endpoint.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Longest IPNS record answer read (records are at most 10 KiB).
const MAX_RECORD_ANSWER_BYTES: usize = 16 * 1024;
/// Longest cache lifetime honoured.
const MAX_CACHE: Duration = Duration::from_secs(3600);

/// What every endpoint answered for a CID, shared by everyone who asked.
#[derive(Debug, Default)]
pub struct DelegatedAnswer {
    pub providers: Vec<ProviderHint>,
    /// Endpoints that failed, each with why.
    pub failures: Vec<String>,
    /// Endpoints that did not answer within `lookup_timeout_ms`.
    pub timeouts: usize,
}

type Found = Arc<DelegatedAnswer>;
type Lookup = Shared<BoxFuture<'static, Found>>;

pub struct Routing {
    config: RoutingConfig,
    policy: AddressPolicy,
    client: HttpClient,
    limit: Arc<Semaphore>,
    in_flight: Mutex<HashMap<Cid, Lookup>>,
    /// Answers and when they expire.
    cache: Mutex<HashMap<Cid, (Instant, Found)>>,
    lookups: AtomicU64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Providers", default)]
    providers: Option<Vec<Record>>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "Schema", default)]
    schema: String,
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Addrs", default)]
    addrs: Option<Vec<String>>,
    #[serde(rename = "Protocols", default)]
    protocols: Option<Vec<String>>,
}

impl Routing {
    /// A client of `config.endpoints` (trusted: the operator named them,
    /// so they may be private; redirects are never followed), whose
    /// answers' addresses pass `policy`.
    pub fn new(config: RoutingConfig, policy: AddressPolicy) -> Option<Arc<Routing>> {
        if config.endpoints.is_empty() {
            return None;
        }
        let connect_timeout = Duration::from_millis(config.lookup_timeout_ms);
        let client = HttpClient::new("routing", policy.clone(), &config.endpoints, |builder| {
            builder.connect_timeout(connect_timeout)
        });
        Some(Arc::new(Routing {
            limit: Arc::new(Semaphore::new(config.max_concurrent_lookups.max(1))),
            config,
            policy,
            client,
            in_flight: Mutex::default(),
            cache: Mutex::default(),
            lookups: AtomicU64::new(0),
        }))
    }

    /// Lookups sent to endpoints so far (cache hits and coalesced waits
    /// excluded).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Providers of `cid` from every endpoint, and which endpoints failed.
    pub async fn find_providers(self: &Arc<Self>, cid: &Cid) -> Found {
        if let Some((expires, hints)) = self.cache.lock().get(cid) {
            if *expires > Instant::now() {
                return hints.clone();
            }
        }
        let lookup = {
            let mut in_flight = self.in_flight.lock();
            in_flight
                .entry(*cid)
                .or_insert_with(|| {
                    let this = self.clone();
                    let cid = *cid;
                    async move {
                        let (answer, lifetime) = this.lookup_all(&cid).await;
                        let answer = Arc::new(answer);
                        this.cache
                            .lock()
                            .insert(cid, (Instant::now() + lifetime, answer.clone()));
                        this.in_flight.lock().remove(&cid);
                        answer
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        lookup.await
    }

    async fn lookup_all(&self, cid: &Cid) -> (DelegatedAnswer, Duration) {
        let mut answer = DelegatedAnswer::default();
        let mut lifetime = MAX_CACHE;
        for endpoint in &self.config.endpoints {
            let Ok(_permit) = self.limit.acquire().await else {
                break;
            };
            self.lookups.fetch_add(1, Ordering::Relaxed);
            crate::metrics::Metrics::global().routing_lookups.inc();
            let timeout = Duration::from_millis(self.config.lookup_timeout_ms);
            match tokio::time::timeout(timeout, self.lookup(endpoint, cid)).await {
                Ok(Ok((found, max_age))) => {
                    tracing::info!(%cid, %endpoint, providers = found.len(), "routing lookup");
                    answer.providers.extend(found);
                    lifetime = lifetime.min(max_age);
                }
                Ok(Err(reason)) => {
                    tracing::info!(%cid, %endpoint, %reason, "routing lookup failed");
                    answer.failures.push(format!("{endpoint}: {reason}"));
                    lifetime = lifetime.min(Duration::from_secs(5));
                }
                Err(_) => {
                    tracing::info!(%cid, %endpoint, "routing lookup timed out");
                    answer.timeouts += 1;
                    lifetime = lifetime.min(Duration::from_secs(5));
                }
            }
        }
        answer
            .providers
            .truncate(self.config.max_providers_per_lookup);
        (answer, lifetime)
    }

    async fn lookup(
        &self,
        endpoint: &str,
        cid: &Cid,
    ) -> Result<(Vec<ProviderHint>, Duration), String> {
        let url = format!(
            "{}/routing/v1/providers/{cid}?filter-protocols=transport-bitswap,transport-ipfs-gateway-http,unknown",
            endpoint.trim_end_matches('/')
        );
        let mut response = self
            .client
            .get(&url)
            .map_err(|e| e.to_string())?
            .header(
                reqwest::header::ACCEPT,
                "application/x-ndjson, application/json",
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let max_age = cache_lifetime(response.headers())
            .unwrap_or(Duration::from_secs(self.config.default_cache_secs));
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok((Vec::new(), max_age));
        }
        if response.status().is_redirection() {
            return Err(format!(
                "status {} (redirects from routers are not followed)",
                response.status()
            ));
        }
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let ndjson = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("ndjson"));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let records: Vec<Record> = if ndjson {
            body.split(|b| *b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .filter_map(|line| serde_json::from_slice(line).ok())
                .collect()
        } else {
            serde_json::from_slice::<Answer>(&body)
                .map_err(|e| format!("bad JSON: {e}"))?
                .providers
                .unwrap_or_default()
        };
        Ok((
            records
                .iter()
                .filter_map(|r| self.hint_of(r))
                .flatten()
                .collect(),
            max_age,
        ))
    }

    /// The IPNS record each endpoint holds for `name_text` (a name in its
    /// canonical form, `GET /routing/v1/ipns/{name}`, IPIP-379),
    /// unverified; an endpoint that has none says nothing, one that fails
    /// says why.
    pub async fn ipns_records(&self, name_text: &str) -> Vec<Result<Vec<u8>, String>> {
        let mut answers = Vec::new();
        for endpoint in &self.config.endpoints {
            let Ok(_permit) = self.limit.acquire().await else {
                break;
            };
            let url = format!(
                "{}/routing/v1/ipns/{name_text}",
                endpoint.trim_end_matches('/')
            );
            let timeout = Duration::from_millis(self.config.lookup_timeout_ms);
            let answer = tokio::time::timeout(timeout, self.ipns_record(&url)).await;
            match answer {
                Ok(Ok(Some(record))) => answers.push(Ok(record)),
                Ok(Ok(None)) => {}
                Ok(Err(reason)) => answers.push(Err(format!("{endpoint}: {reason}"))),
                Err(_) => answers.push(Err(format!("{endpoint}: timed out"))),
            }
        }
        answers
    }

    async fn ipns_record(&self, url: &str) -> Result<Option<Vec<u8>>, String> {
        let mut response = self
            .client
            .get(url)
            .map_err(|e| e.to_string())?
            .header(reqwest::header::ACCEPT, "application/vnd.ipfs.ipns-record")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            // Past this it is no record (names refuses what is too large):
            // keep enough to show that, buffer no more.
            let room = MAX_RECORD_ANSWER_BYTES + 1 - body.len();
            if chunk.len() >= room {
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// The providers a record names, with disallowed addresses dropped.
    fn hint_of(&self, record: &Record) -> Option<Vec<ProviderHint>> {
        if record.schema != "peer" {
            return None;
        }
        let protocols = record.protocols.clone().unwrap_or_default();
        let addrs: Vec<Multiaddr> = record
            .addrs
            .iter()
            .flatten()
            .filter_map(|a| a.parse().ok())
            .filter(|a| match self.policy.check_multiaddr(a) {
                Ok(()) => true,
                Err((socket, refusal)) => {
                    count_refusal("routing", socket, refusal);
                    false
                }
            })
            .collect();
        let mut hints = Vec::new();
        if protocols.iter().any(|p| p == "transport-ipfs-gateway-http") {
            hints.extend(
                addrs
                    .iter()
                    .filter_map(http_url_of)
                    .map(|url| ProviderHint::Http { url }),
            );
        }
        if protocols.is_empty() || protocols.iter().any(|p| p == "transport-bitswap") {
            let peer: PeerId = record.id.as_deref()?.parse().ok()?;
            let tcp_or_quic: Vec<Multiaddr> = addrs
                .into_iter()
                .filter(|a| http_url_of(a).is_none())
                .collect();
            if !tcp_or_quic.is_empty() {
                hints.push(ProviderHint::Peer {
                    peer,
                    addrs: tcp_or_quic,
                });
            }
        }
        Some(hints)
    }
}

/// `max-age` (or `s-maxage`) from `Cache-Control`.
fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value
        .split(',')
        .filter_map(|d| d.trim().split_once('='))
        .find(|(k, _)| *k == "max-age" || *k == "s-maxage")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_CACHE))
}
