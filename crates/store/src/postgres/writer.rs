//! The single writer thread: group commit, as SQLite's. It blocks for one
//! request, takes whatever else is already queued (up to `max_batch`
//! bindings) and commits all of it in ONE transaction:
//!
//! 1. take the log lock (commits of every instance are serialised, so log
//!    ids and log times increase in commit order);
//! 2. read the rows the batch overwrites and check each change against
//!    them (`leaseline_proto::overwrite`): a change decided from a stale
//!    copy (another instance got there first) is refused, not stored;
//! 3. append the stored changes to the log and upsert them, one statement;
//! 4. NOTIFY and commit.
//!
//! Then it publishes on the feed (after what other instances committed
//! before it) and only then resolves the tickets: an ACK never leaves
//! before its commit, nor for a refused change.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use leaseline_proto::{overwrite, Overwrite};
use postgres::{Client, Statement};

use super::codec::{decode, ip_key, Batch, COLUMNS, WRITE_BATCH};
use super::connect::Database;
use super::follow::LogFollower;
use super::health::Health;
use super::history::Pruner;
use super::schema::{error_text, LOG_LOCK, NOTIFY_CHANNEL, PRUNED_ID, PRUNED_LOGGED_AT};
use crate::group_commit::{self, Request};
use crate::{Binding, Committed, StoreError};

pub(super) struct Writer {
    pub(super) client: Client,
    pub(super) log: Arc<LogFollower>,
    pub(super) max_batch: usize,
    pub(super) pruner: Pruner,
    pub(super) health: Arc<Health>,
    /// To reconnect after the connection broke (database restarted).
    pub(super) db: Arc<Database>,
    /// Prepared once per connection (not once per commit).
    pub(super) statements: Option<Statements>,
    /// The connection failed in a way that needs a new one.
    pub(super) broken: bool,
}

pub(super) struct Statements {
    head: Statement,
    stored: Statement,
    write: Statement,
}

struct Refusal {
    ip: std::net::Ipv4Addr,
    reason: &'static str,
    stored: Vec<(std::net::Ipv4Addr, Option<Binding>)>,
}

