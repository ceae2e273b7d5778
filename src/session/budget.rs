//! The per-request read budget (`[limits] max_blocks_per_request`,
//! `max_bytes_per_request`), counted on the session's activity.

use super::Session;

/// The most one request may read, in blocks and in bytes of blocks, from
/// any source (`[limits] max_blocks_per_request`, `max_bytes_per_request`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub max_blocks: u64,
    pub max_bytes: u64,
}

/// A request read as much as its [`Budget`] allows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("this request read more than {limit} {what}, the most one request may read ([limits] {key}); ask for a byte range or a smaller part of the DAG")]
pub struct BudgetExceeded {
    pub what: &'static str,
    pub limit: u64,
    pub key: &'static str,
}

impl Session {
    /// Sets what the session may read; the first budget set is kept.
    pub fn set_budget(&self, budget: Budget) {
        let _ = self.0.budget.set(budget);
    }

    /// Counts a block read about to start; fails once the session has read
    /// all its budget allows. Blocks count when they start, not when they
    /// arrive, so read-ahead cannot run past the cap.
    pub fn check_budget(&self) -> Result<(), BudgetExceeded> {
        let Some(budget) = self.0.budget.get() else {
            return Ok(());
        };
        let mut activity = self.0.activity.lock();
        if activity.blocks_started >= budget.max_blocks {
            return Err(BudgetExceeded {
                what: "blocks",
                limit: budget.max_blocks,
                key: "max_blocks_per_request",
            });
        }
        if activity.bytes_read >= budget.max_bytes {
            return Err(BudgetExceeded {
                what: "bytes",
                limit: budget.max_bytes,
                key: "max_bytes_per_request",
            });
        }
        activity.blocks_started += 1;
        Ok(())
    }
}
