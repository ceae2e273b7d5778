//! Snapshots of a session for `/debug/sessions`.

use super::{Activity, LookupRecord, ProviderStats, Session};

/// A snapshot of a session for views (`/debug/sessions`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub id: u64,
    /// The session this one was forked from (a site's earlier request).
    pub parent: Option<u64>,
    pub age_ms: u64,
    pub activity: Activity,
    /// Ranked providers first (cheapest first), then dropped ones.
    pub providers: Vec<ProviderView>,
    /// Content routing lookups, by source.
    pub lookups: Vec<LookupRecord>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderView {
    pub id: String,
    pub cost: f64,
    pub dropped: bool,
    pub stats: ProviderStats,
}

impl Session {
    pub fn view(&self) -> SessionView {
        let ranking = self.ranking();
        let ranked = ranking.ranked();
        let mut providers: Vec<ProviderView> = ranked
            .iter()
            .filter_map(|(id, cost)| {
                Some(ProviderView {
                    id: id.to_string(),
                    cost: *cost,
                    dropped: false,
                    stats: ranking.get(id)?.clone(),
                })
            })
            .collect();
        providers.extend(
            ranking
                .iter()
                .filter(|(_, s)| s.is_dropped())
                .map(|(id, s)| ProviderView {
                    id: id.to_string(),
                    cost: f64::INFINITY,
                    dropped: true,
                    stats: s.clone(),
                }),
        );
        SessionView {
            id: self.id(),
            parent: self.parent(),
            age_ms: self.age().as_millis() as u64,
            activity: self.activity(),
            providers,
            lookups: self.lookups(),
        }
    }
}
