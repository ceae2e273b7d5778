//! One provider lookup across every content routing source at once: the
//! DHT and the delegated routers are asked in parallel, and providers are
//! passed on as they arrive from any of them, each tagged with its source.
//! Each source ends with a [`LookupRecord`] (what it answered, how long it
//! took, when its first provider came), counted in metrics by source and
//! outcome.

use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ProviderHint, Routing};
use crate::metrics::{Metrics, RouterLabel, RouterLabels};
use crate::p2p::P2pNode;
use crate::session::{LookupOutcome, LookupRecord};

/// Where a provider came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterSource {
    Dht,
    Delegated,
}

impl RouterSource {
    pub fn label(self) -> &'static str {
        match self {
            RouterSource::Dht => "dht",
            RouterSource::Delegated => "delegated",
        }
    }
}

/// What a running lookup reports.
#[derive(Debug)]
pub enum LookupEvent {
    Provider {
        source: RouterSource,
        hint: ProviderHint,
    },
    /// A source's first provider came: its lookup so far (replaced by
    /// its `Done` record later), so a response that starts now shows it.
    Progress(LookupRecord),
    /// A source is done; the channel closes after the last.
    Done(LookupRecord),
}

/// Every content routing source the node has.
pub struct ContentRouting {
    dht: Option<P2pNode>,
    delegated: Option<Arc<Routing>>,
    /// The longest a DHT lookup runs (the DHT's own deadline, plus slack).
    dht_deadline: Duration,
}

impl ContentRouting {
    /// Routing through the DHT of `node` (if it runs one) and `delegated`
    /// (if any endpoints are configured); `None` if there is neither.
    pub fn new(
        node: &P2pNode,
        delegated: Option<Arc<Routing>>,
        dht_lookup_timeout: Duration,
    ) -> Option<Arc<ContentRouting>> {
        let dht = node.has_dht().then(|| node.clone());
        if dht.is_none() && delegated.is_none() {
            return None;
        }
        Some(Arc::new(ContentRouting {
            dht,
            delegated,
            dht_deadline: dht_lookup_timeout + Duration::from_secs(1),
        }))
    }

    /// Sources that will be asked, for messages.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut sources = Vec::new();
        if self.dht.is_some() {
            sources.push(RouterSource::Dht.label());
        }
        if self.delegated.is_some() {
            sources.push(RouterSource::Delegated.label());
        }
        sources
    }

    /// Starts looking `cid` up everywhere at once.
    pub fn find_providers(&self, cid: Cid) -> mpsc::Receiver<LookupEvent> {
        let (events, receiver) = mpsc::channel(64);
        if let Some(node) = &self.dht {
            let found = node.find_providers(&cid);
            let (events, deadline) = (events.clone(), self.dht_deadline);
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tally = Tally::new(RouterSource::Dht, started);
                let outcome = match found {
                    None => LookupOutcome::Failed,
                    Some(mut found) => loop {
                        let next = tokio::time::timeout_at(started + deadline, found.recv()).await;
                        match next {
                            Ok(Some(provider)) => {
                                if tally.provider() {
                                    let _ =
                                        events.send(LookupEvent::Progress(tally.so_far())).await;
                                }
                                let hint = ProviderHint::Peer {
                                    peer: provider.peer,
                                    addrs: provider.addrs,
                                };
                                let event = LookupEvent::Provider {
                                    source: RouterSource::Dht,
                                    hint,
                                };
                                if events.send(event).await.is_err() {
                                    // Nobody listens: dropping `found` ends the query.
                                    return;
                                }
                            }
                            Ok(None) => break tally.outcome_if_answered(),
                            Err(_) => break LookupOutcome::Timeout,
                        }
                    },
                };
                let _ = events
                    .send(LookupEvent::Done(tally.finish(outcome, None)))
                    .await;
            });
        }
        if let Some(routing) = &self.delegated {
            let (events, routing) = (events.clone(), routing.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tally = Tally::new(RouterSource::Delegated, started);
                let answer = routing.find_providers(&cid).await;
                for hint in &answer.providers {
                    if tally.provider() {
                        let _ = events.send(LookupEvent::Progress(tally.so_far())).await;
                    }
                    let event = LookupEvent::Provider {
                        source: RouterSource::Delegated,
                        hint: hint.clone(),
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                let (outcome, detail) = if !answer.providers.is_empty() {
                    (LookupOutcome::Found, None)
                } else if !answer.failures.is_empty() {
                    (LookupOutcome::Failed, Some(answer.failures.join(", ")))
                } else if answer.timeouts > 0 {
                    (LookupOutcome::Timeout, None)
                } else {
                    (LookupOutcome::None, None)
                };
                let _ = events
                    .send(LookupEvent::Done(tally.finish(outcome, detail)))
                    .await;
            });
        }
        receiver
    }
}

/// Counts one source's providers as they come.
struct Tally {
    source: RouterSource,
    started: Instant,
    providers: usize,
    first: Option<Duration>,
}

impl Tally {
    fn new(source: RouterSource, started: Instant) -> Tally {
        Tally {
            source,
            started,
            providers: 0,
            first: None,
        }
    }

    /// Counts a provider; true for the first.
    fn provider(&mut self) -> bool {
        self.providers += 1;
        let label = RouterLabel {
            source: self.source.label().into(),
        };
        let metrics = Metrics::global();
        metrics.router_providers_found.get_or_create(&label).inc();
        if self.first.is_none() {
            let after = self.started.elapsed();
            self.first = Some(after);
            metrics
                .router_first_provider
                .get_or_create(&label)
                .observe(after.as_secs_f64());
            return true;
        }
        false
    }

    /// The lookup as it stands: found, still running.
    fn so_far(&self) -> LookupRecord {
        LookupRecord {
            source: self.source.label(),
            outcome: LookupOutcome::Found,
            providers: self.providers,
            took: self.started.elapsed(),
            first_provider: self.first,
            detail: None,
            started: self.started.into_std(),
        }
    }

    fn outcome_if_answered(&self) -> LookupOutcome {
        if self.providers > 0 {
            LookupOutcome::Found
        } else {
            LookupOutcome::None
        }
    }

    fn finish(self, outcome: LookupOutcome, detail: Option<String>) -> LookupRecord {
        // A lookup that found providers found them, whatever ended it.
        let outcome = if self.providers > 0 {
            LookupOutcome::Found
        } else {
            outcome
        };
        Metrics::global()
            .router_lookups
            .get_or_create(&RouterLabels {
                source: self.source.label().into(),
                outcome: outcome.label().into(),
            })
            .inc();
        LookupRecord {
            source: self.source.label(),
            outcome,
            providers: self.providers,
            took: self.started.elapsed(),
            first_provider: self.first,
            detail,
            started: self.started.into_std(),
        }
    }
}
