//! Rate limits on the dials provider hints make sluice do (IPIP-0504: a
//! gateway that evaluates hints beside routing rate-limits them), per
//! client and in total.
//!
//! - **A dial** is a provider (a Bitswap peer or an HTTP gateway) that a
//!   request's hints name and that the same client has not named in the
//!   last minute. A provider named again within the minute is free: the
//!   connection, if one was made, is reused, and the work a request's
//!   hints cause is bounded by `[hints] max_per_request` anyway. A
//!   provider the process is already connected to for another reason
//!   still counts: the gateway cannot tell cheaply, and a limit a client
//!   can steer by naming popular peers first would be weaker.
//! - **The client** is the TCP peer address of the connection
//!   ([`client_key`]): an IPv4 address, an IPv6 client by its /64 (one
//!   host commonly holds a whole /64), an IPv4-mapped IPv6 address as the
//!   IPv4 address. No `X-Forwarded-For`: there is no trusted proxy to
//!   believe it from.
//! - **All or nothing.** A request whose new dials would take its client
//!   past `max_dials_per_minute_per_client`, or the process past
//!   `max_dials_per_minute`, uses none of its hints ([`Verdict`]); it is
//!   still served, through content routing. Ignored hints cost nothing.
//! - **Windows** slide over the last [`WINDOW`]: each dial is remembered
//!   with its time and forgotten a minute later.
//! - **Bounded memory**: at most `max_clients` clients are remembered
//!   (least recently seen dropped first, and any client unseen for a
//!   minute, who has no dial left in the window), each with at most its
//!   limit of dials; the total window holds at most `max_dials_per_minute`
//!   times. Forgetting a client early only lets it dial sooner; the total
//!   limit still holds.
//!
//! [`HintLimits`] is the pure policy (time comes in); [`HintLimiter`]
//! wraps it for the gateway: a lock, the clock, and the metrics.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::hints::{HintsConfig, ProviderHint};
use crate::metrics::Metrics;

/// How far back the limits look.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Clients remembered at once (each at most its per-client limit of
/// dials, 24 bytes each).
pub const MAX_CLIENTS: usize = 16_384;

/// Who a request's dials are counted against: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(IpAddr);

/// The client a TCP peer address counts as.
pub fn client_key(addr: IpAddr) -> ClientKey {
    match addr {
        IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ClientKey(IpAddr::V4(v4)),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        },
    }
}

/// What a request's hints may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Use them; `dials` of them were new and were counted.
    Admit { dials: usize },
    /// Ignore them: the client is at its limit.
    ClientRate,
    /// Ignore them: the process is at its limit.
    TotalRate,
}

struct Client {
    /// Its place in `by_age` (larger: seen more recently).
    seen_seq: u64,
    seen_at: Instant,
    /// Providers it named (by key) and when, oldest first.
    dials: VecDeque<(u64, Instant)>,
}

/// The per-client and total sliding windows (see the module doc).
pub struct HintLimits {
    per_client: usize,
    total: usize,
    clients: Clients,
    /// When each dial in the window was counted, oldest first.
    recent: VecDeque<Instant>,
}

impl HintLimits {
    /// `per_client` and `total` are dials per `WINDOW`; 0 admits no new dial.
    pub fn new(per_client: usize, total: usize, max_clients: usize) -> HintLimits {
        HintLimits {
            per_client,
            total,
            clients: Clients {
                max: max_clients.max(1),
                by_key: HashMap::new(),
                by_age: BTreeMap::new(),
                next_seq: 0,
            },
            recent: VecDeque::new(),
        }
    }

    /// Decides on a request from `client` whose hints name `providers`
    /// (keys of provider identities; repeats are one), and counts its new
    /// dials if it is admitted.
    pub fn check(&mut self, client: ClientKey, providers: &[u64], now: Instant) -> Verdict {
        let expired = |at: Instant| now.saturating_duration_since(at) >= WINDOW;
        while self.recent.front().is_some_and(|at| expired(*at)) {
            self.recent.pop_front();
        }
        self.clients.forget_quiet(now);
        let entry = self.clients.touch(client, now);
        while entry.dials.front().is_some_and(|(_, at)| expired(*at)) {
            entry.dials.pop_front();
        }
        let mut new: Vec<u64> = providers
            .iter()
            .copied()
            .filter(|p| !entry.dials.iter().any(|(known, _)| known == p))
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return Verdict::Admit { dials: 0 };
        }
        if entry.dials.len() + new.len() > self.per_client {
            return Verdict::ClientRate;
        }
        if self.recent.len() + new.len() > self.total {
            return Verdict::TotalRate;
        }
        entry.dials.extend(new.iter().map(|p| (*p, now)));
        self.recent.extend(std::iter::repeat_n(now, new.len()));
        Verdict::Admit { dials: new.len() }
    }

    /// Clients remembered now.
    pub fn clients(&self) -> usize {
        self.clients.by_key.len()
    }

    /// Dials counted in the total window now.
    pub fn dials_in_window(&self) -> usize {
        self.recent.len()
    }
}

