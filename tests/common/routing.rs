//! A delegated routing server (HTTP routing v1) built by the tests: it
//! answers `/routing/v1/providers/{cid}` from a table (or names the same
//! providers for every CID), counts and times the requests it gets, and
//! can answer in NDJSON or never answer at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header as h, StatusCode};
use axum::response::{IntoResponse, Response};

use super::bitswap_peer::TestPeer;

#[derive(Clone, Default)]
pub struct RoutingTable {
    /// Records by the CID's string form.
    pub records: Arc<Mutex<HashMap<String, Vec<serde_json::Value>>>>,
    /// Records for every CID the table has no entry for.
    pub every_cid: Arc<Vec<serde_json::Value>>,
    /// Requests answered (or held).
    pub requests: Arc<AtomicUsize>,
    /// When each request came, and the watched counter's value then.
    pub seen: Arc<Mutex<Vec<(Instant, usize)>>>,
    pub watched: Arc<Mutex<Option<Arc<AtomicUsize>>>>,
    /// Answer in NDJSON (with a Cache-Control max-age) instead of JSON.
    pub ndjson: bool,
    /// Never answer (hold every request for an hour).
    pub hang: bool,
}

impl RoutingTable {
    /// Names `record` as a provider of `cid`.
    pub fn name(&self, cid: &str, record: serde_json::Value) {
        self.records
            .lock()
            .unwrap()
            .entry(cid.to_string())
            .or_default()
            .push(record);
    }

    pub fn lookups(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// See [`RoutingTable::seen`].
    pub fn seen(&self) -> Vec<(Instant, usize)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn providers(State(table): State<RoutingTable>, Path(cid): Path<String>) -> Response {
    table.requests.fetch_add(1, Ordering::SeqCst);
    let watched = table
        .watched
        .lock()
        .unwrap()
        .as_ref()
        .map_or(0, |s| s.load(Ordering::SeqCst));
    table.seen.lock().unwrap().push((Instant::now(), watched));
    if table.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let records = table
        .records
        .lock()
        .unwrap()
        .get(&cid)
        .cloned()
        .unwrap_or_else(|| table.every_cid.to_vec());
    if records.is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if table.ndjson {
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        (
            [
                (h::CONTENT_TYPE, "application/x-ndjson"),
                (h::CACHE_CONTROL, "public, max-age=300"),
            ],
            body,
        )
            .into_response()
    } else {
        let body = serde_json::json!({ "Providers": records }).to_string();
        ([(h::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Serves `table` on a loopback port; its base URL, for `[routing] endpoints`.
pub async fn routing_server(table: RoutingTable) -> String {
    let app = axum::Router::new()
        .route("/routing/v1/providers/{cid}", axum::routing::get(providers))
        .with_state(table);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A routing record naming `peer` (its address without `/p2p/<id>`).
pub fn peer_record(peer: &TestPeer) -> serde_json::Value {
    record_of(&peer.addr.to_string())
}

/// A routing record naming the peer of a `/ip4/…/tcp/…/p2p/<id>` multiaddr.
pub fn record_of(multiaddr: &str) -> serde_json::Value {
    let (addr, id) = multiaddr.rsplit_once("/p2p/").unwrap();
    serde_json::json!({
        "Schema": "peer",
        "ID": id,
        "Addrs": [addr],
        "Protocols": ["transport-bitswap"],
    })
}
