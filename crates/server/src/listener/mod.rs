//! The leasequery TCP listener (RFC 6926 §6.3, RFC 7724 §8.1): Bulk and
//! Active Leasequery, plain or TLS, behind an allowlist and limits. Its
//! settings ([`ListenerContext`]) sit in a watch channel that a live
//! reload replaces: each accept reads the current ones.

mod bulk;
mod connection;
mod context;
mod revocation;
mod slots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

pub use bulk::BulkContext;
pub use context::ListenerContext;
pub use leaseline_proto::merge_ranges;
pub use revocation::{Requestor, Revocation};
pub use slots::{Kind, Limits, Refusal, Slot, Slots};

/// Logs a connection refused for a limit (throttled per requestor).
fn log_limit_refusal(ctx: &ListenerContext, peer: SocketAddr, r: Refusal) {
    if ctx.refusals.admit(peer.ip(), r.reason()) {
        warn!(peer = %peer, limit = r.limit(&ctx.slots.limits()), reason = r.reason(), event = "leasequery_connection_refused", "leasequery connection refused");
    }
}

/// Accept until `stop`; then wait (briefly) for connections to say goodbye
/// (active queries send QueryTerminated, RFC 7724 §7.4). Each accept uses
/// the settings `live` holds then.
pub async fn serve(
    listener: TcpListener,
    live: watch::Receiver<Arc<ListenerContext>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, event = "accept_failed", "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ctx = Arc::clone(&live.borrow());
                if !ctx.allow.allows(peer.ip()) {
                    if ctx.refusals.admit(peer.ip(), "requestor not in leasequery.allow") {
                        warn!(peer = %peer, reason = "requestor not in leasequery.allow", event = "leasequery_connection_refused", "leasequery connection refused");
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
                let revocation = Revocation::new(live.clone(), peer.ip());
                conns.spawn(connection::handle(ctx, revocation, stream, peer, slot, stop.clone()));
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
