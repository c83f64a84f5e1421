//! The leasequery TCP listener (RFC 6926 §6.3, RFC 7724 §8.1): Bulk and
//! Active Leasequery, plain or TLS, behind an allowlist and limits.

mod bulk;
mod connection;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

pub use bulk::{merge_ranges, BulkContext};

use crate::access::Allowlist;
use crate::active::ActiveContext;

pub struct ListenerContext {
    pub allow: Allowlist,
    /// BULK_LQ_MAX_CONNS.
    pub max_connections: usize,
    /// BULK_LQ_DATA_TIMEOUT.
    pub data_timeout: Duration,
    pub max_queries: usize,
    pub max_message: usize,
    pub bulk: Arc<BulkContext>,
    pub active: Option<ActiveContext>,
    pub active_slots: ActiveSlots,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Plain TCP accepted (see `LeasequeryConfig::plaintext`).
    pub plaintext: bool,
    open: AtomicUsize,
}

impl ListenerContext {
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
        let (max_total, max_each) = active
            .as_ref()
            .map(|a| (a.cfg.max_connections, a.cfg.max_connections_per_requestor))
            .unwrap_or((0, 0));
        ListenerContext {
            allow,
            max_connections,
            data_timeout,
            max_queries,
            max_message,
            bulk: Arc::new(bulk),
            active,
            active_slots: ActiveSlots::new(max_total, max_each),
            tls,
            plaintext,
            open: AtomicUsize::new(0),
        }
    }
}

/// Active queries at once, overall and per requestor address (RFC 7724 §8.3).
pub struct ActiveSlots {
    max_total: usize,
    max_each: usize,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub struct ActiveSlot<'a> {
    slots: &'a ActiveSlots,
    who: IpAddr,
}

impl ActiveSlots {
    fn new(max_total: usize, max_each: usize) -> Self {
        ActiveSlots {
            max_total,
            max_each,
            held: Mutex::new((0, HashMap::new())),
        }
    }

    pub fn claim(&self, who: IpAddr) -> Option<ActiveSlot<'_>> {
        let mut h = self.held.lock();
        let mine = h.1.get(&who).copied().unwrap_or(0);
        if h.0 >= self.max_total || mine >= self.max_each {
            return None;
        }
        h.0 += 1;
        h.1.insert(who, mine + 1);
        Some(ActiveSlot { slots: self, who })
    }
}

impl Drop for ActiveSlot<'_> {
    fn drop(&mut self) {
        let mut h = self.slots.held.lock();
        h.0 = h.0.saturating_sub(1);
        if let Some(n) = h.1.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                h.1.remove(&self.who);
            }
        }
    }
}

/// Counts a connection while it lives.
struct Open(Arc<ListenerContext>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
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
                if ctx.open.fetch_add(1, Ordering::Relaxed) >= ctx.max_connections {
                    ctx.open.fetch_sub(1, Ordering::Relaxed);
                    // RFC 6926 §6.3: over BULK_LQ_MAX_CONNS, accepted then closed.
                    if crate::udp::log_refusal(peer.ip(), "connection limit") {
                        warn!(peer = %peer, limit = ctx.max_connections, reason = "connection limit", "leasequery connection refused");
                    }
                    continue;
                }
                let guard = Open(Arc::clone(&ctx));
                let (ctx, stop) = (Arc::clone(&ctx), stop.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    connection::handle(ctx, stream, peer, stop).await;
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_slots_limit_overall_and_per_requestor() {
        let s = ActiveSlots::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = s.claim(a).unwrap();
        let _a2 = s.claim(a).unwrap();
        assert!(s.claim(a).is_none(), "per requestor");
        let _b1 = s.claim(b).unwrap();
        assert!(s.claim(b).is_none(), "overall");
        drop(a1);
        assert!(s.claim(b).is_some(), "a released slot is free again");
    }
}
