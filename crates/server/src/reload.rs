//! Live reload (SIGHUP, and the control API's `config-reload`): the file
//! is read and validated first (TLS files included); on any error the
//! running configuration stays and the error names the key and line (or
//! file). Then what can change without a restart changes at once:
//! subnets, pools, options, reservations, lease times (the DHCP engine,
//! keeping every binding, offer and timer), UDP Leasequery (allow list,
//! rate, extra options) and the leasequery TCP listener's settings (allow
//! list, limits, timeouts, TLS certificate, key, CA and
//! allowed_requestors): new connections use them at once, connected
//! requestors still allowed keep their connection, and those no longer
//! allowed get QueryTerminated (see `listener::Revocation`); and the HTTP
//! endpoint's certificate, key, client CA and allowed clients, read again
//! from their files at each reload: new connections' handshakes use them,
//! open connections keep theirs. Nothing in
//! flight is dropped: the engine is swapped under its lock between two
//! messages. What needs new sockets or another store is named in the
//! answer and the log, and takes effect at the next restart.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, HttpConfig};
use crate::leasequery::UdpLeasequery;
use crate::listener::ListenerContext;
use crate::shared::Shared;

/// What a reload did.
#[derive(Debug)]
pub(crate) struct Reloaded {
    /// Keys that changed but take effect only at the next restart.
    pub(crate) need_restart: Vec<&'static str>,
}

/// Reload from `path` (the file the server was started with).
pub(crate) fn reload(shared: &Shared, path: Option<&Path>) -> Result<Reloaded, String> {
    // Type=notify-reload: RELOADING=1 now, READY=1 once done, either way.
    crate::systemd::reloading();
    let result = path
        .ok_or_else(|| "the configuration was not read from a file".to_owned())
        .and_then(|p| Config::load(p).map_err(|e| e.to_string()))
        .and_then(|new| prepare(shared, new))
        .map(|plan| apply(shared, plan));
    match &result {
        Ok(r) if r.need_restart.is_empty() => {
            tracing::info!(event = "config_reloaded", "configuration reloaded")
        }
        Ok(r) => tracing::warn!(
            restart = %r.need_restart.join(", "),
            event = "config_reloaded",
            "configuration reloaded; these changes take effect at the next restart"
        ),
        Err(e) => tracing::error!(
            error = %e,
            event = "config_reload_failed",
            "configuration not reloaded; the running one stays"
        ),
    }
    crate::systemd::reloaded();
    result
}

