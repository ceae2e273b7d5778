//! The control address (`[metrics] listen`, loopback by default): health
//! checks, Prometheus metrics, and a view of live sessions with their
//! ranked providers. Kept off the public gateway address on purpose.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::blocks::BlockService;
use crate::gateway::templates;
use crate::metrics::Metrics;
use crate::p2p::P2pNode;
use crate::session;

/// `[metrics]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the control server (metrics, /debug/sessions, health).
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:8081".parse().expect("valid address"),
        }
    }
}

pub struct Control {
    pub blocks: BlockService,
    pub node: P2pNode,
}

pub fn router(control: Control) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/debug/metrics/prometheus", get(metrics))
        .route("/debug/sessions", get(sessions))
        .route("/debug/dht", get(dht))
        .with_state(Arc::new(control))
}

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to serve: listening (this answer proves it), the store open, and
/// at least one way to get blocks. A DHT that no bootstrap peer answered
/// does not make the gateway unready (hints, routers and local content
/// still work), but the answer says so.
async fn readyz(State(control): State<Arc<Control>>) -> Response {
    if control.blocks.is_ready() {
        let dht = match control.node.dht_status() {
            None => String::new(),
            Some(status) => format!("{}\n", dht_line(&status)),
        };
        (StatusCode::OK, format!("ready\n{dht}")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no block store is open and nothing can fetch\n",
        )
            .into_response()
    }
}

/// One line about the DHT for `/readyz`.
fn dht_line(status: &crate::p2p::DhtStatus) -> String {
    match status.joined {
        Some(true) => format!(
            "dht: joined ({} peers in the routing table)",
            status.routing_table_peers
        ),
        Some(false) => format!(
            "dht: not joined: no bootstrap peer answered ({} in [dht] bootstrap, {} remembered from the last run)",
            status.bootstrap_peers, status.remembered_peers
        ),
        None => format!(
            "dht: joining ({} bootstrap, {} remembered peers)",
            status.bootstrap_peers, status.remembered_peers
        ),
    }
}

/// The DHT's state as JSON (`null` when it is off).
async fn dht(State(control): State<Arc<Control>>) -> Response {
    let json = serde_json::to_string(&control.node.dht_status()).unwrap_or_else(|_| "null".into());
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn metrics(State(control): State<Arc<Control>>) -> Response {
    let m = Metrics::global();
    m.live_sessions.set(session::live_count() as i64);
    m.peers_connected
        .set(control.node.connected_peers().len() as i64);
    m.cache_bytes.set(control.blocks.cache_weight() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

async fn sessions(request: Request) -> Response {
    let mut views: Vec<session::SessionView> = session::live_sessions()
        .iter()
        .map(session::Session::view)
        .collect();
    views.sort_by_key(|v| v.id);
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
        && request.uri().query() != Some("format=json");
    if wants_html {
        let page = templates::render("sessions.html", context! { sessions => views });
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
    } else {
        let json = serde_json::to_string(&views).unwrap_or_else(|_| "[]".into());
        ([(header::CONTENT_TYPE, "application/json")], json).into_response()
    }
}
