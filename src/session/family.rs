//! Site sessions: the requests under one content root as one family.
//!
//! A page on IPFS is one request for the page and then dozens for its
//! scripts, styles and images, all under the same root. The first request
//! for a root heads the root's family; a later request for that root, while
//! the head lives or for `[sessions] fork_ttl_secs` after it ended, starts
//! as a fork of it: a copy of the head's providers, their rankings and
//! measured rates, and its content routing clock (the family looked up
//! already: no lookup beside the inherited providers while the parent's
//! is fresh, though a fork whose providers are all out still looks up as
//! a last resort). What a fork learns stays in the fork. Families are kept for
//! at most `[sessions] fork_roots` roots, least recently used first out.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cid::Cid;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::ranking::SessionPeerRanking;
use super::{Session, SessionInner};

/// Site session settings (`[sessions]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Requests under a root with a live (or recently ended) session start
    /// from a copy of it.
    pub fork: bool,
    /// Seconds after its head ended that a root's family still forks.
    pub fork_ttl_secs: u64,
    /// Most roots whose families are remembered (least recently used out).
    pub fork_roots: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            fork: true,
            fork_ttl_secs: 60,
            fork_roots: 1024,
        }
    }
}

/// How a request's session joined its root's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Forking is off.
    Off,
    /// The first session of the root (or the first since its family
    /// expired): later requests fork from it.
    Head,
    /// Started from a copy of session `parent`.
    Forked { parent: u64 },
}

/// One root's family: its head session while it lives, what the head knew
/// when it ended afterwards.
pub(super) struct Family {
    head_id: u64,
    head: Weak<SessionInner>,
    ended: Mutex<Option<Inheritance>>,
}

/// What a fork starts from.
#[derive(Clone)]
struct Inheritance {
    ranking: SessionPeerRanking,
    last_lookup: Option<Instant>,
    at: Instant,
}

impl Family {
    /// Called as the head ends: keeps what it knew for later forks.
    pub(super) fn head_ended(&self, ranking: &SessionPeerRanking, last_lookup: Option<Instant>) {
        *self.ended.lock() = Some(Inheritance {
            ranking: ranking.for_fork(),
            last_lookup,
            at: Instant::now(),
        });
    }

    /// What a fork would start from now, if the family is still current.
    fn inheritance(&self, ttl: Duration) -> Option<Inheritance> {
        if let Some(head) = self.head.upgrade() {
            return Some(Inheritance {
                ranking: head.ranking.lock().for_fork(),
                last_lookup: *head.last_lookup.lock(),
                at: Instant::now(),
            });
        }
        let ended = self.ended.lock();
        ended.as_ref().filter(|e| e.at.elapsed() < ttl).cloned()
    }
}

/// The families of the roots requested lately. Cheap to clone.
#[derive(Clone)]
pub struct Families {
    roots: Option<moka::sync::Cache<Cid, Arc<Family>>>,
    ttl: Duration,
}

