//! The task-local session: which session the running task is in, how a
//! future enters or leaves one, and how spawned tasks and response bodies
//! carry it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use super::{Session, SessionInner};

tokio::task_local! {
    static CURRENT: Slot;
}

#[derive(Clone)]
enum Slot {
    None,
    Owner(Session),
    /// Held by spawned tasks: sees the session without keeping it alive.
    Observer(Weak<SessionInner>),
}

/// The session of the running task, if any.
pub fn current() -> Option<Session> {
    CURRENT
        .try_with(|slot| match slot {
            Slot::None => None,
            Slot::Owner(session) => Some(session.clone()),
            Slot::Observer(weak) => weak.upgrade().map(Session),
        })
        .ok()
        .flatten()
}

/// Runs `fut` in the current session, or in a new one if there is none.
pub async fn begin<F: Future>(fut: F) -> F::Output {
    match current() {
        Some(_) => fut.await,
        None => CURRENT.scope(Slot::Owner(Session::new()), fut).await,
    }
}

/// Runs `fut` in `session`.
pub async fn within<F: Future>(session: Session, fut: F) -> F::Output {
    CURRENT.scope(Slot::Owner(session), fut).await
}

/// Runs `fut` in a child session that starts with a copy of the current
/// session's rankings; what the child learns stays in the child.
pub async fn fork<F: Future>(fut: F) -> F::Output {
    let ranking = current()
        .map(|s| s.ranking().for_fork())
        .unwrap_or_default();
    CURRENT
        .scope(Slot::Owner(Session::with_ranking(ranking)), fut)
        .await
}

/// Runs `fut` with no session (background work that must not inherit a
/// request's providers).
pub async fn leave<F: Future>(fut: F) -> F::Output {
    CURRENT.scope(Slot::None, fut).await
}

/// Spawns `fut` carrying the current session. The task does not keep the
/// session alive and is aborted when the session ends (its result is then
/// `None`).
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<Option<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (slot, ended) = match current() {
        Some(session) => (
            Slot::Observer(Arc::downgrade(&session.0)),
            Some(session.ended()),
        ),
        None => (Slot::None, None),
    };
    tokio::spawn(async move {
        let work = CURRENT.scope(slot, fut);
        match ended {
            Some(ended) => tokio::select! {
                _ = ended.cancelled() => None,
                out = work => Some(out),
            },
            None => Some(work.await),
        }
    })
}

pin_project_lite::pin_project! {
    /// A response body that keeps its session alive while it streams and
    /// runs every poll inside it, so blocks fetched while writing the body
    /// belong to the request's session.
    pub struct SessionBody<B> {
        session: Session,
        #[pin]
        inner: B,
    }
}

impl<B> SessionBody<B> {
    pub fn new(session: Session, inner: B) -> Self {
        SessionBody { session, inner }
    }
}

impl<B: http_body::Body> http_body::Body for SessionBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let slot = Slot::Owner(this.session.clone());
        let inner = this.inner;
        CURRENT.sync_scope(slot, || inner.poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{live_sessions, ProviderId, ProviderSource};
    use libp2p::PeerId;

    fn provider() -> ProviderId {
        ProviderId::Peer(PeerId::random())
    }

    #[tokio::test]
    async fn begin_is_reentrant() {
        assert!(current().is_none());
        begin(async {
            let outer = current().unwrap().id();
            begin(async move {
                assert_eq!(
                    current().unwrap().id(),
                    outer,
                    "nested begin joins the session"
                );
            })
            .await;
        })
        .await;
        assert!(current().is_none());
    }

    #[tokio::test]
    async fn fork_inherits_rankings_but_not_later_changes() {
        begin(async {
            let parent = current().unwrap();
            let parent_id = parent.id();
            let known = provider();
            parent.add_provider(known.clone(), ProviderSource::Hint);
            let learned_in_child = provider();
            let child_learned = learned_in_child.clone();
            fork(async move {
                let child = current().unwrap();
                assert_ne!(child.id(), parent_id);
                assert!(
                    child.ranked().contains(&known),
                    "child starts with the parent's providers"
                );
                child.add_provider(child_learned, ProviderSource::Routing);
            })
            .await;
            assert!(
                !parent.ranked().contains(&learned_in_child),
                "the child's providers stay in the child"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn leave_runs_without_session() {
        begin(async {
            assert!(current().is_some());
            leave(async { assert!(current().is_none()) }).await;
            assert!(current().is_some());
        })
        .await;
    }

    #[tokio::test]
    #[allow(clippy::async_yields_async)] // the spawned task's handle is the point
    async fn spawn_carries_the_session_without_keeping_it_alive() {
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let session = Session::new();
        let id = session.id();
        let task = within(session.clone(), async move {
            spawn(async move {
                seen_tx.send(current().map(|s| s.id())).unwrap();
                let _ = release_rx.await;
                "finished"
            })
        })
        .await;
        assert_eq!(seen_rx.await.unwrap(), Some(id));
        assert!(live_sessions().iter().any(|s| s.id() == id));
        drop(session);
        assert!(
            !live_sessions().iter().any(|s| s.id() == id),
            "the task does not keep it alive"
        );
        assert_eq!(
            task.await.unwrap(),
            None,
            "the task was aborted when the session ended"
        );
        drop(release_tx);
    }
}
