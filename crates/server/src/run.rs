//! Start-up, the tasks, and shutdown of `leaseline serve`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leaseline_store::{
    HistoryLimits, LeaseStore, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore,
    StoreError,
};
use parking_lot::Mutex;
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

use crate::clock::unix_now;
use crate::config::{Config, StoreBackend};
use crate::dhcp_switch::DhcpSwitch;
use crate::engine::{Engine, Ingress};
use crate::leasequery::UdpLeasequery;
use crate::listener::ListenerContext;
use crate::overload::DhcpLoad;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::udp;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    /// Not a `source`: its text is already in this line, and the binary
    /// prints the chain (`{:#}`), which printed it twice.
    #[error("lease store: {0}")]
    Store(StoreError),
    #[error("cannot bind {what}: {source}")]
    Bind {
        what: String,
        source: std::io::Error,
    },
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("secure mode: {0}")]
    Tls(#[from] crate::tls::TlsConfigError),
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e)
    }
}

/// Reader connections of a PostgreSQL store.
const POSTGRES_READERS: usize = 4;

/// This instance's name in the PostgreSQL change log: host name and pid.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "leaseline".to_owned());
    format!("{host}:{}", std::process::id())
}

/// Opened on a thread of its own: the sync `postgres` client runs a runtime
/// of its own, which cannot be entered from this runtime's thread.
fn open_postgres(opts: PostgresOptions, now: u32) -> Result<PostgresStore, StoreError> {
    std::thread::scope(|s| {
        s.spawn(move || PostgresStore::open(opts, now))
            .join()
            .unwrap_or(Err(StoreError::WriterGone))
    })
}

