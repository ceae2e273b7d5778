//! Assembling and running the gateway from a [`Config`]: the block stores,
//! the libp2p node and Bitswap client, the block service, the HTTP listener
//! and graceful shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::blocks::{BlockService, BlockStore, CarFileStore, FlatFsStore};
use crate::config::Config;
use crate::dial::AddressPolicy;
use crate::fetch::{BlockFetcher, NetworkFetcher};
use crate::gateway::{router, Gateway};
use crate::p2p::{load_or_create_identity, Node, P2pError};
use crate::routing::Routing;

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
    stores.push(Arc::new(flatfs));
    Ok(BlockService::new(config.store.cache_bytes, stores, fetcher))
}

/// A gateway bound to its listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    app: axum::Router,
    control_listener: TcpListener,
    control: axum::Router,
    shutdown_grace: std::time::Duration,
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
        let node = Node::start(
            &config.p2p,
            load_or_create_identity(&data_dir)?,
            &crate::fetch::bitswap::protocol::PROTOCOLS,
            policy.clone(),
        )
        .await?;
        tracing::info!(peer_id = %node.peer_id(), "libp2p node started");
        let routing = Routing::new(config.routing.clone(), policy.clone());
        let fetcher = NetworkFetcher::start(
            node.clone(),
            routing,
            config.retrieval.clone(),
            policy.clone(),
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
            .with_address_policy(policy),
        );
        Ok(Server {
            listener,
            app,
            control_listener,
            control,
            shutdown_grace: std::time::Duration::from_secs(config.limits.shutdown_grace_secs),
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
        let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
        let control =
            axum::serve(self.control_listener, self.control).with_graceful_shutdown(async {
                let _ = control_stopped.await;
            });
        let control = tokio::spawn(std::future::IntoFuture::into_future(control));
        // After the signal, responses in flight get `grace` to finish.
        let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
        let graceful = axum::serve(self.listener, self.app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled.send(true);
        });
        let grace = self.shutdown_grace;
        let deadline = async move {
            let _ = on_signal.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = graceful => served,
            _ = deadline => {
                tracing::warn!(?grace, "shutdown deadline reached; closing responses still in flight");
                Ok(())
            }
        };
        let _ = stop_control.send(());
        let _ = control.await;
        served
    }
}
