//! Active Leasequery sessions (RFC 7724 §8.2): after a DHCPACTIVELEASEQUERY
//! the connection carries every committed binding change, catch-up from
//! the feed's history, keepalives, and QueryTerminated at shutdown.
//!
//! The connection's pending work is the feed subscription's set of
//! addresses, each with the latest committed binding (architecture, data
//! flow 4): a blocked requestor costs one entry per distinct address, and
//! the message is built (with a fresh base-time) only when it can be written.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::{ActiveQuery, ActiveSession, Binding, History, SessionEnd, Update};
use leaseline_store::{Committed, LeaseStore, PendingEntry, Subscription};
use leaseline_wire::FrameDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use crate::config::ActiveLeasequery;
use crate::overload::DhcpLoad;
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
    /// Updates wait while DHCP is overloaded.
    pub load: Arc<DhcpLoad>,
}

/// How a session ended (for the log).
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    RequestorClosed,
    SendTimeout,
    /// Too far behind: changes it had not read left the history.
    FellBehind,
    Shutdown,
    Refused(&'static str),
    Io(String),
}

/// Run one active query until it ends. `decoder` holds any bytes already
/// read past the query; `stop` flips to true at server shutdown. The
/// protocol decisions are [`ActiveSession`]'s; this drives its IO.
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
    let feed = ctx.store.feed();
    // Subscribe before reading the history: a change committed in between
    // is in both, and the pending set de-duplicates it.
    let sub = feed.subscribe();
    let mut session = ActiveSession::new(&query, ctx.server_id);
    let mut out = Vec::with_capacity(64 * 1024);
    let now = feed.now(unix_now());
    let history = match query.start {
        None => History::None,
        Some(since) => match feed.changed_since(since, now) {
            None => {
                info!(peer = %peer, since, horizon = feed.horizon(), "active query: catch-up outside the history (DataMissing)");
                History::Missing
            }
            Some(ips) => {
                debug!(peer = %peer, since, count = ips.len(), "active query: catching up");
                History::CatchUp(ips)
            }
        },
    };
    let catchup = session.begin(history, now, &mut out);
    sub.extend(&catchup, now);
    drop(catchup);
    let mut batch = Batch::default();
    let mut rbuf = vec![0u8; 4096];
    let mut last_write = Instant::now();
    loop {
        // A message that came in the same read as the query is already in
        // the decoder: it is looked at before anything is sent.
        if let Some(end) = session.requestor(&mut decoder, || feed.now(unix_now()), &mut out) {
            let _ = timeout(Duration::from_secs(2), writer.write_all(&out)).await;
            return refused(peer, end);
        }
        if !out.is_empty() {
            match write_progressing(&mut writer, &out, ctx.cfg.send_timeout).await {
                Err(WriteEnd::Stalled) => {
                    let backlog = sub.backlog();
                    warn!(peer = %peer, timeout = ?ctx.cfg.send_timeout, pending = backlog.own, unread_log = backlog.unread_log, in_history = backlog.in_history, "active requestor not reading: closing (ACTIVE_LQ_SEND_TIMEOUT)");
                    return End::SendTimeout;
                }
                Err(WriteEnd::Io(e)) => return End::Io(e),
                Ok(()) => {}
            }
            out.clear();
            last_write = Instant::now();
        }
        let read_deadline = decoder
            .mid_message()
            .then(|| Instant::now() + ctx.data_timeout);
        // DHCP first: while it is overloaded, updates wait (they stay
        // pending; keepalives and the requestor's messages do not).
        let held = ctx.load.overloaded();
        tokio::select! {
            biased;
            _ = stop.changed() => {
                // Changes already committed go out first, so a requestor that
                // resumes from QueryTerminated's base-time misses as few as
                // possible (bounded: a few batches, within the 2 s below);
                // base-time is capped at what is left anyway.
                for _ in 0..64 {
                    if sub.pending() == 0 {
                        break;
                    }
                    batch.send(ctx, &sub, &mut session, &mut out).await;
                }
                let now = feed.now(unix_now());
                session.terminate(now, sub.oldest_pending(), &mut out);
                write_last(&mut writer, &out).await;
                return End::Shutdown;
            }
            _ = ctx.load.relieved(), if held => {}
            _ = sub.changed(), if !held => {
                if ctx.load.overloaded() {
                    // It began while this session waited: held from now.
                    continue;
                }
                batch.send(ctx, &sub, &mut session, &mut out).await;
                if let Some(since) = sub.lost() {
                    // RFC 7724 §7.4: the server cannot go on with the query.
                    // Base-time no later than the first change it lost: the
                    // requestor resumes from there (DataMissing, then bulk).
                    warn!(peer = %peer, since, horizon = feed.horizon(), "active requestor fell behind the history: QueryTerminated");
                    session.terminate(feed.now(unix_now()), sub.oldest_pending(), &mut out);
                    write_last(&mut writer, &out).await;
                    return End::FellBehind;
                }
            }
            r = reader.read(&mut rbuf) => {
                match r {
                    Ok(0) => return End::RequestorClosed,
                    Ok(n) => decoder.extend(&rbuf[..n]),
                    Err(e) => return End::Io(e.to_string()),
                }
            }
            _ = sleep_until(read_deadline.unwrap_or_else(far_future)), if read_deadline.is_some() => {
                warn!(peer = %peer, "partial message from active requestor: closing (BULK_LQ_DATA_TIMEOUT)");
                return End::Refused("data timeout");
            }
            _ = sleep_until(last_write + ctx.cfg.idle_timeout) => {
                session.idle(feed.now(unix_now()), sub.oldest_pending(), &mut out);
            }
        }
    }
}