/// A validated reload, ready to apply.
struct Plan {
    new: Config,
    need_restart: Vec<&'static str>,
    /// The listener's new settings (None: it does not run, or its shape
    /// changed, which needs a restart).
    tcp: Option<ListenerContext>,
    /// The HTTP endpoint's new acceptor (None: it does not serve HTTPS,
    /// or no longer should, which needs a restart).
    http_tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Everything that can fail: the TCP listener's settings read their TLS
/// files here, before anything is applied.
fn prepare(shared: &Shared, mut new: Config) -> Result<Plan, String> {
    let old = shared.engine.lock().config().clone();
    let need_restart = restart_only_changes(&old, &new);
    // What needs a restart keeps its running value, so that the engine's
    // sockets and store agree with its configuration.
    new.store_backend = old.store_backend.clone();
    new.store_path = old.store_path.clone();
    new.listen = old.listen;
    new.relay_port = old.relay_port;
    new.client_port = old.client_port;
    new.source = old.source.clone();
    if let (Some(n), Some(o)) = (new.leasequery.bulk.as_mut(), old.leasequery.bulk.as_ref()) {
        n.listen = o.listen;
    }
    let tcp = match shared.tcp.get() {
        Some(running) if same_listener_shape(&old, &new) => {
            let ctx = ListenerContext::from_config(&new, &shared.store, &shared.load)
                .map_err(|e| e.to_string())?
                .map(|c| c.sharing_slots_of(&running.borrow()));
            ctx
        }
        _ => None,
    };
    // Read even when the paths are unchanged: renewed certificates are
    // new files under the same names.
    let new_http_tls = new.http.as_ref().and_then(|h| h.tls.as_ref());
    let http_tls = match (shared.http_tls.get(), new_http_tls) {
        (Some(_), Some(tls)) => Some(crate::tls::https_acceptor(tls).map_err(|e| e.to_string())?),
        _ => None,
    };
    Ok(Plan {
        new,
        need_restart,
        tcp,
        http_tls,
    })
}

fn apply(shared: &Shared, plan: Plan) -> Reloaded {
    let Plan {
        new,
        need_restart,
        tcp,
        http_tls,
    } = plan;
    if let (Some(acceptor), Some(running)) = (http_tls, shared.http_tls.get()) {
        running.send_replace(acceptor);
    }
    if let (Some(ctx), Some(running)) = (tcp, shared.tcp.get()) {
        ctx.slots.set_limits(ctx.limits);
        // Every connection checks its requestor against the new settings.
        running.send_replace(Arc::new(ctx));
    }
    // Sockets per interface are opened at start: keep the running subnets'
    // interfaces by refusing the DHCP part of this reload.
    let new = Arc::new(new);
    let running = if need_restart.contains(&"subnet.interface") {
        shared.engine.lock().config_arc()
    } else {
        shared.engine.lock().reconfigure(Arc::clone(&new));
        Arc::clone(&new)
    };
    *shared.leasequery.write() = UdpLeasequery::from_config(&new, running).map(Arc::new);
    Reloaded { need_restart }
}

/// Whether the listener takes the same kinds of connection on the same
/// terms: on/off, active on/off, secure mode on/off, plaintext. A change
/// there needs a restart (the listen address alone does not stop the
/// rest from applying).
fn same_listener_shape(old: &Config, new: &Config) -> bool {
    let shape = |c: &Config| {
        (
            c.leasequery.bulk.is_some(),
            c.leasequery.active.is_some(),
            c.leasequery.tls.is_some(),
            c.leasequery.plaintext,
        )
    };
    shape(old) == shape(new)
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
    let (o, n) = (&old.leasequery, &new.leasequery);
    if o.bulk.is_some() != n.bulk.is_some() {
        keys.push("leasequery.bulk.enabled");
    } else if o.bulk.as_ref().map(|b| b.listen) != n.bulk.as_ref().map(|b| b.listen) {
        keys.push("leasequery.bulk.listen");
    }
    if o.active.is_some() != n.active.is_some() {
        keys.push("leasequery.active.enabled");
    }
    if o.tls.is_some() != n.tls.is_some() {
        keys.push("leasequery.tls");
    }
    if o.plaintext != n.plaintext {
        keys.push("leasequery.active.insecure");
    }
    keys.extend(http_restart_only_changes(
        old.http.as_ref(),
        new.http.as_ref(),
    ));
    if old.worker_threads != new.worker_threads || old.state_dir != new.state_dir {
        keys.push("server");
    }
    keys
}

/// `[http]`: its TLS files change live (see `prepare`); the rest is read
/// at start.
fn http_restart_only_changes(
    old: Option<&HttpConfig>,
    new: Option<&HttpConfig>,
) -> Vec<&'static str> {
    let (o, n) = match (old, new) {
        (None, None) => return Vec::new(),
        (Some(o), Some(n)) => (o, n),
        _ => return vec!["http"],
    };
    let mut keys = Vec::new();
    if o.listen != n.listen {
        keys.push("http.listen");
    }
    if o.tls.is_some() != n.tls.is_some() {
        keys.push("http.tls");
    }
    let rest = |h: &HttpConfig| {
        (
            h.token.clone(),
            h.kea_compat,
            h.max_connections,
            h.header_timeout,
            h.ui_stall_timeout,
        )
    };
    if rest(o) != rest(n) {
        keys.push("http");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:1067"
[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["127.0.0.1"]
[leasequery]
allow = ["127.0.0.0/8"]
[leasequery.bulk]
enabled = true
listen = "127.0.0.1:6767"
max_connections = 10
[leasequery.active]
enabled = true
insecure = true
"#;

    fn config(text: &str) -> Config {
        Config::parse(text, "t").expect("parses")
    }

    #[test]
    fn the_listener_s_allow_list_and_limits_change_live() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("127.0.0.0/8", "127.0.0.1/32")
                .replace("max_connections = 10", "max_connections = 3"),
        );
        assert!(restart_only_changes(&old, &new).is_empty());
        assert!(same_listener_shape(&old, &new));
    }

    #[test]
    fn the_dhcp_holds_and_reclaim_interval_change_live() {
        let old = config(BASE);
        let new = config(&BASE.replace(
            "[dhcp]\n",
            "[dhcp]\nreclaim_interval = 0\noffer_hold = 10\n",
        ));
        assert_eq!((old.reclaim_interval, new.reclaim_interval), (1, 0));
        assert!(restart_only_changes(&old, &new).is_empty());
    }

    #[test]
    fn the_listen_address_alone_needs_a_restart() {
        let old = config(BASE);
        let new = config(&BASE.replace("6767", "6768"));
        assert_eq!(restart_only_changes(&old, &new), ["leasequery.bulk.listen"]);
        assert!(same_listener_shape(&old, &new), "the rest still applies");
    }

    #[test]
    fn turning_active_leasequery_off_needs_a_restart() {
        let old = config(BASE);
        let new = config(BASE.split("[leasequery.active]").next().unwrap());
        // Bulk alone stays plain TCP: plaintext does not change.
        assert_eq!(
            restart_only_changes(&old, &new),
            ["leasequery.active.enabled"]
        );
        assert!(!same_listener_shape(&old, &new));
    }

    #[test]
    fn http_tls_files_change_live_turning_tls_on_or_off_does_not() {
        let https = format!(
            "{BASE}[http]\nlisten = \"127.0.0.1:8067\"\ntls_cert = \"a.pem\"\ntls_key = \"a-key.pem\"\n"
        );
        let old = config(&https);
        let new = config(&https.replace("a.pem", "b.pem").replace("a-key", "b-key"));
        assert!(restart_only_changes(&old, &new).is_empty());
        let plain = config(&format!("{BASE}[http]\nlisten = \"127.0.0.1:8067\"\n"));
        assert_eq!(restart_only_changes(&old, &plain), ["http.tls"]);
        let moved = config(&https.replace("8067", "8068"));
        assert_eq!(restart_only_changes(&old, &moved), ["http.listen"]);
        let token = config(&format!("{https}token = \"0123456789abcdef\"\n"));
        assert_eq!(restart_only_changes(&old, &token), ["http"]);
        assert_eq!(restart_only_changes(&old, &config(BASE)), ["http"]);
    }
}
