//! Connection set-up and the versioned schema: `bindings` (as in SQLite),
//! `lease_changes` (the change log / outbox), `meta` and `instances`.

use postgres::{Client, Config};

use super::connect::Database;
use crate::StoreError;

/// Bumped on every schema change; kept in `schema_version`.
/// 1: bindings, lease_changes, meta. 2: several instances (bindings.changed_by,
/// lease_changes ids and log times assigned under the log lock, instances).
/// 3: a commit is one call of [`COMMIT_FUNCTION`], conditional on the
/// version (`changed_id`) of each row it was decided from; renewals update
/// `bindings` in place (HOT): no index on `changed_at` (nothing read by
/// it), pages left 20 % free.
/// 4: commits run concurrently: log ids and log times come from two
/// sequences, taken under the log lock for an instant only; a commit locks
/// the rows it overwrites instead of holding the log lock to its end (see
/// [`commit_function`] and `follow`, which reads a log with gaps).
/// 5: the commit function's statements are planned once per session, not
/// at every call (`connect::hot_path_settings`).
/// 6: each log row says whether it opens a lease-history entry
/// (`opens_run`, decided by the commit function), and the history's
/// indexes hold only those rows: a renewal adds no entry to them.
/// 7: the writer says which of its rows open an entry when it read the
/// rows they follow (`c_opens`); the row locks and the version check are
/// one statement.
/// 8: a commit's changes are one array of a composite type
/// ([`CHANGE_TYPE`]) instead of twenty arrays, one a column; each carries
/// the version it was decided from, and the write checks it (no row locks
/// taken before).
pub(super) const SCHEMA_VERSION: i64 = 8;

/// `meta` key: the time from which every change has its `changed_at`.
pub(super) const HISTORY_SINCE: &str = "history_since";
/// `meta` keys: the last id and log time pruned from `lease_changes` (ids
/// and log times go on from there even when every row was pruned).
pub(super) const PRUNED_ID: &str = "log_pruned_id";
pub(super) const PRUNED_LOGGED_AT: &str = "log_pruned_logged_at";

/// The NOTIFY channel a commit signals (a wake-up only: readers of the log
/// go by id).
pub(super) const NOTIFY_CHANNEL: &str = "leaseline_lease_changes";

/// The session-level advisory lock a commit holds only while it takes its
/// log ids and log time from [`LOG_IDS`] and [`LOG_CLOCK`]: ids and times
/// increase together, in the order commits took them.
pub(super) const LOG_LOCK: i64 = 7_724_002;

/// The transaction-level advisory lock every commit holds *shared* from
/// before it takes log ids to its end: a reader of the log that finds an
/// id missing waits for the holders it saw to end, after which the id is
/// either visible or never will be (`follow`).
pub(super) const WRITERS_LOCK: i64 = 7_724_004;

/// Sequences (not transactional: what one commit takes the next sees at
/// once, committed or not): the last log id taken, and the last log time.
pub(super) const LOG_IDS: &str = "leaseline_log_ids";
pub(super) const LOG_CLOCK: &str = "leaseline_log_clock";

/// The transaction-level advisory lock a prune of the change log tries
/// for: one instance prunes at a time, the others skip their turn (their
/// deletes of the same rows waited on each other and deadlocked:
/// helper-11's soak).
pub(super) const PRUNE_LOCK: i64 = 7_724_003;

/// The database function a commit calls (see `writer`); versioned with the
/// schema, so that an instance never calls another build's.
pub(super) const COMMIT_FUNCTION: &str = "leaseline_commit_v8";

/// The composite type of one change of a commit (`codec::Change`, written
/// field by field in this order); the commit function takes an array of
/// it.
pub(super) const CHANGE_TYPE: &str = "leaseline_change";

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

/// The version of a `bindings` row: the log id of its last change (0: last
/// changed before schema version 3).
const CHANGED_ID: &str = "changed_id BIGINT NOT NULL DEFAULT 0";

fn create() -> String {
    format!(
        "
CREATE TABLE bindings ({BINDING_COLUMNS}, {CHANGED_ID}, PRIMARY KEY (ip))
    WITH (fillfactor = {BINDINGS_FILLFACTOR});
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
    {BINDING_COLUMNS},
    {OPENS_RUN_COLUMN}
);
CREATE INDEX lease_changes_logged_at ON lease_changes (logged_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
{INSTANCES}
{sequences}
{commit}",
        sequences = sequences(),
        commit = commit_function()
    )
}

