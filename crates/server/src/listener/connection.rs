//! The driver of one leasequery TCP connection: it moves bytes, timers and
//! store reads in and out of a `leaseline_proto::BulkConnection`, which
//! holds every rule (RFC 6926 §8, the DHCPTLS opening of RFC 7724 §8.1),
//! runs the TLS handshake when it asks, and hands an active query to the
//! Active Leasequery driver. A reload that no longer allows the requestor
//! ends it (see [`Revocation`]).

use std::net::SocketAddr;
use std::sync::Arc;

use leaseline_proto::{ActiveQuery, BulkConnection, BulkEnd, BulkEvent, Now, Place, StoreFailed};
use leaseline_wire::FrameDecoder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::bulk::read;
use super::{log_limit_refusal, Kind, ListenerContext, Revocation, Slot};
use crate::clock::unix_now;
use crate::framed::{Framed, Io};

/// How a connection's driver stopped.
enum Outcome {
    Closed(BulkEnd),
    Failed(String),
    /// DHCPTLS answered: the handshake is next.
    StartTls,
    Active(ActiveQuery, FrameDecoder),
}

pub async fn handle(
    ctx: Arc<ListenerContext>,
    mut revocation: Revocation,
    stream: TcpStream,
    peer: SocketAddr,
    mut slot: Slot,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut io = Framed::new(rd, wr);
    let conn = BulkConnection::new(Arc::clone(&ctx.conn), now().mono);
    let reason = match drive(
        &ctx,
        &mut io,
        conn,
        peer,
        &mut slot,
        &mut stop,
        &mut revocation,
    )
    .await
    {
        Outcome::StartTls => secure(&ctx, io, peer, &mut slot, &mut stop, revocation).await,
        Outcome::Active(q, decoder) => {
            run_active(&ctx, q, peer, io, decoder, stop, revocation).await
        }
        other => ended(peer, other),
    };
    // Every close is logged with its reason; a flood of hostile
    // connections is summarised past a few a second (see refusal_log::RefusalLog).
    if let Some(reason) = reason {
        if ctx
            .refusals
            .admit(peer.ip(), "leasequery connection closed")
        {
            warn!(peer = %peer, reason = %reason, event = "leasequery_connection_closed", "leasequery connection closed");
        }
    }
}

/// The reason to log, if the end is one.
fn ended(peer: SocketAddr, outcome: Outcome) -> Option<String> {
    match outcome {
        Outcome::Closed(BulkEnd::RequestorClosed) => {
            debug!(peer = %peer, event = "leasequery_connection_ended", "requestor closed the connection");
            None
        }
        // Logged (throttled) when the place was refused.
        Outcome::Closed(BulkEnd::OverLimit) => None,
        Outcome::Closed(BulkEnd::EarlyData(n)) => {
            Some(crate::tls::TlsRefusal::early_data(n).to_string())
        }
        Outcome::Closed(end) => Some(end.to_string()),
        Outcome::Failed(e) => Some(e),
        Outcome::StartTls | Outcome::Active(..) => None,
    }
}

/// The TLS handshake (RFC 7724 §8.1), then the connection over TLS.
async fn secure(
    ctx: &Arc<ListenerContext>,
    io: Framed<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>,
    peer: SocketAddr,
    slot: &mut Slot,
    stop: &mut watch::Receiver<bool>,
    mut revocation: Revocation,
) -> Option<String> {
    let Some(tls) = &ctx.tls else {
        return Some("TLS is not configured".into());
    };
    let (rd, wr) = io.into_parts();
    let tcp = match rd.reunite(wr) {
        Ok(tcp) => tcp,
        Err(e) => return Some(format!("reunite: {e}")),
    };
    let (tls, who) =
        match crate::tls::accept_with_timeout(&tls.acceptor, tcp, ctx.conn.data_timeout).await {
            Ok(x) => x,
            Err(r) => return Some(format!("TLS handshake refused: {r}")),
        };
    revocation.authenticated(who.cert.clone());
    // The handshake ran with the settings of the accept: a reload since
    // may have removed this requestor.
    if !revocation.admitted_now() {
        return Some(format!(
            "requestor {who} no longer allowed (configuration reloaded during the handshake)"
        ));
    }
    info!(peer = %peer, requestor = %who, event = "tls_requestor_authenticated", "TLS requestor authenticated");
    let (rd, wr) = tokio::io::split(tls);
    let mut io = Framed::new(rd, wr);
    let conn = BulkConnection::after_tls(Arc::clone(&ctx.conn), now().mono);
    match drive(ctx, &mut io, conn, peer, slot, stop, &mut revocation).await {
        Outcome::Active(q, decoder) => {
            run_active(ctx, q, peer, io, decoder, stop.clone(), revocation).await
        }
        other => ended(peer, other),
    }
}

