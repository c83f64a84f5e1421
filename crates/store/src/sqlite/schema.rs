//! Connection set-up and the `bindings` table (architecture: Storage).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::library::SqliteLibrary;
use crate::StoreError;

/// Bumped on every schema change; kept in `PRAGMA user_version`.
/// 4: `lease_history` (issue 20).
pub(super) const SCHEMA_VERSION: i64 = 4;

/// The writer's page cache, KiB (SQLite's default is 2 MiB): the lease
/// history's indexes take inserts at random places (by address, MAC,
/// client-id), and with the default cache each commit read their pages
/// back from the file (bench/README.md, "Lease history").
pub(super) const WRITER_CACHE_KIB: i64 = -65_536;

/// How long a connection waits on a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS bindings (
    ip              INTEGER PRIMARY KEY,
    state           INTEGER NOT NULL,
    htype           INTEGER NOT NULL,
    chaddr          BLOB NOT NULL,
    client_id       BLOB,
    expiry          INTEGER NOT NULL,
    cltt            INTEGER NOT NULL,
    state_since     INTEGER NOT NULL,
    data_source     INTEGER NOT NULL,
    relay_info      BLOB,
    circuit_id      BLOB,
    remote_id       BLOB,
    relay_id        BLOB,
    vendor_class_id BLOB,
    hostname        BLOB,
    lease_time      INTEGER NOT NULL,
    -- T1 and T2 as granted in the last DHCPACK, seconds from the grant
    -- (RFC 4388 §6.4.2 reports what the client was told); NULL when unknown.
    renew_time      INTEGER,
    rebind_time     INTEGER,
    -- When the row last changed (the handling time of its last commit): it
    -- rebuilds the Active Leasequery history after a restart (RFC 7724 §7.4.1).
    changed_at      INTEGER NOT NULL DEFAULT 0
);
-- Since when `changed_at` is recorded for every change: catch-up can never
-- reach before it.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bindings_changed_at ON bindings (changed_at);
-- Bulk Leasequery selectors (RFC 6926 §7.2): MAC, client-id, remote-id, relay-id.
CREATE INDEX IF NOT EXISTS bindings_chaddr ON bindings (htype, chaddr);
CREATE INDEX IF NOT EXISTS bindings_client_id ON bindings (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS bindings_remote_id ON bindings (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS bindings_relay_id ON bindings (relay_id) WHERE relay_id IS NOT NULL;
";

fn open_error(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The writer connection: WAL (readers never block the writer) and
/// synchronous=FULL, so every COMMIT is fsync'd before a ticket resolves and
/// an ACKed binding survives kill -9 (architecture: Invariants).
pub(super) fn open_writer(path: &Path, now: u32) -> Result<Connection, StoreError> {
    SqliteLibrary::configure();
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(path, format!("journal_mode is {mode}, not wal")));
    }
    // Checkpoints run on their own thread (checkpoint.rs); a commit
    // checkpoints only once the log is long, so that it restarts, and a
    // restarted log is truncated back to the documented bound.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = {}; \
         PRAGMA journal_size_limit = {}; PRAGMA cache_size = {WRITER_CACHE_KIB}",
        super::checkpoint::RESTART_FRAMES,
        super::checkpoint::JOURNAL_SIZE_LIMIT
    ))
    .map_err(|e| open_error(path, e))?;
    migrate(&conn, now).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// Create or upgrade the schema. Version 1 had no `changed_at`: its rows
/// keep 0, and the history is vouched for only from the upgrade on.
/// Versions 1 and 2 had no `renew_time` / `rebind_time`: their rows keep
/// NULL (T1 / T2 unknown: not reported, since what the client was granted
/// cannot be told from the lease length). Versions 1 to 3 had no
/// `lease_history`: it starts empty.
fn migrate(conn: &Connection, now: u32) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} is newer than this build's {SCHEMA_VERSION}"
        ));
    }
    const ADD_CHANGED_AT: &str =
        "ALTER TABLE bindings ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;";
    const ADD_GRANT: &str = "ALTER TABLE bindings ADD COLUMN renew_time INTEGER; \
         ALTER TABLE bindings ADD COLUMN rebind_time INTEGER;";
    let upgrade = match version {
        1 => format!("{ADD_CHANGED_AT} {ADD_GRANT}"),
        2 => ADD_GRANT.to_owned(),
        _ => String::new(),
    };
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {upgrade} {CREATE} {LEASE_HISTORY} \
         INSERT OR IGNORE INTO meta (key, value) VALUES ('{HISTORY_SINCE}', {now}); \
         PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
        LEASE_HISTORY = super::lease_log::CREATE,
    ))
    .map_err(|e| e.to_string())
}

/// `meta` key: the time from which every change has its `changed_at`.
pub(super) const HISTORY_SINCE: &str = "history_since";

/// The connection that copies the WAL back into the database.
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    SqliteLibrary::configure();
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// A read connection. WAL lets it read while the writer commits; it is
/// opened without CREATE and marked query-only.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    SqliteLibrary::configure();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA query_only = ON")
        .map_err(|e| open_error(path, e))?;
    Ok(conn)
}
