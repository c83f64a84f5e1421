//! PostgreSQL backend, shared by several servers ("instances"). The same
//! contract as [`crate::SqliteStore`]: one writer thread doing group commit
//! (one transaction per batch), tickets resolved after the commit and after
//! publishing on the feed in commit order, history rebuilt at start.
//!
//! Every committed binding change is also written, in the same transaction,
//! to the `lease_changes` log (id and log time assigned under a lock every
//! instance's commit takes, the writing instance, the binding), and the
//! commit NOTIFYs. Each change is checked against the stored row first
//! (see `writer`): several instances decide from their own copies, the
//! database decides who was first. Once observed
//! ([`LeaseStore::observe`]), a follower thread reads the log by id, so the
//! feed carries every instance's changes (see `follow`), and heart-beats
//! this instance (see `instances`).
//!
//! Reads run on reader threads that own their connections (see `readers`):
//! the caller blocks until the answer, like SQLite's reads.

mod codec;
mod connect;
mod follow;
mod health;
mod history;
mod instances;
mod lease_history;
mod log_gaps;
mod ops;
mod readers;
mod schema;
mod tls;
mod writer;

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use postgres::types::ToSql;
use postgres::Client;

use crate::group_commit::{self, Request};
use crate::{
    Binding, ChangeFeed, HistoryLimits, HistoryPage, HistoryQuery, LeaseLogLimits, LeaseStore,
    OnDurable, StoreError, StoreObserver,
};
use codec::{decode, ip_key, COLUMNS};
use connect::Database;
use follow::{Follower, LogFollower};
use health::Health;
pub use history::LoggedChange;
pub use ops::PgSchemaStatus;
use readers::ReadPool;
use writer::Writer;

/// How far before a resuming requestor's query-start-time an instance
/// answers from (RFC 7724 §7.4 catch-up): the base-time it was given came
/// from another instance, whose clock and view of the log may be a little
/// behind or ahead (docs/postgresql.md, "Time across instances").
pub const SHARED_RESUME_MARGIN: u32 = 10;

/// The schema version this build creates and reads.
pub const PG_SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/dbname` or libpq's `key=value`
    /// form.
    pub url: String,
    pub history: HistoryLimits,
    /// Most changes grouped into one transaction.
    pub max_batch: usize,
    /// Names this instance in the change log.
    pub instance_id: String,
    /// Reader connections.
    pub readers: usize,
    /// The lease history's retention (`[history]`); None: no lease history
    /// (its indexes are not created, the change log is kept as long as
    /// Active Leasequery needs).
    pub lease_log: Option<LeaseLogLimits>,
}

/// See [`PostgresStore::change_log_position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLogPosition {
    /// Every log id up to this one is on this instance's feed, or will
    /// never exist (a failed commit's, or pruned before it was read).
    pub published: i64,
    /// Rows wait behind a missing id: a commit that took it is running.
    pub waiting: bool,
}

pub struct PostgresStore {
    feed: Arc<ChangeFeed>,
    commits: Arc<crate::CommitStats>,
    log: Arc<LogFollower>,
    health: Arc<Health>,
    /// `None` only while dropping: closing it lets the writer drain and exit.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    /// Started by `observe`.
    follower: parking_lot::Mutex<Option<Follower>>,
    readers: ReadPool,
    db: Arc<Database>,
    lease_log: bool,
}