/// The clients remembered: a map bounded to `max`, least recently seen
/// dropped first.
struct Clients {
    max: usize,
    by_key: HashMap<ClientKey, Client>,
    /// Clients by when they were last seen, oldest first.
    by_age: BTreeMap<u64, ClientKey>,
    next_seq: u64,
}

impl Clients {
    /// Drops clients unseen for a whole window: none of their dials count.
    fn forget_quiet(&mut self, now: Instant) {
        while let Some((&seq, &key)) = self.by_age.first_key_value() {
            let quiet = self
                .by_key
                .get(&key)
                .is_none_or(|c| now.saturating_duration_since(c.seen_at) >= WINDOW);
            if !quiet {
                break;
            }
            self.by_age.remove(&seq);
            self.by_key.remove(&key);
        }
    }

    /// The client's state, marked as seen now; a new client may push out
    /// the one seen least recently.
    fn touch(&mut self, key: ClientKey, now: Instant) -> &mut Client {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.by_key.get(&key).map(|c| c.seen_seq) {
            self.by_age.remove(&old);
        } else if self.by_key.len() >= self.max {
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.by_key.remove(&oldest);
            }
        }
        self.by_age.insert(seq, key);
        let client = self.by_key.entry(key).or_insert_with(|| Client {
            seen_seq: seq,
            seen_at: now,
            dials: VecDeque::new(),
        });
        client.seen_seq = seq;
        client.seen_at = now;
        client
    }
}

/// [`HintLimits`] for the gateway: shared by every request, on the
/// process's clock, counting what it ignores in `sluice_hints_ignored_total`.
pub struct HintLimiter {
    limits: parking_lot::Mutex<HintLimits>,
    /// Keys providers by identity; random per process, so no client can
    /// craft two providers that count as one.
    keys: RandomState,
}

impl HintLimiter {
    pub fn new(config: &HintsConfig) -> HintLimiter {
        HintLimiter {
            limits: parking_lot::Mutex::new(HintLimits::new(
                config.max_dials_per_minute_per_client,
                config.max_dials_per_minute,
                MAX_CLIENTS,
            )),
            keys: RandomState::new(),
        }
    }

