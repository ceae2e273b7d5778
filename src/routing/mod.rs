//! Where providers come from: the provider hints of a request (and the
//! rate limits on the dials they cause, `hint_limits`), and content
//! routing — the DHT (run by `p2p::dht`) and delegated routers, asked in
//! parallel by [`ContentRouting`]; every address checked against the
//! address policy (`dial`).

mod delegated;
mod hint_limits;
mod hints;
mod lookup;

pub use delegated::{DelegatedAnswer, Routing, RoutingConfig};
pub use hint_limits::{client_key, ClientKey, HintLimiter, HintLimits, Verdict};
pub use hints::{parse_hints, HintError, HintPolicy, HintsConfig, ProviderHint};
pub use lookup::{ContentRouting, LookupEvent, RouterSource};