impl PostgresStore {
    /// Connect, create or upgrade the schema, rebuild the history. Every
    /// failure (bad URL, unreachable server, authentication, a schema newer
    /// than this build) is one `StoreError::PgOpen` line naming the cause.
    pub fn open(opts: PostgresOptions, now: u32) -> Result<Self, StoreError> {
        let db = Arc::new(schema::parse(&opts.url)?);
        let target = db.target.clone();
        let mut client = db.connect()?;
        schema::migrate(&mut client, &target, now)?;
        if opts.lease_log.is_some() {
            lease_history::create_indexes(&mut client).map_err(|e| {
                schema::open_error(
                    &target,
                    format!(
                        "creating the lease history's indexes: {}",
                        schema::error_text(&e)
                    ),
                )
            })?;
        }
        let (feed, last_id) = history::rebuild(&mut client, opts.history, now)
            .map_err(|e| schema::open_error(&target, format!("reading the change history: {e}")))?;
        let feed = Arc::new(feed);
        let log = Arc::new(LogFollower::new(
            opts.instance_id.clone(),
            Arc::clone(&feed),
            last_id,
        ));
        let health = Arc::new(Health::default());
        let readers = ReadPool::new(&db, opts.readers, &opts.instance_id)?;
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(crate::CommitStats::default());
        // The schema's connection plans each statement; the writer's plans
        // its few once (`connect_hot_path`).
        drop(client);
        let writer = Writer {
            commits: Arc::clone(&commits),
            client: db.connect_hot_path()?,
            log: Arc::clone(&log),
            max_batch: opts.max_batch.max(1),
            pruner: history::Pruner::new(history::retention(opts.history, opts.lease_log)),
            health: Arc::clone(&health),
            db: Arc::clone(&db),
            statements: None,
            broken: false,
        };
        let writer = std::thread::Builder::new()
            .name("leaseline-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| schema::open_error(&target, format!("spawning the writer thread: {e}")))?;
        Ok(PostgresStore {
            feed,
            commits,
            log,
            health,
            tx: Some(tx),
            writer: Some(writer),
            follower: parking_lot::Mutex::new(None),
            readers,
            db,
            lease_log: opts.lease_log.is_some(),
        })
    }

    /// Where this instance's feed is in the change log (its outbox lag is
    /// the log's newest id less `published`).
    pub fn change_log_position(&self) -> ChangeLogPosition {
        self.log.position()
    }

    /// Up to `limit` rows of the change log with an id above `after`,
    /// ascending by id (see [`LoggedChange`]).
    pub fn changes_after(&self, after: i64, limit: usize) -> Result<Vec<LoggedChange>, StoreError> {
        self.readers.with(move |c, me| {
            history::LogRead::prepare(c)
                .map_err(|e| StoreError::Postgres(schema::error_text(&e)))?
                .rows(c, after, i64::MAX, limit, me)
        })
    }

    /// Delete change-log rows beyond the history's limits at `now` (the
    /// writer also does it every few thousand changes). Returns how many went.
    pub fn prune_changes(&self, limits: HistoryLimits, now: u32) -> Result<u64, StoreError> {
        self.readers.with(move |c, _| {
            history::prune(c, limits, now).map_err(|e| StoreError::Postgres(schema::error_text(&e)))
        })
    }

    fn select(&self, filter: &'static str, args: Vec<Arg>) -> Result<Vec<Binding>, StoreError> {
        self.readers.with(move |c, me| {
            let sql = format!("SELECT {COLUMNS} FROM bindings WHERE {filter} ORDER BY ip");
            query(c, &sql, &args, me)
        })
    }
}

/// An owned query argument (reads run on another thread).
enum Arg {
    Int(i64),
    Small(i16),
    Bytes(Vec<u8>),
}

impl Arg {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Int(v) => v,
            Arg::Small(v) => v,
            Arg::Bytes(v) => v,
        }
    }
}

fn query(c: &mut Client, sql: &str, args: &[Arg], me: &str) -> Result<Vec<Binding>, StoreError> {
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_sql).collect();
    let stmt = c.prepare(sql).map_err(pg_error)?;
    let rows = c.query(&stmt, &params).map_err(pg_error)?;
    rows.iter().map(|r| decode(r, 0, me)).collect()
}

fn pg_error(e: postgres::Error) -> StoreError {
    StoreError::Postgres(schema::error_text(&e))
}

