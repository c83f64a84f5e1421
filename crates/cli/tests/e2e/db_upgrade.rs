#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline db upgrade` and `leaseline db status` (docs/postgresql.md,
//! "Upgrading the schema"), the real binary against test-support's
//! throwaway PostgreSQL clusters (plain and TLS) and on SQLite.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use leaseline_store::{SqliteStore, PG_SCHEMA_VERSION};
use leaseline_test_support::{pg_database, pg_tls_cluster, pg_tls_database};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// A server configuration whose [store] is `store` (TOML lines).
fn config(dir: &Path, store: &str) -> PathBuf {
    let path = dir.join("leaseline.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nserver_id = \"127.0.0.1\"\nstate_dir = \"{}\"\n\n\
             [dhcp]\nlisten = \"127.0.0.1:1067\"\n\n{store}\n\n\
             [[subnet]]\nprefix = \"10.0.0.0/16\"\npools = [\"10.0.0.10-10.0.255.250\"]\n\
             relay_addresses = [\"127.0.0.1\"]\n",
            dir.join("state").display()
        ),
    )
    .expect("write the config");
    path
}

fn postgres_store(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"")
}

/// `leaseline db CMD --config FILE` with these PG* variables (and no
/// others); (exit code, stdout, stderr).
fn leaseline_db(cmd: &str, config: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(["db", cmd, "--config"]).arg(config);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") {
            c.env_remove(k);
        }
    }
    let out = c
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run leaseline db");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `postgres://postgres@HOST:PORT/NAME`: what the output names.
fn target(url: &str, name: &str) -> String {
    let (_, rest) = url.split_once('@').expect("user@ in the test URL");
    let (authority, _) = rest.split_once('/').expect("a database in the test URL");
    format!("postgres://postgres@{authority}/{name}")
}

fn pg(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

#[test]
fn creates_then_finds_the_schema_current() {
    let db = pg_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &postgres_store(&db.url));
    let t = target(&db.url, &db.name);

    let (code, out, err) = db_status(&cfg);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("database: {t} (PostgreSQL ")),
        "{out}"
    );
    assert!(out.contains("no TLS"), "{out}");
    assert!(
        out.contains(&format!(
            "schema: none (this build creates version {PG_SCHEMA_VERSION}"
        )),
        "{out}"
    );

    let (code, out, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("schema: none -> version {PG_SCHEMA_VERSION}, created ({t})\n")
    );
    let (code, out, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "schema: version {PG_SCHEMA_VERSION} -> {PG_SCHEMA_VERSION}, already current ({t})\n"
        )
    );
    let (code, out, _) = db_status(&cfg);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "schema: version {PG_SCHEMA_VERSION} (this build: {PG_SCHEMA_VERSION}, current)"
        )),
        "{out}"
    );
    assert!(!out.contains("postgres:postgres@"), "no password: {out}");
    let tables: i64 = pg(&db.url)
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'bindings'",
            &[],
        )
        .expect("query")
        .get(0);
    assert_eq!(tables, 1);
}

fn db_status(cfg: &Path) -> (i32, String, String) {
    leaseline_db("status", cfg, &[])
}

