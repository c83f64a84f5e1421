//! `leaseline import leases` on the SQLite backend: every imported binding
//! in ONE transaction, streamed from the caller's iterator (memory does not
//! grow with the import), with the exclusive lock on the file held from
//! before the first row to the commit.
//!
//! The lock is also how a running server is detected: a process that has
//! the store open in WAL mode holds a shared lock on it for as long as it
//! is open, so the exclusive lock is refused at once. Importing under a
//! running server would not do: its in-memory copy of the bindings would
//! never see the imported rows.

use std::path::Path;

use rusqlite::{Connection, ErrorCode};

use super::{codec, schema, SqliteStore};
use crate::{Binding, StoreError};

impl SqliteStore {
    /// Store `bindings` (each replacing the address's row, changed at
    /// `now`: the server started on the store afterwards publishes them
    /// in its change history) in one transaction, and return how many.
    /// The first `Err` from the iterator rolls everything back.
    pub fn import(
        path: &Path,
        bindings: &mut dyn Iterator<Item = Result<Binding, String>>,
        now: u32,
    ) -> Result<u64, StoreError> {
        if path.exists() {
            // Before anything else touches the file (the schema step below
            // would wait on a running server's locks).
            drop(exclusive(path)?);
        }
        // Creates or upgrades the schema (a no-op on a current store).
        drop(schema::open_writer(path, now)?);
        let mut conn = exclusive(path)?;
        let tx = conn.transaction()?;
        let mut count = 0u64;
        {
            let mut stmt = tx.prepare_cached(&codec::UPSERT)?;
            for b in bindings {
                let b = b.map_err(StoreError::ImportAbandoned)?;
                codec::upsert(&mut stmt, &b, now)?;
                count += 1;
            }
        }
        // Dropping `tx` on an error above rolls the import back.
        tx.commit()?;
        Ok(count)
    }
}

/// A connection holding the file's exclusive lock (until it is closed),
/// or the refusal when another process has the file open.
fn exclusive(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: path.display().to_string(),
        reason,
    };
    super::library::SqliteLibrary::configure();
    let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
    // Set before the connection first reads the file: it then takes the
    // file's exclusive lock at its first transaction and keeps it, and uses
    // no shared memory.
    // The writer's page cache: a million rows go into the bindings'
    // indexes at random places (by MAC, client-id).
    conn.execute_batch(&format!(
        "PRAGMA locking_mode = EXCLUSIVE; PRAGMA synchronous = FULL; \
         PRAGMA cache_size = {}; BEGIN EXCLUSIVE; COMMIT",
        schema::WRITER_CACHE_KIB
    ))
    .map_err(|e| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => open_error(
            "in use by another process (a running `leaseline serve`?): stop the server first"
                .into(),
        ),
        _ => open_error(e.to_string()),
    })?;
    Ok(conn)
}
