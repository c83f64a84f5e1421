//! Live reload (SIGHUP, and the control API's `config-reload`): the file
//! is read and validated first; on any error the running configuration
//! stays and the error names the key and line. Then what can change
//! without a restart changes at once: subnets, pools, options,
//! reservations, lease times (the DHCP engine, keeping every binding, offer
//! and timer) and UDP Leasequery (allow list, rate, extra options). Nothing
//! in flight is dropped: the engine is swapped under its lock between two
//! messages. What needs new sockets or another store is named in the
//! answer and the log, and takes effect at the next restart.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::leasequery::UdpLeasequery;
use crate::run::Shared;

/// What a reload did.
#[derive(Debug)]
pub(crate) struct Reloaded {
    /// Keys that changed but take effect only at the next restart.
    pub(crate) need_restart: Vec<&'static str>,
}

/// Reload from `path` (the file the server was started with).
pub(crate) fn reload(shared: &Shared, path: Option<&Path>) -> Result<Reloaded, String> {
    let result = path
        .ok_or_else(|| "the configuration was not read from a file".to_owned())
        .and_then(|p| Config::load(p).map_err(|e| e.to_string()))
        .map(|new| apply(shared, new));
    match &result {
        Ok(r) if r.need_restart.is_empty() => tracing::info!("configuration reloaded"),
        Ok(r) => tracing::warn!(
            restart = %r.need_restart.join(", "),
            "configuration reloaded; these changes take effect at the next restart"
        ),
        Err(e) => tracing::error!(error = %e, "configuration not reloaded; the running one stays"),
    }
    result
}

fn apply(shared: &Shared, mut new: Config) -> Reloaded {
    let mut engine = shared.engine.lock();
    let old = engine.config();
    let need_restart = restart_only_changes(old, &new);
    // What needs a restart keeps its running value, so that the engine's
    // sockets and store agree with its configuration.
    new.store_backend = old.store_backend.clone();
    new.store_path = old.store_path.clone();
    new.listen = old.listen;
    new.relay_port = old.relay_port;
    new.client_port = old.client_port;
    new.source = old.source.clone();
    let interfaces_changed = need_restart.contains(&"subnet.interface");
    if interfaces_changed {
        // Sockets per interface are opened at start: keep the running
        // subnets' interfaces by refusing the DHCP part of this reload.
        drop(engine);
        *shared.leasequery.write() = UdpLeasequery::from_config(&new).map(Arc::new);
        return Reloaded { need_restart };
    }
    *shared.leasequery.write() = UdpLeasequery::from_config(&new).map(Arc::new);
    engine.reconfigure(Arc::new(new));
    Reloaded { need_restart }
}

/// Keys whose change needs a restart (sockets, the store, the listeners).
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let store_same = match (&old.store_backend, &new.store_backend) {
        (crate::config::StoreBackend::Sqlite, crate::config::StoreBackend::Sqlite) => {
            old.store_path == new.store_path
        }
        (
            crate::config::StoreBackend::Postgres { url: a },
            crate::config::StoreBackend::Postgres { url: b },
        ) => a == b,
        _ => false,
    };
    if !store_same {
        keys.push("store");
    }
    if old.listen != new.listen {
        keys.push("dhcp.listen");
    }
    if (old.relay_port, old.client_port) != (new.relay_port, new.client_port) {
        keys.push("dhcp.relay_port/client_port");
    }
    let interfaces = |c: &Config| {
        let mut v: Vec<String> = c
            .subnets
            .iter()
            .filter_map(|s| s.interface.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    if interfaces(old) != interfaces(new) {
        keys.push("subnet.interface");
    }
    let bulk = |c: &Config| c.leasequery.bulk.as_ref().map(|b| b.listen);
    if bulk(old) != bulk(new)
        || old.leasequery.active.is_some() != new.leasequery.active.is_some()
        || old.leasequery.plaintext != new.leasequery.plaintext
        || format!("{:?}", old.leasequery.tls) != format!("{:?}", new.leasequery.tls)
        || format!("{:?}", old.leasequery.bulk) != format!("{:?}", new.leasequery.bulk)
        || format!("{:?}", old.leasequery.active) != format!("{:?}", new.leasequery.active)
        || old.leasequery.allow != new.leasequery.allow
    {
        keys.push("leasequery (TCP listener, allow list, TLS)");
    }
    if format!("{:?}", old.http) != format!("{:?}", new.http) {
        keys.push("http");
    }
    if old.worker_threads != new.worker_threads || old.state_dir != new.state_dir {
        keys.push("server");
    }
    keys
}
