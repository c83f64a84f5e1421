//! A PostgreSQL cluster a test binary starts itself, shared by the plain
//! cluster ([`crate::pg_database`]) and the TLS one
//! ([`crate::pg_tls_cluster`]): Debian's `initdb` and `pg_ctl`
//! (`/usr/lib/postgresql/*/bin`) on a temporary directory, run as the
//! `postgres` OS user when the tests run as root (initdb refuses root);
//! trust on the unix socket, password `postgres` over TCP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::postgres::TEST_PG_URL_ENV;

/// A cluster this binary started: stopped and removed by [`stop_at_exit`].
pub(crate) struct OwnedCluster {
    pub(crate) dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The server options of `pg_ctl start -o` (to start it again).
    opts: String,
    /// Files kept as long as the cluster (a client's certificates).
    pub(crate) keep: Option<tempfile::TempDir>,
}

impl OwnedCluster {
    /// `initdb` in a new temporary directory named `prefix…`, after
    /// `prepare` wrote its own files there (all given to `postgres`).
    pub(crate) fn init(prefix: &str, prepare: impl FnOnce(&Path)) -> Self {
        let bin = pg_bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir for the test cluster");
        prepare(dir.path());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, "postgres\n").expect("write the password file");
        if as_postgres {
            check(
                "chown postgres the test cluster's directory",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .output(),
            );
        }
        let cluster = OwnedCluster {
            dir,
            bin,
            as_postgres,
            opts: String::new(),
            keep: None,
        };
        check(
            &format!("initdb ({prefix})"),
            cluster
                .tool("initdb")
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
                .arg(cluster.data())
                .output(),
        );
        cluster
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file of the cluster's own (pg_hba.conf): written and given to
    /// `postgres`.
    pub(crate) fn write_owned(&self, path: &Path, text: &str) {
        write(path, text, 0o600);
        if self.as_postgres {
            check(
                "chown postgres",
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(path)
                    .output(),
            );
        }
    }

    /// `pg_ctl start` listening on 127.0.0.1:`port` and a unix socket in
    /// the cluster's directory, with `more` server options; fsync off (a
    /// test cluster is thrown away; durability across a kill of the
    /// *server* is still tested: the commit is done before an answer).
    pub(crate) fn start(&mut self, port: u16, more: &str) {
        self.opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off {more}",
            self.dir.path().display()
        );
        self.pg_ctl_start("pg_ctl start");
    }

    /// Start it again after [`OwnedCluster::stop`], as it was.
    pub(crate) fn restart(&self) {
        self.pg_ctl_start("pg_ctl start (again)");
    }

    fn pg_ctl_start(&self, what: &str) {
        let log = self.dir.path().join("postgres.log");
        let started = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &self.opts, "start"])
            .output();
        if !matches!(&started, Ok(o) if o.status.success()) {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            check(what, started);
            panic!("{what}: {log}");
        }
    }

    /// `pg_ctl stop -m MODE`.
    pub(crate) fn stop(&self, mode: &str) -> std::io::Result<Output> {
        self.tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"])
            .output()
    }

    /// A tool of the installed PostgreSQL, as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

/// Stop and remove the cluster in `slot` (from an `atexit` handler).
pub(crate) fn stop_at_exit(slot: &Mutex<Option<OwnedCluster>>) {
    let owned = match slot.lock() {
        Ok(mut g) => g.take(),
        Err(e) => e.into_inner().take(),
    };
    if let Some(o) = owned {
        let _ = o.stop("immediate");
        drop(o);
    }
}

/// psql on `url`: one statement, rows unaligned (`-At`: fields joined by
/// `|`, one row a line); panics with psql's stderr on failure.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let out = check(
        &format!("psql -c {sql:?}"),
        Command::new(find_bin("psql"))
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(url)
            .arg("-c")
            .arg(sql)
            .output(),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
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

/// A PostgreSQL client tool: the installed server's, else from PATH.
pub(crate) fn find_bin(name: &str) -> PathBuf {
    let candidate = pg_bin_dir().join(name);
    if candidate.exists() {
        candidate
    } else {
        crate::require_tool(name)
    }
}

pub(crate) fn write(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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