fn refused(peer: SocketAddr, end: SessionEnd) -> End {
    match end {
        SessionEnd::Refused(reason) => {
            warn!(peer = %peer, reason, "active connection: refused, closing");
            End::Refused(reason)
        }
        SessionEnd::Terminated => End::Shutdown,
    }
}

/// QueryTerminated is the last message: write what is queued with it and
/// close our end (RFC 7724 §7.4), within 2 s whatever the requestor does.
async fn write_last<W: AsyncWrite + Unpin>(writer: &mut W, out: &[u8]) {
    let _ = timeout(Duration::from_secs(2), async {
        writer.write_all(out).await?;
        writer.shutdown().await
    })
    .await;
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

enum WriteEnd {
    Stalled,
    Io(String),
}

/// Write all of `buf`, giving up only when no byte could be written for
/// `stall` (ACTIVE_LQ_SEND_TIMEOUT bounds a blocked connection, not a slow
/// one that keeps reading).
async fn write_progressing<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    stall: Duration,
) -> Result<(), WriteEnd> {
    let mut at = 0;
    while at < buf.len() {
        match timeout(stall, w.write(&buf[at..])).await {
            Err(_) => return Err(WriteEnd::Stalled),
            Ok(Err(e)) => return Err(WriteEnd::Io(e.to_string())),
            Ok(Ok(0)) => return Err(WriteEnd::Io("connection closed while writing".into())),
            Ok(Ok(n)) => at += n,
        }
    }
    // TLS buffers records: push them out under the same rule.
    match timeout(stall, w.flush()).await {
        Err(_) => Err(WriteEnd::Stalled),
        Ok(Err(e)) => Err(WriteEnd::Io(e.to_string())),
        Ok(Ok(())) => Ok(()),
    }
}

/// Scratch space for one batch of updates, reused across wake-ups.
#[derive(Default)]
struct Batch {
    entries: Vec<PendingEntry>,
    /// Each binding, its change time, and whether it is a live change
    /// (shared by every session) rather than this session's own read.
    bindings: Vec<(Arc<Committed>, u32, bool)>,
}

impl Batch {
    /// Take a batch of pending addresses and queue their current state.
    async fn send(
        &mut self,
        ctx: &ActiveContext,
        sub: &Subscription,
        session: &mut ActiveSession,
        out: &mut Vec<u8>,
    ) {
        // The feed's time is read before taking: a change published later
        // is recorded at or after it (see ChangeFeed::now).
        let now = ctx.store.feed().now(unix_now());
        self.entries.clear();
        let oldest_left = sub.take_entries(BATCH, &mut self.entries);
        let mut read = match read_committed(ctx, &self.entries).await {
            Ok(read) => read.into_iter(),
            Err(error) => {
                // Those entries are skipped; the live ones still go out.
                warn!(%error, "active query: cannot read bindings; skipped");
                Vec::new().into_iter()
            }
        };
        self.bindings.clear();
        for e in self.entries.drain(..) {
            let live = e.latest.is_some();
            let binding = match e.latest {
                Some(b) => b,
                // Catch-up addresses carry no binding: their committed state
                // was read above, in this order.
                None => match read.next() {
                    Some(Some(b)) => Arc::new(Committed::new(b)),
                    Some(None) => Arc::new(Committed::new(Binding::available(e.ip))),
                    None => continue,
                },
            };
            self.bindings.push((binding, e.time, live));
        }
        // Live changes are the same Arc for every session: the first to
        // send one encodes it, the others copy (leaseline_proto::shared_wire).
        let updates = self.bindings.iter().map(|(c, changed, live)| Update {
            binding: &c.binding,
            changed: *changed,
            shared: live.then_some(&c.wire),
        });
        session.updates(updates, &ctx.denied, now, oldest_left, out);
    }
}

/// The committed state of the entries that carry no binding (catch-up, or
/// changes skipped in the log), in their order: one store read for the
/// batch. SQLite reads block: they run on the blocking pool, so a requestor
/// catching up never holds up the live updates of the others on the async
/// workers.
async fn read_committed(
    ctx: &ActiveContext,
    entries: &[PendingEntry],
) -> Result<Vec<Option<Binding>>, String> {
    let ips: Vec<Ipv4Addr> = entries
        .iter()
        .filter(|e| e.latest.is_none())
        .map(|e| e.ip)
        .collect();
    if ips.is_empty() {
        return Ok(Vec::new());
    }
    let store = Arc::clone(&ctx.store);
    match tokio::task::spawn_blocking(move || store.get_many(&ips)).await {
        Ok(read) => read.map_err(|e| e.to_string()),
        // Only at shutdown (or a panic in the store).
        Err(e) => Err(format!("read did not finish: {e}")),
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
            load: Arc::new(DhcpLoad::new(0)),
        }
    }

    /// Hold updates while `load` says DHCP is overloaded (by default never).
    pub fn yielding_to(mut self, load: Arc<DhcpLoad>) -> Self {
        self.load = load;
        self
    }
}

#[cfg(test)]
mod tests;
