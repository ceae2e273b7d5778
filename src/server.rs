//! Assembling and running the gateway from a [`Config`]: the block stores,
//! the libp2p node and Bitswap client, the block service, the HTTP listener
//! and graceful shutdown.
//!
//! The gateway port is served by its own accept loop (hyper-util's `auto`
//! builder, HTTP/1 and h2c) so each connection can be bounded: a cap on
//! open connections with back-pressure on accept, accept errors that back
//! off instead of spinning, and per-connection header, idle and write
//! timeouts (`server/conn.rs`).

mod conn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::blocks::{BlockService, BlockStore, CarFileStore, FlatFsStore};
use crate::config::Config;
use crate::dial::AddressPolicy;
use crate::fetch::{BlockFetcher, NetworkFetcher};
use crate::gateway::{router, Gateway};
use crate::metrics::Metrics;
use crate::p2p::{load_or_create_identity, P2pError, P2pNode};
use crate::routing::{ContentRouting, Routing};

/// `[server]`: the gateway port's listener and its connections.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP gateway listens on.
    pub listen: SocketAddr,
    /// Seconds from connecting (or from the first byte of a later HTTP/1
    /// request) until a request header must be complete.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection with no request in flight stays open.
    pub idle_timeout_secs: u64,
    /// Seconds a write to a client may make no progress before the
    /// connection is closed (a client that stops reading).
    pub write_timeout_secs: u64,
    /// Open client connections; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Seconds between HTTP/2 keep-alive pings (0: none).
    pub http2_keepalive_interval_secs: u64,
    /// Seconds an HTTP/2 keep-alive ping may go unanswered.
    pub http2_keepalive_timeout_secs: u64,
    /// Requests in flight at once on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            write_timeout_secs: 60,
            max_connections: 10_000,
            http2_keepalive_interval_secs: 30,
            http2_keepalive_timeout_secs: 20,
            http2_max_concurrent_streams: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load CAR file {path}: {source}")]
    Car {
        path: PathBuf,
        #[source]
        source: crate::car::CarError,
    },
    #[error(transparent)]
    P2p(#[from] P2pError),
    #[error(transparent)]
    Dns(#[from] crate::names::dnslink::DnsConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The block service for `config`: CAR files first (in the order given),
/// then the on-disk store, then `fetcher` for anything not local.
pub fn block_service(
    config: &Config,
    fetcher: Option<Arc<dyn BlockFetcher>>,
) -> Result<BlockService, StartError> {
    let mut stores: Vec<Arc<dyn BlockStore>> = Vec::new();
    for path in &config.store.car_files {
        let store = CarFileStore::open(path).map_err(|source| StartError::Car {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), blocks = store.len(), roots = ?store.roots().iter().map(ToString::to_string).collect::<Vec<_>>(), "serving CAR");
        stores.push(Arc::new(store));
    }
    let data_dir = config.data_dir();
    let flatfs = FlatFsStore::open(&data_dir).map_err(|source| StartError::DataDir {
        path: data_dir,
        source,
    })?;
    let sweeping = flatfs.clone();
    std::thread::spawn(move || match sweeping.remove_stale_temp_files() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            files = n,
            "removed temporary files left by interrupted writes"
        ),
        Err(e) => tracing::warn!(error = %e, "could not sweep the store's temporary files"),
    });
    stores.push(Arc::new(flatfs));
    Ok(BlockService::new(config.store.cache_bytes, stores, fetcher))
}

/// A gateway bound to its listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    app: axum::Router,
    control_listener: TcpListener,
    control: axum::Router,
    config: ServerConfig,
    shutdown_grace: Duration,
}

