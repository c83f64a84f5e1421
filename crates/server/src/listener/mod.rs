//! The leasequery TCP listener (RFC 6926 §6.3, RFC 7724 §8.1): Bulk and
//! Active Leasequery, plain or TLS, behind an allowlist and limits.

mod bulk;
mod connection;
mod framed;
mod slots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

pub use bulk::BulkContext;
pub use framed::{Framed, Io};
pub use leaseline_proto::merge_ranges;
pub use slots::{Kind, Limits, Refusal, Slot, Slots};

use leaseline_proto::BulkConfig;
use leaseline_store::LeaseStore;

use crate::access::Allowlist;
use crate::active::ActiveContext;
use crate::stats::LeasequeryStats;

pub struct ListenerContext {
    pub allow: Allowlist,
    /// What each connection's rules need to know.
    pub conn: Arc<BulkConfig>,
    pub store: Arc<dyn LeaseStore>,
    pub active: Option<ActiveContext>,
    /// Undecided, bulk and active connections, each against its own limit.
    pub slots: Arc<Slots>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Bulk queries and bindings sent (metrics).
    pub stats: Arc<LeasequeryStats>,
}

impl ListenerContext {
    /// `max_connections`: BULK_LQ_MAX_CONNS; the active limits come from
    /// `active`'s config.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        allow: Allowlist,
        max_connections: usize,
        data_timeout: Duration,
        max_queries: usize,
        max_message: usize,
        bulk: BulkContext,
        active: Option<ActiveContext>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        plaintext: bool,
    ) -> Self {
        let active_limits = active
            .as_ref()
            .map(|a| (a.cfg.max_connections, a.cfg.max_connections_per_requestor));
        let conn = BulkConfig {
            data_timeout,
            max_queries,
            max_message,
            server_id: bulk.server_id,
            denied: bulk.denied,
            configured: bulk.configured,
            active: active.is_some(),
            plaintext,
            tls: tls.is_some(),
        };
        ListenerContext {
            allow,
            conn: Arc::new(conn),
            store: bulk.store,
            active,
            slots: Slots::new(Limits::new(max_connections, active_limits)),
            tls,
            stats: Arc::default(),
        }
    }

    /// Count bulk queries, bindings and active sessions' work in `stats`.
    pub fn counting_in(mut self, stats: Arc<LeasequeryStats>) -> Self {
        if let Some(active) = &mut self.active {
            active.stats = Arc::clone(&stats);
        }
        self.stats = stats;
        self
    }

    /// What a connection is at accept: not known until its first query
    /// when the listener takes active queries too; else bulk.
    fn kind_at_accept(&self) -> Kind {
        if self.active.is_some() {
            Kind::Undecided
        } else {
            Kind::Bulk
        }
    }
}

/// Logs a connection refused for a limit (throttled per requestor).
fn log_limit_refusal(ctx: &ListenerContext, peer: SocketAddr, r: Refusal) {
    if crate::udp::log_refusal(peer.ip(), r.reason()) {
        warn!(peer = %peer, limit = r.limit(ctx.slots.limits()), reason = r.reason(), "leasequery connection refused");
    }
}

/// Accept until `stop`; then wait (briefly) for connections to say goodbye
/// (active queries send QueryTerminated, RFC 7724 §7.4).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ListenerContext>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !ctx.allow.allows(peer.ip()) {
                    if crate::udp::log_refusal(peer.ip(), "requestor not in leasequery.allow") {
                        warn!(peer = %peer, reason = "requestor not in leasequery.allow", "leasequery connection refused");
                    }
                    continue; // dropping the stream closes it at once
                }
                // RFC 6926 §8.1: over the limit, accepted then closed.
                let slot = match ctx.slots.admit(peer.ip(), ctx.kind_at_accept()) {
                    Ok(s) => s,
                    Err(r) => {
                        log_limit_refusal(&ctx, peer, r);
                        continue;
                    }
                };
                let (ctx, stop) = (Arc::clone(&ctx), stop.clone());
                conns.spawn(connection::handle(ctx, stream, peer, slot, stop));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// Bind the listener (SO_REUSEADDR so a restart does not wait out TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}
