#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! libpq's environment variables and `.pgpass` (docs/postgresql.md,
//! "Connection settings") against test-support's throwaway cluster. The
//! environment is the process's: one test, its steps in sequence.

use std::os::unix::fs::PermissionsExt;

use leaseline_store::battery::sample;
use leaseline_store::{HistoryLimits, LeaseStore, PostgresOptions, PostgresStore};
use leaseline_test_support::{pg_admin_sql, pg_database};

const T0: u32 = 1_700_000_000;

const VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGPASSFILE",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGCONNECT_TIMEOUT",
    "PGOPTIONS",
];

fn open(url: &str) -> Result<PostgresStore, String> {
    PostgresStore::open(
        PostgresOptions {
            url: url.to_owned(),
            history: HistoryLimits {
                max_age: 86_400,
                max_count: 100_000,
            },
            max_batch: 64,
            instance_id: "env-test".into(),
            readers: 1,
            lease_log: None,
        },
        T0,
    )
    .map_err(|e| e.to_string())
}

fn set(vars: &[(&str, &str)]) {
    for v in VARS {
        std::env::remove_var(v);
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
}

/// Sessions of the cluster with this application name.
fn sessions_named(app: &str) -> usize {
    let mut c =
        postgres::Client::connect(&leaseline_test_support::pg_cluster_url(), postgres::NoTls)
            .expect("admin connection");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .expect("pg_stat_activity")
        .get(0);
    n as usize
}

#[test]
fn environment_and_pgpass_fill_in_what_the_url_leaves_out() {
    let db = pg_database();
    // postgres://postgres:postgres@HOST:PORT/NAME
    let authority = db
        .url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(a, _)| a.to_owned())
        .expect("the test cluster's URL has host:port");
    let (host, port) = authority.rsplit_once(':').expect("host:port");
    let role = format!("{}_env", db.name);
    pg_admin_sql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'envpw'"));
    pg_admin_sql(&format!("ALTER DATABASE {} OWNER TO {role}", db.name));

    // Everything but the database from PG* variables.
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("PGPASSWORD", "envpw"),
        ("PGAPPNAME", "leaseline_env_test"),
        ("PGCONNECT_TIMEOUT", "10"),
    ]);
    let store = open(&format!("postgres:///{}", db.name)).expect("open with PG* variables");
    store
        .submit(vec![sample(1, T0)], T0)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
    assert_eq!(sessions_named("leaseline_env_test"), 2, "writer and reader");
    drop(store);

    // The database from PGDATABASE: a URL with nothing in it.
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", &db.name),
    ]);
    let store = open("postgres://").expect("open with an empty URL");
    assert_eq!(store.load_all().expect("load").len(), 1);
    drop(store);

    // The URL wins over the environment: its password, its port.
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("PGPASSWORD", "wrong"),
    ]);
    drop(open(&format!("postgres://{role}:envpw@/{}", db.name)).expect("URL's password"));
    let e = open(&format!("postgres:///{}", db.name))
        .err()
        .expect("PGPASSWORD=wrong");
    assert!(e.contains("password authentication failed"), "{e}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let e = open(&format!(
        "postgres://{role}:envpw@{host}:{closed}/{}",
        db.name
    ))
    .err()
    .expect("the URL's port, not PGPORT");
    assert!(e.contains("refused"), "{e}");

    // ~/.pgpass (here PGPASSFILE) when no password is given.
    let dir = tempfile::tempdir().expect("tempdir");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# test\nother:*:*:*:no\n{host}:{port}:{}:{role}:envpw\n",
            db.name
        ),
    )
    .expect("write pgpass");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("PGPASSFILE", pgpass.to_str().expect("utf-8")),
    ]);
    drop(open(&format!("postgres:///{}", db.name)).expect("password from PGPASSFILE"));
    // ~/.pgpass itself.
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&pgpass, home.path().join(".pgpass")).expect("copy");
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("HOME", home.path().to_str().expect("utf-8")),
    ]);
    drop(open(&format!("postgres:///{}", db.name)).expect("password from ~/.pgpass"));
    // Readable by others: ignored (libpq warns), so no password.
    std::fs::set_permissions(
        home.path().join(".pgpass"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let e = open(&format!("postgres:///{}", db.name))
        .err()
        .expect("a world-readable .pgpass is not used");
    assert!(
        e.contains("cannot connect") && e.contains("password"),
        "{e}"
    );

    // PGSSLMODE: require against this server, which has no TLS.
    set(&[
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", &role),
        ("PGPASSWORD", "envpw"),
        ("PGSSLMODE", "require"),
    ]);
    let e = open(&format!("postgres:///{}", db.name))
        .err()
        .expect("require");
    assert!(e.contains("does not accept TLS"), "{e}");
    // Bad values name the variable.
    set(&[("PGPORT", "fivefourthreetwo")]);
    let e = open("postgres://h/d").err().expect("bad PGPORT");
    assert!(e.contains("bad PGPORT in the environment"), "{e}");
    set(&[]);
}
