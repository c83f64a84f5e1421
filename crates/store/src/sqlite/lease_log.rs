//! The lease history on SQLite (see `crate::lease_history`): the
//! `lease_history` table, written by the writer inside each group commit's
//! transaction (no transaction or fsync of its own), pruned there a bounded
//! chunk at a time, and read by the history queries.
//!
//! One row per history entry: a change that continues its address's
//! current entry (a renewal: same state, hardware address and
//! start-time-of-state) adds nothing. An entry ends where the address's
//! next one starts: read from the `(ip, start)` index, never stored, so a
//! row is written once and never updated.

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, Row, Transaction};

use super::codec::{ip_key, ip_key_to_ip};
use super::latest_entries::{Latest, LatestEntries};
use crate::lease_history::{self, HistoryEntry, HistoryKey, HistoryPage, HistoryQuery};
use crate::{Binding, DhcpState, LeaseLogLimits, StoreError};

pub(super) const CREATE: &str = "
-- Lease history (issue 20): one row per state of an address.
CREATE TABLE IF NOT EXISTS lease_history (
    id         INTEGER PRIMARY KEY,  -- commit order
    ip         INTEGER NOT NULL,
    start      INTEGER NOT NULL,     -- the binding's state_since
    state      INTEGER NOT NULL,
    htype      INTEGER NOT NULL,
    chaddr     BLOB NOT NULL,
    client_id  BLOB,
    circuit_id BLOB,
    remote_id  BLOB,
    logged_at  INTEGER NOT NULL      -- handling time of the commit that logged it
);
CREATE INDEX IF NOT EXISTS lease_history_ip ON lease_history (ip, start);
CREATE INDEX IF NOT EXISTS lease_history_chaddr ON lease_history (chaddr, start);
CREATE INDEX IF NOT EXISTS lease_history_client_id ON lease_history (client_id, start)
    WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_history_remote_id ON lease_history (remote_id, start)
    WHERE remote_id IS NOT NULL;
";

/// A change opens an entry unless it continues the address's latest one
/// (same start, state and hardware address: a renewal). Only the latest:
/// a client that gets an address back within the second its earlier lease
/// of it began opens a new entry. Which is the latest, the writer
/// remembers ([`LatestEntries`]).
const INSERT: &str = "INSERT INTO lease_history \
     (ip, start, state, htype, chaddr, client_id, circuit_id, remote_id, logged_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Most rows one commit prunes: the commit's extra time stays small (about
/// a millisecond), and pruning still outpaces logging (a commit logs at
/// most its own changes).
const PRUNE_CHUNK: i64 = 1_024;

/// The writer's side: logging a group's changes and pruning, inside the
/// group's transaction.
pub(super) struct LogWriter {
    limits: LeaseLogLimits,
    latest: LatestEntries,
}

impl LogWriter {
    pub(super) fn new(limits: LeaseLogLimits) -> Self {
        LogWriter {
            limits,
            latest: LatestEntries::default(),
        }
    }

    /// The group's transaction failed: its rows are gone.
    pub(super) fn rolled_back(&mut self) {
        self.latest.forget_all();
    }

    /// The statement [`LogWriter::log`] runs: prepared once per commit
    /// (the statement cache hashes the SQL text at each lookup).
    pub(super) fn statement<'c>(
        tx: &'c Transaction<'_>,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        tx.prepare_cached(INSERT)
    }

    /// Log `b` unless it continues its address's latest entry.
    pub(super) fn log(
        &mut self,
        tx: &Transaction<'_>,
        insert: &mut rusqlite::CachedStatement<'_>,
        b: &Binding,
        now: u32,
    ) -> rusqlite::Result<()> {
        let ip = ip_key(b.ip);
        let start = i64::from(b.state_since);
        let state = b.state.as_u8();
        let continues = self
            .latest
            .get(tx, ip)?
            .is_some_and(|l| l.start == start && l.state == state && l.chaddr == b.chaddr);
        if continues {
            return Ok(());
        }
        insert.execute(params![
            ip,
            start,
            state,
            b.htype,
            b.chaddr,
            b.client_id,
            b.circuit_id,
            b.remote_id,
            now,
        ])?;
        self.latest.inserted(
            ip,
            Latest {
                start,
                state,
                chaddr: b.chaddr.clone(),
            },
        );
        Ok(())
    }

    /// Delete, from the oldest rows, up to [`PRUNE_CHUNK`] logged before
    /// `now - keep` or beyond `max_rows`. Costs one index seek when there
    /// is nothing to prune. Rows are logged in (nearly) increasing time, so
    /// the oldest ids are the oldest rows.
    pub(super) fn prune(&mut self, tx: &Transaction<'_>, now: u32) -> rusqlite::Result<usize> {
        let oldest = tx
            .prepare_cached("SELECT id, logged_at FROM lease_history ORDER BY id LIMIT 1")?
            .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)));
        let (first_id, first_at) = match oldest {
            Ok(v) => v,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(0),
            Err(e) => return Err(e),
        };
        let last_id = tx
            .prepare_cached("SELECT max(id) FROM lease_history")?
            .query_row([], |r| r.get::<_, i64>(0))?;
        let cutoff = i64::from(now.saturating_sub(self.limits.keep_secs));
        let max_rows = i64::try_from(self.limits.max_rows).unwrap_or(i64::MAX);
        let cap_id = last_id.saturating_sub(max_rows);
        if first_at >= cutoff && first_id > cap_id {
            return Ok(0);
        }
        let mut delete = tx.prepare_cached(
            "DELETE FROM lease_history WHERE id IN \
             (SELECT id FROM lease_history ORDER BY id LIMIT ?1) \
             AND (logged_at < ?2 OR id <= ?3) RETURNING ip",
        )?;
        let mut deleted = delete.query(params![PRUNE_CHUNK, cutoff, cap_id])?;
        let mut count = 0;
        while let Some(row) = deleted.next()? {
            self.latest.forget(row.get(0)?);
            count += 1;
        }
        Ok(count)
    }
}

