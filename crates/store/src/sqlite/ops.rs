//! `leaseline db status` and `leaseline db upgrade` on the SQLite backend.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{schema, SqliteStore};
use crate::StoreError;

impl SqliteStore {
    /// The schema version this build creates and reads.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// The store file's schema version (`PRAGMA user_version`; 0: no
    /// schema yet); `None` when there is no file. Opens it read-only and
    /// writes nothing. (Opening the store, [`SqliteStore::open`], creates
    /// or upgrades the schema.)
    pub fn schema_version(path: &Path) -> Result<Option<i64>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let fail = |e: rusqlite::Error| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        super::library::SqliteLibrary::configure();
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map(Some)
            .map_err(fail)
    }
}