fn now() -> Now {
    Now {
        mono: tokio::time::Instant::now().into_std(),
        unix: unix_now(),
    }
}

/// Run the connection until it closes, asks for TLS or becomes active.
async fn drive<R, W>(
    ctx: &ListenerContext,
    io: &mut Framed<R, W>,
    mut conn: BulkConnection,
    peer: SocketAddr,
    slot: &mut Slot,
    stop: &mut watch::Receiver<bool>,
    revocation: &mut Revocation,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reads: JoinSet<(u32, Result<Vec<leaseline_proto::Binding>, StoreFailed>, u32)> =
        JoinSet::new();
    loop {
        // Everything the connection asks, until it asks nothing more.
        loop {
            let mut busy = false;
            while let Some(ev) = conn.poll_event() {
                busy = true;
                match ev {
                    BulkEvent::Claim(place) => {
                        let kind = match place {
                            Place::Bulk => Kind::Bulk,
                            Place::Active => Kind::Active,
                        };
                        let granted = slot.change(kind).map_err(|r| {
                            if place == Place::Bulk {
                                log_limit_refusal(ctx, peer, r);
                            }
                            format!("{}: {}", r.reason(), r.limit(&ctx.slots.limits()))
                        });
                        conn.handle_claim(granted, now());
                    }
                    BulkEvent::Started { xid, primary } => {
                        ctx.stats.bulk_query();
                        debug!(peer = %peer, xid, primary, event = "bulk_query_started", "bulk query");
                    }
                    BulkEvent::Refused {
                        xid,
                        status,
                        reason,
                    } => {
                        warn!(peer = %peer, xid, status = status.name(), reason, event = "bulk_query_refused", "bulk query refused");
                    }
                    BulkEvent::Read { xid, read: what } => {
                        let store = Arc::clone(&ctx.store);
                        reads.spawn(async move {
                            // The feed's time before the read: see BulkConnection::handle_store.
                            let at = store.feed().now(unix_now());
                            (xid, read(store, what, xid).await, at)
                        });
                    }
                    BulkEvent::Done {
                        xid,
                        bindings,
                        failed,
                    } => {
                        ctx.stats.bulk_bindings_sent(bindings);
                        if !failed {
                            info!(peer = %peer, xid, bindings, event = "bulk_query_done", "bulk query done");
                        }
                    }
                    BulkEvent::StartTls => return Outcome::StartTls,
                    BulkEvent::Active(q) => return Outcome::Active(q, conn.into_decoder()),
                    BulkEvent::Close(close) => {
                        conn.poll_transmit(now(), io.out());
                        io.finish(close.linger).await;
                        return Outcome::Closed(close.end);
                    }
                }
            }
            if io.unwritten() == 0 {
                conn.poll_transmit(now(), io.out());
                busy |= io.unwritten() > 0;
            }
            if !busy {
                break;
            }
        }
        let deadline = conn.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            ev = io.next(conn.wants_read()) => match ev {
                Io::Read(n) => conn.handle_bytes(io.read_bytes(n), now()),
                Io::Eof => conn.handle_eof(now()),
                Io::Written(left) => conn.handle_written(now().mono, left),
                Io::Failed(e) => return Outcome::Failed(e),
            },
            Some(r) = reads.join_next(), if !reads.is_empty() => {
                if let Ok((xid, rows, at)) = r {
                    conn.handle_store(xid, rows, at);
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => conn.handle_timeout(now()),
            _ = stop.changed() => conn.handle_shutdown(now()),
            _ = revocation.revoked() => conn.handle_revoked(now()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The connection carries an active query from here (its place is taken).
async fn run_active<R, W>(
    ctx: &Arc<ListenerContext>,
    q: ActiveQuery,
    peer: SocketAddr,
    io: Framed<R, W>,
    decoder: FrameDecoder,
    stop: watch::Receiver<bool>,
    mut revocation: Revocation,
) -> Option<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(active) = &ctx.active else {
        return Some("active leasequery disabled".into());
    };
    info!(peer = %peer, since = ?q.start, event = "active_query_started", "active query started");
    let (rd, wr) = io.into_parts();
    let revoked = revocation.revoked();
    let end = crate::active::run(active, q, peer, rd, decoder, wr, stop, revoked).await;
    match end {
        crate::active::End::RequestorClosed | crate::active::End::Shutdown => {
            info!(peer = %peer, end = ?end, event = "active_query_ended", "active query ended");
            None
        }
        crate::active::End::Revoked => {
            info!(peer = %peer, end = ?end, event = "active_query_ended", "active query ended: requestor no longer allowed (QueryTerminated)");
            None
        }
        other => Some(format!("active query ended: {other:?}")),
    }
}
