//! Connection set-up and the versioned schema: `bindings` (as in SQLite),
//! `lease_changes` (the change log / outbox), `meta` and `instances`.

use postgres::{Client, Config};

use super::connect::Database;
use crate::StoreError;

/// Bumped on every schema change; kept in `schema_version`.
/// 1: bindings, lease_changes, meta. 2: several instances (bindings.changed_by,
/// lease_changes ids and log times assigned under the log lock, instances).
pub(super) const SCHEMA_VERSION: i64 = 2;

/// `meta` key: the time from which every change has its `changed_at`.
pub(super) const HISTORY_SINCE: &str = "history_since";
/// `meta` keys: the last id and log time pruned from `lease_changes` (ids
/// and log times go on from there even when every row was pruned).
pub(super) const PRUNED_ID: &str = "log_pruned_id";
pub(super) const PRUNED_LOGGED_AT: &str = "log_pruned_logged_at";

/// The NOTIFY channel a commit signals (a wake-up only: readers of the log
/// go by id).
pub(super) const NOTIFY_CHANNEL: &str = "leaseline_lease_changes";

/// The transaction-level advisory lock every instance's commit takes
/// before it reads the rows it overwrites and appends to the log: commits
/// are serialised, so log ids and log times increase in commit order.
pub(super) const LOG_LOCK: i64 = 7_724_002;

/// Columns of a binding, shared by `bindings` and `lease_changes`.
const BINDING_COLUMNS: &str = "
    ip              BIGINT NOT NULL,
    state           SMALLINT NOT NULL,
    htype           SMALLINT NOT NULL,
    chaddr          BYTEA NOT NULL,
    client_id       BYTEA,
    expiry          BIGINT NOT NULL,
    cltt            BIGINT NOT NULL,
    state_since     BIGINT NOT NULL,
    data_source     SMALLINT NOT NULL,
    relay_info      BYTEA,
    circuit_id      BYTEA,
    remote_id       BYTEA,
    relay_id        BYTEA,
    vendor_class_id BYTEA,
    hostname        BYTEA,
    lease_time      BIGINT NOT NULL,
    renew_time      BIGINT,
    rebind_time     BIGINT,
    -- The handling time of the commit that last changed the row (u32 seconds).
    changed_at      BIGINT NOT NULL,
    -- The instance whose commit last changed it.
    changed_by      TEXT NOT NULL DEFAULT ''";

fn create() -> String {
    format!(
        "
CREATE TABLE bindings ({BINDING_COLUMNS}, PRIMARY KEY (ip));
CREATE INDEX bindings_changed_at ON bindings (changed_at);
CREATE INDEX bindings_chaddr ON bindings (htype, chaddr);
CREATE INDEX bindings_client_id ON bindings (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX bindings_remote_id ON bindings (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX bindings_relay_id ON bindings (relay_id) WHERE relay_id IS NOT NULL;
-- The change log (outbox): one row per committed binding change, written in
-- the commit's own transaction, id and logged_at assigned under LOG_LOCK.
CREATE TABLE lease_changes (
    id           BIGINT PRIMARY KEY,
    logged_at    BIGINT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    {BINDING_COLUMNS}
);
CREATE INDEX lease_changes_logged_at ON lease_changes (logged_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
{INSTANCES}
"
    )
}

const INSTANCES: &str = "
-- Live instances: each heart-beats; the live ones share the pools.
CREATE TABLE instances (
    instance_id  TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);";

/// Version 1 to 2, in place: log ids no longer from an identity (assigned
/// under the log lock), the log time, who changed a binding, instances.
fn upgrade_1_to_2() -> String {
    format!(
        "
ALTER TABLE lease_changes ALTER COLUMN id DROP IDENTITY IF EXISTS;
ALTER TABLE lease_changes ADD COLUMN logged_at BIGINT;
UPDATE lease_changes SET logged_at = changed_at;
ALTER TABLE lease_changes ALTER COLUMN logged_at SET NOT NULL;
ALTER TABLE lease_changes RENAME COLUMN instance_id TO changed_by;
ALTER TABLE lease_changes ALTER COLUMN changed_by SET DEFAULT '';
DROP INDEX IF EXISTS lease_changes_changed_at;
CREATE INDEX lease_changes_logged_at ON lease_changes (logged_at);
ALTER TABLE bindings ADD COLUMN changed_by TEXT NOT NULL DEFAULT '';
{INSTANCES}
"
    )
}

/// One line naming the database (never the password) and the cause.
pub(super) fn open_error(target: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::PgOpen {
        target: target.to_owned(),
        reason: one_line(&reason.to_string()),
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `user@host:port/dbname` of a configuration, without the password.
pub(super) fn describe(config: &Config) -> String {
    use postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres://{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_owned()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("?")
    )
}

/// Parse the URL (or key=value string), with libpq's environment
/// variables, `~/.pgpass` and TLS settings; a bad one is one clear line.
pub(super) fn parse(url: &str) -> Result<Database, StoreError> {
    super::connect::parse(url)
}

/// The server's message for a database error, else the client's.
pub(super) fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    // The client's error, then its causes ("error connecting to server:
    // Connection refused (os error 111)").
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    one_line(&text)
}

/// Create or upgrade the schema, in one transaction serialised by an
/// advisory lock (several instances may start at once).
pub(super) fn migrate(client: &mut Client, target: &str, now: u32) -> Result<(), StoreError> {
    let fail = |e: postgres::Error| open_error(target, format!("schema: {}", error_text(&e)));
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock(7724001)", &[])
        .map_err(fail)?;
    // No "already exists, skipping" NOTICE in the log at every start.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
    )
    .map_err(fail)?;
    let version: i64 = match tx
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .map_err(fail)?
    {
        Some(row) => row.try_get::<_, Option<i64>>(0).map_err(fail)?.unwrap_or(0),
        None => 0,
    };
    if version > SCHEMA_VERSION {
        return Err(open_error(
            target,
            format!("schema version {version} is newer than this build's {SCHEMA_VERSION}"),
        ));
    }
    if version < SCHEMA_VERSION {
        if version == 0 {
            tx.batch_execute(&create()).map_err(fail)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&HISTORY_SINCE, &i64::from(now)],
            )
            .map_err(fail)?;
        } else {
            tx.batch_execute(&upgrade_1_to_2()).map_err(fail)?;
        }
        for key in [PRUNED_ID, PRUNED_LOGGED_AT] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING",
                &[&key],
            )
            .map_err(fail)?;
        }
        tx.execute("DELETE FROM schema_version", &[])
            .map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}