/// The schema release 1 created (issue 17 phase 1), frozen here.
const SCHEMA_1: &str = "
CREATE TABLE schema_version (version BIGINT NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE bindings (
    ip BIGINT NOT NULL, state SMALLINT NOT NULL, htype SMALLINT NOT NULL,
    chaddr BYTEA NOT NULL, client_id BYTEA, expiry BIGINT NOT NULL,
    cltt BIGINT NOT NULL, state_since BIGINT NOT NULL, data_source SMALLINT NOT NULL,
    relay_info BYTEA, circuit_id BYTEA, remote_id BYTEA, relay_id BYTEA,
    vendor_class_id BYTEA, hostname BYTEA, lease_time BIGINT NOT NULL,
    renew_time BIGINT, rebind_time BIGINT, changed_at BIGINT NOT NULL,
    PRIMARY KEY (ip));
CREATE INDEX bindings_changed_at ON bindings (changed_at);
CREATE INDEX bindings_chaddr ON bindings (htype, chaddr);
CREATE INDEX bindings_client_id ON bindings (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX bindings_remote_id ON bindings (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX bindings_relay_id ON bindings (relay_id) WHERE relay_id IS NOT NULL;
CREATE TABLE lease_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id TEXT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ip BIGINT NOT NULL, state SMALLINT NOT NULL, htype SMALLINT NOT NULL,
    chaddr BYTEA NOT NULL, client_id BYTEA, expiry BIGINT NOT NULL,
    cltt BIGINT NOT NULL, state_since BIGINT NOT NULL, data_source SMALLINT NOT NULL,
    relay_info BYTEA, circuit_id BYTEA, remote_id BYTEA, relay_id BYTEA,
    vendor_class_id BYTEA, hostname BYTEA, lease_time BIGINT NOT NULL,
    renew_time BIGINT, rebind_time BIGINT, changed_at BIGINT NOT NULL);
CREATE INDEX lease_changes_changed_at ON lease_changes (changed_at);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta VALUES ('history_since', 1700000000);
INSERT INTO bindings VALUES (167772170, 2, 1, '\\x020000000001', NULL, 1700003600,
    1700000000, 1700000000, 0, NULL, NULL, NULL, NULL, NULL, NULL, 3600, NULL, NULL,
    1700000000);
INSERT INTO lease_changes (instance_id, ip, state, htype, chaddr, expiry, cltt,
    state_since, data_source, lease_time, changed_at)
    VALUES ('old:1', 167772170, 2, 1, '\\x020000000001', 1700003600, 1700000000,
    1700000000, 0, 3600, 1700000000);
";

#[test]
fn upgrades_a_version_1_schema_in_place() {
    let db = pg_database();
    pg(&db.url).batch_execute(SCHEMA_1).expect("schema 1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &postgres_store(&db.url));
    let (code, out, _) = db_status(&cfg);
    assert_eq!(code, 0);
    assert!(out.contains("schema: version 1 (this build: "), "{out}");
    assert!(
        out.contains("`leaseline db upgrade` or a start upgrades it"),
        "{out}"
    );
    let (code, out, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "schema: version 1 -> {PG_SCHEMA_VERSION} ({})\n",
            target(&db.url, &db.name)
        )
    );
    let mut c = pg(&db.url);
    let rows: i64 = c
        .query_one("SELECT count(*) FROM bindings", &[])
        .expect("bindings")
        .get(0);
    assert_eq!(rows, 1, "the binding is kept");
    let logged: i64 = c
        .query_one("SELECT count(*) FROM lease_changes", &[])
        .expect("lease_changes")
        .get(0);
    assert_eq!(logged, 1, "the log is kept");
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    // A schema from a newer Leaseline.
    let db = pg_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &postgres_store(&db.url));
    assert_eq!(leaseline_db("upgrade", &cfg, &[]).0, 0);
    pg(&db.url)
        .batch_execute("UPDATE schema_version SET version = 99")
        .expect("bump");
    let (code, out, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "postgresql store {}: schema version 99 is newer than this build's {PG_SCHEMA_VERSION}",
            target(&db.url, &db.name)
        )),
        "{err}"
    );
    let (code, out, _) = db_status(&cfg);
    assert_eq!(code, 0);
    assert!(out.contains("version 99 (this build: "), "{out}");

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cfg = config(
        dir.path(),
        &postgres_store(&format!("postgres://u:secret@127.0.0.1:{port}/x")),
    );
    for cmd in ["upgrade", "status"] {
        let (code, out, err) = leaseline_db(cmd, &cfg, &[]);
        assert_eq!(code, 1, "{cmd}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("postgres://u@127.0.0.1:{port}/x: cannot connect:")),
            "{err}"
        );
        assert!(err.contains("refused"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}

/// `url = "postgres:///NAME"` and the rest from PG* variables; TLS to the
/// database from the URL's sslmode/sslrootcert.
#[test]
fn environment_variables_and_tls_from_the_config() {
    let db = pg_database();
    let (_, rest) = db.url.split_once('@').expect("@");
    let (authority, _) = rest.split_once('/').expect("/");
    let (host, port) = authority.rsplit_once(':').expect("host:port");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        &postgres_store(&format!("postgres:///{}", db.name)),
    );
    let env = [
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", "postgres"),
    ];
    let (code, out, err) = leaseline_db("upgrade", &cfg, &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(", created (postgres://postgres@"), "{out}");
    // Without them: libpq's defaults (the unix socket, this user), not this cluster.
    let (code, _, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");

    let c = pg_tls_cluster();
    let tls_db = pg_tls_database();
    let cfg = config(
        dir.path(),
        &postgres_store(&format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            tls_db.url,
            c.ca_file.display()
        )),
    );
    let (code, out, err) = leaseline_db("status", &cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(", TLS)"), "{out}");
    assert_eq!(leaseline_db("upgrade", &cfg, &[]).0, 0);
    let cfg = config(
        dir.path(),
        &postgres_store(&format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            tls_db.url,
            c.other_ca_file.display()
        )),
    );
    let (code, _, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("TLS: the server's certificate is not signed by"),
        "{err}"
    );
}

#[test]
fn sqlite_store_is_created_or_upgraded_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "");
    let file = dir.path().join("state").join("leaseline.db");
    let v = SqliteStore::SCHEMA_VERSION;
    let (code, out, _) = db_status(&cfg);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("database: sqlite {}", file.display())),
        "{out}"
    );
    assert!(out.contains("schema: none"), "{out}");
    let (code, out, err) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "schema: none -> version {v}, created (sqlite {})\n",
            file.display()
        )
    );
    assert_eq!(SqliteStore::schema_version(&file).expect("read"), Some(v));
    let (code, out, _) = leaseline_db("upgrade", &cfg, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("version {v} -> {v}, already current")),
        "{out}"
    );
}
