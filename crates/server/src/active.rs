//! Active Leasequery sessions (RFC 7724 §8.2): after a DHCPACTIVELEASEQUERY
//! the connection carries every committed binding change, catch-up from
//! the feed's history, keepalives, and QueryTerminated at shutdown.
//!
//! The connection's pending work is the feed subscription's set of
//! addresses, each with the latest committed binding (architecture, data
//! flow 4): a blocked requestor costs one entry per distinct address, and
//! the message is built (with a fresh base-time) only when it can be written.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::{build_bulk_reply, build_status, ActiveQuery, Binding};
use leaseline_store::{LeaseStore, Subscription};
use leaseline_wire::{FrameDecoder, Message, MessageType, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use crate::config::ActiveLeasequery;
use crate::run::unix_now;

/// Updates built per wake-up: bounds the write buffer, keeps latency low.
const BATCH: usize = 256;

/// What an active session needs from the server.
pub struct ActiveContext {
    pub store: Arc<dyn LeaseStore>,
    pub cfg: ActiveLeasequery,
    /// Options never sent: the configured list plus 92 (RFC 7724 §7.4).
    pub denied: Vec<u8>,
    pub server_id: Ipv4Addr,
    /// BULK_LQ_DATA_TIMEOUT: bounds a message the requestor started sending.
    pub data_timeout: Duration,
}

/// How a session ended (for the log).
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    RequestorClosed,
    SendTimeout,
    Shutdown,
    Refused(&'static str),
    Io(String),
}

/// Run one active query until it ends. `decoder` holds any bytes already
/// read past the query; `stop` flips to true at server shutdown.
pub async fn run<R, W>(
    ctx: &ActiveContext,
    query: ActiveQuery,
    peer: SocketAddr,
    mut reader: R,
    mut decoder: FrameDecoder,
    mut writer: W,
    mut stop: watch::Receiver<bool>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let xid = query.xid;
    // Subscribe before reading the history: a change committed in between
    // is in both, and the pending set de-duplicates it.
    let sub = ctx.store.feed().subscribe();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut first = true;
    let mut catchup: Option<HashSet<Ipv4Addr>> = None;
    if let Some(since) = query.start {
        let now = unix_now();
        match ctx.store.feed().changed_since(since, now) {
            None => {
                // RFC 7724 §7.4.1: not enough history: DataMissing, base-time = now, at once.
                info!(peer = %peer, since, horizon = ctx.store.feed().horizon(), "active query: catch-up outside the history");
                push(
                    &mut out,
                    &build_status(
                        xid,
                        StatusCode::DataMissing,
                        "history does not reach query-start-time",
                        now,
                    ),
                );
            }
            Some(ips) => {
                debug!(peer = %peer, since, count = ips.len(), "active query: catching up");
                sub.extend(&ips);
                catchup = Some(ips.into_iter().collect());
            }
        }
    }
    let mut scratch = Vec::with_capacity(BATCH);
    let mut rbuf = vec![0u8; 4096];
    let mut last_write = Instant::now();
    // A message that came in the same read as the query is already in the
    // decoder: look at it now, not only after the next read.
    if let Some(end) = requestor_message(&mut decoder, peer, xid, &mut out) {
        let _ = timeout(Duration::from_secs(2), writer.write_all(&out)).await;
        return end;
    }
    loop {
        // Catch-up is complete once every address it named has been sent.
        if catchup.as_ref().is_some_and(HashSet::is_empty) {
            catchup = None;
            push(
                &mut out,
                &build_status(xid, StatusCode::CatchUpComplete, "", unix_now()),
            );
        }
        if !out.is_empty() {
            match timeout(ctx.cfg.send_timeout, writer.write_all(&out)).await {
                Err(_) => {
                    warn!(peer = %peer, timeout = ?ctx.cfg.send_timeout, pending = sub.pending(), "active requestor not reading: closing (ACTIVE_LQ_SEND_TIMEOUT)");
                    return End::SendTimeout;
                }
                Ok(Err(e)) => return End::Io(e.to_string()),
                Ok(Ok(())) => {}
            }
            out.clear();
            last_write = Instant::now();
        }
        let read_deadline = decoder
            .mid_message()
            .then(|| Instant::now() + ctx.data_timeout);
        tokio::select! {
            biased;
            _ = stop.changed() => {
                // Changes already committed go out first, so a requestor that
                // resumes from QueryTerminated's base-time misses none of them
                // (bounded: at most a few batches, within the 2 s below).
                for _ in 0..64 {
                    if sub.pending() == 0 {
                        break;
                    }
                    build_updates(ctx, &sub, &mut scratch, &mut out, xid, &mut first, &query.prl, catchup.as_mut());
                }
                // RFC 7724 §7.4: QueryTerminated with base-time is the last message.
                push(&mut out, &build_status(xid, StatusCode::QueryTerminated, "server shutting down", unix_now()));
                let _ = timeout(Duration::from_secs(2), async {
                    writer.write_all(&out).await?;
                    writer.shutdown().await
                }).await;
                return End::Shutdown;
            }
            _ = sub.changed() => {
                build_updates(ctx, &sub, &mut scratch, &mut out, xid, &mut first, &query.prl, catchup.as_mut());
            }
            r = reader.read(&mut rbuf) => {
                let n = match r {
                    Ok(0) => return End::RequestorClosed,
                    Ok(n) => n,
                    Err(e) => return End::Io(e.to_string()),
                };
                decoder.extend(&rbuf[..n]);
                if let Some(end) = requestor_message(&mut decoder, peer, xid, &mut out) {
                    let _ = timeout(Duration::from_secs(2), writer.write_all(&out)).await;
                    return end;
                }
            }
            _ = sleep_until(read_deadline.unwrap_or_else(far_future)), if read_deadline.is_some() => {
                warn!(peer = %peer, "partial message from active requestor: closing (BULK_LQ_DATA_TIMEOUT)");
                return End::Refused("data timeout");
            }
            _ = sleep_until(last_write + ctx.cfg.idle_timeout) => {
                // RFC 7724 §7.4: ConnectionActive when idle.
                push(&mut out, &build_status(xid, StatusCode::ConnectionActive, "", unix_now()));
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Take a batch of pending addresses and encode their current state.
#[allow(clippy::too_many_arguments)]
fn build_updates(
    ctx: &ActiveContext,
    sub: &Subscription,
    scratch: &mut Vec<(Ipv4Addr, Option<Arc<Binding>>)>,
    out: &mut Vec<u8>,
    xid: u32,
    first: &mut bool,
    prl: &[u8],
    mut catchup: Option<&mut HashSet<Ipv4Addr>>,
) {
    scratch.clear();
    sub.take_entries(BATCH, scratch);
    let now = unix_now();
    for (ip, latest) in scratch.drain(..) {
        let binding = match latest {
            Some(b) => b,
            // Catch-up addresses carry no binding: read the committed state.
            None => match ctx.store.get(ip) {
                Ok(Some(b)) => Arc::new(b),
                Ok(None) => Arc::new(Binding::available(ip)),
                Err(e) => {
                    warn!(ip = %ip, error = %e, "active query: cannot read binding; skipped");
                    continue;
                }
            },
        };
        let m = build_bulk_reply(xid, &binding, now, *first, ctx.server_id, prl, &ctx.denied);
        *first = false;
        push(out, &m);
        if let Some(set) = catchup.as_deref_mut() {
            set.remove(&ip);
        }
    }
}

/// A message from the requestor on an active connection. Only one active
/// query per connection (RFC 7724 §8.3), and nothing else belongs here
/// (§8.1.1): answer what warrants an answer, then close.
fn requestor_message(
    decoder: &mut FrameDecoder,
    peer: SocketAddr,
    xid: u32,
    out: &mut Vec<u8>,
) -> Option<End> {
    let frame = match decoder.next_frame() {
        Ok(None) => return None,
        Ok(Some(f)) => f,
        Err(e) => {
            warn!(peer = %peer, error = %e, "bad framing on active connection: closing");
            return Some(End::Refused("bad framing"));
        }
    };
    let kind = Message::decode(frame).ok().and_then(|m| m.message_type());
    match kind {
        Some(MessageType::ActiveLeaseQuery) => {
            warn!(peer = %peer, "second active query on one connection: refused, closing");
            push(
                out,
                &build_status(
                    xid,
                    StatusCode::NotAllowed,
                    "one active query per connection",
                    unix_now(),
                ),
            );
            Some(End::Refused("second active query"))
        }
        Some(MessageType::BulkLeaseQuery) => {
            warn!(peer = %peer, "bulk query on an active connection: refused, closing");
            push(
                out,
                &build_status(
                    xid,
                    StatusCode::NotAllowed,
                    "bulk queries need their own connection",
                    unix_now(),
                ),
            );
            Some(End::Refused("bulk query on active connection"))
        }
        other => {
            warn!(peer = %peer, message_type = ?other.map(|t| t.name()), "message not allowed on an active connection: closing");
            Some(End::Refused("message type not allowed"))
        }
    }
}

/// Append `m` framed (2-byte length, RFC 7724 §5.1), encoding in place.
fn push(out: &mut Vec<u8>, m: &Message) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    match m.encode(out) {
        Ok(()) => match u16::try_from(out.len() - at - 2) {
            Ok(len) => out[at..at + 2].copy_from_slice(&len.to_be_bytes()),
            Err(_) => out.truncate(at),
        },
        Err(_) => out.truncate(at),
    }
}

impl ActiveContext {
    pub fn new(
        store: Arc<dyn LeaseStore>,
        cfg: ActiveLeasequery,
        server_id: Ipv4Addr,
        data_timeout: Duration,
    ) -> Self {
        let mut denied = cfg.denied_options.clone();
        denied.push(leaseline_wire::code::ASSOCIATED_IP);
        ActiveContext {
            store,
            cfg,
            denied,
            server_id,
            data_timeout,
        }
    }
}

#[cfg(test)]
mod tests;