impl Families {
    pub fn new(config: &SessionsConfig) -> Families {
        let roots = config.fork.then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.fork_roots.max(1))
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build()
        });
        Families {
            roots,
            ttl: Duration::from_secs(config.fork_ttl_secs),
        }
    }

    /// Makes `session` (new, for a request under `root`) the head of the
    /// root's family, or a fork of its head. A session joins once; later
    /// calls answer what the first did.
    pub fn join(&self, session: &Session, root: &Cid) -> Membership {
        let Some(roots) = &self.roots else {
            return Membership::Off;
        };
        if let Some(joined) = session.membership() {
            return joined;
        }
        // CIDv0 and CIDv1 of one node are one root.
        let key = Cid::new_v1(root.codec(), *root.hash());
        let headed_by = |session: &Session| {
            Arc::new(Family {
                head_id: session.id(),
                head: Arc::downgrade(&session.0),
                ended: Mutex::new(None),
            })
        };
        let family = roots
            .entry(key)
            .or_insert_with(|| headed_by(session))
            .into_value();
        if family.head_id == session.id() {
            session.head(family);
            return Membership::Head;
        }
        if let Some(inherited) = family.inheritance(self.ttl) {
            session.start_from(family.head_id, inherited.ranking, inherited.last_lookup);
            return Membership::Forked {
                parent: family.head_id,
            };
        }
        // Expired: this session heads a new family for the root.
        let family = headed_by(session);
        roots.insert(key, family.clone());
        session.head(family);
        Membership::Head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Outcome, ProviderId, ProviderSource};

    fn root(n: u8) -> Cid {
        use multihash_codetable::{Code, MultihashDigest};
        Cid::new_v1(0x70, Code::Sha2_256.digest(&[n]))
    }

    fn families(ttl_secs: u64, roots: u64) -> Families {
        Families::new(&SessionsConfig {
            fork: true,
            fork_ttl_secs: ttl_secs,
            fork_roots: roots,
        })
    }

    fn provider() -> ProviderId {
        ProviderId::Peer(libp2p::PeerId::random())
    }

    #[test]
    fn the_first_session_of_a_root_heads_it_and_later_ones_fork() {
        let families = families(60, 16);
        let head = Session::new();
        let measured = provider();
        head.add_provider(measured.clone(), ProviderSource::Routing);
        head.record(&measured, Outcome::WantSent);
        assert_eq!(families.join(&head, &root(1)), Membership::Head);
        assert!(head.begin_lookup());

        let child = Session::new();
        let joined = families.join(&child, &root(1));
        assert_eq!(joined, Membership::Forked { parent: head.id() });
        assert_eq!(child.parent(), Some(head.id()));
        assert_eq!(child.ranked(), vec![measured.clone()]);
        // The parent's want in flight stays the parent's.
        assert_eq!(child.stats_of(&measured).map(|s| s.in_flight), Some(0));
        // The family looked up already: no lookup beside the inherited
        // providers, but one as a last resort.
        assert!(!child.lookup_due());
        assert!(child.begin_lookup());
        // Joining again answers the same.
        assert_eq!(families.join(&child, &root(1)), joined);

        // What the child learns stays in the child.
        child.add_provider(provider(), ProviderSource::Hint);
        assert_eq!(head.ranked().len(), 1);

        let elsewhere = Session::new();
        assert_eq!(families.join(&elsewhere, &root(2)), Membership::Head);
    }

    #[test]
    fn a_cidv0_and_its_cidv1_are_one_root() {
        let families = families(60, 16);
        let v1 = root(3);
        let v0 = Cid::new_v0(*v1.hash()).unwrap();
        let head = Session::new();
        families.join(&head, &v0);
        let child = Session::new();
        assert!(matches!(
            families.join(&child, &v1),
            Membership::Forked { .. }
        ));
    }

    #[test]
    fn an_ended_head_forks_until_its_ttl() {
        let families = families(60, 16);
        let head = Session::new();
        let id = head.id();
        let known = provider();
        head.add_provider(known.clone(), ProviderSource::Hint);
        families.join(&head, &root(4));
        drop(head);
        let child = Session::new();
        assert_eq!(
            families.join(&child, &root(4)),
            Membership::Forked { parent: id }
        );
        assert_eq!(child.ranked(), vec![known]);

        let expired = Families::new(&SessionsConfig {
            fork_ttl_secs: 0,
            ..SessionsConfig::default()
        });
        let head = Session::new();
        expired.join(&head, &root(5));
        drop(head);
        let late = Session::new();
        assert_eq!(expired.join(&late, &root(5)), Membership::Head);
        // The late session heads the root now.
        let next = Session::new();
        assert_eq!(
            expired.join(&next, &root(5)),
            Membership::Forked { parent: late.id() }
        );
    }

    #[test]
    fn roots_are_bounded_and_forking_can_be_off() {
        let families = families(60, 4);
        let heads: Vec<Session> = (0..64)
            .map(|n| {
                let s = Session::new();
                families.join(&s, &root(100 + n));
                s
            })
            .collect();
        families.roots.as_ref().unwrap().run_pending_tasks();
        assert!(families.roots.as_ref().unwrap().entry_count() <= 4);
        drop(heads);

        let off = Families::new(&SessionsConfig {
            fork: false,
            ..SessionsConfig::default()
        });
        let a = Session::new();
        assert_eq!(off.join(&a, &root(6)), Membership::Off);
        let b = Session::new();
        assert_eq!(off.join(&b, &root(6)), Membership::Off);
        assert_eq!(b.parent(), None);
    }
}
