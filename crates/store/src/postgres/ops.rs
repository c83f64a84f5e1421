//! `leaseline db status` and `leaseline db upgrade`: the schema of a
//! configured database, read and upgraded without starting a store.

use postgres::Client;

use super::{schema, PostgresStore};
use crate::StoreError;

/// A PostgreSQL database's Leaseline schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSchemaStatus {
    /// `postgres://user@host:port/dbname` (never the password).
    pub target: String,
    /// `None`: no Leaseline schema there (an empty database).
    pub version: Option<i64>,
    /// The server's `server_version`.
    pub server_version: String,
    /// Whether the connection is encrypted (TLS).
    pub tls: bool,
}

impl PostgresStore {
    /// The database's schema version, its server and the connection's TLS.
    /// Writes nothing. Call from a thread that is not running a tokio
    /// runtime (the sync client runs its own).
    pub fn schema_status(url: &str) -> Result<PgSchemaStatus, StoreError> {
        let db = schema::parse(url)?;
        let mut client = db.connect()?;
        status(&mut client, db.target)
    }

    /// Create or upgrade the schema (as a start does: `schema::migrate`,
    /// serialised with other instances by its advisory lock). Returns the
    /// status before and the version after.
    pub fn upgrade_schema(url: &str, now: u32) -> Result<(PgSchemaStatus, i64), StoreError> {
        let db = schema::parse(url)?;
        let target = db.target.clone();
        let mut client = db.connect()?;
        let before = status(&mut client, target.clone())?;
        schema::migrate(&mut client, &target, now)?;
        let after = version(&mut client)
            .map_err(|e| {
                schema::open_error(&target, format!("schema: {}", schema::error_text(&e)))
            })?
            .unwrap_or(0);
        Ok((before, after))
    }
}

fn status(client: &mut Client, target: String) -> Result<PgSchemaStatus, StoreError> {
    let fail = |e: postgres::Error| {
        schema::open_error(
            &target,
            format!("reading the schema version: {}", schema::error_text(&e)),
        )
    };
    let version = version(client).map_err(fail)?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), \
             coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .map_err(fail)?;
    Ok(PgSchemaStatus {
        server_version: row.try_get(0).map_err(fail)?,
        tls: row.try_get(1).map_err(fail)?,
        version,
        target,
    })
}

/// `schema_version`'s version; `None` without that table.
fn version(client: &mut Client) -> Result<Option<i64>, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    // Another tool's table of that name may hold anything: a typed error,
    // never a panic.
    let v: Option<i64> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .try_get(0)?;
    Ok(v)
}
