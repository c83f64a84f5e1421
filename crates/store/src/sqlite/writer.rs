//! The single writer thread: group commit. It blocks for one request, takes
//! whatever else is already queued (up to `max_batch` bindings), commits all
//! of it in ONE transaction (one fsync), publishes on the feed in commit
//! order, and only then resolves the tickets (architecture, data flow 1).

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};

use super::codec;
use crate::{Binding, ChangeFeed, Committed, OnDurable, StoreError};

pub(super) struct Request {
    pub(super) bindings: Vec<Binding>,
    pub(super) now: u32,
    /// Called on the writer thread once the batch is durable and published.
    pub(super) done: OnDurable,
}

/// Runs until every sender is gone and the queue is drained.
pub(super) fn run(
    mut conn: Connection,
    rx: Receiver<Request>,
    feed: Arc<ChangeFeed>,
    max_batch: usize,
) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut count = first.bindings.len();
        batch.push(first);
        while count < max_batch {
            match rx.try_recv() {
                Ok(req) => {
                    count += req.bindings.len();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        match commit(&mut conn, &batch, count) {
            Ok(()) => publish_and_resolve(&feed, &mut batch),
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "store commit failed");
                let e = StoreError::Sqlite(e);
                for req in batch.drain(..) {
                    // A dropped ticket is the submitter's business.
                    (req.done)(Err(e.duplicate()));
                }
            }
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Request], count: usize) -> rusqlite::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(codec::UPSERT)?;
        for req in batch {
            for b in &req.bindings {
                codec::upsert(&mut stmt, b, req.now)?;
            }
        }
    }
    // Dropping `tx` on an error above rolls the whole batch back.
    tx.commit()
}

/// The whole group is published at once (one feed lock, one wake-up per
/// subscriber however many requests it held: an Active Leasequery session
/// then writes the group's changes in one go). Tickets resolve afterwards,
/// in queue (= commit) order, each with the seq of its own last change.
fn publish_and_resolve(feed: &ChangeFeed, batch: &mut Vec<Request>) {
    let Some(now) = batch.iter().map(|r| r.now).max() else {
        return;
    };
    let mut counts = Vec::with_capacity(batch.len());
    let mut committed: Vec<Arc<Committed>> = Vec::new();
    for req in batch.iter_mut() {
        counts.push(req.bindings.len() as u64);
        committed.extend(req.bindings.drain(..).map(|b| Arc::new(Committed::new(b))));
    }
    let last = feed.publish_bindings(now, &committed);
    let mut seq = last - committed.len() as u64;
    for (req, count) in batch.drain(..).zip(counts) {
        seq += count;
        (req.done)(Ok(seq));
    }
}