    /// The hints a request from `client` (its TCP peer address; `None`
    /// when the router is driven without a connection, all such requests
    /// one client) may use: all of them, or none past a limit.
    pub fn admit(&self, client: Option<IpAddr>, hints: Vec<ProviderHint>) -> Vec<ProviderHint> {
        if hints.is_empty() {
            return hints;
        }
        let client = client_key(client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        let providers: Vec<u64> = hints.iter().map(|h| self.key_of(h)).collect();
        let verdict = self.limits.lock().check(client, &providers, Instant::now());
        let metrics = Metrics::global();
        let reason = match verdict {
            Verdict::Admit { dials } => {
                metrics.hint_dials.inc_by(dials as u64);
                return hints;
            }
            Verdict::ClientRate => "client_rate",
            Verdict::TotalRate => "total_rate",
        };
        tracing::debug!(
            ?client,
            hints = hints.len(),
            reason,
            "provider hints ignored"
        );
        metrics
            .hints_ignored
            .get_or_create(&crate::metrics::HintsIgnoredLabels {
                reason: reason.into(),
            })
            .inc_by(hints.len() as u64);
        Vec::new()
    }

    fn key_of(&self, hint: &ProviderHint) -> u64 {
        match hint {
            ProviderHint::Peer { peer, .. } => self.keys.hash_one(peer.to_bytes()),
            ProviderHint::Http { url } => self.keys.hash_one(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> ClientKey {
        client_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    #[test]
    fn a_client_past_its_limit_is_refused_until_its_dials_age_out() {
        let mut limits = HintLimits::new(3, 100, 16);
        let t0 = Instant::now();
        assert_eq!(
            limits.check(v4(1), &[1, 2], t0),
            Verdict::Admit { dials: 2 }
        );
        assert_eq!(
            limits.check(v4(1), &[3, 4], t0 + Duration::from_secs(10)),
            Verdict::ClientRate,
            "2 + 2 new dials is past 3"
        );
        assert_eq!(
            limits.check(v4(1), &[3], t0 + Duration::from_secs(20)),
            Verdict::Admit { dials: 1 },
            "a refused request counted nothing"
        );
        assert_eq!(
            limits.check(v4(1), &[5], t0 + Duration::from_secs(59)),
            Verdict::ClientRate
        );
        // The first two dials leave the window at t0 + 60 s; the third stays.
        assert_eq!(
            limits.check(v4(1), &[5, 6], t0 + WINDOW),
            Verdict::Admit { dials: 2 }
        );
        assert_eq!(limits.check(v4(1), &[7], t0 + WINDOW), Verdict::ClientRate);
    }

    #[test]
    fn providers_named_again_within_the_window_are_free() {
        let mut limits = HintLimits::new(2, 2, 16);
        let t0 = Instant::now();
        assert_eq!(
            limits.check(v4(1), &[1, 2, 2], t0),
            Verdict::Admit { dials: 2 }
        );
        for s in 1..60 {
            assert_eq!(
                limits.check(v4(1), &[2, 1], t0 + Duration::from_secs(s)),
                Verdict::Admit { dials: 0 }
            );
        }
        // A repeat does not extend the window: after a minute it is a dial again.
        assert_eq!(
            limits.check(v4(1), &[1], t0 + WINDOW),
            Verdict::Admit { dials: 1 }
        );
    }

    #[test]
    fn the_total_limit_holds_across_clients() {
        let mut limits = HintLimits::new(10, 3, 16);
        let t0 = Instant::now();
        assert_eq!(
            limits.check(v4(1), &[1, 2], t0),
            Verdict::Admit { dials: 2 }
        );
        assert_eq!(limits.check(v4(2), &[1], t0), Verdict::Admit { dials: 1 });
        assert_eq!(limits.check(v4(3), &[9], t0), Verdict::TotalRate);
        assert_eq!(limits.dials_in_window(), 3);
        // A client's own repeats stay free at the total limit.
        assert_eq!(limits.check(v4(1), &[2], t0), Verdict::Admit { dials: 0 });
        assert_eq!(
            limits.check(v4(3), &[9], t0 + WINDOW),
            Verdict::Admit { dials: 1 }
        );
        assert_eq!(limits.dials_in_window(), 1);
    }

    #[test]
    fn zero_admits_no_new_dial() {
        let mut limits = HintLimits::new(0, 10, 16);
        assert_eq!(
            limits.check(v4(1), &[1], Instant::now()),
            Verdict::ClientRate
        );
        let mut limits = HintLimits::new(10, 0, 16);
        assert_eq!(
            limits.check(v4(1), &[1], Instant::now()),
            Verdict::TotalRate
        );
        assert_eq!(
            limits.check(v4(1), &[], Instant::now()),
            Verdict::Admit { dials: 0 }
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4(7));
        let mut limits = HintLimits::new(1, 100, 16);
        let t0 = Instant::now();
        assert_eq!(
            limits.check(client_key(a), &[1], t0),
            Verdict::Admit { dials: 1 }
        );
        assert_eq!(limits.check(client_key(b), &[2], t0), Verdict::ClientRate);
        assert_eq!(
            limits.check(client_key(other), &[2], t0),
            Verdict::Admit { dials: 1 }
        );
    }

    #[test]
    fn a_million_client_addresses_stay_within_the_client_bound() {
        let mut limits = HintLimits::new(5, usize::MAX, 1000);
        let t0 = Instant::now();
        let watched = v4(1);
        assert_eq!(limits.check(watched, &[1], t0), Verdict::Admit { dials: 1 });
        for i in 0..1_000_000u32 {
            let client = client_key(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            assert_eq!(
                limits.check(client, &[u64::from(i)], t0),
                Verdict::Admit { dials: 1 }
            );
            assert!(limits.clients() <= 1000);
        }
        assert_eq!(limits.clients(), 1000);
        // The least recently seen went first, `watched` among them.
        assert_eq!(limits.check(watched, &[1], t0), Verdict::Admit { dials: 1 });
    }

    #[test]
    fn clients_quiet_for_a_window_are_forgotten() {
        let mut limits = HintLimits::new(5, 100, 16);
        let t0 = Instant::now();
        for last in 1..=10 {
            limits.check(v4(last), &[1], t0);
        }
        assert_eq!(limits.clients(), 10);
        limits.check(v4(11), &[1], t0 + WINDOW);
        assert_eq!(limits.clients(), 1);
        assert_eq!(limits.dials_in_window(), 1);
    }

    #[test]
    fn the_limiter_ignores_every_hint_of_a_request_past_a_limit() {
        let config = HintsConfig {
            max_dials_per_minute_per_client: 1,
            ..HintsConfig::default()
        };
        let limiter = HintLimiter::new(&config);
        let peer = |_| ProviderHint::Peer {
            peer: libp2p::PeerId::random(),
            addrs: Vec::new(),
        };
        let first: Vec<ProviderHint> = (0..1).map(peer).collect();
        let client = Some("192.0.2.1".parse().unwrap());
        assert_eq!(limiter.admit(client, first.clone()), first);
        assert_eq!(limiter.admit(client, first.clone()), first, "a repeat");
        let two: Vec<ProviderHint> = (0..2).map(peer).collect();
        assert!(limiter.admit(client, two.clone()).is_empty());
        let elsewhere = Some("192.0.2.2".parse().unwrap());
        assert!(limiter.admit(elsewhere, two).is_empty(), "2 > 1 for anyone");
        let http = vec![ProviderHint::Http {
            url: "https://gw.example".into(),
        }];
        assert_eq!(limiter.admit(elsewhere, http.clone()), http);
    }
}
