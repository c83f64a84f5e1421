//! A throwaway PostgreSQL cluster with TLS, for the tests of TLS to the
//! database: `ssl = on` with a server certificate made for the test by a
//! test CA ([`crate::pki`]), valid for 127.0.0.1 and `pg.leaseline.test`
//! (not for `localhost`, so that a wrong host name can be tested); client
//! certificates signed by the same CA are accepted (`ssl_ca_file`), and the
//! role [`PgTlsCluster::cert_user`] logs in with one only (pg_hba `cert`).
//! Everyone else uses a password (`postgres`/`postgres`), with or without
//! TLS. One cluster per test binary, started at first use like
//! [`crate::pg_database`]'s, from Debian's `postgresql` package, stopped
//! and removed at exit. `LEASELINE_TEST_PG_URL` does not apply: TLS needs a
//! server configured for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::free_tcp_port;
use crate::pg_cluster::{self, psql, write, OwnedCluster};
use crate::pki::{dns, Ca, ExtendedKeyUsagePurpose, SanType, Validity};
use crate::postgres::with_database;
use crate::PgDatabase;

/// The TLS cluster and the PEM files a client needs.
#[derive(Debug)]
pub struct PgTlsCluster {
    /// `postgres://postgres:postgres@127.0.0.1:PORT/postgres` (no sslmode).
    pub admin_url: String,
    pub port: u16,
    /// The CA that signed the server's (and the client's) certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing of this cluster.
    pub other_ca_file: PathBuf,
    /// A client certificate and key (0600) for [`PgTlsCluster::cert_user`].
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    /// The role that logs in with its client certificate only.
    pub cert_user: String,
    /// A host name the server's certificate is valid for (with 127.0.0.1).
    pub cert_host: String,
}

impl PgTlsCluster {
    /// Run one SQL statement on the maintenance database; panics on failure.
    pub fn sql(&self, sql: &str) {
        psql(&self.admin_url, sql);
    }

    /// The rows of one query on the maintenance database, as psql prints
    /// them unaligned (`-At`: fields joined by `|`, one row a line).
    pub fn query(&self, sql: &str) -> String {
        psql(&self.admin_url, sql)
    }
}

static CLUSTER: OnceLock<PgTlsCluster> = OnceLock::new();
static OWNED: Mutex<Option<OwnedCluster>> = Mutex::new(None);

/// The TLS cluster of this test binary, started at first use.
pub fn pg_tls_cluster() -> &'static PgTlsCluster {
    CLUSTER.get_or_init(start)
}

/// A new, empty database on the TLS cluster; its `url` has no sslmode.
pub fn pg_tls_database() -> PgDatabase {
    static N: AtomicU32 = AtomicU32::new(0);
    let c = pg_tls_cluster();
    let name = format!(
        "leaseline_tls_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    c.sql(&format!("CREATE DATABASE {name}"));
    let url = with_database(&c.admin_url, &name);
    PgDatabase {
        socket_url: url.clone(),
        url,
        name,
    }
}

fn start() -> PgTlsCluster {
    let files = tempfile::Builder::new()
        .prefix("leaseline-pgtls-client-")
        .tempdir()
        .expect("tempdir for the client's files");
    let cert_user = "leaseline_cert".to_owned();
    let cert_host = "pg.leaseline.test".to_owned();

    // The PKI: the server's certificate, a client's, and an unrelated CA.
    let ca = Ca::new("Leaseline test PostgreSQL CA");
    let other = Ca::new("Leaseline test unrelated CA");
    let server = ca.leaf(
        &cert_host,
        vec![dns(&cert_host), SanType::IpAddress([127, 0, 0, 1].into())],
        ExtendedKeyUsagePurpose::ServerAuth,
        Validity::Current,
    );
    let client = ca.leaf(
        &cert_user,
        vec![dns("client.leaseline.test")],
        ExtendedKeyUsagePurpose::ClientAuth,
        Validity::Current,
    );
    let ca_file = files.path().join("ca.pem");
    let other_ca_file = files.path().join("other-ca.pem");
    let client_cert_file = files.path().join("client.pem");
    let client_key_file = files.path().join("client.key");
    write(&ca_file, &ca.pem, 0o644);
    write(&other_ca_file, &other.pem, 0o644);
    write(&client_cert_file, &client.pem, 0o644);
    write(&client_key_file, &client.key_pem, 0o600);

    let mut owned = OwnedCluster::init("leaseline-pgtls-", |dir| {
        let server_dir = dir.join("tls");
        std::fs::create_dir(&server_dir).expect("mkdir tls");
        write(&server_dir.join("server.crt"), &server.pem, 0o644);
        write(&server_dir.join("server.key"), &server.key_pem, 0o600);
        write(&server_dir.join("ca.crt"), &ca.pem, 0o644);
    });
    // The certificate's role logs in with its certificate only; everyone
    // else with a password, over TLS or not.
    owned.write_owned(
        &owned.data().join("pg_hba.conf"),
        &format!(
            "local all all trust\n\
             hostssl all {cert_user} 127.0.0.1/32 cert\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        ),
    );
    let port = free_tcp_port();
    let tls = owned.dir.path().join("tls");
    owned.start(
        port,
        &format!(
            "-c max_connections=100 -c ssl=on -c ssl_cert_file={tls}/server.crt \
             -c ssl_key_file={tls}/server.key -c ssl_ca_file={tls}/ca.crt",
            tls = tls.display()
        ),
    );
    owned.keep = Some(files);
    let cluster = PgTlsCluster {
        admin_url: format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
        port,
        ca_file,
        other_ca_file,
        client_cert_file,
        client_key_file,
        cert_user,
        cert_host,
    };
    *OWNED.lock().unwrap_or_else(|e| e.into_inner()) = Some(owned);
    // SAFETY: registering a plain extern "C" fn; it runs once at exit.
    unsafe {
        libc::atexit(stop_at_exit);
    }
    cluster.sql(&format!("CREATE ROLE {} LOGIN CREATEDB", cluster.cert_user));
    cluster
}

extern "C" fn stop_at_exit() {
    pg_cluster::stop_at_exit(&OWNED);
}