impl LeaseStore for PostgresStore {
    fn submit_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable) {
        group_commit::submit(self.tx.as_ref(), bindings, now, false, None, done);
    }

    fn submit_decided_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable) {
        group_commit::submit(self.tx.as_ref(), bindings, now, true, None, done);
    }

    fn submit_grant_then(
        &self,
        binding: Binding,
        network: (Ipv4Addr, Ipv4Addr),
        now: u32,
        done: OnDurable,
    ) {
        group_commit::submit(
            self.tx.as_ref(),
            vec![binding],
            now,
            true,
            Some(network),
            done,
        );
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<Binding>, StoreError> {
        Ok(self.select("ip = $1", vec![Arg::Int(ip_key(ip))])?.pop())
    }

    fn get_many(&self, ips: &[Ipv4Addr]) -> Result<Vec<Option<Binding>>, StoreError> {
        let keys: Vec<i64> = ips.iter().map(|&ip| ip_key(ip)).collect();
        self.readers.with(move |c, me| {
            // One statement, one snapshot; answers in the order asked.
            let sql = format!("SELECT {COLUMNS} FROM bindings WHERE ip = ANY($1)");
            let rows = c.query(&sql, &[&keys]).map_err(pg_error)?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let b = decode(row, 0, me)?;
                found.insert(ip_key(b.ip), b);
            }
            Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
        })
    }

    fn by_chaddr(&self, htype: u8, chaddr: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select(
            "htype = $1 AND chaddr = $2",
            vec![Arg::Small(i16::from(htype)), Arg::Bytes(chaddr.to_vec())],
        )
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("client_id = $1", vec![Arg::Bytes(client_id.to_vec())])
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("remote_id = $1", vec![Arg::Bytes(remote_id.to_vec())])
    }

    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("relay_id = $1", vec![Arg::Bytes(relay_id.to_vec())])
    }

    fn range(
        &self,
        from: Ipv4Addr,
        to: Ipv4Addr,
        limit: usize,
    ) -> Result<Vec<Binding>, StoreError> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let args = vec![
            Arg::Int(ip_key(from)),
            Arg::Int(ip_key(to)),
            Arg::Int(limit),
        ];
        self.readers.with(move |c, me| {
            let sql = format!(
                "SELECT {COLUMNS} FROM bindings WHERE ip BETWEEN $1 AND $2 ORDER BY ip LIMIT $3"
            );
            query(c, &sql, &args, me)
        })
    }

    fn load_all(&self) -> Result<Vec<Binding>, StoreError> {
        self.select("true", Vec::new())
    }

    fn history(&self, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        if !self.lease_log {
            return Err(StoreError::HistoryOff);
        }
        let q = q.clone();
        self.readers.with(move |c, _| lease_history::query(c, &q))
    }

    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    fn commit_stats(&self) -> &crate::CommitStats {
        &self.commits
    }

    fn outbox_lag(&self) -> Option<Result<crate::OutboxLag, StoreError>> {
        let published = self.log.published();
        Some(self.readers.with(move |c, _| {
            // Ages by the database's clock (committed_at is its now()).
            let row = c
                .query_one(
                    "SELECT coalesce(max(id), 0),
                        coalesce((SELECT extract(epoch FROM now() - committed_at)::float8
                                  FROM lease_changes WHERE id > $1::bigint
                                  ORDER BY id LIMIT 1), 0)
                     FROM lease_changes",
                    &[&published],
                )
                .map_err(pg_error)?;
            let newest: i64 = row.try_get(0).map_err(pg_error)?;
            let age: f64 = row.try_get(1).map_err(pg_error)?;
            Ok(crate::OutboxLag {
                unpublished: u64::try_from(newest - published).unwrap_or(0),
                age_seconds: age.max(0.0),
            })
        }))
    }

    /// Starts the follower (once): from the log position at `open`, every
    /// change another instance commits goes to `observer`, then the feed.
    fn observe(&self, observer: Arc<dyn StoreObserver>) {
        if !self.log.set_observer(observer) {
            return;
        }
        self.feed.set_resume_margin(SHARED_RESUME_MARGIN);
        match Follower::spawn(
            Arc::clone(&self.log),
            Arc::clone(&self.db),
            Arc::clone(&self.health),
        ) {
            Ok(f) => *self.follower.lock() = Some(f),
            Err(e) => {
                tracing::error!(error = %e, event = "follower_start_failed", "cannot start the change-log follower")
            }
        }
    }
}

impl Drop for PostgresStore {
    /// The writer commits everything already queued, then exits.
    fn drop(&mut self) {
        // The follower leaves the instances table: the others take this
        // instance's share of the pools over at once.
        drop(self.follower.lock().take());
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            if writer.thread().id() == std::thread::current().id() {
                // Dropped by a commit callback on the writer thread: it
                // exits by itself once this returns (as SQLite's).
            } else if writer.join().is_err() {
                tracing::error!(
                    event = "store_writer_panicked",
                    "store writer thread panicked"
                );
            }
        }
    }
}

/// Unit tests below the store: the schema made on `url` by opening a
/// store there (as `instance`) and closing it.
#[cfg(test)]
fn make_schema(url: &str, instance: &str) {
    let opened = PostgresStore::open(
        PostgresOptions {
            url: url.to_owned(),
            history: HistoryLimits {
                max_age: 3_600,
                max_count: 1_000,
            },
            max_batch: 64,
            instance_id: instance.into(),
            readers: 1,
            lease_log: None,
        },
        1_700_000_000,
    );
    assert!(
        opened.is_ok(),
        "open (makes the schema): {:?}",
        opened.err()
    );
}