/// Run until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> Result<(), RunError> {
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| RunError::StateDir {
        path: cfg.state_dir.display().to_string(),
        source,
    })?;
    let now = unix_now();
    let history = HistoryLimits {
        max_age: cfg.history_max_age,
        max_count: cfg.history_max_count,
    };
    let (store, described): (Arc<dyn LeaseStore>, String) = match &cfg.store_backend {
        StoreBackend::Sqlite => (
            Arc::new(SqliteStore::open(
                SqliteOptions {
                    path: cfg.store_path.clone(),
                    history,
                    max_batch: cfg.max_batch,
                    lease_log: cfg.lease_history,
                },
                now,
            )?),
            cfg.store_path.display().to_string(),
        ),
        StoreBackend::Postgres { url } => (
            Arc::new(open_postgres(
                PostgresOptions {
                    url: url.clone(),
                    history,
                    max_batch: cfg.max_batch,
                    instance_id: instance_id(),
                    readers: POSTGRES_READERS,
                    lease_log: cfg.lease_history,
                },
                now,
            )?),
            "postgresql".to_owned(),
        ),
    };
    let stored = store.load_all()?;
    info!(store = %described, bindings = stored.len(), event = "store_opened", "lease store opened");
    let engine = Engine::new(Arc::clone(&cfg), stored);
    let interfaces = engine.interfaces().to_vec();
    let shared = Arc::new(Shared {
        leasequery: parking_lot::RwLock::new(
            UdpLeasequery::from_config(&cfg, Arc::clone(&cfg)).map(Arc::new),
        ),
        engine: Arc::new(Mutex::new(engine)),
        store,
        stats: Stats::default(),
        load: Arc::new(DhcpLoad::new(
            usize::from(cfg.listen.is_some()) + interfaces.len(),
        )),
        dhcp_switch: DhcpSwitch::default(),
        tcp: std::sync::OnceLock::new(),
        http_tls: std::sync::OnceLock::new(),
        refusals: Arc::default(),
    });
    // A shared store: other servers' changes reach the engine (and the
    // feed) from here on; the log is followed from where it stood when the
    // store opened, before the bindings were loaded, so nothing is missed.
    shared.store.observe(Arc::new(crate::peers::EngineObserver {
        engine: Arc::downgrade(&shared.engine),
    }));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut endpoints = Vec::new();
    let udp_stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    let mut sockets = Vec::new();
    if let Some(addr) = cfg.listen {
        let sock = udp::bind_listen(addr).map_err(|source| RunError::Bind {
            what: format!("udp {addr}"),
            source,
        })?;
        sockets.push((sock, Ingress::Listen, format!("udp {addr}")));
    }
    for (i, name) in interfaces.iter().enumerate() {
        let sock = udp::bind_interface(name, 67).map_err(|source| RunError::Bind {
            what: format!("udp 0.0.0.0:67 on interface {name}"),
            source,
        })?;
        sockets.push((
            sock,
            Ingress::Interface(i),
            format!("udp 0.0.0.0:67%{name}"),
        ));
    }
    for (slot, (sock, ingress, label)) in sockets.into_iter().enumerate() {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&udp_stop));
        endpoints.push(label.clone());
        let t = std::thread::Builder::new()
            .name("leaseline-udp".into())
            .spawn(move || udp::serve(sock, slot, ingress, shared, stop))
            .map_err(|source| RunError::Bind {
                what: label,
                source,
            })?;
        udp_threads.push(t);
    }
    tasks.push(tokio::spawn(crate::reaper::run(
        Arc::clone(&shared.engine),
        Arc::clone(&shared.store),
        stop_rx.clone(),
    )));
    if let Some((listener, live, label)) = leasequery_listener(&cfg, &shared)? {
        endpoints.push(label);
        tasks.push(tokio::spawn(crate::listener::serve(
            listener,
            live,
            stop_rx.clone(),
        )));
    }

    if let Some(http) = &cfg.http {
        let listener = crate::http::bind(http.listen)
            .await
            .map_err(|source| RunError::Bind {
                what: format!("http {}", http.listen),
                source,
            })?;
        let tls = http
            .tls
            .as_ref()
            .map(crate::tls::https_acceptor)
            .transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls = tls.map(|acceptor| {
            let (tx, rx) = watch::channel(acceptor);
            // Set once, here, before any reload can run.
            let _ = shared.http_tls.set(tx);
            rx
        });
        let ctx = Arc::new(
            crate::http::HttpContext::new(Arc::clone(&shared), http, cfg.source.clone(), now)
                .with_tls(tls),
        );
        endpoints.push(format!("{scheme} {}", http.listen));
        tasks.push(tokio::spawn(crate::http::serve(
            listener,
            ctx,
            stop_rx.clone(),
        )));
    }

    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    info!(endpoints = %endpoints.join(", "), subnets = cfg.subnets.len(), worker_threads = cfg.worker_threads, event = "ready", "leaseline ready");
    crate::systemd::ready(&format!("serving on {}", endpoints.join(", ")));

    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    loop {
        tokio::select! {
            _ = term.recv() => { info!(event = "shutting_down", "SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!(event = "shutting_down", "SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                info!(event = "reload_requested", "SIGHUP: reloading the configuration");
                // The outcome is logged either way.
                let _ = crate::reload::reload(&shared, cfg.source.as_deref());
            }
            _ = report.tick() => info!(stats = %shared.stats.summary(), event = "counters", "counters"),
        }
    }
    crate::systemd::stopping();
    let _ = stop_tx.send(true);
    udp_stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    for t in udp_threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    info!(stats = %shared.stats.summary(), event = "stopped", "leaseline stopped");
    Ok(())
}

/// The Bulk / Active Leasequery TCP listener, when configured: its
/// settings go in a watch channel whose sender a live reload uses.
#[allow(clippy::type_complexity)]
fn leasequery_listener(
    cfg: &Config,
    shared: &Arc<Shared>,
) -> Result<
    Option<(
        tokio::net::TcpListener,
        watch::Receiver<Arc<ListenerContext>>,
        String,
    )>,
    RunError,
> {
    let Some(ctx) = ListenerContext::from_config(cfg, &shared.store, &shared.load)? else {
        return Ok(None);
    };
    let Some(b) = &cfg.leasequery.bulk else {
        return Ok(None);
    };
    let ctx = ctx
        .counting_in(Arc::clone(&shared.stats.leasequery))
        .logging_refusals_in(Arc::clone(&shared.refusals));
    let label = format!("tcp {} ({})", b.listen, ctx.modes());
    let listener = crate::listener::bind(b.listen).map_err(|source| RunError::Bind {
        what: format!("tcp {}", b.listen),
        source,
    })?;
    let (tx, rx) = watch::channel(Arc::new(ctx));
    // Set once, here, before any reload can run.
    let _ = shared.tcp.set(tx);
    Ok(Some((listener, rx, label)))
}
