//! What one fetch has asked so far, and when a want at a provider
//! becomes overdue.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::fetch::LinkProgress;
use crate::session::{ProviderId, Session};

/// What one fetch has asked so far.
#[derive(Default)]
pub(super) struct WantState {
    pub(super) block_targets: HashSet<ProviderId>,
    pub(super) sent_at: HashMap<ProviderId, Instant>,
    pub(super) hedged: HashSet<ProviderId>,
    pub(super) said_have: HashSet<ProviderId>,
    pub(super) have_sent: HashSet<ProviderId>,
    /// WANT_HAVE sent, no answer yet.
    pub(super) have_asked: HashSet<ProviderId>,
    /// When each WANT_HAVE went out (for a first round-trip estimate).
    pub(super) have_sent_at: HashMap<ProviderId, Instant>,
    pub(super) excluded: HashSet<ProviderId>,
    /// Wants the provider already had in flight when this one was sent.
    pub(super) queued_behind: HashMap<ProviderId, u32>,
    /// How often a want was sent again to a provider: each doubles its wait.
    pub(super) resends: HashMap<ProviderId, u32>,
    /// How often sending to a provider failed.
    pub(super) unreachable: HashMap<ProviderId, u32>,
    /// Providers that asked us to back off, and when to ask again.
    pub(super) retry_at: HashMap<ProviderId, Instant>,
}

impl WantState {
    pub(super) fn exclude(&mut self, provider: &ProviderId) {
        self.excluded.insert(provider.clone());
        self.block_targets.remove(provider);
        self.said_have.remove(provider);
        self.have_asked.remove(provider);
        self.retry_at.remove(provider);
    }

    pub(super) fn nothing_pending(&self) -> bool {
        self.block_targets.is_empty() && self.have_asked.is_empty() && self.retry_at.is_empty()
    }

    /// When the want at `provider` becomes overdue. A provider works
    /// through its wants in order, so one that keeps sending bytes is not
    /// hedged however long its queue: the want is overdue when the provider
    /// has sent nothing for a hedge delay (it stalled), or — a backstop for
    /// a want it lost — when the want is twice as old as its place in the
    /// queue explains.
    pub(super) fn due_at(
        &self,
        session: &Session,
        progress: &LinkProgress,
        provider: &ProviderId,
    ) -> Option<Instant> {
        let sent = *self.sent_at.get(provider)?;
        let backoff = 1u32 << self.resends.get(provider).copied().unwrap_or(0).min(5);
        let delay = session.hedge_delay(provider) * backoff;
        let last_block = session.stats_of(provider).and_then(|s| s.last_block_at());
        let last_bytes = progress.last(provider);
        let last_progress = [last_block, last_bytes]
            .into_iter()
            .flatten()
            .map(Instant::from_std)
            .fold(sent, Instant::max);
        let queue = 1 + self
            .queued_behind
            .get(provider)
            .copied()
            .unwrap_or(0)
            .min(64);
        Some((last_progress + delay).min(sent + delay * queue * 2))
    }

    /// True if every provider asked for the block is an HTTP gateway with so
    /// many requests queued ahead of this one that `other` (which says it
    /// has the block) would deliver it in under half the time left. A burst
    /// of wants sent before a second provider was measured all sits at the
    /// first one: this moves the far end of that queue. Only a gateway's
    /// queue is moved: a request still waiting for its link is aborted
    /// before it starts when the block arrives from `other`, while a
    /// Bitswap peer (Helia) takes every want it holds into its next send,
    /// so a want moved away from one mostly arrives twice (23.8% duplicate
    /// bytes between two equal Helia providers when it did).
    pub(super) fn queued_far_behind(&self, session: &Session, other: &ProviderId) -> bool {
        let Some(cost) = session.cost_of(other) else {
            return false;
        };
        let other_done = Duration::from_secs_f64(cost / 1000.0);
        let now = Instant::now();
        self.block_targets
            .iter()
            .filter(|t| !self.hedged.contains(*t))
            .all(|target| {
                if !matches!(target, ProviderId::Http(_)) {
                    return false;
                }
                let ahead = self.queued_behind.get(target).copied().unwrap_or(0);
                let (Some(sent), Some(takes)) = (
                    self.sent_at.get(target),
                    session.completion_behind(target, ahead.min(64)),
                ) else {
                    return false;
                };
                (*sent + takes).saturating_duration_since(now) > other_done * 2
            })
    }

    /// When the next outstanding, not yet hedged want becomes overdue.
    pub(super) fn next_hedge(&self, session: &Session, progress: &LinkProgress) -> Option<Instant> {
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .filter_map(|p| self.due_at(session, progress, p))
            .min()
    }

    pub(super) fn overdue(&self, session: &Session, progress: &LinkProgress) -> Option<ProviderId> {
        let now = Instant::now();
        self.block_targets
            .iter()
            .filter(|p| !self.hedged.contains(*p))
            .find(|p| self.due_at(session, progress, p).is_some_and(|t| t <= now))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Outcome, ProviderSource};

    #[tokio::test]
    async fn only_a_deep_gateway_queue_is_moved_to_a_provider_that_has_the_block() {
        let session = Session::new();
        let gateway = ProviderId::Http("http://gateway.example".into());
        let peer = ProviderId::Peer(libp2p::PeerId::random());
        for provider in [&gateway, &peer] {
            session.add_provider(provider.clone(), ProviderSource::Hint);
            session.record(
                provider,
                Outcome::Answered {
                    rtt: Duration::from_millis(20),
                },
            );
        }
        let asked = |target: &ProviderId, ahead: u32| {
            let mut state = WantState::default();
            state.block_targets.insert(target.clone());
            state.sent_at.insert(target.clone(), Instant::now());
            state.queued_behind.insert(target.clone(), ahead);
            state
        };
        assert!(asked(&gateway, 15).queued_far_behind(&session, &peer));
        assert!(
            !asked(&gateway, 0).queued_far_behind(&session, &peer),
            "next in line at the gateway"
        );
        assert!(
            !asked(&peer, 15).queued_far_behind(&session, &gateway),
            "a Bitswap peer sends what it holds anyway"
        );
    }
}
