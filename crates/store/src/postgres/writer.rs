//! The single writer thread: group commit, as SQLite's. It blocks for one
//! request, takes whatever else is already queued (up to `max_batch`
//! bindings), writes all of it and its change-log rows in ONE transaction,
//! NOTIFYs, commits, publishes on the feed in commit order, and only then
//! resolves the tickets.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use postgres::{Client, Config, Statement};

use super::codec::{Params, UPSERT_AND_LOG};
use super::history::Pruner;
use super::schema::{self, error_text, NOTIFY_CHANNEL};
use crate::group_commit::{self, Request};
use crate::{ChangeFeed, StoreError};

pub(super) struct Writer {
    pub(super) client: Client,
    pub(super) instance_id: String,
    pub(super) feed: Arc<ChangeFeed>,
    pub(super) max_batch: usize,
    pub(super) pruner: Pruner,
    /// To reconnect after the connection broke (database restarted).
    pub(super) config: Config,
    pub(super) target: String,
    /// The upsert, prepared once per connection (not once per commit).
    pub(super) upsert: Option<Statement>,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::new();
        while let Some(count) = group_commit::gather(&rx, &mut batch, self.max_batch) {
            self.reconnect_if_closed();
            match self.commit(&batch, count) {
                Ok(()) => {
                    group_commit::publish_and_resolve(&self.feed, &mut batch);
                    if count > 0 {
                        self.pruner.after_commit(&mut self.client, count);
                    }
                }
                Err(e) => {
                    let text = error_text(&e);
                    tracing::error!(error = %text, requests = batch.len(), "store commit failed");
                    group_commit::fail(&mut batch, &StoreError::Postgres(text));
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
                self.upsert = None;
            }
            Err(e) => tracing::warn!(error = %e, "store writer cannot reconnect"),
        }
    }

    fn commit(&mut self, batch: &[Request], count: usize) -> Result<(), postgres::Error> {
        if count == 0 {
            return Ok(());
        }
        let stmt = match &self.upsert {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(UPSERT_AND_LOG)?;
                self.upsert = Some(s.clone());
                s
            }
        };
        let mut tx = self.client.transaction()?;
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
