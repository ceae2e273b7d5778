//! Trustless HTTP gateways as block providers: WANT_BLOCK is
//! `GET /ipfs/<cid>?format=raw` (`Accept: application/vnd.ipld.raw`),
//! WANT_HAVE is `HEAD`, 404/410 mean DONT_HAVE, 429 and 5xx mean "back off"
//! (for `Retry-After` when given, at most a minute). A gateway joining a
//! session is probed with `bafkqaaa` ([`HttpProviders::probe`]). One pooled
//! HTTP/1.1 and HTTP/2 client is shared by every provider. Blocks are
//! bounded to 2 MiB while they are read and verified against their CID
//! before the want logic sees them. The want logic asks gateways the way
//! it asks Bitswap peers, and ranks them on the same scale.
//!
//! Block requests to one gateway are bounded by the bytes they are expected
//! to bring (2 MiB, `BYTES_IN_FLIGHT_KIB`; the next block is expected to be
//! as large as the largest of the gateway's last eight) and start in the
//! order they were made (a request takes its place in the queue when it is
//! made, before its task is spawned): sixteen read-ahead requests on one
//! link would share its bandwidth and all finish late, while a response
//! streams in order and needs the first one first. The bound still covers a
//! round trip at WAN speeds.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use reqwest::StatusCode;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::{count_bad_block, WantEvent, WantKind};
use crate::dial::http::HttpClient;
use crate::dial::AddressPolicy;
use crate::fetch::LinkProgress;
use crate::metrics::BlockOrigin;
use crate::session::{PeerBook, ProviderId};
use crate::verify::{verify_block, MAX_BLOCK_SIZE};

/// What a trustless gateway answered.
#[derive(Debug)]
pub enum HttpAnswer {
    Block(Bytes),
    Have,
    DontHave,
    /// Asked to slow down, or failing: try again after this long.
    BackOff(Duration),
    Failed(String),
}

/// Back-off when a gateway gives no `Retry-After`.
const DEFAULT_BACK_OFF: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured (a hostile gateway could say a year).
const MAX_BACK_OFF: Duration = Duration::from_secs(60);

/// Bytes of blocks one gateway may be asked for at once, in KiB (the
/// permits of its [`Link`]); one block is always allowed.
const BYTES_IN_FLIGHT_KIB: u32 = 2048;
/// Block size assumed for a gateway before its first block, in KiB.
const FIRST_BLOCK_KIB: u32 = 256;
/// Gateways whose link state is kept; idle ones are forgotten past this.
const MAX_LINKS: usize = 1024;

/// Block sizes a gateway's next block is expected from.
const RECENT_BLOCKS: usize = 8;

/// One gateway's share of requests in flight.
struct Link {
    budget: Arc<Semaphore>,
    /// Sizes of the last blocks it sent, in KiB, oldest first (the
    /// assumed first size counts as one until it is pushed out).
    recent_kib: Mutex<VecDeque<u32>>,
}

impl Link {
    fn new() -> Link {
        Link {
            budget: Arc::new(Semaphore::new(BYTES_IN_FLIGHT_KIB as usize)),
            recent_kib: Mutex::new(VecDeque::from([FIRST_BLOCK_KIB])),
        }
    }

    /// The largest of the recent block sizes: a file's root is a few KiB
    /// and its leaves, asked for next and all at once, are not; a mean
    /// taken over the root let ten 512 KiB leaves share one link.
    fn expected_kib(&self) -> u32 {
        let recent = self.recent_kib.lock();
        recent.iter().copied().max().unwrap_or(FIRST_BLOCK_KIB)
    }

    fn note_block(&self, bytes: usize) {
        let kib = (bytes / 1024).max(1) as u32;
        let mut recent = self.recent_kib.lock();
        recent.push_back(kib);
        while recent.len() > RECENT_BLOCKS {
            recent.pop_front();
        }
    }
}

#[derive(Clone)]
pub struct HttpProviders {
    client: HttpClient,
    links: Arc<Mutex<HashMap<String, Arc<Link>>>>,
}

impl HttpProviders {
    /// Providers reached through `policy` (they are named by hints and
    /// routing answers: untrusted, none of them exempt).
    pub fn new(request_timeout: Duration, policy: AddressPolicy) -> HttpProviders {
        let client = HttpClient::new("http", policy, &[], |builder| {
            builder
                .connect_timeout(Duration::from_secs(5))
                .timeout(request_timeout)
                .pool_max_idle_per_host(32)
        });
        HttpProviders {
            client,
            links: Arc::default(),
        }
    }

    fn link(&self, base: &str) -> Arc<Link> {
        let mut links = self.links.lock();
        if let Some(link) = links.get(base) {
            return link.clone();
        }
        if links.len() >= MAX_LINKS {
            links.retain(|_, link| Arc::strong_count(link) > 1);
        }
        let link = Arc::new(Link::new());
        links.insert(base.to_string(), link.clone());
        link
    }

