//! One leasequery TCP connection (RFC 6926 §6.3, §8; RFC 7724 §8.1): the
//! optional DHCPTLS exchange, then bulk queries (several at once, replies
//! interleaved) or one active query.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::{
    build_done, build_status, malformed_query_xid, opening, parse_active_query, parse_bulk_query,
    Opening,
};
use leaseline_wire::{FrameDecoder, Message, MessageType, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use super::bulk::{self, frame_into};
use super::{log_limit_refusal, Kind, ListenerContext, Slot};
use crate::run::unix_now;

/// Chunks of framed replies queued for the writer (backpressure beyond this).
const WRITE_QUEUE: usize = 4;

/// Why a connection ended, for the log.
type Reason = String;

pub async fn handle(
    ctx: Arc<ListenerContext>,
    stream: TcpStream,
    peer: SocketAddr,
    mut slot: Slot,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let reason = match first_message(&ctx, stream, peer, &mut slot, stop).await {
        Ok(()) => return,
        Err(r) => r,
    };
    // Every close is logged with its reason; a flood of hostile
    // connections is summarised past a few a second (see udp::log_refusal).
    if crate::udp::log_refusal(peer.ip(), "leasequery connection closed") {
        warn!(peer = %peer, reason = %reason, "leasequery connection closed");
    }
}

/// Read one whole message within the data timeout.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut FrameDecoder,
    limit: Duration,
) -> Result<Vec<u8>, Reason> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => return Ok(f.to_vec()),
            Ok(None) => {}
            Err(e) => return Err(format!("bad framing: {e}")),
        }
        let n = match timeout(
            deadline.saturating_duration_since(Instant::now()),
            rd.read(&mut buf),
        )
        .await
        {
            Err(_) => {
                return Err(format!(
                    "no complete message within {limit:?} (BULK_LQ_DATA_TIMEOUT)"
                ))
            }
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Ok(Ok(0)) => return Err("closed by the requestor before a complete message".into()),
            Ok(Ok(n)) => n,
        };
        decoder.extend(&buf[..n]);
    }
}

async fn first_message(
    ctx: &Arc<ListenerContext>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: &mut Slot,
    stop: watch::Receiver<bool>,
) -> Result<(), Reason> {
    let (mut rd, mut wr) = stream.into_split();
    let mut decoder = FrameDecoder::new(ctx.max_message);
    let first = read_frame(&mut rd, &mut decoder, ctx.data_timeout).await?;
    let answer = match opening(&first, decoder.buffered(), ctx.plaintext, ctx.tls.is_some()) {
        Opening::Plain => {
            return session(ctx, rd, wr, decoder, Some(first), peer, slot, stop).await
        }
        Opening::RefusePlain => {
            return Err("plaintext message on a secure-only listener".into());
        }
        Opening::RefuseTls(answer) => {
            let mut out = Vec::new();
            frame_into(&mut out, &answer);
            let _ = timeout(ctx.data_timeout, wr.write_all(&out)).await;
            let _ = wr.shutdown().await;
            return Err(
                "DHCPTLS on an insecure-only listener: answered TLSConnectionRefused".into(),
            );
        }
        Opening::EarlyData(n) => return Err(crate::tls::TlsRefusal::early_data(n).to_string()),
        Opening::StartTls(answer) => answer,
    };
    let Some(acceptor) = &ctx.tls else {
        return Err("TLS is not configured".into());
    };
    let mut out = Vec::new();
    frame_into(&mut out, &answer);
    timeout(ctx.data_timeout, wr.write_all(&out))
        .await
        .map_err(|_| "blocked writing the DHCPTLS answer".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    let tcp = rd.reunite(wr).map_err(|e| format!("reunite: {e}"))?;
    let (tls, who) = crate::tls::accept_with_timeout(acceptor, tcp, ctx.data_timeout)
        .await
        .map_err(|r| format!("TLS handshake refused: {r}"))?;
    info!(peer = %peer, requestor = %who, "TLS requestor authenticated");
    let (rd, wr) = tokio::io::split(tls);
    session(
        ctx,
        rd,
        wr,
        FrameDecoder::new(ctx.max_message),
        None,
        peer,
        slot,
        stop,
    )
    .await
}

/// Writes queued chunks; gives the write half back when the queue closes.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    limit: Duration,
) -> Result<W, Reason> {
    while let Some(chunk) = rx.recv().await {
        match timeout(limit, wr.write_all(&chunk)).await {
            Err(_) => {
                return Err(format!(
                    "requestor not reading for {limit:?} (BULK_LQ_DATA_TIMEOUT)"
                ))
            }
            Ok(Err(e)) => return Err(format!("write: {e}")),
            Ok(Ok(())) => {}
        }
    }
    Ok(wr)
}

