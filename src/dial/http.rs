//! The HTTP client every outbound HTTP request goes through (trustless
//! gateways, delegated routers), with the [`AddressPolicy`] applied where
//! the address is known: to an IP-literal URL's address before the request
//! is made (the URL parser has already turned `127.1` or `0x7f000001` into
//! the address that will be dialled), inside the resolver to every address
//! a name resolves to (so a name cannot be re-pointed between a check and
//! the dial), and once more on the connected socket, which catches a public
//! address of this machine dialled back to one of its own ports.
//! Redirects are never followed and no proxy from the environment is used.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{ClientBuilder, RequestBuilder, Url};

use super::{count_refusal, AddressPolicy, Refusal};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request was not made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{addr} is not dialled: {reason}")]
    Refused { addr: SocketAddr, reason: Refusal },
}

/// An HTTP client bound to an address policy. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: AddressPolicy,
    label: &'static str,
}

impl HttpClient {
    /// A client for `label` (`http` for providers, `routing` for routers)
    /// whose requests pass `policy`, except to `trusted` URLs (the
    /// operator's own configuration), which may be private. `configure`
    /// sets timeouts and the like.
    pub fn new(
        label: &'static str,
        policy: AddressPolicy,
        trusted: &[String],
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> HttpClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut trusted_hosts = HashSet::new();
        for url in trusted.iter().filter_map(|u| Url::parse(u).ok()) {
            match url.host() {
                Some(url::Host::Domain(name)) => {
                    trusted_hosts.insert(name.trim_end_matches('.').to_ascii_lowercase());
                }
                Some(url::Host::Ipv4(ip)) => policy.trust(SocketAddr::new(
                    ip.into(),
                    url.port_or_known_default().unwrap_or(80),
                )),
                Some(url::Host::Ipv6(ip)) => policy.trust(SocketAddr::new(
                    ip.into(),
                    url.port_or_known_default().unwrap_or(80),
                )),
                None => {}
            }
        }
        let resolver = PolicyResolver {
            policy: policy.clone(),
            trusted_hosts: Arc::new(trusted_hosts),
            label,
        };
        let connected_check = ConnectedCheckLayer {
            policy: policy.clone(),
            label,
        };
        let builder = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(resolver)
            .connector_layer(connected_check);
        let client = configure(builder)
            .build()
            .expect("an HTTP client with these settings builds");
        HttpClient {
            client,
            policy,
            label,
        }
    }

    /// A GET of `url`, or why it may not be made.
    pub fn get(&self, url: &str) -> Result<RequestBuilder, DialError> {
        Ok(self.client.get(self.checked(url)?))
    }

    /// A HEAD of `url`, or why it may not be made.
    pub fn head(&self, url: &str) -> Result<RequestBuilder, DialError> {
        Ok(self.client.head(self.checked(url)?))
    }

    /// `url` parsed, with an IP-literal host checked against the policy
    /// (a named host is checked by the resolver, on what it resolves to).
    pub fn checked(&self, url: &str) -> Result<Url, DialError> {
        let parsed = Url::parse(url).map_err(|e| DialError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DialError::BadUrl {
                url: url.to_string(),
                reason: "only http and https are fetched".into(),
            });
        }
        if parsed.host().is_none() {
            return Err(DialError::BadUrl {
                url: url.to_string(),
                reason: "no host".into(),
            });
        }
        match self.policy.check_url(&parsed) {
            Ok(()) => Ok(parsed),
            Err((addr, reason)) => {
                count_refusal(self.label, addr, reason);
                Err(DialError::Refused { addr, reason })
            }
        }
    }
}

/// Resolves names with the system resolver (so `/etc/hosts` counts) and
/// keeps only the addresses the policy allows.
struct PolicyResolver {
    policy: AddressPolicy,
    trusted_hosts: Arc<HashSet<String>>,
    label: &'static str,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let trusted = self.trusted_hosts.contains(&host);
        let policy = self.policy.clone();
        let label = self.label;
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::new();
            let mut refused = None;
            for addr in resolved {
                // The port is not known here (the client sets it later);
                // own listeners are caught on the connected socket.
                let verdict = if trusted { Ok(()) } else { policy.check(addr) };
                match verdict {
                    Ok(()) => allowed.push(addr),
                    Err(reason) => {
                        count_refusal(label, addr, reason);
                        refused = Some((addr, reason));
                    }
                }
            }
            if allowed.is_empty() {
                let reason = match refused {
                    Some((addr, reason)) => {
                        format!(
                            "{host} resolves to {} ({reason}), which is not dialled",
                            addr.ip()
                        )
                    }
                    None => format!("{host} has no address"),
                };
                return Err(reason.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Checks the socket the connector established before any byte of the
/// request is written on it.
#[derive(Clone)]
struct ConnectedCheckLayer {
    policy: AddressPolicy,
    label: &'static str,
}

impl<S> tower::Layer<S> for ConnectedCheckLayer {
    type Service = ConnectedCheck<S>;

    fn layer(&self, inner: S) -> ConnectedCheck<S> {
        ConnectedCheck {
            inner,
            policy: self.policy.clone(),
            label: self.label,
        }
    }
}

#[derive(Clone)]
struct ConnectedCheck<S> {
    inner: S,
    policy: AddressPolicy,
    label: &'static str,
}

impl<S, R> tower::Service<R> for ConnectedCheck<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Response: Connection + Send,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let policy = self.policy.clone();
        let label = self.label;
        Box::pin(async move {
            let conn = connecting.await.map_err(Into::into)?;
            let mut extensions = http::Extensions::new();
            conn.connected().get_extras(&mut extensions);
            if let Some(info) = extensions.get::<HttpInfo>() {
                let (remote, local) = (info.remote_addr(), info.local_addr());
                if let Err(reason) = policy.check_connected(remote, local) {
                    count_refusal(label, remote, reason);
                    return Err(format!("connected to {remote}, which is {reason}").into());
                }
            }
            Ok(conn)
        })
    }
}
