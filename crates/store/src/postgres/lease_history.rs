//! The lease history on PostgreSQL (see `crate::lease_history`), read from
//! the change log every instance shares: `lease_changes` already holds each
//! committed change with its columns, so the history is no second log, only
//! indexes on it (created at start when the history is on) and a retention
//! that keeps the log long enough (`history::Pruner` keeps the longer of
//! the Active Leasequery window and the history's).
//!
//! An entry is the first logged row of a run of rows of one address with
//! the same start-time-of-state, state and hardware address (a renewal
//! logs a row of the same run); it ends where the address's next run starts.
//! Which rows open a run is decided as they are logged (`opens_run`: by
//! the writer for the changes it decided from the rows it read, by the
//! commit function for the others; schema versions 6 and 7), so the
//! indexes here hold only those: a renewal, most of a server's traffic,
//! costs them nothing.

use postgres::types::ToSql;
use postgres::{Client, Row};

use super::codec::{ip_key, ip_key_to_ip};
use super::schema::error_text;
use crate::lease_history::{self, HistoryEntry, HistoryKey, HistoryPage, HistoryQuery};
use crate::{DhcpState, StoreError};

/// The transaction-level advisory lock the index creation takes: instances
/// starting together create them one at a time.
const INDEX_LOCK: i64 = 7_724_020;

const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS lease_changes_entries_ip
    ON lease_changes (ip, state_since, id) WHERE opens_run;
CREATE INDEX IF NOT EXISTS lease_changes_entries_chaddr
    ON lease_changes (chaddr, state_since, id) WHERE opens_run;
CREATE INDEX IF NOT EXISTS lease_changes_entries_client_id
    ON lease_changes (client_id, state_since, id) WHERE opens_run AND client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS lease_changes_entries_remote_id
    ON lease_changes (remote_id, state_since, id) WHERE opens_run AND remote_id IS NOT NULL;
";

/// Create the history's indexes (once; a no-op when they exist).
pub(super) fn create_indexes(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INDEX_LOCK])?;
    tx.batch_execute(INDEXES)?;
    tx.commit()
}

/// The entry's columns and its end: the start of the address's next entry.
const ENTRY: &str = "c.id, c.ip, c.state_since, c.state, c.htype, c.chaddr, c.client_id, \
     c.circuit_id, c.remote_id, \
     (SELECT n.state_since FROM lease_changes n WHERE n.ip = c.ip AND n.opens_run \
      AND (n.state_since, n.id) > (c.state_since, c.id) \
      ORDER BY n.state_since, n.id LIMIT 1)";

/// Only the rows that open an entry (marked as they are logged): the
/// history's indexes hold no others.
const OPENS_RUN: &str = "c.opens_run";

/// An owned key (reads run on a reader thread).
enum Key {
    Int(i64),
    Bytes(Vec<u8>),
}

/// One page of a history query, in one read-only transaction.
pub(super) fn query(client: &mut Client, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
    let (column, key) = match &q.key {
        HistoryKey::Ip(ip) => ("ip", Key::Int(ip_key(*ip))),
        HistoryKey::Mac(m) => ("chaddr", Key::Bytes(m.clone())),
        HistoryKey::ClientId(c) => ("client_id", Key::Bytes(c.clone())),
        HistoryKey::RemoteId(r) => ("remote_id", Key::Bytes(r.clone())),
    };
    let key: &(dyn ToSql + Sync) = match &key {
        Key::Int(v) => v,
        Key::Bytes(v) => v,
    };
    let fail = |e: postgres::Error| StoreError::Postgres(error_text(&e));
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(fail)?;
    let from = i64::from(q.from);
    let before = if q.after.is_none() {
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {ENTRY} FROM lease_changes c WHERE c.{column} = $1 \
                     AND c.state_since < $2 AND {OPENS_RUN} \
                     ORDER BY c.state_since DESC, c.id DESC LIMIT 1"
                ),
                &[key, &lease_history::before_bound(q)],
            )
            .map_err(fail)?;
        row.map(|r| decode(&r)).transpose()?
    } else {
        None
    };
    let before = lease_history::kept_before(q, before);
    if lease_history::is_at(q) {
        tx.commit().map_err(fail)?;
        return Ok(lease_history::page(q, before, Vec::new()));
    }
    let lo = lease_history::lower_bound(q);
    let want = i64::try_from(lease_history::rows_to_read(q, &before)).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            &format!(
                "SELECT {ENTRY} FROM lease_changes c WHERE c.{column} = $1 \
                 AND c.state_since >= $2 AND (c.state_since, c.id) > ($3, $4) \
                 AND c.state_since <= $5 AND {OPENS_RUN} \
                 ORDER BY c.state_since, c.id LIMIT $6"
            ),
            &[
                key,
                &from,
                &i64::from(lo.start),
                &lo.id,
                &i64::from(q.to),
                &want,
            ],
        )
        .map_err(fail)?;
    let rows = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(fail)?;
    Ok(lease_history::page(q, before, rows))
}

fn decode(row: &Row) -> Result<HistoryEntry, StoreError> {
    let id: i64 = row.try_get(0).unwrap_or(-1);
    let bad = |what: &str| StoreError::Corrupt {
        ip: format!("lease_changes row {id}"),
        reason: what.to_owned(),
    };
    let int = |idx: usize, what: &str| -> Result<i64, StoreError> {
        row.try_get::<_, i64>(idx).map_err(|_| bad(what))
    };
    let small = |idx: usize, what: &str| -> Result<u8, StoreError> {
        row.try_get::<_, i16>(idx)
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| bad(what))
    };
    let blob = |idx: usize, what: &str| -> Result<Option<Vec<u8>>, StoreError> {
        row.try_get::<_, Option<Vec<u8>>>(idx)
            .map_err(|_| bad(what))
    };
    let time = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(what));
    let ip = ip_key_to_ip(int(1, "ip")?).ok_or_else(|| bad("ip is not a u32"))?;
    let state = DhcpState::from_u8(small(3, "state")?).ok_or_else(|| bad("state: unknown"))?;
    let end = row
        .try_get::<_, Option<i64>>(9)
        .map_err(|_| bad("end"))?
        .map(|v| time(v, "end out of range"))
        .transpose()?;
    Ok(HistoryEntry {
        ip,
        state,
        htype: small(4, "htype")?,
        chaddr: blob(5, "chaddr")?.ok_or_else(|| bad("chaddr: NULL"))?,
        client_id: blob(6, "client_id")?,
        circuit_id: blob(7, "circuit_id")?,
        remote_id: blob(8, "remote_id")?,
        start: time(int(2, "state_since")?, "state_since out of range")?,
        end,
        id,
    })
}