/// What one message asks of the connection.
enum Step {
    Continue,
    Active(leaseline_proto::ActiveQuery),
    Close(Reason),
    /// Over a limit: refused (and logged as such), closed.
    Refused,
}

#[allow(clippy::too_many_arguments)]
async fn session<R, W>(
    ctx: &Arc<ListenerContext>,
    mut rd: R,
    wr: W,
    mut decoder: FrameDecoder,
    mut first: Option<Vec<u8>>,
    peer: SocketAddr,
    slot: &mut Slot,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Reason>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let mut writer = tokio::spawn(write_loop(wr, out_rx, ctx.data_timeout));
    let mut inflight: JoinSet<(u32, Result<u64, bulk::Closed>)> = JoinSet::new();
    let mut xids: HashSet<u32> = HashSet::new();
    let mut last_activity = Instant::now();
    // When the first byte of the message now partly read arrived, and when
    // the last bytes did: the data timeout bounds each whole message.
    let mut msg_started: Option<Instant> = None;
    let mut last_read = Instant::now();
    let mut paused = false;
    let mut buf = vec![0u8; 4096];
    let mut eof = false;
    loop {
        // RFC 6926 §8.4: at the limit of queries in flight, stop reading.
        while inflight.len() < ctx.max_queries {
            let frame = match first.take() {
                Some(f) => f,
                None => match decoder.next_frame() {
                    Ok(Some(f)) => {
                        let f = f.to_vec();
                        // The next message (if begun) started with the last read.
                        msg_started = decoder.mid_message().then_some(last_read);
                        f
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("bad framing: {e}")),
                },
            };
            last_activity = Instant::now();
            match on_message(ctx, &frame, &out_tx, &mut inflight, &mut xids, peer, slot).await {
                Step::Continue => {}
                Step::Refused => {
                    // RFC 6926 §8.1: closed, nothing answered.
                    drop(out_tx);
                    let _ = timeout(Duration::from_secs(2), &mut writer).await;
                    return Ok(());
                }
                Step::Close(reason) => {
                    inflight.abort_all();
                    drop(out_tx);
                    let _ = timeout(Duration::from_secs(2), &mut writer).await;
                    return Err(reason);
                }
                Step::Active(q) => {
                    drop(out_tx);
                    let wr = writer.await.map_err(|e| e.to_string())??;
                    return run_active(ctx, q, peer, slot, rd, decoder, wr, stop).await;
                }
            }
        }
        if eof && inflight.is_empty() {
            drop(out_tx);
            let _ = timeout(ctx.data_timeout, &mut writer).await;
            debug!(peer = %peer, "requestor closed the connection");
            return Ok(());
        }
        let can_read = !eof && inflight.len() < ctx.max_queries;
        if !can_read {
            paused = true;
        } else if std::mem::take(&mut paused) && decoder.mid_message() {
            // The pause was ours, not the requestor's: restart its clock.
            msg_started = Some(Instant::now());
        }
        // The data timeout bounds each whole message from its first byte
        // (a requestor trickling bytes is still closed) and, with no query
        // outstanding, the silence since the last DONE (RFC 6926 §8.5).
        // Not while reading is paused at the query limit.
        let partial = can_read && decoder.mid_message();
        let msg_deadline = partial.then(|| msg_started.unwrap_or(last_read) + ctx.data_timeout);
        let idle_deadline = inflight
            .is_empty()
            .then(|| last_activity + ctx.data_timeout);
        let deadline = match (msg_deadline, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            r = rd.read(&mut buf), if can_read => match r {
                Ok(0) => eof = true,
                Ok(n) => {
                    last_read = Instant::now();
                    if !decoder.mid_message() {
                        msg_started = Some(last_read);
                    }
                    decoder.extend(&buf[..n]);
                }
                Err(e) => return Err(format!("read: {e}")),
            },
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                last_activity = Instant::now();
                if let Ok((xid, result)) = done {
                    xids.remove(&xid);
                    if let Ok(n) = result {
                        info!(peer = %peer, xid, bindings = n, "bulk query done");
                    }
                }
            }
            _ = sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))), if deadline.is_some() => {
                return Err(if partial {
                    format!("message not completed within {:?} (BULK_LQ_DATA_TIMEOUT)", ctx.data_timeout)
                } else {
                    format!("idle for {:?} (BULK_LQ_DATA_TIMEOUT)", ctx.data_timeout)
                });
            }
            w = &mut writer => {
                inflight.abort_all();
                return Err(match w {
                    Ok(Err(reason)) => reason,
                    _ => "writer stopped".into(),
                });
            }
            _ = stop.changed() => {
                // RFC 6926 §8.5: an aborted query is told so (QueryTerminated).
                inflight.abort_all();
                while inflight.join_next().await.is_some() {}
                for xid in xids.drain() {
                    // Whether a reply preceded it is unknown: server-id,
                    // which the first message must carry (§8.3), is included.
                    let done = build_done(
                        xid,
                        Some((StatusCode::QueryTerminated, "server shutting down")),
                        unix_now(),
                        Some(ctx.bulk.server_id),
                    );
                    let mut chunk = Vec::new();
                    frame_into(&mut chunk, &done);
                    let _ = timeout(Duration::from_secs(1), out_tx.send(chunk)).await;
                }
                drop(out_tx);
                let _ = timeout(Duration::from_secs(2), &mut writer).await;
                return Err("server shutting down".into());
            }
        }
    }
}

