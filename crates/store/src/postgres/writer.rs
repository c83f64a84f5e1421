//! The single writer thread: group commit, as SQLite's. It blocks for one
//! request, takes whatever else is already queued (up to `max_batch`
//! bindings) and commits all of it in ONE transaction, in two round trips:
//!
//! 1. read the rows the batch overwrites, with their versions (outside any
//!    lock), and check each change against them (`leaseline_proto::overwrite`):
//!    a change decided from a stale copy (another instance got there first)
//!    is refused, not stored;
//! 2. one call of the database's commit function (`schema`), which takes
//!    log ids and a log time (under the log lock, for an instant: commits
//!    of every instance run at once, and PostgreSQL merges their WAL
//!    flushes), appends the changes to the log, writes each address's row
//!    on the condition that it is still at the version read in 1, and
//!    NOTIFYs; its statement is its transaction.
//!
//! A row that changed between 1 and 2 (another instance's commit to the
//! same address, rare: each instance allocates from its own share first)
//! fails the check, nothing is written, and the batch is decided again from
//! the new rows.
//!
//! Then it publishes on the feed (after what other instances committed
//! before it) and only then resolves the tickets: an ACK never leaves
//! before its commit, nor for a refused change.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use leaseline_proto::{overwrite, second_lease, ClientOf, DhcpState, Overwrite};
use postgres::error::SqlState;
use postgres::{Client, Statement};

use super::codec::{commit_call, decode, ip_key, unwritten, Batch, COLUMNS};
use super::connect::Database;
use super::follow::LogFollower;
use super::health::Health;
use super::history::{LogRead, Pruner};
use super::schema::{error_text, ROW_TAKEN};
use crate::group_commit::{self, Request};
use crate::{Binding, Committed, StoreError};

pub(super) struct Writer {
    pub(super) commits: Arc<crate::CommitStats>,
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
    stored: Statement,
    /// `stored`, and the live leases of the clients of the batch's new
    /// grants (only for a batch that has some).
    stored_and_held: Statement,
    write: Statement,
    /// The rows other instances committed just before this one's.
    log_read: LogRead,
}

/// How many times a batch is decided again when rows it read changed
/// before its commit; then it fails (its clients get no answer and retry).
const ATTEMPTS: usize = 5;

struct Refusal {
    ip: std::net::Ipv4Addr,
    reason: &'static str,
    stored: Vec<(std::net::Ipv4Addr, Option<Binding>)>,
}

