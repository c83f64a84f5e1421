//! The HTTP endpoint's connections: hyper's HTTP/1.1 server (axum's, run
//! by hand for the settings `axum::serve` does not expose) under a cap on
//! open connections and a deadline for each request's head. Without the
//! deadline a client that dribbles its headers (slowloris) holds its
//! connection for ever; without the cap, enough of them take every file
//! descriptor. An oversized body is refused by the router (413).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::refusal_log::RefusalLog;

/// How connections are bounded (`[http]` max_connections, header_timeout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Open connections at once; more are closed at accept.
    pub max_connections: usize,
    /// A request's head (and a TLS handshake) must arrive within this;
    /// an idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
}

/// How long connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Accept until `stop`, each connection on its own task.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<watch::Receiver<tokio_rustls::TlsAcceptor>>,
    refusals: Arc<RefusalLog>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors, mostly: wait rather than spin.
                        warn!(error = %e, "http endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    if refusals.admit(peer.ip(), "http connections") {
                        warn!(peer = %peer, limit = limits.max_connections, "http connection refused: too many open (http.max_connections)");
                    }
                    continue; // dropped: closed
                };
                let _ = tcp.set_nodelay(true);
                // The acceptor of this moment: a reload changes the
                // certificates of new handshakes, not of open connections.
                let tls = tls.as_ref().map(|t| t.borrow().clone());
                let (app, stop) = (app.clone(), stop.clone());
                conns.spawn(async move {
                    match tls {
                        None => one(tcp, peer, app, limits, stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => one(tls, peer, app, limits, stop).await,
                                Ok(Err(e)) => debug!(peer = %peer, error = %e, "http: TLS handshake failed"),
                                Err(_) => debug!(peer = %peer, "http: TLS handshake timed out"),
                            }
                        }
                    }
                    drop(slot);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // In-flight requests finish (their connections were told to close).
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// Serve one connection's requests until it closes, times out, or the
/// server stops (graceful: a request in flight is answered first).
async fn one<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        // Junk, a header timeout, a client gone: the connection is closed.
        debug!(peer = %peer, error = %e, "http connection closed");
    }
}
