//! A throwaway PostgreSQL for tests.
//!
//! [`pg_database`] gives each test its own fresh, empty database (CREATE
//! DATABASE with a unique name) on one cluster shared by the whole test
//! binary, so tests run in parallel. The cluster is either
//! - the server `LEASELINE_TEST_PG_URL` points at (a superuser or a role with
//!   CREATEDB; the databases made there are left behind), or
//! - a cluster of its own: Debian's `postgresql` package's `initdb` and
//!   `pg_ctl` (`/usr/lib/postgresql/*/bin`) on a temporary directory, trust
//!   auth on a unix socket and password `postgres` over TCP, a unix socket in that directory and a free TCP port on 127.0.0.1,
//!   run as the `postgres` OS user when the tests run as root (initdb
//!   refuses root). It is stopped (`pg_ctl stop -m immediate`) and its
//!   directory removed when the test binary exits.
//!
//! [`pg_restartable_database`] is the same on a second cluster of the
//! binary's own, which [`pg_restart_cluster`] stops and starts again: a
//! restart must not pull the shared cluster from under the tests running
//! beside it (one end-to-end binary runs them concurrently).
//!
//! A missing PostgreSQL fails the test with the command that installs it:
//! these tests never skip.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::free_tcp_port;
use crate::pg_cluster::{self, psql, OwnedCluster};

/// The environment variable naming an existing server to use instead.
pub const TEST_PG_URL_ENV: &str = "LEASELINE_TEST_PG_URL";

/// A fresh database of the shared test cluster.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    /// `postgres://user:password@host:port/name`, for the store's `url`.
    pub url: String,
    pub name: String,
    /// The same database over the cluster's unix socket (libpq key=value
    /// form), which a server inside a network namespace of its own can
    /// reach; the TCP `url` when the cluster is not this binary's own.
    pub socket_url: String,
}

/// The URL of the cluster's maintenance database (`postgres`).
pub fn pg_cluster_url() -> String {
    cluster().admin_url.clone()
}

/// A new, empty database with a unique name on the shared cluster.
pub fn pg_database() -> PgDatabase {
    database_on(cluster())
}

/// A new, empty database on the restartable cluster (always one of this
/// binary's own, even with `LEASELINE_TEST_PG_URL`), for a test that calls
/// [`pg_restart_cluster`].
pub fn pg_restartable_database() -> PgDatabase {
    database_on(restartable_cluster())
}

fn database_on(c: &Cluster) -> PgDatabase {
    crate::watchdog::arm();
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "leaseline_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    psql(&c.admin_url, &format!("CREATE DATABASE {name}"));
    let url = with_database(&c.admin_url, &name);
    PgDatabase {
        socket_url: match &c.socket {
            Some(s) => format!("{s} dbname={name}"),
            None => url.clone(),
        },
        url,
        name,
    }
}

/// Run one SQL statement on the cluster's maintenance database with psql;
/// panics with psql's stderr on failure.
pub fn pg_admin_sql(sql: &str) {
    psql(&cluster().admin_url, sql);
}

struct Cluster {
    admin_url: String,
    /// `host=DIR port=PORT user=postgres` of a cluster of our own.
    socket: Option<String>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static OWNED: Mutex<Option<OwnedCluster>> = Mutex::new(None);
static RESTARTABLE: OnceLock<Cluster> = OnceLock::new();
static RESTARTABLE_OWNED: Mutex<Option<OwnedCluster>> = Mutex::new(None);

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var(TEST_PG_URL_ENV) {
        Ok(url) if !url.is_empty() => Cluster {
            admin_url: url,
            socket: None,
        },
        _ => start_cluster("leaseline-pg-", &OWNED, stop_cluster_at_exit),
    })
}

fn restartable_cluster() -> &'static Cluster {
    RESTARTABLE.get_or_init(|| {
        start_cluster(
            "leaseline-pg-restartable-",
            &RESTARTABLE_OWNED,
            stop_restartable_at_exit,
        )
    })
}

/// `url` with its database (path) replaced by `name`, query kept.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn start_cluster(
    prefix: &str,
    slot: &Mutex<Option<OwnedCluster>>,
    at_exit: extern "C" fn(),
) -> Cluster {
    let mut owned = OwnedCluster::init(prefix, |_| {});
    let port = free_tcp_port();
    owned.start(port, "-c max_connections=200");
    let socket_dir = owned.dir.path().display().to_string();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(owned);
    // SAFETY: registering a plain extern "C" fn; it runs once at exit.
    unsafe {
        libc::atexit(at_exit);
    }
    Cluster {
        admin_url: format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
        socket: Some(format!("host={socket_dir} port={port} user=postgres")),
    }
}

/// Stop the restartable cluster ([`pg_restartable_database`]; `pg_ctl stop
/// -m fast`: open transactions are rolled back, connections ended), run
/// `while_down`, and start it again on the same port, socket and data. The
/// shared cluster of [`pg_database`] keeps running.
pub fn pg_restart_cluster(while_down: impl FnOnce()) {
    let _ = restartable_cluster();
    let guard = RESTARTABLE_OWNED.lock().unwrap_or_else(|e| e.into_inner());
    let o = guard
        .as_ref()
        .unwrap_or_else(|| panic!("the restartable cluster has been stopped"));
    pg_cluster::check("pg_ctl stop", o.stop("fast"));
    while_down();
    o.restart();
}

/// For the test watchdog: each started cluster's client sessions (what
/// they run, since when, what they wait for) and the locks not granted.
/// Bounded: psql gives up after 5 s to connect and 5 s per statement.
pub(crate) fn diagnostics() -> String {
    const SESSIONS: &str = "SELECT pid, datname, client_addr, client_port, state, \
         wait_event_type, wait_event, now() - xact_start AS xact_age, \
         now() - query_start AS query_age, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) \
         FROM pg_stat_activity WHERE backend_type = 'client backend' \
         ORDER BY xact_start NULLS LAST";
    const WAITING: &str = "SELECT l.pid, l.locktype, l.relation::regclass, l.mode, \
         l.classid, l.objid, pg_blocking_pids(l.pid) AS blocked_by \
         FROM pg_locks l WHERE NOT l.granted";
    let mut out = String::new();
    for (label, cluster) in [
        ("shared", CLUSTER.get()),
        ("restartable", RESTARTABLE.get()),
    ] {
        let Some(c) = cluster else {
            out.push_str(&format!("{label} cluster: not started\n"));
            continue;
        };
        for (what, sql) in [("sessions", SESSIONS), ("locks waited for", WAITING)] {
            out.push_str(&format!("{label} cluster, {what}:\n"));
            out.push_str(&crate::watchdog::run_limited(
                std::process::Command::new(pg_cluster::find_bin("psql"))
                    .env("PGCONNECT_TIMEOUT", "5")
                    .env("PGOPTIONS", "-c statement_timeout=5000")
                    .args(["-X", "-P", "pager=off", "-d"])
                    .arg(&c.admin_url)
                    .arg("-c")
                    .arg(sql),
            ));
        }
    }
    out
}

extern "C" fn stop_cluster_at_exit() {
    pg_cluster::stop_at_exit(&OWNED);
}

extern "C" fn stop_restartable_at_exit() {
    pg_cluster::stop_at_exit(&RESTARTABLE_OWNED);
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }

    #[test]
    fn each_database_is_fresh_and_distinct() {
        let a = super::pg_database();
        let b = super::pg_database();
        assert_ne!(a.name, b.name);
        assert!(a.url.ends_with(&format!("/{}", a.name)));
    }
}
