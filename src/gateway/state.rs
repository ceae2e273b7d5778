//! The state the gateway's layers and handlers share: [`Gateway`], built
//! once, and [`Ctx`], what one content request's handler gets. A module of
//! its own so that handlers and middleware depend on it, not on the module
//! that composes them.

use std::sync::Arc;

use axum::http::Method;

use super::config::GatewayConfig;
use super::limits::LimitsConfig;
use super::redirects::RulesCache;
use super::request::ContentRequest;
use crate::blocks::read_ahead::ReadAheadPool;
use crate::blocks::BlockService;
use crate::dial::AddressPolicy;
use crate::names::Resolver;
use crate::routing::{HintLimiter, HintsConfig};
use crate::session::{Families, SessionsConfig};

/// What every handler needs.
pub struct Gateway {
    pub blocks: BlockService,
    pub config: GatewayConfig,
    pub hints: HintsConfig,
    pub limits: LimitsConfig,
    /// Bytes all responses hold fetched ahead of their writers.
    pub read_ahead: ReadAheadPool,
    /// Hints are checked against it as they are parsed.
    pub address_policy: AddressPolicy,
    /// The dials hints may cause, per client and in total.
    pub hint_limits: HintLimiter,
    /// Resolves `/ipns/` names; `None`: names are not served.
    pub names: Option<Arc<Resolver>>,
    /// The control server's address (metrics, health), for the page at `/`.
    pub control_addr: Option<std::net::SocketAddr>,
    /// Slots for content requests answered at once (`middleware`).
    pub(super) concurrency: Arc<tokio::sync::Semaphore>,
    /// Sites' parsed `_redirects` files, by the file's CID.
    pub(super) redirect_rules: RulesCache,
    /// Each root's family of sessions (`[sessions] fork`).
    pub(super) families: Families,
}

impl Gateway {
    pub fn new(
        blocks: BlockService,
        config: GatewayConfig,
        hints: HintsConfig,
        limits: LimitsConfig,
    ) -> Gateway {
        let concurrency = Arc::new(tokio::sync::Semaphore::new(
            limits.max_concurrent_requests.max(1),
        ));
        Gateway {
            blocks,
            config,
            address_policy: AddressPolicy::new(hints.allow_private),
            hint_limits: HintLimiter::new(&hints),
            names: None,
            control_addr: None,
            hints,
            read_ahead: ReadAheadPool::new(limits.read_ahead()),
            limits,
            concurrency,
            redirect_rules: RulesCache::new(),
            families: Families::new(&SessionsConfig::default()),
        }
    }

    /// Forks requests from their root's earlier session as `config` says.
    pub fn with_sessions(mut self, config: &SessionsConfig) -> Gateway {
        self.families = Families::new(config);
        self
    }

    /// Checks hints against `policy` (the process's, which knows its own
    /// listening addresses) instead of a policy of its own.
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Gateway {
        self.address_policy = policy;
        self
    }

    /// Names `addr` as where metrics and health live, on the page at `/`.
    pub fn with_control_address(mut self, addr: Option<std::net::SocketAddr>) -> Gateway {
        self.control_addr = addr;
        self
    }

    /// Serves `/ipns/` names through `names`.
    pub fn with_names(mut self, names: Arc<Resolver>) -> Gateway {
        self.names = Some(names);
        self
    }
}

/// Everything a handler gets: the parsed request, the raw HTTP parts (for
/// conditional and range headers), and the block service to read from.
pub struct Ctx<'a> {
    pub gateway: &'a Gateway,
    pub http: &'a axum::http::request::Parts,
    pub request: ContentRequest,
    pub blocks: BlockService,
}

impl Ctx<'_> {
    pub fn is_head(&self) -> bool {
        self.http.method == Method::HEAD
    }
}
