//! The single writer thread: group commit, as SQLite's. It blocks for one
//! request, takes whatever else is already queued (up to `max_batch`
//! bindings), writes all of it and its change-log rows in ONE transaction,
//! NOTIFYs, commits, publishes on the feed in commit order, and only then
//! resolves the tickets.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use postgres::{Client, Config};

use super::codec::{Params, UPSERT_AND_LOG};
use super::history::Pruner;
use super::schema::{self, error_text, NOTIFY_CHANNEL};
use crate::{Binding, ChangeFeed, Committed, OnDurable, StoreError};

pub(super) struct Request {
    pub(super) bindings: Vec<Binding>,
    pub(super) now: u32,
    /// Called on the writer thread once the batch is durable and published.
    pub(super) done: OnDurable,
}

pub(super) struct Writer {
    pub(super) client: Client,
    pub(super) instance_id: String,
    pub(super) feed: Arc<ChangeFeed>,
    pub(super) max_batch: usize,
    pub(super) pruner: Pruner,
    /// To reconnect after the connection broke (database restarted).
    pub(super) config: Config,
    pub(super) target: String,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut count = first.bindings.len();
            batch.push(first);
            while count < self.max_batch {
                match rx.try_recv() {
                    Ok(req) => {
                        count += req.bindings.len();
                        batch.push(req);
                    }
                    Err(_) => break,
                }
            }
            self.reconnect_if_closed();
            match self.commit(&batch, count) {
                Ok(()) => {
                    publish_and_resolve(&self.feed, &mut batch);
                    if count > 0 {
                        self.pruner.after_commit(&mut self.client, count);
                    }
                }
                Err(e) => {
                    let text = error_text(&e);
                    tracing::error!(error = %text, requests = batch.len(), "store commit failed");
                    for req in batch.drain(..) {
                        (req.done)(Err(StoreError::Postgres(text.clone())));
                    }
                }
            }
        }
    }

    /// A broken connection failed its batch (no ticket resolved Ok); the
    /// next batch gets a new one, or fails too while the database is away.
    fn reconnect_if_closed(&mut self) {
        if !self.client.is_closed() {
            return;
        }
        match schema::connect(&self.config, &self.target) {
            Ok(client) => {
                tracing::info!("store writer reconnected to the database");
                self.client = client;
            }
            Err(e) => tracing::warn!(error = %e, "store writer cannot reconnect"),
        }
    }

    fn commit(&mut self, batch: &[Request], count: usize) -> Result<(), postgres::Error> {
        if count == 0 {
            return Ok(());
        }
        let mut tx = self.client.transaction()?;
        let stmt = tx.prepare(UPSERT_AND_LOG)?;
        for req in batch {
            for b in &req.bindings {
                let p = Params::new(b, req.now);
                tx.execute(&stmt, &p.refs(b, &self.instance_id))?;
            }
        }
        // Delivered at commit; a wake-up only (the log is read by id).
        tx.batch_execute(&format!("NOTIFY {NOTIFY_CHANNEL}"))?;
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit()
    }
}

/// As SQLite's writer: the whole group is published at once, then tickets
/// resolve in queue (= commit) order, each with the seq of its last change.
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
