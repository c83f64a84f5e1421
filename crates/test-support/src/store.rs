//! Reading the server's store (SQLite, or a PostgreSQL database shared by
//! several servers) from the test process.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use leaseline_proto::{Binding, DhcpState};
use leaseline_store::{
    HistoryLimits, LeaseStore, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore,
};

fn try_load(db: &Path) -> Result<Vec<Binding>, String> {
    if !db.exists() {
        return Err(format!("store {} does not exist", db.display()));
    }
    let store = SqliteStore::open(
        SqliteOptions {
            path: db.to_owned(),
            history: HistoryLimits {
                max_age: 3600,
                max_count: 100_000,
            },
            max_batch: 1024,
            lease_log: Some(leaseline_store::LeaseLogLimits::DEFAULT),
        },
        crate::unix_now(),
    )
    .map_err(|e| format!("open {}: {e}", db.display()))?;
    store
        .load_all()
        .map_err(|e| format!("load_all {}: {e}", db.display()))
}

/// The PostgreSQL store at `url`, as instance `me` reads it: bindings last
/// changed by another instance carry data-source REMOTE. Only reads and
/// the change log are meant: the store is not followed (it takes no share
/// of the pools; the servers do not see it as an instance).
pub fn open_pg_store(url: &str, me: &str) -> PostgresStore {
    // A statement of the test's own that waits two minutes is a failure
    // with PostgreSQL's reason, not a test that hangs.
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20statement_timeout%3D120s");
    PostgresStore::open(
        PostgresOptions {
            url,
            history: HistoryLimits {
                max_age: 3600,
                max_count: 1_000_000,
            },
            max_batch: 64,
            instance_id: me.to_owned(),
            readers: 1,
            lease_log: Some(leaseline_store::LeaseLogLimits::DEFAULT),
        },
        0,
    )
    .unwrap_or_else(|e| panic!("open the test database: {e}"))
}

/// Every binding in the store at `db` (normally after the server has exited).
pub fn load_bindings(db: &Path) -> Vec<Binding> {
    try_load(db).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls the store (which a running server may hold open) until the binding
/// of `ip` satisfies `pred`; panics after `timeout` with the last one seen.
pub fn wait_for_binding(
    db: &Path,
    ip: Ipv4Addr,
    timeout: Duration,
    pred: impl Fn(&Binding) -> bool,
) -> Binding {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = try_load(db).map(|all| all.into_iter().find(|b| b.ip == ip));
        if let Ok(Some(b)) = &last {
            if pred(b) {
                return b.clone();
            }
        }
        if std::time::Instant::now() >= deadline {
            panic!("binding of {ip} did not reach the expected state within {timeout:?}; last seen: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The invariant "a lease is never given to two clients" over a store
/// snapshot: no (htype, chaddr) holds two ACTIVE addresses. (Each address
/// is one row, so it cannot name two clients.) Returns the ACTIVE bindings
/// by address.
pub fn assert_no_double_allocation(bindings: &[Binding]) -> HashMap<Ipv4Addr, &Binding> {
    let mut by_ip: HashMap<Ipv4Addr, &Binding> = HashMap::new();
    let mut by_client: HashMap<(u8, &[u8]), Ipv4Addr> = HashMap::new();
    for b in bindings.iter().filter(|b| b.state == DhcpState::Active) {
        if let Some(prev) = by_ip.insert(b.ip, b) {
            panic!(
                "address {} appears twice in the store: {prev:?} and {b:?}",
                b.ip
            );
        }
        if let Some(other) = by_client.insert((b.htype, b.chaddr.as_slice()), b.ip) {
            panic!(
                "client {} holds two ACTIVE addresses: {other} and {}",
                crate::mac_string(&b.chaddr),
                b.ip
            );
        }
    }
    by_ip
}