/// What one commit did.
struct Done {
    /// The first log id written and the log time of the commit.
    first_id: i64,
    logged_at: u32,
    /// Per request: its first refused change, and the stored rows of its
    /// refused changes' addresses.
    refused: Vec<Option<Refusal>>,
    /// Per request: which of its bindings were stored.
    stored: Vec<Vec<bool>>,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::new();
        while let Some(count) = group_commit::gather(&rx, &mut batch, self.max_batch) {
            self.reconnect_if_closed();
            match self.commit(&batch, count) {
                Ok(done) => {
                    if count > 0 {
                        // Only a commit that reached the database says so.
                        self.health.ok();
                    }
                    let written = done.stored.iter().flatten().filter(|&&s| s).count();
                    self.resolve(&mut batch, done);
                    if written > 0 {
                        self.pruner.after_commit(&mut self.client, written);
                    }
                }
                Err(e) => {
                    group_commit::fail(&mut batch, &e);
                    // A connection left broken by an outage that is over
                    // (or ended by an administrator) is replaced at once;
                    // only a database that cannot be reached or that fails
                    // a commit on a sound connection is an outage.
                    let stale = self.broken && {
                        self.reconnect_if_closed();
                        !self.broken
                    };
                    if stale {
                        tracing::debug!(error = %e, "store commit failed on a stale connection");
                    } else {
                        self.health.failed("store writer", &e.to_string());
                    }
                }
            }
        }
    }

    /// A broken connection failed its batch (no ticket resolved Ok); the
    /// next batch gets a new one, or fails too while the database is away.
    fn reconnect_if_closed(&mut self) {
        if !self.broken && !self.client.is_closed() {
            return;
        }
        match self.db.connect() {
            Ok(client) => {
                tracing::debug!("store writer reconnected to the database");
                self.client = client;
                self.statements = None;
                self.broken = false;
            }
            Err(e) => tracing::debug!(error = %e, "store writer cannot reconnect"),
        }
    }

    fn prepare(&mut self) -> Result<&Statements, postgres::Error> {
        if self.statements.is_none() {
            let c = &mut self.client;
            // A statement prepared while `bindings` is empty would keep the
            // generic plan made then, a full scan, however large the table
            // grows (7.5 ms a batch at 35,000 rows against 0.16 ms): plan
            // each execution with its own array instead.
            c.batch_execute("SET plan_cache_mode = force_custom_plan")?;
            self.statements = Some(Statements {
                // The last id and log time: read under the log lock, so
                // nothing commits in between.
                head: c.prepare(&format!(
                    "SELECT greatest(coalesce((SELECT max(id) FROM lease_changes), 0), \
                         (SELECT value FROM meta WHERE key = '{PRUNED_ID}')), \
                     greatest(coalesce((SELECT logged_at FROM lease_changes \
                         ORDER BY id DESC LIMIT 1), 0), \
                         (SELECT value FROM meta WHERE key = '{PRUNED_LOGGED_AT}'))"
                ))?,
                stored: c.prepare(&format!(
                    "SELECT {COLUMNS} FROM bindings WHERE ip = ANY($1)"
                ))?,
                write: c.prepare(WRITE_BATCH)?,
            });
        }
        Ok(self.statements.as_ref().expect("prepared above"))
    }

    fn commit(&mut self, batch: &[Request], count: usize) -> Result<Done, StoreError> {
        let mut done = Done {
            first_id: 0,
            logged_at: 0,
            refused: batch.iter().map(|_| None).collect(),
            stored: batch
                .iter()
                .map(|r| vec![false; r.bindings.len()])
                .collect(),
        };
        if count == 0 {
            return Ok(done);
        }
        let result = self.prepare().map(|_| ()).and_then(|()| {
            self.client
                .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({LOG_LOCK})"))
        });
        match result
            .map_err(pg)
            .and_then(|()| self.write_locked(batch, &mut done))
        {
            Ok(()) => Ok(done),
            Err(e) => {
                // A connection that cannot even roll back (ended by the
                // server, reset) is replaced before the next batch.
                self.broken =
                    self.client.is_closed() || self.client.batch_execute("ROLLBACK").is_err();
                Err(e)
            }
        }
    }

    /// Steps 2 to 4, inside the transaction holding the log lock.
    fn write_locked(&mut self, batch: &[Request], done: &mut Done) -> Result<(), StoreError> {
        let st = self.statements.as_ref().expect("prepared by commit");
        let head = self.client.query_one(&st.head, &[]).map_err(pg)?;
        let (last_id, last_logged_at): (i64, i64) =
            (head.try_get(0).map_err(pg)?, head.try_get(1).map_err(pg)?);
        // The log's clock: the writers' handling times, never decreasing
        // (docs/postgresql.md, "Time across instances").
        let newest = batch.iter().map(|r| r.now).max().unwrap_or(0);
        let logged_at = last_logged_at.max(i64::from(newest));
        let keys: Vec<i64> = batch
            .iter()
            .flat_map(|r| r.bindings.iter().map(|b| ip_key(b.ip)))
            .collect();
        // The stored rows, for the changes to be checked against (changes
        // not decided by the engine are written as given: no read). A row
        // that does not decode fails the commit: nothing is written over a
        // row the writer cannot check.
        let mut stored_rows = Vec::new();
        if batch.iter().any(|r| r.decided) {
            for row in self.client.query(&st.stored, &[&keys]).map_err(pg)? {
                stored_rows.push(decode(&row, 0, &self.log.me)?);
            }
        }
        let mut current: HashMap<i64, &Binding> =
            stored_rows.iter().map(|b| (ip_key(b.ip), b)).collect();
        let mut rows = Batch::default();
        for (ri, req) in batch.iter().enumerate() {
            for (bi, b) in req.bindings.iter().enumerate() {
                let key = ip_key(b.ip);
                let verdict = if req.decided {
                    overwrite(current.get(&key).copied(), b)
                } else {
                    Overwrite::Write
                };
                match verdict {
                    Overwrite::Write => {
                        rows.push(last_id + 1 + rows.len() as i64, b, req.now);
                        current.insert(key, b);
                        done.stored[ri][bi] = true;
                    }
                    Overwrite::Refuse(reason) => {
                        let r = done.refused[ri].get_or_insert_with(|| Refusal {
                            ip: b.ip,
                            reason,
                            stored: Vec::new(),
                        });
                        r.stored.push((b.ip, current.get(&key).map(|&s| s.clone())));
                    }
                }
            }
        }
        if rows.len() > 0 {
            let me = self.log.me.clone();
            self.client
                .execute(&st.write, &rows.params(&logged_at, &me))
                .map_err(pg)?;
        }
        // The payload names the writer: its own follower need not wake.
        self.client
            .batch_execute(&format!(
                "NOTIFY {NOTIFY_CHANNEL}, '{}'; COMMIT",
                self.log.me.replace('\'', "''")
            ))
            .map_err(pg)?;
        done.first_id = last_id + 1;
        done.logged_at = u32::try_from(logged_at.max(0)).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Publish what was stored (after other instances' earlier commits),
    /// then resolve every ticket: refused submissions with the refusal.
    fn resolve(&mut self, batch: &mut Vec<Request>, done: Done) {
        let mut own: Vec<Arc<Committed>> = Vec::new();
        let mut counts = Vec::with_capacity(batch.len());
        for (req, stored) in batch.iter_mut().zip(&done.stored) {
            let mut n = 0u64;
            for (b, &s) in req.bindings.drain(..).zip(stored) {
                if s {
                    own.push(Arc::new(Committed::new(b)));
                    n += 1;
                }
            }
            counts.push(n);
        }
        let total = own.len() as u64;
        let last_seq = if own.is_empty() {
            None
        } else {
            self.log
                .publish_own(&mut self.client, done.first_id, done.logged_at, own)
        };
        let mut seq = last_seq.map(|l| l - total);
        for ((req, n), refused) in batch.drain(..).zip(counts).zip(done.refused) {
            let at = match seq.as_mut() {
                Some(s) => {
                    *s += n;
                    *s
                }
                None => self.log.last_seq(),
            };
            (req.done)(match refused {
                None => Ok(at),
                Some(r) => Err(StoreError::Refused {
                    ip: r.ip,
                    reason: r.reason,
                    stored: r.stored,
                }),
            });
        }
    }
}

fn pg(e: postgres::Error) -> StoreError {
    StoreError::Postgres(error_text(&e))
}