async fn on_message(
    ctx: &Arc<ListenerContext>,
    frame: &[u8],
    out: &mpsc::Sender<Vec<u8>>,
    inflight: &mut JoinSet<(u32, Result<u64, bulk::Closed>)>,
    xids: &mut HashSet<u32>,
    peer: SocketAddr,
    slot: &mut Slot,
) -> Step {
    let msg = match Message::decode(frame) {
        Ok(m) => m,
        Err(e) => {
            if let Some(xid) = malformed_query_xid(frame) {
                // RFC 6926 §8.2: a query whose options do not parse is a
                // malformed query; it is told so before the close.
                let mut chunk = Vec::new();
                frame_into(
                    &mut chunk,
                    &build_done(
                        xid,
                        Some((StatusCode::MalformedQuery, "undecodable options")),
                        unix_now(),
                        Some(ctx.bulk.server_id),
                    ),
                );
                let _ = out.send(chunk).await;
            }
            return Step::Close(format!("undecodable message: {e}"));
        }
    };
    match msg.message_type() {
        Some(MessageType::BulkLeaseQuery) => {
            // The first bulk query makes it a bulk connection: it takes
            // one of BULK_LQ_MAX_CONNS (RFC 6926 §8.1), or is closed.
            if let Err(r) = slot.change(Kind::Bulk) {
                log_limit_refusal(ctx, peer, r);
                return Step::Refused;
            }
            if !xids.insert(msg.xid) {
                // RFC 6926 §7.7: xids are unique per connection; replies could not be told apart.
                return Step::Close(format!("duplicate xid {:#010x} on one connection", msg.xid));
            }
            match parse_bulk_query(&msg) {
                Ok(q) => {
                    debug!(peer = %peer, xid = q.xid, primary = q.primary.name(), "bulk query");
                    let (ctx, out) = (Arc::clone(&ctx.bulk), out.clone());
                    inflight.spawn(async move {
                        let xid = q.xid;
                        (xid, bulk::run(ctx, q, out).await)
                    });
                }
                Err((code, why)) => {
                    // RFC 6926 §8.2: refused queries end with DONE and a status.
                    warn!(peer = %peer, xid = msg.xid, status = code.name(), reason = why, "bulk query refused");
                    xids.remove(&msg.xid);
                    let mut chunk = Vec::new();
                    frame_into(
                        &mut chunk,
                        &build_done(
                            msg.xid,
                            Some((code, why)),
                            unix_now(),
                            Some(ctx.bulk.server_id),
                        ),
                    );
                    if out.send(chunk).await.is_err() {
                        return Step::Close("writer stopped".into());
                    }
                }
            }
            Step::Continue
        }
        Some(MessageType::ActiveLeaseQuery) if ctx.active.is_some() => {
            if !inflight.is_empty() {
                // RFC 7724 §8.3: active and bulk queries need separate connections.
                let mut chunk = Vec::new();
                frame_into(
                    &mut chunk,
                    &build_status(
                        msg.xid,
                        StatusCode::NotAllowed,
                        "bulk queries in progress on this connection",
                        unix_now(),
                    ),
                );
                let _ = out.send(chunk).await;
                return Step::Close("active query on a connection with bulk queries".into());
            }
            match parse_active_query(&msg) {
                Ok(q) => Step::Active(q),
                Err(refusal) => {
                    // RFC 7724 §8.2: status, then close.
                    let mut chunk = Vec::new();
                    frame_into(
                        &mut chunk,
                        &build_status(msg.xid, refusal.status(), refusal.reason(), unix_now()),
                    );
                    let _ = out.send(chunk).await;
                    Step::Close(format!("active query refused: {}", refusal.reason()))
                }
            }
        }
        Some(MessageType::Tls) => {
            Step::Close("DHCPTLS is only allowed as the first message".into())
        }
        // RFC 7724 §8.1.1: a message type not supported over TCP closes the connection.
        other => Step::Close(format!(
            "message type {} not allowed on a leasequery connection",
            other.map(|t| t.name()).unwrap_or("(none)")
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_active<R, W>(
    ctx: &Arc<ListenerContext>,
    q: leaseline_proto::ActiveQuery,
    peer: SocketAddr,
    slot: &mut Slot,
    rd: R,
    decoder: FrameDecoder,
    mut wr: W,
    stop: watch::Receiver<bool>,
) -> Result<(), Reason>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(active) = &ctx.active else {
        return Err("active leasequery disabled".into());
    };
    // An active connection counts against the active limits (RFC 7724
    // §8.3, §8.4); one that did bulk queries first gives its bulk place back.
    if let Err(r) = slot.change(Kind::Active) {
        // RFC 7724 §8.1: a capacity refusal is an answer to the active query.
        let mut out = Vec::new();
        frame_into(
            &mut out,
            &build_status(
                q.xid,
                StatusCode::NotAllowed,
                "too many active queries",
                unix_now(),
            ),
        );
        let _ = timeout(Duration::from_secs(2), wr.write_all(&out)).await;
        return Err(format!(
            "active query over the connection limit ({}: {})",
            r.reason(),
            r.limit(ctx.slots.limits())
        ));
    }
    info!(peer = %peer, since = ?q.start, "active query started");
    let end = crate::active::run(active, q, peer, rd, decoder, wr, stop).await;
    match end {
        crate::active::End::RequestorClosed | crate::active::End::Shutdown => {
            info!(peer = %peer, end = ?end, "active query ended");
            Ok(())
        }
        other => Err(format!("active query ended: {other:?}")),
    }
}
