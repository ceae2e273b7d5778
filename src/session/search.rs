//! What a session's search for providers did: each content routing
//! lookup, by source, kept so an error can say which phase failed and
//! `Server-Timing` and `/debug/sessions` can show where providers came
//! from. Pure bookkeeping: the lookups themselves live in `routing`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How one source's lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupOutcome {
    /// At least one provider.
    Found,
    /// The source answered: nobody provides it.
    None,
    /// The source could not be asked or gave a bad answer.
    Failed,
    /// The lookup's deadline passed.
    Timeout,
}

impl LookupOutcome {
    pub fn label(self) -> &'static str {
        match self {
            LookupOutcome::Found => "found",
            LookupOutcome::None => "none",
            LookupOutcome::Failed => "failed",
            LookupOutcome::Timeout => "timeout",
        }
    }
}

/// One source's answer to one lookup.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LookupRecord {
    /// `dht` or `delegated`.
    pub source: &'static str,
    pub outcome: LookupOutcome,
    /// Providers it named.
    pub providers: usize,
    #[serde(serialize_with = "millis")]
    pub took: Duration,
    #[serde(serialize_with = "millis_opt")]
    pub first_provider: Option<Duration>,
    /// What went wrong, for `failed`.
    pub detail: Option<String>,
    /// When the lookup started: a later record of the same lookup (same
    /// source and start) replaces an earlier one.
    #[serde(skip)]
    pub started: Instant,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn millis_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_millis() as u64)),
        None => s.serialize_none(),
    }
}

/// Most lookups a session keeps (a long transfer looks up now and then).
const MAX_RECORDS: usize = 16;

#[derive(Debug, Default)]
pub(super) struct SearchLog {
    records: VecDeque<LookupRecord>,
}

impl SearchLog {
    pub(super) fn push(&mut self, record: LookupRecord) {
        if let Some(same) = self
            .records
            .iter_mut()
            .find(|r| r.source == record.source && r.started == record.started)
        {
            *same = record;
            return;
        }
        if self.records.len() == MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub(super) fn records(&self) -> Vec<LookupRecord> {
        self.records.iter().cloned().collect()
    }
}

/// One line saying what each source answered, e.g.
/// `dht: no provider (2.1 s); delegated: failed (status 500)`;
/// `no source was asked` when there were none.
pub fn describe_lookups(records: &[LookupRecord]) -> String {
    if records.is_empty() {
        return "no source was asked".into();
    }
    records
        .iter()
        .map(|r| {
            let took = format!("{:.1} s", r.took.as_secs_f64());
            match r.outcome {
                LookupOutcome::Found => format!(
                    "{}: {} provider{} ({took})",
                    r.source,
                    r.providers,
                    if r.providers == 1 { "" } else { "s" }
                ),
                LookupOutcome::None => format!("{}: no provider ({took})", r.source),
                LookupOutcome::Timeout => format!("{}: timed out after {took}", r.source),
                LookupOutcome::Failed => format!(
                    "{}: failed ({})",
                    r.source,
                    r.detail.as_deref().unwrap_or("no answer")
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &'static str, outcome: LookupOutcome, providers: usize) -> LookupRecord {
        LookupRecord {
            source,
            outcome,
            providers,
            took: Duration::from_millis(2100),
            first_provider: None,
            detail: (outcome == LookupOutcome::Failed).then(|| "status 500".to_string()),
            started: Instant::now(),
        }
    }

    #[test]
    fn each_source_is_described_with_its_outcome() {
        let text = describe_lookups(&[
            record("dht", LookupOutcome::None, 0),
            record("delegated", LookupOutcome::Failed, 0),
            record("dht", LookupOutcome::Found, 1),
            record("dht", LookupOutcome::Timeout, 0),
        ]);
        assert_eq!(
            text,
            "dht: no provider (2.1 s); delegated: failed (status 500); dht: 1 provider (2.1 s); dht: timed out after 2.1 s"
        );
        assert_eq!(describe_lookups(&[]), "no source was asked");
    }

    #[test]
    fn a_later_record_of_the_same_lookup_replaces_the_first() {
        let mut log = SearchLog::default();
        let first = record("dht", LookupOutcome::Found, 1);
        let mut done = first.clone();
        done.providers = 3;
        log.push(first);
        log.push(record("delegated", LookupOutcome::None, 0));
        log.push(done);
        let records = log.records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].providers, 3);
    }

    #[test]
    fn the_log_keeps_the_latest_records() {
        let mut log = SearchLog::default();
        for i in 0..MAX_RECORDS + 3 {
            log.push(record("dht", LookupOutcome::Found, i));
        }
        let records = log.records();
        assert_eq!(records.len(), MAX_RECORDS);
        assert_eq!(records[0].providers, 3);
    }
}
