//! PostgreSQL backend (issue 17, phase 1: one instance). The same contract
//! as [`crate::SqliteStore`]: one writer thread doing group commit (one
//! transaction per batch), tickets resolved after the commit and after
//! publishing on the feed in commit order, history rebuilt at start.
//!
//! Every committed binding change is also written, in the same transaction,
//! to the `lease_changes` log (an identity id, the writing instance, the
//! binding, the commit's time) and the commit NOTIFYs; the feed is fed by
//! this instance's own commits. [`PostgresStore::changes_after`] reads the
//! log by id, for a later phase where every instance follows it.
//!
//! Reads run on reader threads that own their connections (see `readers`):
//! the caller blocks until the answer, like SQLite's reads.

mod codec;
mod history;
mod readers;
mod schema;
mod writer;

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use postgres::types::ToSql;
use postgres::Client;

use crate::group_commit::{self, Request};
use crate::{Binding, ChangeFeed, HistoryLimits, LeaseStore, OnDurable, StoreError};
use codec::{decode, ip_key, COLUMNS};
pub use history::LoggedChange;
use readers::ReadPool;
use writer::Writer;

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
}

pub struct PostgresStore {
    feed: Arc<ChangeFeed>,
    /// `None` only while dropping: closing it lets the writer drain and exit.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    readers: ReadPool,
}

impl PostgresStore {
    /// Connect, create or upgrade the schema, rebuild the history. Every
    /// failure (bad URL, unreachable server, authentication, a schema newer
    /// than this build) is one `StoreError::PgOpen` line naming the cause.
    pub fn open(opts: PostgresOptions, now: u32) -> Result<Self, StoreError> {
        let (config, target) = schema::parse(&opts.url)?;
        let mut client = schema::connect(&config, &target)?;
        schema::migrate(&mut client, &target, now)?;
        let feed = Arc::new(
            history::rebuild(&mut client, opts.history, now).map_err(|e| {
                schema::open_error(
                    &target,
                    format!("reading the change history: {}", schema::error_text(&e)),
                )
            })?,
        );
        let readers = ReadPool::new(&config, &target, opts.readers)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            client,
            instance_id: opts.instance_id,
            feed: feed.clone(),
            max_batch: opts.max_batch.max(1),
            pruner: history::Pruner::new(opts.history),
            config: config.clone(),
            target: target.clone(),
            upsert: None,
        };
        let writer = std::thread::Builder::new()
            .name("leaseline-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| schema::open_error(&target, format!("spawning the writer thread: {e}")))?;
        Ok(PostgresStore {
            feed,
            tx: Some(tx),
            writer: Some(writer),
            readers,
        })
    }

    /// Up to `limit` rows of the change log with an id above `after`,
    /// ascending by id (see [`LoggedChange`]).
    pub fn changes_after(&self, after: i64, limit: usize) -> Result<Vec<LoggedChange>, StoreError> {
        self.readers
            .with(move |c| history::changes_after(c, after, limit))
    }

    /// Delete change-log rows beyond the history's limits now (the writer
    /// also does it every few thousand changes). Returns how many went.
    pub fn prune_changes(&self, limits: HistoryLimits, now: u32) -> Result<u64, StoreError> {
        self.readers.with(move |c| {
            history::prune(c, limits, now).map_err(|e| StoreError::Postgres(schema::error_text(&e)))
        })
    }

    fn select(&self, filter: &'static str, args: Vec<Arg>) -> Result<Vec<Binding>, StoreError> {
        self.readers.with(move |c| {
            let sql = format!("SELECT {COLUMNS} FROM bindings WHERE {filter} ORDER BY ip");
            query(c, &sql, &args)
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

fn query(c: &mut Client, sql: &str, args: &[Arg]) -> Result<Vec<Binding>, StoreError> {
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_sql).collect();
    let stmt = c.prepare(sql).map_err(pg_error)?;
    let rows = c.query(&stmt, &params).map_err(pg_error)?;
    rows.iter().map(|r| decode(r, 0)).collect()
}

fn pg_error(e: postgres::Error) -> StoreError {
    StoreError::Postgres(schema::error_text(&e))
}

impl LeaseStore for PostgresStore {
    fn submit_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable) {
        group_commit::submit(self.tx.as_ref(), bindings, now, done);
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<Binding>, StoreError> {
        Ok(self.select("ip = $1", vec![Arg::Int(ip_key(ip))])?.pop())
    }

    fn get_many(&self, ips: &[Ipv4Addr]) -> Result<Vec<Option<Binding>>, StoreError> {
        let keys: Vec<i64> = ips.iter().map(|&ip| ip_key(ip)).collect();
        self.readers.with(move |c| {
            // One statement, one snapshot; answers in the order asked.
            let sql = format!("SELECT {COLUMNS} FROM bindings WHERE ip = ANY($1)");
            let rows = c.query(&sql, &[&keys]).map_err(pg_error)?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let b = decode(row, 0)?;
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
        self.readers.with(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM bindings WHERE ip BETWEEN $1 AND $2 ORDER BY ip LIMIT $3"
            );
            query(c, &sql, &args)
        })
    }

    fn load_all(&self) -> Result<Vec<Binding>, StoreError> {
        self.select("true", Vec::new())
    }

    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }
}

impl Drop for PostgresStore {
    /// The writer commits everything already queued, then exits.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            if writer.thread().id() == std::thread::current().id() {
                // Dropped by a commit callback on the writer thread: it
                // exits by itself once this returns (as SQLite's).
            } else if writer.join().is_err() {
                tracing::error!("store writer thread panicked");
            }
        }
    }
}
