//! Embedded default store: SQLite in WAL mode, one writer thread doing group
//! commit, fsync on every commit (synchronous=FULL).
//!
//! Reads run on the caller's thread on a pooled read connection: they are
//! short indexed queries but do touch the disk, so async callers should use
//! `spawn_blocking` for large ones (`range`, `load_all`). `submit` never blocks.

mod checkpoint;
mod codec;
mod history;
mod import;
mod latest_entries;
mod lease_log;
mod library;
mod ops;
mod readers;
mod schema;
mod writer;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, ToSql};

use crate::group_commit::{self, Request};
use crate::{
    Binding, ChangeFeed, HistoryLimits, HistoryPage, HistoryQuery, LeaseLogLimits, LeaseStore,
    OnDurable, StoreError,
};
use codec::{decode, ip_key, COLUMNS};
pub use library::SqliteLibrary;
use readers::ReadPool;

/// The most the WAL file (`<db>-wal`) holds under sustained load: it is
/// written again from its start once long, and truncated to this size when
/// it restarts (see `checkpoint.rs`; docs/configuration.md, "Disk use").
pub const WAL_SIZE_BOUND: u64 = checkpoint::JOURNAL_SIZE_LIMIT;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    pub history: HistoryLimits,
    /// Most changes grouped into one transaction.
    pub max_batch: usize,
    /// The lease history's retention (`[history]`); None: no lease history.
    pub lease_log: Option<LeaseLogLimits>,
}

pub struct SqliteStore {
    feed: Arc<ChangeFeed>,
    commits: Arc<crate::CommitStats>,
    /// `None` only while dropping: closing it lets the writer drain and exit.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    readers: ReadPool,
    /// Dropped after the writer has drained.
    checkpointer: Option<checkpoint::Checkpointer>,
    lease_log: bool,
}

impl SqliteStore {
    /// Open (creating if needed) the store; `now` starts the feed's history.
    /// The history is rebuilt from the rows' change times (see [`history`]).
    pub fn open(opts: SqliteOptions, now: u32) -> Result<Self, crate::StoreError> {
        let conn = schema::open_writer(&opts.path, now)?;
        let readers = ReadPool::new(opts.path.clone())?;
        let checkpointer = checkpoint::Checkpointer::start(&opts.path)?;
        let feed =
            Arc::new(
                history::rebuild(&conn, opts.history, now).map_err(|e| StoreError::Open {
                    path: opts.path.display().to_string(),
                    reason: format!("reading the change history: {e}"),
                })?,
            );
        let (tx, rx) = mpsc::channel();
        let max_batch = opts.max_batch.max(1);
        let log = opts.lease_log.map(lease_log::LogWriter::new);
        let writer_feed = feed.clone();
        let commits = Arc::new(crate::CommitStats::default());
        let writer_commits = Arc::clone(&commits);
        let writer = std::thread::Builder::new()
            .name("leaseline-store-writer".into())
            .spawn(move || writer::run(conn, rx, writer_feed, &writer_commits, max_batch, log))
            .map_err(|e| StoreError::Open {
                path: opts.path.display().to_string(),
                reason: format!("spawning the writer thread: {e}"),
            })?;
        Ok(SqliteStore {
            feed,
            commits,
            tx: Some(tx),
            writer: Some(writer),
            readers,
            checkpointer: Some(checkpointer),
            lease_log: opts.lease_log.is_some(),
        })
    }

    fn select(&self, filter: &str, args: &[&dyn ToSql]) -> Result<Vec<Binding>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM bindings WHERE {filter} ORDER BY ip");
        self.readers.with(|conn| query(conn, &sql, args))
    }
}

fn query(conn: &Connection, sql: &str, args: &[&dyn ToSql]) -> Result<Vec<Binding>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

impl LeaseStore for SqliteStore {
    fn submit_then(&self, bindings: Vec<Binding>, now: u32, done: OnDurable) {
        group_commit::submit(self.tx.as_ref(), bindings, now, false, None, done);
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<Binding>, StoreError> {
        Ok(self.select("ip = ?1", &[&ip_key(ip)])?.pop())
    }

    fn get_many(&self, ips: &[Ipv4Addr]) -> Result<Vec<Option<Binding>>, StoreError> {
        self.readers.with(|conn| {
            // One read transaction for the chunk: one WAL read lock (SQLite
            // takes a process-wide mutex for it, which the writer needs too)
            // and one snapshot, instead of one of each per address.
            let tx = conn.unchecked_transaction()?;
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM bindings WHERE ip = ?1"))?;
            let mut out = Vec::with_capacity(ips.len());
            for &ip in ips {
                let mut rows = stmt.query([ip_key(ip)])?;
                out.push(match rows.next()? {
                    Some(row) => Some(decode(row)?),
                    None => None,
                });
            }
            drop(stmt);
            tx.commit()?;
            Ok(out)
        })
    }

    fn by_chaddr(&self, htype: u8, chaddr: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("htype = ?1 AND chaddr = ?2", &[&htype, &chaddr])
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("client_id = ?1", &[&client_id])
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("remote_id = ?1", &[&remote_id])
    }

    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<Binding>, StoreError> {
        self.select("relay_id = ?1", &[&relay_id])
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
        let sql = format!(
            "SELECT {COLUMNS} FROM bindings WHERE ip BETWEEN ?1 AND ?2 ORDER BY ip LIMIT ?3"
        );
        self.readers
            .with(|conn| query(conn, &sql, &[&ip_key(from), &ip_key(to), &limit]))
    }

    fn load_all(&self) -> Result<Vec<Binding>, StoreError> {
        self.select("1", &[])
    }

    fn history(&self, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        if !self.lease_log {
            return Err(StoreError::HistoryOff);
        }
        self.readers.with(|conn| lease_log::query(conn, q))
    }

    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    fn commit_stats(&self) -> &crate::CommitStats {
        &self.commits
    }
}

impl Drop for SqliteStore {
    /// The writer commits everything already queued, then exits.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            if writer.thread().id() == std::thread::current().id() {
                // The last handle was held by a commit callback, which the
                // writer runs: it cannot join itself. Everything queued before
                // that callback is committed; the writer sees the closed
                // queue and exits when this returns.
            } else if writer.join().is_err() {
                tracing::error!(
                    event = "store_writer_panicked",
                    "store writer thread panicked"
                );
            }
        }
        drop(self.checkpointer.take());
    }
}