/// What one attempt at a commit came to.
enum Attempt {
    Committed(Done),
    /// Rows read for the decision changed before the commit: nothing
    /// written.
    Changed(Vec<std::net::Ipv4Addr>),
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

impl Done {
    fn nothing(batch: &[Request]) -> Self {
        Done {
            first_id: 0,
            logged_at: 0,
            refused: batch.iter().map(|_| None).collect(),
            stored: batch
                .iter()
                .map(|r| vec![false; r.bindings.len()])
                .collect(),
        }
    }
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub(super) fn run(mut self, rx: Receiver<Request>) {
        let mut batch = Vec::new();
        while let Some(count) = group_commit::gather(&rx, &mut batch, self.max_batch) {
            self.reconnect_if_closed();
            let started = std::time::Instant::now();
            match self.commit(&batch, count) {
                Ok(done) => {
                    if count > 0 {
                        self.commits.record(count, started.elapsed());
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
                        tracing::debug!(error = %e, event = "store_commit_stale_connection", "store commit failed on a stale connection");
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
        match self.db.connect_hot_path() {
            Ok(client) => {
                tracing::debug!(
                    event = "store_writer_reconnected",
                    "store writer reconnected to the database"
                );
                self.client = client;
                self.statements = None;
                self.broken = false;
            }
            Err(e) => {
                tracing::debug!(error = %e, event = "store_writer_reconnect_failed", "store writer cannot reconnect")
            }
        }
    }

    fn prepare(&mut self) -> Result<&Statements, postgres::Error> {
        let statements = match self.statements.take() {
            Some(s) => s,
            // Planned once (`Database::connect_hot_path`).
            None => Statements {
                stored: self.client.prepare(&format!(
                    "SELECT false, changed_id, {COLUMNS} FROM bindings WHERE ip = ANY($1)"
                ))?,
                stored_and_held: self.client.prepare(&stored_rows_query())?,
                write: self.client.prepare(&commit_call())?,
                log_read: LogRead::prepare(&mut self.client)?,
            },
        };
        Ok(self.statements.insert(statements))
    }

    fn commit(&mut self, batch: &[Request], count: usize) -> Result<Done, StoreError> {
        if count == 0 {
            return Ok(Done::nothing(batch));
        }
        let result = self
            .prepare()
            .map(|_| ())
            .map_err(pg)
            .and_then(|()| self.commit_checked(batch));
        if result.is_err() {
            // A connection that cannot even answer (ended by the server,
            // reset) is replaced before the next batch.
            self.broken = self.client.is_closed()
                || self
                    .client
                    .is_valid(std::time::Duration::from_secs(5))
                    .is_err();
            // The commit function holds the log lock for its session (not its
            // transaction, so that other commits take ids while this one
            // writes). A statement cancelled (a `statement_timeout`, an
            // administrator) just as the lock was granted keeps it past the
            // abort, and every other instance's commits would wait for it
            // for as long as this connection lives: let go of it. The
            // writer's session holds no other.
            if !self.broken {
                let _ = self.client.batch_execute("SELECT pg_advisory_unlock_all()");
            }
        }
        result
    }

    /// Decide and write, again while rows change under the decision.
    fn commit_checked(&mut self, batch: &[Request]) -> Result<Done, StoreError> {
        let mut changed = Vec::new();
        for _ in 0..ATTEMPTS {
            match self.try_commit(batch)? {
                Attempt::Committed(done) => return Ok(done),
                Attempt::Changed(ips) => {
                    tracing::debug!(
                        addresses = ips.len(),
                        event = "store_commit_redecided",
                        "store: rows changed before the commit; deciding again"
                    );
                    changed = ips;
                }
            }
        }
        Err(StoreError::Postgres(format!(
            "commit abandoned: the rows of {} kept changing under it ({ATTEMPTS} attempts)",
            changed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Steps 1 and 2.
    fn try_commit(&mut self, batch: &[Request]) -> Result<Attempt, StoreError> {
        let mut done = Done::nothing(batch);
        let Some(st) = self.statements.as_ref() else {
            return Err(StoreError::Postgres(
                "the writer's statements are not prepared".into(),
            ));
        };
        // The stored rows, for the changes to be checked against (changes
        // not decided by the engine are written as given: no read). A row
        // that does not decode fails the commit: nothing is written over a
        // row the writer cannot check.
        let mut stored_rows = Vec::new();
        let mut holders = Vec::new();
        if batch.iter().any(|r| r.decided) {
            let keys: Vec<i64> = batch
                .iter()
                .filter(|r| r.decided)
                .flat_map(|r| r.bindings.iter().map(|b| ip_key(b.ip)))
                .collect();
            let grants = GrantClients::of(batch);
            let rows = if grants.is_empty() {
                self.client.query(&st.stored, &[&keys])
            } else {
                self.client
                    .query(&st.stored_and_held, &grants.params(&keys))
            };
            for row in rows.map_err(pg)? {
                let holder: bool = row.try_get(0).map_err(pg)?;
                let version: i64 = row.try_get(1).map_err(pg)?;
                let b = decode(&row, 2, &self.log.me)?;
                if holder {
                    holders.push(b);
                } else {
                    stored_rows.push((b, version));
                }
            }
        }
        let mut current: HashMap<i64, &Binding> =
            stored_rows.iter().map(|(b, _)| (ip_key(b.ip), b)).collect();
        let versions: HashMap<i64, i64> = stored_rows
            .iter()
            .map(|(b, v)| (ip_key(b.ip), *v))
            .collect();
        // The batch's addresses by client (stored, then as written): a
        // grant is checked against its own client's, not every address.
        let mut of_client: HashMap<ClientOf<'_>, Vec<i64>> = HashMap::new();
        for (b, _) in &stored_rows {
            of_client
                .entry(ClientOf::of(b))
                .or_default()
                .push(ip_key(b.ip));
        }
        let mut rows = Batch::default();
        let mut checked = std::collections::HashSet::new();
        // Addresses the batch has written so far.
        let mut written = std::collections::HashSet::new();
        for (ri, req) in batch.iter().enumerate() {
            for (bi, b) in req.bindings.iter().enumerate() {
                let key = ip_key(b.ip);
                let mut verdict = if req.decided {
                    overwrite(current.get(&key).copied(), b)
                } else {
                    Overwrite::Write
                };
                // A copy that had not seen the client's lease made through
                // another server: the client is sent back to it.
                let mut held = None;
                if let (Overwrite::Write, Some(network)) = (verdict, req.network) {
                    // The client's leases at other addresses, and its
                    // addresses of the batch as they stand now: stored, or
                    // changed earlier in the batch (a second grant of one
                    // client in one batch is a second lease too).
                    let in_batch = of_client
                        .get(&ClientOf::of(b))
                        .into_iter()
                        .flatten()
                        .filter_map(|k| current.get(k).copied());
                    let rows = holders
                        .iter()
                        .map(|h| current.get(&ip_key(h.ip)).copied().unwrap_or(h))
                        .chain(in_batch);
                    if let Some(h) = second_lease(b, network, rows) {
                        verdict = Overwrite::Refuse("the client holds another address there");
                        held = Some(h.clone());
                    }
                }
                match verdict {
                    Overwrite::Write => {
                        if req.decided && checked.insert(key) {
                            rows.check(b.ip, versions.get(&key).copied().unwrap_or(-1));
                        }
                        // The row it follows: the stored one (checked
                        // unchanged at the commit) or the batch's own.
                        let follows = (req.decided || written.contains(&key))
                            .then(|| current.get(&key).copied());
                        written.insert(key);
                        rows.push(b, req.now, follows);
                        current.insert(key, b);
                        of_client.entry(ClientOf::of(b)).or_default().push(key);
                        done.stored[ri][bi] = true;
                    }
                    Overwrite::Refuse(reason) => {
                        let r = done.refused[ri].get_or_insert_with(|| Refusal {
                            ip: b.ip,
                            reason,
                            stored: Vec::new(),
                        });
                        r.stored.push((b.ip, current.get(&key).map(|&s| s.clone())));
                        if let Some(h) = held {
                            r.stored.push((h.ip, Some(h)));
                        }
                    }
                }
            }
        }
        if rows.len() == 0 {
            return Ok(Attempt::Committed(done));
        }
        // The log's clock: the writers' handling times, never decreasing
        // (docs/postgresql.md, "Time across instances").
        let newest = i64::from(batch.iter().map(|r| r.now).max().unwrap_or(0));
        let me = self.log.me.clone();
        let row = match self.client.query_one(&st.write, &rows.params(&newest, &me)) {
            Ok(row) => row,
            // A row changed since it was read, an address expected free was
            // bound meanwhile, or two commits' row locks crossed: nothing
            // was written.
            Err(e) if e.code().is_some_and(decided_again) => {
                let detail = e.as_db_error().and_then(|d| d.detail());
                return Ok(Attempt::Changed(unwritten(detail)));
            }
            Err(e) => return Err(pg(e)),
        };
        let (first_id, logged_at): (i64, i64) =
            (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        done.first_id = first_id;
        done.logged_at = u32::try_from(logged_at.max(0)).unwrap_or(u32::MAX);
        Ok(Attempt::Committed(done))
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
        let last_seq = match (&self.statements, own.is_empty()) {
            (Some(st), false) => self.log.publish_own(
                &mut self.client,
                &st.log_read,
                done.first_id,
                done.logged_at,
                own,
            ),
            _ => None,
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

/// A commit that failed this way wrote nothing and is decided again.
fn decided_again(code: &SqlState) -> bool {
    *code == SqlState::from_code(ROW_TAKEN)
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
}

fn pg(e: postgres::Error) -> StoreError {
    StoreError::Postgres(error_text(&e))
}

/// The stored rows of the batch's addresses (`$1`), then, marked, the live
/// leases the clients of the batch's grants hold in the grants' networks
/// at addresses other than the grant's own: by client-id (`$2`-`$5`), or by
/// hardware address for a client without one (`$6`-`$10`). One round trip.
/// A holder can also be an address of the batch (a client with two grants
/// in it): the writer goes by that address's row as the batch leaves it.
///
/// Each grant looks its client up through the index, in a LATERAL
/// subquery that `OFFSET 0` keeps apart: the plan is made once, maybe on an
/// empty table, and a plain join planned there read every row with a
/// client-id for each batch (674 ms a read with 1,793 of them, under
/// bench/postgres.sh's perfdhcp, whose clients send one).
fn stored_rows_query() -> String {
    let active = DhcpState::Active.as_u8();
    format!(
        "SELECT false, changed_id, {COLUMNS} FROM bindings WHERE ip = ANY($1) \
         UNION ALL \
         SELECT true, h.* FROM \
           unnest($2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[]) AS q(cid, lo, hi, own), \
           LATERAL (SELECT b.changed_id, {held} FROM bindings b \
             WHERE b.client_id = q.cid AND b.ip BETWEEN q.lo AND q.hi AND b.ip <> q.own \
               AND b.state = {active} OFFSET 0) h \
         UNION ALL \
         SELECT true, h.* FROM \
           unnest($6::smallint[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[]) \
             AS q(htype, chaddr, lo, hi, own), \
           LATERAL (SELECT b.changed_id, {held} FROM bindings b \
             WHERE b.client_id IS NULL AND b.htype = q.htype AND b.chaddr = q.chaddr \
               AND b.ip BETWEEN q.lo AND q.hi AND b.ip <> q.own AND b.state = {active} \
             OFFSET 0) h",
        held = held_columns()
    )
}

/// [`COLUMNS`] of `bindings b`.
fn held_columns() -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("b.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The clients of a batch's grants, as [`stored_rows_query`]'s arrays.
#[derive(Default)]
struct GrantClients<'a> {
    client_id: Vec<&'a [u8]>,
    client_id_net: (Vec<i64>, Vec<i64>),
    /// The address each is granted.
    client_id_own: Vec<i64>,
    htype: Vec<i16>,
    chaddr: Vec<&'a [u8]>,
    chaddr_net: (Vec<i64>, Vec<i64>),
    chaddr_own: Vec<i64>,
}

impl<'a> GrantClients<'a> {
    fn of(batch: &'a [Request]) -> Self {
        let mut g = GrantClients::default();
        for req in batch {
            let Some((lo, hi)) = req.network else {
                continue;
            };
            for b in &req.bindings {
                if b.state != DhcpState::Active {
                    continue;
                }
                let (lo, hi) = (ip_key(lo), ip_key(hi));
                match &b.client_id {
                    Some(id) => {
                        g.client_id.push(id);
                        g.client_id_net.0.push(lo);
                        g.client_id_net.1.push(hi);
                        g.client_id_own.push(ip_key(b.ip));
                    }
                    None => {
                        g.htype.push(i16::from(b.htype));
                        g.chaddr.push(&b.chaddr);
                        g.chaddr_net.0.push(lo);
                        g.chaddr_net.1.push(hi);
                        g.chaddr_own.push(ip_key(b.ip));
                    }
                }
            }
        }
        g
    }

    fn is_empty(&self) -> bool {
        self.client_id.is_empty() && self.chaddr.is_empty()
    }

    fn params<'p>(&'p self, keys: &'p Vec<i64>) -> [&'p (dyn postgres::types::ToSql + Sync); 10] {
        [
            keys,
            &self.client_id,
            &self.client_id_net.0,
            &self.client_id_net.1,
            &self.client_id_own,
            &self.htype,
            &self.chaddr,
            &self.chaddr_net.0,
            &self.chaddr_net.1,
            &self.chaddr_own,
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
    use super::stored_rows_query;
    use crate::postgres::connect::hot_path_settings;
    use leaseline_test_support::pg_database;

    /// The writer plans the read once, when it connects: on a new database
    /// the table is empty. Each grant's client must still be looked up
    /// through an index by that client, not found by scanning every
    /// client's row for each batch.
    #[test]
    fn a_grants_client_is_looked_up_through_the_index_in_a_plan_made_on_an_empty_table() {
        let db = pg_database();
        crate::postgres::make_schema(&db.url, "plan");
        let mut c = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
        c.batch_execute(&hot_path_settings("; ")).expect("settings");
        c.batch_execute(&format!(
            "PREPARE held (bigint[], bytea[], bigint[], bigint[], bigint[], \
             smallint[], bytea[], bigint[], bigint[], bigint[]) AS {}",
            stored_rows_query()
        ))
        .expect("prepare");
        let plan: Vec<String> = c
            .query(
                "EXPLAIN EXECUTE held('{1}', '{\"\\\\x01\"}', '{0}', '{9}', '{1}', \
                 '{1}', '{\"\\\\x02\"}', '{0}', '{9}', '{2}')",
                &[],
            )
            .expect("explain")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Cond: (client_id = q.cid)"),
            "by client-id through its index:\n{plan}"
        );
        assert!(
            plan.contains("chaddr = q_1.chaddr))"),
            "by hardware address through its index:\n{plan}"
        );
        assert!(
            !plan.contains("Recheck Cond: (client_id IS NOT NULL)"),
            "no scan of every client-id's row:\n{plan}"
        );
    }
}