    /// Asks the gateway at `base` (`scheme://host[:port]`) for `cid`. The
    /// request takes its place in the gateway's queue when this is called,
    /// not when the returned future first runs: requests made in a burst
    /// are spawned as tasks, and tokio runs the newest task first.
    pub fn request(
        &self,
        base: &str,
        cid: &Cid,
        want: WantKind,
        progress: &LinkProgress,
    ) -> impl Future<Output = HttpAnswer> + Send + 'static {
        let link = self.link(base);
        let turn = take_turn(&link, want);
        let (client, base, cid, progress) = (
            self.client.clone(),
            base.to_string(),
            *cid,
            progress.clone(),
        );
        async move {
            // Held until the block is read (or the request is dropped).
            let _turn = match turn.await {
                Ok(permit) => permit,
                Err(_) => return HttpAnswer::Failed("gateway link closed".into()),
            };
            transfer(&client, &link, &base, &cid, want, &progress).await
        }
    }

    /// [`request`](Self::request), answered as the want logic reads it: a
    /// block is verified against `cid` here, and one that does not match
    /// bans the gateway.
    pub(super) fn want(
        &self,
        base: &str,
        cid: &Cid,
        kind: WantKind,
        progress: &LinkProgress,
    ) -> impl Future<Output = WantEvent> + Send + 'static {
        let request = self.request(base, cid, kind, progress);
        let (provider, base, cid) = (ProviderId::Http(base.to_string()), base.to_string(), *cid);
        async move {
            match request.await {
                HttpAnswer::Block(data) if verify_block(&cid, &data).is_ok() => {
                    WantEvent::Block { provider, data }
                }
                HttpAnswer::Block(_) => {
                    tracing::warn!(%base, %cid, "HTTP provider sent bytes that do not match the CID");
                    PeerBook::global().penalise(&provider);
                    count_bad_block(BlockOrigin::Http);
                    WantEvent::BadBlock(provider)
                }
                HttpAnswer::Have => WantEvent::Presence {
                    provider,
                    have: true,
                },
                HttpAnswer::DontHave => WantEvent::Presence {
                    provider,
                    have: false,
                },
                HttpAnswer::BackOff(after) => WantEvent::BackOff(provider, after),
                HttpAnswer::Failed(reason) => {
                    tracing::debug!(%base, %cid, %reason, "HTTP provider failed");
                    WantEvent::Unreachable(provider)
                }
            }
        }
    }

    /// False if `base` is unreachable or answers the empty identity block
    /// `bafkqaaa` (the conventional probe) other than a trustless gateway
    /// would. A gateway that is only busy (429, 5xx) passes.
    pub async fn probe(&self, base: &str) -> bool {
        let url = format!("{base}/ipfs/bafkqaaa?format=raw");
        let Ok(request) = self.client.head(&url) else {
            return false;
        };
        let request = request.header(reqwest::header::ACCEPT, "application/vnd.ipld.raw");
        match request.send().await {
            Ok(r) => {
                let status = r.status();
                status == StatusCode::OK
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            Err(_) => false,
        }
    }
}

/// A place in `link`'s queue for a block request (a presence request
/// needs none), taken now: the acquire is polled once here, which puts it
/// in the semaphore's first-come queue.
fn take_turn(
    link: &Arc<Link>,
    want: WantKind,
) -> BoxFuture<'static, Result<Option<OwnedSemaphorePermit>, AcquireError>> {
    if want == WantKind::Have {
        return Box::pin(std::future::ready(Ok(None)));
    }
    let kib = link.expected_kib().clamp(1, BYTES_IN_FLIGHT_KIB);
    let mut acquire = Box::pin(link.budget.clone().acquire_many_owned(kib));
    let waker = futures::task::noop_waker();
    if let Poll::Ready(result) = acquire.as_mut().poll(&mut Context::from_waker(&waker)) {
        return Box::pin(std::future::ready(result.map(Some)));
    }
    Box::pin(async move { acquire.await.map(Some) })
}

async fn transfer(
    client: &HttpClient,
    link: &Link,
    base: &str,
    cid: &Cid,
    want: WantKind,
    progress: &LinkProgress,
) -> HttpAnswer {
    let provider = ProviderId::Http(base.to_string());
    let mut noted = None;
    let url = format!("{base}/ipfs/{cid}?format=raw");
    let request = match want {
        WantKind::Block => client.get(&url),
        WantKind::Have => client.head(&url),
    };
    let request = match request {
        Ok(request) => request.header(reqwest::header::ACCEPT, "application/vnd.ipld.raw"),
        Err(e) => return HttpAnswer::Failed(e.to_string()),
    };
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => return HttpAnswer::Failed(e.to_string()),
    };
    let status = response.status();
    match status {
        StatusCode::OK if want == WantKind::Have => HttpAnswer::Have,
        StatusCode::OK => {
            if response
                .content_length()
                .is_some_and(|len| len > MAX_BLOCK_SIZE as u64)
            {
                return HttpAnswer::Failed(format!("block larger than {MAX_BLOCK_SIZE} bytes"));
            }
            let mut body = BytesMut::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        progress.note_throttled(&provider, &mut noted);
                        if body.len() + chunk.len() > MAX_BLOCK_SIZE {
                            return HttpAnswer::Failed(format!(
                                "block larger than {MAX_BLOCK_SIZE} bytes"
                            ));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => {
                        link.note_block(body.len());
                        return HttpAnswer::Block(body.freeze());
                    }
                    Err(e) => return HttpAnswer::Failed(e.to_string()),
                }
            }
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => HttpAnswer::DontHave,
        StatusCode::TOO_MANY_REQUESTS => HttpAnswer::BackOff(retry_after(&response)),
        s if s.is_server_error() => HttpAnswer::BackOff(retry_after(&response)),
        other => HttpAnswer::Failed(format!("unexpected status {other}")),
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from gateways: treated as the default).
fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_BACK_OFF, Duration::from_secs)
        .min(MAX_BACK_OFF)
}
