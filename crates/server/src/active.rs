//! The driver of an Active Leasequery session (RFC 7724 §8.2): it moves
//! the requestor's bytes, timers, the history and batches of changes in
//! and out of a `leaseline_proto::ActiveSession`, which holds every rule.
//!
//! The connection's pending work is the feed subscription's set of
//! addresses, each with the latest committed binding (architecture, data
//! flow 4): a blocked requestor costs one entry per distinct address, and
//! the message is built (with a fresh base-time) only when it can be written.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::{
    ActiveConfig, ActiveEnd, ActiveEvent, ActiveQuery, ActiveSession, Binding, History, Now, Taken,
    Update,
};
use leaseline_store::{ChangeFeed, Committed, LeaseStore, PendingEntry, Subscription};
use leaseline_wire::FrameDecoder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::clock::unix_now;
use crate::config::ActiveLeasequery;
use crate::framed::{Framed, Io};
use crate::overload::DhcpLoad;
use crate::stats::LeasequeryStats;

/// What an active session needs from the server.
pub struct ActiveContext {
    pub store: Arc<dyn LeaseStore>,
    pub cfg: ActiveLeasequery,
    /// The sessions' settings (server-id, denied options, timeouts).
    pub session: Arc<ActiveConfig>,
    /// Updates wait while DHCP is overloaded.
    pub load: Arc<DhcpLoad>,
    /// Updates sent, holds, catch-ups, DataMissing (metrics).
    pub stats: Arc<LeasequeryStats>,
}

/// How a session ended (for the log).
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    RequestorClosed,
    SendTimeout,
    /// Too far behind: changes it had not read left the history.
    FellBehind,
    Shutdown,
    /// A reload no longer allows the requestor: QueryTerminated.
    Revoked,
    Refused(&'static str),
    Io(String),
}

/// Run one active query until it ends. `decoder` holds any bytes already
/// read past the query; `stop` flips to true at server shutdown; `revoked`
/// resolves when a reload no longer allows the requestor.
#[allow(clippy::too_many_arguments)]
pub async fn run<R, W>(
    ctx: &ActiveContext,
    query: ActiveQuery,
    peer: SocketAddr,
    reader: R,
    decoder: FrameDecoder,
    writer: W,
    mut stop: watch::Receiver<bool>,
    revoked: impl std::future::Future<Output = ()>,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::pin!(revoked);
    let mut is_revoked = false;
    let feed = ctx.store.feed();
    // Subscribe before reading the history: a change committed in between
    // is in both, and the pending set de-duplicates it.
    let sub = feed.subscribe();
    let mut io = Framed::new(reader, writer);
    let mono = || tokio::time::Instant::now().into_std();
    // Base-times come from the feed's clock (never behind a published change).
    let now = || Now {
        mono: mono(),
        unix: feed.now(unix_now()),
    };
    let mut s = ActiveSession::new(&query, Arc::clone(&ctx.session), decoder, mono());
    let mut batch = Batch::default();
    // A batch asked for, to take once the feed has one.
    let mut wanted: Option<usize> = None;
    // Waiting for DHCP's overload to end (counted once per wait).
    let mut holding = false;
    // A message that came in the same read as the query is already held:
    // it is looked at before anything is sent.
    s.handle_bytes(&[], now());
    loop {
        loop {
            let mut busy = false;
            while let Some(ev) = s.poll_event() {
                busy = true;
                match ev {
                    ActiveEvent::History { since } => {
                        let history = history(ctx, &sub, peer, since, now().unix);
                        s.handle_history(history, now());
                    }
                    ActiveEvent::Take { max, wait: true } => wanted = Some(max),
                    ActiveEvent::Take { max, wait: false } => {
                        wanted = None;
                        batch.send(ctx, &sub, &mut s, max).await;
                    }
                    ActiveEvent::Close(close) => {
                        s.poll_transmit(mono(), io.out());
                        io.finish(close.linger).await;
                        return ended(close.end, peer, feed, &sub, ctx);
                    }
                }
            }
            if io.unwritten() == 0 {
                s.poll_transmit(mono(), io.out());
                busy |= io.unwritten() > 0;
            }
            if !busy {
                break;
            }
        }
        // DHCP first: while it is overloaded, updates wait (they stay
        // pending; keepalives and the requestor's messages do not).
        let held = ctx.load.overloaded();
        // Counted once per wait, not per wake-up.
        if held && wanted.is_some() && !holding {
            ctx.stats.active_held();
        }
        holding = held && wanted.is_some();
        let deadline = s.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            _ = stop.changed() => s.handle_shutdown(now(), sub.oldest_pending()),
            _ = &mut revoked, if !is_revoked => {
                is_revoked = true;
                s.handle_revoked(now(), sub.oldest_pending());
            }
            _ = ctx.load.relieved(), if held && wanted.is_some() => {}
            _ = sub.changed(), if wanted.is_some() && !held => {
                if ctx.load.overloaded() {
                    // It began while this session waited: held from now.
                    continue;
                }
                let max = wanted.take().unwrap_or(0);
                batch.send(ctx, &sub, &mut s, max).await;
            }
            ev = io.next(s.wants_read()) => match ev {
                Io::Read(n) => s.handle_bytes(io.read_bytes(n), now()),
                Io::Eof => s.handle_eof(),
                Io::Written(left) => s.handle_written(mono(), left),
                Io::Failed(e) => return End::Io(e),
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                s.handle_timeout(now(), sub.oldest_pending());
            }
        }
    }
}