/// The log's id and clock sequences, started after what the log holds (or
/// held: pruned rows count).
fn sequences() -> String {
    format!(
        "
CREATE SEQUENCE {LOG_IDS} MINVALUE 0 START WITH 0;
CREATE SEQUENCE {LOG_CLOCK} MINVALUE 0 START WITH 0;
SELECT setval('{LOG_IDS}', greatest(
    coalesce((SELECT max(id) FROM lease_changes), 0),
    coalesce((SELECT value FROM meta WHERE key = '{PRUNED_ID}'), 0)));
SELECT setval('{LOG_CLOCK}', greatest(
    coalesce((SELECT logged_at FROM lease_changes ORDER BY id DESC LIMIT 1), 0),
    coalesce((SELECT value FROM meta WHERE key = '{PRUNED_LOGGED_AT}'), 0)));"
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

/// The share of each `bindings` page its inserts fill: the rest takes the
/// new versions of its rows. A renewal changes no indexed column (the
/// client's identifiers stay, the times are not indexed), so with room on
/// the page PostgreSQL updates the row in place (a HOT update) instead of
/// adding an entry to each of the table's five indexes. Half a page: at 80
/// % a third of a closed loop's renewals found no room (the page's old
/// versions not yet pruned) and went to every index; at 50 % nearly none
/// (bench/RESULTS.md, "half-empty pages").
pub(super) const BINDINGS_FILLFACTOR: u32 = 50;

/// Version 2 to 3, in place (pages already full get the room as they are
/// rewritten).
fn upgrade_2_to_3() -> String {
    format!(
        "
DROP INDEX IF EXISTS bindings_changed_at;
ALTER TABLE bindings SET (fillfactor = {BINDINGS_FILLFACTOR});
ALTER TABLE bindings ADD COLUMN {CHANGED_ID};"
    )
}

/// Version 3 to 4, in place: the sequences; the old function goes, so
/// that an instance of the previous build still running fails its commits
/// instead of writing ids the new way does not expect (the new one comes
/// with [`upgrade_4_to_5`]).
fn upgrade_3_to_4() -> String {
    format!(
        "
DROP FUNCTION IF EXISTS leaseline_commit_v3;
{sequences}",
        sequences = sequences()
    )
}

/// Version 4 to 5, in place: the commit function planned once per session
/// (same statements, same results: an instance of the previous build still
/// running fails its commits and is to be upgraded too). Its new function
/// comes with [`upgrade_7_to_8`].
const UPGRADE_4_TO_5: &str = "DROP FUNCTION IF EXISTS leaseline_commit_v4;";

/// Whether a log row opens a lease-history entry (`lease_history`): its
/// address's previous change had another start-time-of-state, state or
/// hardware address, or there was none (the SQLite store's rule: a change
/// that continues the address's latest entry, a renewal, opens none).
const OPENS_RUN_COLUMN: &str = "opens_run BOOLEAN NOT NULL";

/// Version 5 to 6, in place: `opens_run` for the rows already logged (one
/// pass in address order: each row against the address's previous one),
/// the history's indexes on every row go (`lease_history` creates them
/// anew over the opening rows). The function that sets it comes with
/// [`upgrade_7_to_8`].
const UPGRADE_5_TO_6: &str = "
ALTER TABLE lease_changes ADD COLUMN opens_run BOOLEAN;
UPDATE lease_changes c SET opens_run = w.opens
  FROM (SELECT id, (lag(state_since) OVER a, lag(state) OVER a, lag(chaddr) OVER a)
                   IS DISTINCT FROM (state_since, state, chaddr) AS opens
          FROM lease_changes WINDOW a AS (PARTITION BY ip ORDER BY state_since, id)) w
 WHERE w.id = c.id;
ALTER TABLE lease_changes ALTER COLUMN opens_run SET NOT NULL;
DROP INDEX IF EXISTS lease_changes_history_ip;
DROP INDEX IF EXISTS lease_changes_history_chaddr;
DROP INDEX IF EXISTS lease_changes_history_client_id;
DROP INDEX IF EXISTS lease_changes_history_remote_id;
DROP FUNCTION IF EXISTS leaseline_commit_v5;";

/// Version 6 to 7, in place: the commit function that takes the writer's
/// `opens_run` (the same tables; an instance of the previous build still
/// running fails its commits and is to be upgraded too). Its new function
/// comes with [`upgrade_7_to_8`].
const UPGRADE_6_TO_7: &str = "DROP FUNCTION IF EXISTS leaseline_commit_v6;";

/// Version 7 to 8, in place: the commit function that takes its changes as
/// one array of [`CHANGE_TYPE`] (the same tables; an instance of the
/// previous build still running fails its commits and is to be upgraded
/// too), and `bindings` pages half filled (pages already full get the room
/// as they are rewritten).
fn upgrade_7_to_8() -> String {
    format!(
        "
DROP FUNCTION IF EXISTS leaseline_commit_v7;
ALTER TABLE bindings SET (fillfactor = {BINDINGS_FILLFACTOR});
{commit}",
        commit = commit_function()
    )
}

/// One commit, in one statement and so one transaction of its own. Commits
/// of every instance run at once; what orders them:
///
/// 1. an xid first, and [`WRITERS_LOCK`] shared: the log's readers can tell
///    a missing id that may still come from one that never will (`follow`);
/// 2. under [`LOG_LOCK`], for an instant: the next ids (`ord` 1, 2, ...
///    after the last taken) and the log time (the newest handling time,
///    never below the last: docs/postgresql.md, "Time across instances");
/// 3. append every change to the log (with `opens_run`: the writer's,
///    `opens`, for a change it decided from the row it read, which step 4
///    finds unchanged or nothing is written; else against the address's
///    previous change of the batch, or its `bindings` row as it stands
///    before this statement);
/// 4. write each address's last change into `bindings`, on the condition
///    the writer decided it from (`version`: the log id of the row it
///    read, -1 for no row; NULL for a change written as given):
///    - an `UPDATE ... WHERE changed_id = version`: it locks the row, and
///      a row another commit holds is waited for and checked as that
///      commit left it (READ COMMITTED's re-check of the newest version);
///    - an `INSERT ... ON CONFLICT DO NOTHING` for an address expected to
///      have no row;
///    - an upsert for the changes written as given;
///
///    the rows are taken in address order (the batch sorted by address
///    and one index probe each), so two commits do not wait on each other
///    in a circle; if they ever did, PostgreSQL ends one (deadlock), and
///    its writer decides again;
/// 5. if an address was not written (its row changed since the writer
///    read it, or an address expected free was bound meanwhile), the call
///    fails with SQLSTATE [`ROW_TAKEN`], the addresses in its DETAIL
///    (`{1,2}`): the whole statement is undone, log rows included, and its
///    log ids are never used (a gap the followers skip once no commit
///    holds it). Else NOTIFY.
///
/// The version is checked by the write itself, not by a row lock taken
/// before it (schema 7): the same guarantee for 18 % less of the
/// database's time a row (bench/RESULTS.md, "the version checked by the
/// write").
///
/// The statements inside see what committed before each began (a VOLATILE
/// function takes a snapshot per statement). They are planned once per
/// session, through the indexes (`connect::hot_path_settings`, set on the
/// function so that they hold whoever calls it).
fn commit_function() -> String {
    use crate::columns::{of, set_from, SET_BY_A_CHANGE};
    let columns = SET_BY_A_CHANGE.join(", ");
    let set_from_last = set_from("l", &[]);
    format!(
        "
-- Made anew with the function (nothing else uses it; CASCADE: the function
-- made for it before).
DROP TYPE IF EXISTS {CHANGE_TYPE} CASCADE;
CREATE TYPE {CHANGE_TYPE} AS (
    ord bigint, ip bigint, state smallint, htype smallint, chaddr bytea,
    client_id bytea, expiry bigint, cltt bigint, state_since bigint,
    data_source smallint, relay_info bytea, circuit_id bytea, remote_id bytea,
    relay_id bytea, vendor_class_id bytea, hostname bytea, lease_time bigint,
    renew_time bigint, rebind_time bigint, changed_at bigint, opens boolean,
    version bigint);
CREATE OR REPLACE FUNCTION {COMMIT_FUNCTION}(
    c_changes {CHANGE_TYPE}[], newest bigint, me text)
RETURNS TABLE (out_first_id bigint, out_logged_at bigint)
LANGUAGE plpgsql VOLATILE
{settings}
AS $fn$
DECLARE
    last_id bigint;
    last_at bigint;
    n bigint := cardinality(c_changes);
    unwritten bigint[];
BEGIN
    PERFORM pg_current_xact_id();
    PERFORM pg_advisory_xact_lock_shared({WRITERS_LOCK});
    PERFORM pg_advisory_lock({LOG_LOCK});
    BEGIN
        last_id := nextval('{LOG_IDS}') - 1;
        IF n > 1 THEN
            PERFORM setval('{LOG_IDS}', last_id + n);
        END IF;
        SELECT greatest(s.last_value, newest) INTO last_at FROM {LOG_CLOCK} s;
        PERFORM setval('{LOG_CLOCK}', last_at);
    EXCEPTION WHEN OTHERS OR QUERY_CANCELED THEN
        PERFORM pg_advisory_unlock({LOG_LOCK});
        RAISE;
    END;
    PERFORM pg_advisory_unlock({LOG_LOCK});
    WITH c AS (
        SELECT u.*, coalesce(u.opens, CASE WHEN lag(u.ord) OVER a IS NULL
                THEN coalesce((SELECT (p.state_since, p.state, p.chaddr)
                     IS DISTINCT FROM (u.state_since, u.state, u.chaddr)
                     FROM bindings p WHERE p.ip = u.ip), true)
                ELSE (lag(u.state_since) OVER a, lag(u.state) OVER a, lag(u.chaddr) OVER a)
                     IS DISTINCT FROM (u.state_since, u.state, u.chaddr)
            END) AS opens_run
          FROM unnest(c_changes) AS u
        WINDOW a AS (PARTITION BY u.ip ORDER BY u.ord)
    ), logged AS (
        INSERT INTO lease_changes (id, logged_at, ip, {columns}, changed_by, opens_run)
        SELECT last_id + c.ord, last_at, c.ip, {of_c}, me, c.opens_run FROM c
    ), l AS (
        -- Each address's last change of the batch, in address order.
        SELECT DISTINCT ON (c.ip) c.* FROM c ORDER BY c.ip, c.ord DESC
    ), updated AS (
        UPDATE bindings b SET {set_from_last}, changed_by = me, changed_id = last_id + l.ord
          FROM l WHERE b.ip = l.ip AND b.changed_id = l.version
        RETURNING b.ip
    ), inserted AS (
        INSERT INTO bindings (ip, {columns}, changed_by, changed_id)
        SELECT l.ip, {of_l}, me, last_id + l.ord FROM l WHERE l.version = -1
        ON CONFLICT (ip) DO NOTHING
        RETURNING ip
    ), upserted AS (
        INSERT INTO bindings AS b (ip, {columns}, changed_by, changed_id)
        SELECT l.ip, {of_l}, me, last_id + l.ord FROM l WHERE l.version IS NULL
        ON CONFLICT (ip) DO UPDATE SET {set}
        RETURNING b.ip
    )
    SELECT array_agg(l.ip) INTO unwritten FROM l
     WHERE l.ip NOT IN (SELECT ip FROM updated UNION ALL SELECT ip FROM inserted
                        UNION ALL SELECT ip FROM upserted);
    IF unwritten IS NOT NULL THEN
        RAISE EXCEPTION 'rows changed since the writer read them'
            USING ERRCODE = '{ROW_TAKEN}', DETAIL = unwritten::text;
    END IF;
    PERFORM pg_notify('{NOTIFY_CHANNEL}', me);
    RETURN QUERY SELECT last_id + 1, last_at;
END
$fn$;
",
        of_c = of("c"),
        of_l = of("l"),
        set = crate::columns::set_from_excluded(&["changed_by", "changed_id"]),
        settings = super::connect::hot_path_settings(" ")
    )
}

/// A value of the `meta` table (0 when it has none).
pub(super) fn meta_value(client: &mut Client, key: &str) -> Result<i64, postgres::Error> {
    client
        .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
        .and_then(|r| r.map_or(Ok(0), |r| r.try_get(0)))
}

/// The SQLSTATE of a commit that found a row changed since the writer read
/// it, or bound where it expected none (see [`commit_function`]): nothing
/// written, the addresses in its DETAIL; the writer decides again.
pub(super) const ROW_TAKEN: &str = "LL001";

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
            if version < 2 {
                tx.batch_execute(&upgrade_1_to_2()).map_err(fail)?;
            }
            if version < 3 {
                tx.batch_execute(&upgrade_2_to_3()).map_err(fail)?;
            }
            if version < 4 {
                tx.batch_execute(&upgrade_3_to_4()).map_err(fail)?;
            }
            if version < 5 {
                tx.batch_execute(UPGRADE_4_TO_5).map_err(fail)?;
            }
            if version < 6 {
                tx.batch_execute(UPGRADE_5_TO_6).map_err(fail)?;
            }
            if version < 7 {
                tx.batch_execute(UPGRADE_6_TO_7).map_err(fail)?;
            }
            tx.batch_execute(&upgrade_7_to_8()).map_err(fail)?;
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
