//! Where providers come from: the provider hints of a request, delegated
//! content routing, checked against the address policy (`dial`).

mod delegated;
mod hints;

pub use delegated::{Routing, RoutingConfig};
pub use hints::{parse_hints, HintError, HintsConfig, ProviderHint};