const ENTRY: &str = "h.id, h.ip, h.start, h.state, h.htype, h.chaddr, h.client_id, \
     h.circuit_id, h.remote_id, \
     (SELECT n.start FROM lease_history n WHERE n.ip = h.ip AND n.start >= h.start \
      AND (n.start > h.start OR n.id > h.id) ORDER BY n.start, n.id LIMIT 1)";

/// One page of a history query, from one read transaction.
pub(super) fn query(conn: &Connection, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
    let (column, key): (&str, rusqlite::types::Value) = match &q.key {
        HistoryKey::Ip(ip) => ("ip", ip_key(*ip).into()),
        HistoryKey::Mac(m) => ("chaddr", m.clone().into()),
        HistoryKey::ClientId(c) => ("client_id", c.clone().into()),
        HistoryKey::RemoteId(r) => ("remote_id", r.clone().into()),
    };
    let tx = conn.unchecked_transaction()?;
    let before = if q.after.is_none() {
        let sql = format!(
            "SELECT {ENTRY} FROM lease_history h WHERE h.{column} = ?1 AND h.start < ?2 \
             ORDER BY h.start DESC, h.id DESC LIMIT 1"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![key, lease_history::before_bound(q)])?;
        match rows.next()? {
            Some(row) => Some(decode(row)?),
            None => None,
        }
    } else {
        None
    };
    let before = lease_history::kept_before(q, before);
    if lease_history::is_at(q) {
        tx.commit()?;
        return Ok(lease_history::page(q, before, Vec::new()));
    }
    let lo = lease_history::lower_bound(q);
    let want = i64::try_from(lease_history::rows_to_read(q, &before)).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {ENTRY} FROM lease_history h WHERE h.{column} = ?1 \
         AND h.start >= ?2 AND h.start >= ?3 AND (h.start > ?3 OR h.id > ?4) AND h.start <= ?5 \
         ORDER BY h.start, h.id LIMIT ?6"
    );
    let mut rows_out = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![key, q.from, lo.start, lo.id, q.to, want])?;
        while let Some(row) = rows.next()? {
            rows_out.push(decode(row)?);
        }
    }
    tx.commit()?;
    Ok(lease_history::page(q, before, rows_out))
}

fn decode(row: &Row<'_>) -> Result<HistoryEntry, StoreError> {
    let id: i64 = row.get(0)?;
    let bad = |what: &str| StoreError::Corrupt {
        ip: format!("lease_history row {id}"),
        reason: what.to_owned(),
    };
    let ip = ip_key_to_ip(row.get(1)?).ok_or_else(|| bad("ip is not a u32"))?;
    let time = |idx: usize, what: &str| -> Result<u32, StoreError> {
        u32::try_from(row.get::<_, i64>(idx)?).map_err(|_| bad(what))
    };
    let blob = |idx: usize, what: &str| -> Result<Option<Vec<u8>>, StoreError> {
        match row.get_ref(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b.to_vec())),
            _ => Err(bad(what)),
        }
    };
    let state = u8::try_from(row.get::<_, i64>(3)?)
        .ok()
        .and_then(DhcpState::from_u8)
        .ok_or_else(|| bad("state: unknown value"))?;
    let end = match row.get_ref(9)? {
        ValueRef::Null => None,
        _ => Some(time(9, "end out of range")?),
    };
    Ok(HistoryEntry {
        ip,
        state,
        htype: u8::try_from(row.get::<_, i64>(4)?).map_err(|_| bad("htype out of range"))?,
        chaddr: blob(5, "chaddr: not a blob")?.ok_or_else(|| bad("chaddr: NULL"))?,
        client_id: blob(6, "client_id: not a blob")?,
        circuit_id: blob(7, "circuit_id: not a blob")?,
        remote_id: blob(8, "remote_id: not a blob")?,
        start: time(2, "start out of range")?,
        end,
        id,
    })
}
