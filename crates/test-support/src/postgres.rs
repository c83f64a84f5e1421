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
//! A missing PostgreSQL fails the test with the command that installs it:
//! these tests never skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

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
    static N: AtomicU32 = AtomicU32::new(0);
    let c = cluster();
    let name = format!(
        "leaseline_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    psql(c, &format!("CREATE DATABASE {name}"));
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
    psql(cluster(), sql);
}

struct Cluster {
    admin_url: String,
    psql: PathBuf,
    /// `host=DIR port=PORT user=postgres` of a cluster of our own.
    socket: Option<String>,
}

/// The cluster's directory and tools, for stopping it at exit.
struct Owned {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    as_postgres: bool,
    /// The server options `pg_ctl start -o` was given (to start it again).
    opts: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static OWNED: Mutex<Option<Owned>> = Mutex::new(None);

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| match std::env::var(TEST_PG_URL_ENV) {
        Ok(url) if !url.is_empty() => Cluster {
            psql: find_bin("psql"),
            admin_url: url,
            socket: None,
        },
        _ => start_cluster(),
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

/// The newest installed PostgreSQL's bin directory.
pub(crate) fn pg_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb).\n\
             Install it: sudo apt-get install -y postgresql\n\
             or point {TEST_PG_URL_ENV} at a server (postgres://user:pass@host:port/db).\n\
             (scripts/test.sh installs it.) PostgreSQL tests do not skip."
        ),
    }
}

fn find_bin(name: &str) -> PathBuf {
    let candidate = pg_bin_dir().join(name);
    if candidate.exists() {
        candidate
    } else {
        crate::require_tool(name)
    }
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the `postgres` OS user when we are root.
pub(crate) fn command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub(crate) fn check(what: &str, out: std::io::Result<Output>) -> Output {
    match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!(
            "{what} failed ({}):\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("{what}: cannot run: {e}"),
    }
}

pub(crate) fn free_tcp_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn start_cluster() -> Cluster {
    let bin = pg_bin_dir();
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("leaseline-pg-")
        .tempdir()
        .expect("tempdir for the test cluster");
    if as_postgres {
        check(
            "chown postgres the test cluster's directory",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output(),
        );
    }
    let data = dir.path().join("data");
    // Trust on the unix socket (psql, pg_ctl); passwords over TCP, so that a
    // wrong password is refused as on a real server.
    let pwfile = dir.path().join("pwfile");
    std::fs::write(&pwfile, "postgres\n").expect("write the password file");
    if as_postgres {
        check(
            "chown postgres the password file",
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pwfile)
                .output(),
        );
    }
    check(
        "initdb",
        command(&bin.join("initdb"), as_postgres)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--username=postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data)
            .output(),
    );
    let port = free_tcp_port();
    // fsync off: a test cluster is thrown away; durability across a kill of
    // the *server* is still tested (the commit is done before an answer).
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        dir.path().display()
    );
    let log = dir.path().join("postgres.log");
    let socket_dir = dir.path().to_path_buf();
    let started = command(&bin.join("pg_ctl"), as_postgres)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &opts, "start"])
        .output();
    if !matches!(&started, Ok(o) if o.status.success()) {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        check("pg_ctl start", started);
        panic!("pg_ctl start: {log}");
    }
    *OWNED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Owned {
        dir,
        pg_ctl: bin.join("pg_ctl"),
        as_postgres,
        opts: opts.clone(),
    });
    // SAFETY: registering a plain extern "C" fn; it runs once at exit.
    unsafe {
        libc::atexit(stop_cluster_at_exit);
    }
    Cluster {
        admin_url: format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
        psql: bin.join("psql"),
        socket: Some(format!(
            "host={} port={port} user=postgres",
            socket_dir.display()
        )),
    }
}

/// Stop the test binary's own cluster (`pg_ctl stop -m fast`: open
/// transactions are rolled back, connections ended), run `while_down`, and
/// start it again on the same port, socket and data. Panics when the
/// cluster is not this binary's own (`LEASELINE_TEST_PG_URL`).
pub fn pg_restart_cluster(while_down: impl FnOnce()) {
    let _ = cluster();
    let guard = OWNED.lock().unwrap_or_else(|e| e.into_inner());
    let o = guard.as_ref().unwrap_or_else(|| {
        panic!("restarting PostgreSQL needs the test's own cluster, not {TEST_PG_URL_ENV}")
    });
    let data = o.dir.path().join("data");
    check(
        "pg_ctl stop",
        command(&o.pg_ctl, o.as_postgres)
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .output(),
    );
    while_down();
    let log = o.dir.path().join("postgres.log");
    check(
        "pg_ctl start (again)",
        command(&o.pg_ctl, o.as_postgres)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &o.opts, "start"])
            .output(),
    );
}

extern "C" fn stop_cluster_at_exit() {
    let owned = match OWNED.lock() {
        Ok(mut g) => g.take(),
        Err(e) => e.into_inner().take(),
    };
    if let Some(o) = owned {
        let _ = command(&o.pg_ctl, o.as_postgres)
            .arg("-D")
            .arg(o.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        drop(o.dir);
    }
}

fn psql(c: &Cluster, sql: &str) {
    check(
        &format!("psql -c {sql:?}"),
        Command::new(&c.psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&c.admin_url)
            .arg("-c")
            .arg(sql)
            .output(),
    );
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
