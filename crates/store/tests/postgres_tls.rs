#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! TLS to the database (docs/postgresql.md, "TLS to the database"): the
//! store against test-support's TLS cluster (`ssl = on`, a certificate from
//! a test CA for 127.0.0.1 and pg.leaseline.test) and its plain cluster.

use leaseline_store::battery::sample;
use leaseline_store::{HistoryLimits, LeaseStore, PostgresOptions, PostgresStore};
use leaseline_test_support::{pg_database, pg_tls_cluster, pg_tls_database, PgDatabase};

const T0: u32 = 1_700_000_000;

fn opts(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_owned(),
        history: HistoryLimits {
            max_age: 86_400,
            max_count: 100_000,
        },
        max_batch: 64,
        instance_id: "tls-test".into(),
        readers: 1,
        lease_log: None,
    }
}

fn open(url: &str) -> PostgresStore {
    PostgresStore::open(opts(url), T0).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

fn open_err(url: &str) -> String {
    match PostgresStore::open(opts(url), T0) {
        Ok(_) => panic!("open of {url} succeeded"),
        Err(e) => {
            let e = e.to_string();
            assert!(!e.contains('\n'), "one line: {e}");
            assert!(
                e.starts_with("postgresql store postgres://"),
                "names the database: {e}"
            );
            e
        }
    }
}

/// `db`'s URL with these query parameters added.
fn with(db: &PgDatabase, params: &str) -> String {
    format!("{}?{params}", db.url)
}

/// Whether the connections named `app` are all TLS (and how many there are).
fn tls_of(app: &str) -> String {
    pg_tls_cluster().query(&format!(
        "SELECT bool_and(s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a \
         USING (pid) WHERE a.application_name = '{app}'"
    ))
}

fn commit_one(store: &PostgresStore) {
    store
        .submit(vec![sample(1, T0)], T0)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
    assert!(store.get(sample(1, T0).ip).expect("read").is_some());
}

#[test]
fn verify_full_with_the_right_ca_connects_over_tls() {
    let c = pg_tls_cluster();
    let db = pg_tls_database();
    let store = open(&with(
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}&application_name=tls_full",
            c.ca_file.display()
        ),
    ));
    commit_one(&store);
    // The writer and the reader: both over TLS.
    assert_eq!(tls_of("tls_full"), "t|2");
    // By the certificate's host name too (hostaddr for the address).
    let url = format!(
        "host={} hostaddr=127.0.0.1 port={} user=postgres password=postgres dbname={} \
         sslmode=verify-full sslrootcert={}",
        c.cert_host,
        c.port,
        db.name,
        c.ca_file.display()
    );
    drop(store);
    commit_one(&open(&url));
}

#[test]
fn an_unknown_ca_is_refused() {
    let c = pg_tls_cluster();
    let db = pg_tls_database();
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = open_err(&with(
            &db,
            &format!("sslmode={mode}&sslrootcert={}", c.other_ca_file.display()),
        ));
        assert!(
            e.contains("cannot connect: TLS: the server's certificate is not signed by a CA of sslrootcert")
                && e.contains(&c.other_ca_file.display().to_string())
                && e.contains(&format!("(sslmode={mode})")),
            "{e}"
        );
    }
}

#[test]
fn a_wrong_host_name_is_refused_by_verify_full_only() {
    let c = pg_tls_cluster();
    let db = pg_tls_database();
    let url = |mode: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user=postgres password=postgres dbname={} \
             sslmode={mode} sslrootcert={}",
            c.port,
            db.name,
            c.ca_file.display()
        )
    };
    let e = open_err(&url("verify-full"));
    assert!(
        e.contains("TLS: the server's certificate is not valid for the host name localhost (sslmode=verify-full)"),
        "{e}"
    );
    commit_one(&open(&url("verify-ca")));
}

#[test]
fn require_against_a_server_without_tls_is_refused() {
    let db = pg_database();
    let e = open_err(&with(&db, "sslmode=require"));
    assert!(
        e.contains(
            "cannot connect: TLS: the server does not accept TLS connections (sslmode=require)"
        ),
        "{e}"
    );
    // prefer (the default) and disable connect in plain text.
    commit_one(&open(&with(&db, "sslmode=prefer")));
    drop(open(&with(&db, "sslmode=disable")));
}

#[test]
fn modes_without_verification_encrypt_and_disable_does_not() {
    let db = pg_tls_database();
    drop(open(&with(&db, "sslmode=require&application_name=tls_req")));
    // Closed with the store: count the live ones while it is open.
    let store = open(&with(&db, "sslmode=require&application_name=tls_req"));
    assert_eq!(tls_of("tls_req"), "t|2");
    drop(store);
    let store = open(&with(&db, "sslmode=prefer&application_name=tls_pref"));
    assert_eq!(tls_of("tls_pref"), "t|2");
    drop(store);
    let store = open(&with(&db, "sslmode=disable&application_name=tls_off"));
    assert_eq!(tls_of("tls_off"), "f|2");
    drop(store);
}

#[test]
fn a_client_certificate_logs_in() {
    let c = pg_tls_cluster();
    let db = pg_tls_database();
    c.sql(&format!(
        "ALTER DATABASE {} OWNER TO {}",
        db.name, c.cert_user
    ));
    let url = |extra: &str| {
        format!(
            "postgres://{}@127.0.0.1:{}/{}?sslmode=verify-full&sslrootcert={}{extra}",
            c.cert_user,
            c.port,
            db.name,
            c.ca_file.display()
        )
    };
    commit_one(&open(&url(&format!(
        "&sslcert={}&sslkey={}",
        c.client_cert_file.display(),
        c.client_key_file.display()
    ))));
    // Without it: refused by the server (pg_hba `cert`).
    let e = open_err(&url(""));
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.contains("certificate"), "{e}");
    // A missing key file is named.
    let e = open_err(&url(&format!(
        "&sslcert={}&sslkey=/nonexistent/client.key",
        c.client_cert_file.display()
    )));
    assert!(e.contains("/nonexistent/client.key"), "{e}");
}