/// The history from `since` (RFC 7724 §7.4.1); catch-up addresses join the
/// pending set as of `now`.
fn history(
    ctx: &ActiveContext,
    sub: &Subscription,
    peer: SocketAddr,
    since: u32,
    now: u32,
) -> History {
    let feed = ctx.store.feed();
    match feed.changed_since(since, now) {
        None => {
            ctx.stats.active_data_missing_sent();
            info!(peer = %peer, since, horizon = feed.horizon(), event = "active_data_missing", "active query: catch-up outside the history (DataMissing)");
            History::Missing
        }
        Some(ips) => {
            debug!(peer = %peer, since, count = ips.len(), event = "active_catch_up", "active query: catching up");
            ctx.stats.active_catch_up();
            sub.extend(&ips, now);
            History::CatchUp(ips)
        }
    }
}

/// Log how the session ended.
fn ended(
    end: ActiveEnd,
    peer: SocketAddr,
    feed: &ChangeFeed,
    sub: &Subscription,
    ctx: &ActiveContext,
) -> End {
    match end {
        ActiveEnd::RequestorClosed => End::RequestorClosed,
        ActiveEnd::Shutdown => End::Shutdown,
        ActiveEnd::Revoked => End::Revoked,
        ActiveEnd::SendTimeout => {
            let backlog = sub.backlog();
            warn!(peer = %peer, timeout = ?ctx.session.send_timeout, pending = backlog.own, unread_log = backlog.unread_log, in_history = backlog.in_history, event = "active_send_timeout", "active requestor not reading: closing (ACTIVE_LQ_SEND_TIMEOUT)");
            End::SendTimeout
        }
        ActiveEnd::FellBehind { since } => {
            warn!(peer = %peer, since, horizon = feed.horizon(), event = "active_fell_behind", "active requestor fell behind the history: QueryTerminated");
            End::FellBehind
        }
        ActiveEnd::DataTimeout => {
            warn!(peer = %peer, event = "active_data_timeout", "partial message from active requestor: closing (BULK_LQ_DATA_TIMEOUT)");
            End::Refused("data timeout")
        }
        ActiveEnd::Refused(reason) => {
            warn!(peer = %peer, reason, event = "active_query_refused", "active connection: refused, closing");
            End::Refused(reason)
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
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
        max: usize,
    ) {
        // The feed's time is read before taking: a change published later
        // is recorded at or after it (see ChangeFeed::now).
        let now = ctx.store.feed().now(unix_now());
        self.entries.clear();
        let oldest_left = sub.take_entries(max, &mut self.entries);
        let mut read = match read_committed(ctx, &self.entries).await {
            Ok(read) => read.into_iter(),
            Err(error) => {
                // Those entries are skipped; the live ones still go out.
                warn!(%error, event = "active_store_read_failed", "active query: cannot read bindings; skipped");
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
        let taken = Taken {
            now,
            oldest_left,
            lost: sub.lost(),
        };
        ctx.stats.active_updates_sent(self.bindings.len() as u64);
        session.handle_updates(updates, taken);
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
        let session = ActiveConfig {
            server_id,
            denied,
            idle_timeout: cfg.idle_timeout,
            send_timeout: cfg.send_timeout,
            data_timeout,
        };
        ActiveContext {
            store,
            cfg,
            session: Arc::new(session),
            load: Arc::new(DhcpLoad::new(0)),
            stats: Arc::default(),
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
