//! Where providers come from: the provider hints of a request, and content
//! routing — the DHT (run by `p2p::dht`) and delegated routers, asked in
//! parallel by [`ContentRouting`]; every address checked against the
//! address policy (`dial`).

mod delegated;
mod hints;
mod lookup;

pub use delegated::{DelegatedAnswer, Routing, RoutingConfig};
pub use hints::{parse_hints, HintError, HintsConfig, ProviderHint};
pub use lookup::{ContentRouting, LookupEvent, RouterSource};
