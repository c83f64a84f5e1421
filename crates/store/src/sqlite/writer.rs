//! The single writer thread: group commit. It blocks for one request, takes
//! whatever else is already queued (up to `max_batch` bindings), commits all
//! of it in ONE transaction (one fsync), publishes on the feed in commit
//! order, and only then resolves the tickets (architecture, data flow 1).

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};

use super::codec;
use super::lease_log::LogWriter;
use crate::group_commit::{self, Request};
use crate::{ChangeFeed, CommitStats, StoreError};

/// Runs until every sender is gone and the queue is drained.
pub(super) fn run(
    mut conn: Connection,
    rx: Receiver<Request>,
    feed: Arc<ChangeFeed>,
    commits: &CommitStats,
    max_batch: usize,
    mut log: Option<LogWriter>,
) {
    let mut batch = Vec::new();
    while let Some(count) = group_commit::gather(&rx, &mut batch, max_batch) {
        let started = Instant::now();
        match commit(&mut conn, &batch, count, log.as_mut()) {
            Ok(()) => {
                if count > 0 {
                    commits.record(count, started.elapsed());
                }
                group_commit::publish_and_resolve(&feed, &mut batch)
            }
            Err(e) => {
                if let Some(log) = log.as_mut() {
                    log.rolled_back();
                }
                tracing::error!(error = %e, requests = batch.len(), event = "store_commit_failed", "store commit failed");
                group_commit::fail(&mut batch, &StoreError::Sqlite(e));
            }
        }
    }
}

/// One transaction: the bindings, and (with the lease history on) their
/// history rows and a bounded prune of the history.
fn commit(
    conn: &mut Connection,
    batch: &[Request],
    count: usize,
    mut log: Option<&mut LogWriter>,
) -> rusqlite::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(&codec::UPSERT)?;
        let mut insert = match log {
            Some(_) => Some(LogWriter::statement(&tx)?),
            None => None,
        };
        for req in batch {
            for b in &req.bindings {
                codec::upsert(&mut stmt, b, req.now)?;
                if let (Some(log), Some(insert)) = (log.as_deref_mut(), insert.as_mut()) {
                    log.log(&tx, insert, b, req.now)?;
                }
            }
        }
    }
    if let Some(log) = log {
        let now = batch.iter().map(|r| r.now).max().unwrap_or(0);
        log.prune(&tx, now)?;
    }
    // Dropping `tx` on an error above rolls the whole batch back.
    tx.commit()
}