impl Server {
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        // One policy for every outbound connection; it learns this
        // process's listening addresses as they are bound.
        let policy = AddressPolicy::new(config.hints.allow_private);
        let node = P2pNode::start(
            &config.p2p,
            &config.dht,
            Some(&data_dir),
            load_or_create_identity(&data_dir)?,
            &crate::fetch::bitswap::protocol::PROTOCOLS,
            policy.clone(),
        )
        .await?;
        tracing::info!(peer_id = %node.peer_id(), "libp2p node started");
        let delegated = Routing::new(config.routing.clone(), policy.clone());
        let routing = ContentRouting::new(
            &node,
            delegated.clone(),
            Duration::from_millis(config.dht.lookup_timeout_ms),
        );
        // IPNS records from the same sources as providers, and from files.
        let mut record_sources: Vec<Arc<dyn crate::names::RecordSource>> =
            vec![Arc::new(crate::names::LocalRecords(data_dir.join("ipns")))];
        if node.has_dht() {
            record_sources.push(Arc::new(crate::names::DhtRecords(node.clone())));
        }
        if let Some(delegated) = &delegated {
            record_sources.push(Arc::new(crate::names::DelegatedRecords(delegated.clone())));
        }
        let dnslink = crate::names::DnsLinkResolver::new(&config.dns)?;
        let names = Arc::new(
            crate::names::Resolver::new(config.names.clone(), record_sources)
                .with_dnslink(Arc::new(dnslink)),
        );
        let fetcher = NetworkFetcher::start(
            node.clone(),
            routing,
            config.retrieval.clone(),
            config.hints.policy,
            policy.clone(),
            &config.bitswap,
        );
        let blocks = block_service(config, Some(Arc::new(fetcher)))?;
        let control_listener =
            TcpListener::bind(config.metrics.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.metrics.listen,
                    source,
                })?;
        let control = crate::control::router(crate::control::Control {
            blocks: blocks.clone(),
            node: node.clone(),
        });
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        for bound in [listener.local_addr(), control_listener.local_addr()]
            .into_iter()
            .flatten()
        {
            policy.add_own_listener(bound);
        }
        let app = router(
            Gateway::new(
                blocks,
                config.gateway.clone(),
                config.hints.clone(),
                config.limits.clone(),
            )
            .with_address_policy(policy)
            .with_sessions(&config.sessions)
            .with_names(names)
            .with_control_address(control_listener.local_addr().ok()),
        );
        Ok(Server {
            listener,
            app,
            control_listener,
            control,
            config: config.server.clone(),
            shutdown_grace: Duration::from_secs(config.limits.shutdown_grace_secs),
        })
    }

    /// Address of the control server (metrics, sessions, health).
    pub fn control_addr(&self) -> std::net::SocketAddr {
        self.control_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets in-flight responses finish.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The control server stops with the gateway: it shares the signal.
        // It listens on a private address, so axum's plain server does.
        let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
        let control =
            axum::serve(self.control_listener, self.control).with_graceful_shutdown(async {
                let _ = control_stopped.await;
            });
        let control = tokio::spawn(std::future::IntoFuture::into_future(control));

        let graceful = GracefulShutdown::new();
        // Connections still open when the grace period ends are dropped.
        let cancel = tokio_util::sync::CancellationToken::new();
        accept_loop(
            self.listener,
            self.app,
            &self.config,
            &graceful,
            &cancel,
            shutdown,
        )
        .await;
        // The listener is closed now: new connections are refused.
        let grace = self.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "shutdown deadline reached; closing responses still in flight"
            );
            cancel.cancel();
        }
        let _ = stop_control.send(());
        let _ = control.await;
        Ok(())
    }
}

/// hyper's connection settings from `[server]`: HTTP/1 and h2c on one port.
fn http_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle time are kept by the connection's clock (see `conn`):
    // hyper's header timer would also cut keep-alive connections short.
    builder.http1().header_read_timeout(None).keep_alive(true);
    let interval = config.http2_keepalive_interval_secs;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .keep_alive_interval((interval > 0).then(|| Duration::from_secs(interval)))
        .keep_alive_timeout(Duration::from_secs(
            config.http2_keepalive_timeout_secs.max(1),
        ));
    builder
}

/// Accepts connections until `shutdown`, at most `max_connections` open
/// at once, each served in its own task.
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    config: &ServerConfig,
    graceful: &GracefulShutdown,
    cancel: &tokio_util::sync::CancellationToken,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let builder = Arc::new(http_builder(config));
    let limits = conn::ConnLimits {
        header_read: Duration::from_secs(config.header_read_timeout_secs.max(1)),
        idle: Duration::from_secs(config.idle_timeout_secs.max(1)),
        write_stall: Duration::from_secs(config.write_timeout_secs.max(1)),
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let mut errors = AcceptErrorLog::default();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        // Past the cap nothing is accepted: clients wait in the backlog.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return, // never closed
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                Metrics::global().accept_errors.inc();
                errors.record(&error);
                if let Some(pause) = accept_backoff(&error) {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        // Small responses (errors, redirects) go out at once.
        let _ = stream.set_nodelay(true);
        let clock = conn::Clock::new(limits);
        let io = TokioIo::new(conn::TimedIo::new(stream, clock.clone()));
        let service = conn::TrackedService {
            router: app.clone(),
            clock,
            peer,
        };
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _open = OpenConnection::new(permit);
            let connection = watcher.watch(builder.serve_connection(io, service));
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "client connection ended with an error");
                    }
                }
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// Holds a connection's slot and counts it in the open-connections gauge.
struct OpenConnection {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(permit: tokio::sync::OwnedSemaphorePermit) -> OpenConnection {
        Metrics::global().open_connections.inc();
        OpenConnection { _permit: permit }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        Metrics::global().open_connections.dec();
    }
}

/// How long the accept loop pauses after `error`. Running out of file
/// descriptors or memory lasts until connections close, and the listener
/// stays readable meanwhile, so accepting again at once would spin; an
/// error that belongs to one connection (reset or aborted before it was
/// accepted) says nothing about the next.
pub fn accept_backoff(error: &std::io::Error) -> Option<Duration> {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionAborted
        | ErrorKind::ConnectionReset
        | ErrorKind::Interrupted
        | ErrorKind::WouldBlock => None,
        // EMFILE, ENFILE, ENOBUFS, ENOMEM and anything unforeseen.
        _ => Some(Duration::from_millis(100)),
    }
}

/// Logs accept errors at most once a second, with how many were not logged.
#[derive(Default)]
struct AcceptErrorLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    fn record(&mut self, error: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, suppressed = self.suppressed, "cannot accept a connection; pausing before the next");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_backs_off_and_a_lost_connection_does_not() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let enfile = std::io::Error::from_raw_os_error(23);
        assert!(accept_backoff(&emfile).is_some());
        assert!(accept_backoff(&enfile).is_some());
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_backoff(&aborted), None);
    }
}
