//! `leaseline mirror`: keep a replica of a server's bindings current across
//! every failure (RFC 7724 §4, §7; RFC 6926 §7). Bulk first, then Active
//! from the bulk's first base-time; resume from the saved base-time; fill a
//! DataMissing gap with a bulk query on a second connection. With several
//! servers on one database, fail over to the next one and resume there.

pub mod bulk_fetch;
pub mod convert;
pub mod events;
pub mod reconcile;
pub mod replica;
pub mod status;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use leaseline_wire::StatusCode;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::active::{
    active_query, base_time_of, classify, status_of, ActiveError, ActiveEvent, FramedConn,
};
use crate::failover::{self, Ended, Loss, Policy, Server, Sessions};
use crate::prl;
use crate::random::random_u32;
use crate::watch::BoxStream;
use convert::{from_reply, Learned};
use events::EventSink;
use replica::{Replica, Source};
use status::Phase;

/// Seconds a query-start-time is set before the saved base-time. Resuming
/// from base-time T should bring every change on or after T (RFC 7724
/// §7.3), but a server's history is keyed by the second a change was
/// handled, which can be a second before the change is published (commit
/// latency across a second boundary), and a restarted server's history
/// begins in its first second, which the previous process may have used
/// too. One second earlier costs a second of duplicates, never a gap.
pub const RESUME_MARGIN: u32 = 1;

/// A running gap fill: its records, and the task that fetches them.
type Fill = (
    mpsc::Receiver<Learned>,
    tokio::task::JoinHandle<Result<bulk_fetch::BulkDone, String>>,
);

#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// Tried in this order; a lost connection moves to the next one.
    pub servers: Vec<Server>,
    pub db: PathBuf,
    pub events: Option<PathBuf>,
    /// ACTIVE_LQ_RCV_TIMEOUT.
    pub rcv_timeout: Duration,
    /// ACTIVE_LQ_IDLE_TIMEOUT: least time between connection attempts to
    /// one server (plus jitter).
    pub retry_interval: Duration,
    /// How often the status is logged and stored.
    pub status_interval: Duration,
}

/// Run until the process is stopped (or the replica cannot be written).
/// With several servers, a lost connection moves to the next one
/// ([`crate::failover`]), which resumes from the saved base-time.
pub async fn run<F, Fut>(opts: &MirrorOptions, open: F) -> Result<(), String>
where
    F: Fn(Server) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<BoxStream, ActiveError>> + Send,
{
    if opts.servers.is_empty() {
        return Err("no server given".into());
    }
    let replica =
        Replica::open(&opts.db).map_err(|e| format!("replica {}: {e}", opts.db.display()))?;
    let events = EventSink::open(opts.events.as_deref()).map_err(|e| format!("events: {e}"))?;
    let status = status::Status::new(&replica);
    let mut run = MirrorRun {
        opts,
        open,
        replica,
        events,
        status,
        xid: random_u32(),
    };
    failover::run(&opts.servers, Policy::new(opts.retry_interval), &mut run).await
}

/// The mirror's side of the connection loop: the replica (and its saved
/// base-time) carries over from one session to the next, whichever server
/// it runs on.
struct MirrorRun<'a, F> {
    opts: &'a MirrorOptions,
    open: F,
    replica: Replica,
    events: EventSink,
    status: status::Status,
    xid: u32,
}

impl<F, Fut> Sessions for MirrorRun<'_, F>
where
    F: Fn(Server) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<BoxStream, ActiveError>> + Send,
{
    type Stop = Result<(), String>;
    const NAME: &'static str = "mirror";

    async fn session(&mut self, server: &Server) -> Ended<Self::Stop> {
        self.xid = self.xid.wrapping_add(2);
        let mut established = false;
        let end = session(
            self.opts,
            &self.open,
            server,
            self.xid,
            &mut self.replica,
            &mut self.events,
            &mut self.status,
            &mut established,
        )
        .await;
        match end {
            Err(e) if e.starts_with("replica") => Ended::Stop(Err(e)),
            Err(reason) => Ended::Lost {
                reason,
                established,
            },
            Ok(()) => Ended::Lost {
                reason: "the session ended".into(),
                established,
            },
        }
    }

    fn lost(&mut self, _loss: Loss<'_>) -> Option<Self::Stop> {
        None
    }

    fn waiting(&mut self, _wait: Duration) {
        self.status.set_phase(&self.replica, Phase::Reconnecting);
    }

    /// RFC 7724 §7.1: no more often than ACTIVE_LQ_IDLE_TIMEOUT; jitter
    /// keeps a fleet of mirrors from reconnecting in step.
    fn jitter(&mut self) -> Duration {
        jitter(self.opts.retry_interval)
    }
}

fn jitter(base: Duration) -> Duration {
    base.mul_f64(f64::from(random_u32() % 1000) / 5000.0) // up to +20 %
}

#[allow(clippy::too_many_arguments)]
async fn session<F, Fut>(
    opts: &MirrorOptions,
    open: &F,
    server: &Server,
    xid: u32,
    replica: &mut Replica,
    events: &mut EventSink,
    status: &mut status::Status,
    established: &mut bool,
) -> Result<(), String>
where
    F: Fn(Server) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<BoxStream, ActiveError>> + Send,
{
    replica.new_session();
    let saved = replica
        .saved_base_time()
        .map_err(|e| format!("replica: {e}"))?;
    let since = match saved {
        Some(t) => t.saturating_sub(RESUME_MARGIN),
        None => {
            // An empty replica: every binding first (RFC 7724 §4).
            status.set_phase(replica, Phase::Bulk);
            let stream = open(server.clone()).await.map_err(|e| e.to_string())?;
            let (tx, mut rx) = mpsc::channel(1024);
            let codes = prl::BINDINGS.to_vec();
            let peer = server.addr;
            let fetch = tokio::spawn(async move {
                bulk_fetch::fetch(stream, peer, xid.wrapping_add(1), (None, None), &codes, tx).await
            });
            while let Some(l) = rx.recv().await {
                *established = true;
                apply(replica, events, status, l, Source::Bulk);
            }
            let done = fetch.await.map_err(|e| e.to_string())??;
            *established = true;
            let first = done
                .first_base_time
                .ok_or("the bulk reply carried no base-time")?;
            // Every record was read at or after the bulk's first base-time,
            // and the history answers "changed on or after" it: once the
            // records are durable it is a safe point to resume from
            // (RFC 6926 §7.4), so a connection lost during the catch-up
            // that follows does not cost another full bulk query.
            replica.sync().await.map_err(|e| format!("replica: {e}"))?;
            replica
                .save_base_time(first)
                .map_err(|e| format!("replica: {e}"))?;
            info!(
                event = "mirror_initial_bulk_done",
                records = done.records,
                base_time = first,
                "initial bulk query complete"
            );
            first.saturating_sub(RESUME_MARGIN)
        }
    };
    status.set_phase(replica, Phase::CatchUp);
    let stream = open(server.clone()).await.map_err(|e| e.to_string())?;
    let mut conn = FramedConn::new(stream);
    conn.send(&active_query(xid, Some(since), prl::BINDINGS))
        .await
        .map_err(|e| e.to_string())?;
    info!(server = %server, since, event = "mirror_active_query_sent", "active query sent");

    let mut caught_up = false;
    let mut highest: Option<u32> = None;
    let mut fill: Option<Fill> = None;
    let mut last_save = Instant::now();
    let mut tick = tokio::time::interval(opts.status_interval);
    // ACTIVE_LQ_RCV_TIMEOUT counts from the last message, whatever else
    // (status ticks, gap-fill records) wakes this loop in between.
    let mut last_rx = Instant::now();
    loop {
        let silence_left = opts.rcv_timeout.saturating_sub(last_rx.elapsed());
        tokio::select! {
            m = conn.recv(silence_left) => {
                let m = m.map_err(|e| match e {
                    ActiveError::Timeout(_) => ActiveError::Timeout(opts.rcv_timeout).to_string(),
                    e => e.to_string(),
                })?;
                last_rx = Instant::now();
                *established = true;
                if let Some(t) = base_time_of(&m) {
                    status.observe_base_time(t);
                    if caught_up {
                        highest = highest.max(Some(t));
                    }
                }
                match classify(&m) {
                    ActiveEvent::Update(_) => {
                        if let Some(l) = from_reply(&m) {
                            apply(replica, events, status, l, Source::Active);
                        }
                    }
                    ActiveEvent::Status { code: StatusCode::CatchUpComplete, base_time, .. } => {
                        caught_up = true;
                        highest = highest.max(base_time);
                        info!(base_time = ?base_time, event = "mirror_catch_up_complete", "catch-up complete");
                    }
                    ActiveEvent::Status { code: StatusCode::DataMissing, base_time, .. } => {
                        // RFC 7724 §7.4.1: bulk from the saved time to this base-time, in parallel.
                        caught_up = true;
                        highest = highest.max(base_time);
                        warn!(from = since, until = ?base_time, event = "mirror_data_missing", "data missing: filling the gap with a bulk query");
                        status.set_phase(replica, Phase::Filling);
                        let stream = open(server.clone()).await.map_err(|e| e.to_string())?;
                        let (tx, rx) = mpsc::channel(1024);
                        let codes = prl::BINDINGS.to_vec();
                        let peer = server.addr;
                        let window = (Some(since), base_time);
                        let task = tokio::spawn(async move { bulk_fetch::fetch(stream, peer, xid.wrapping_add(1), window, &codes, tx).await });
                        fill = Some((rx, task));
                    }
                    ActiveEvent::Status { code: StatusCode::ConnectionActive, .. } => {}
                    ActiveEvent::Status { code: StatusCode::QueryTerminated, .. } => {
                        return Err("the server terminated the query".into());
                    }
                    ActiveEvent::Status { code, text, .. } => {
                        return Err(format!("the server refused the active query: {} {text}", code.name()));
                    }
                    ActiveEvent::TlsRefused => return Err("the server refused TLS".into()),
                    ActiveEvent::Unexpected(t) => {
                        let st = status_of(&m).map(|(c, _)| c.name()).unwrap_or("");
                        return Err(format!("unexpected message type {t} {st}"));
                    }
                }
            }
            l = recv_fill(&mut fill) => match l {
                Some(l) => apply(replica, events, status, l, Source::Fill),
                None => {
                    if let Some((_, task)) = fill.take() {
                        let done = task.await.map_err(|e| e.to_string())??;
                        info!(records = done.records, event = "mirror_gap_filled", "gap filled");
                    }
                }
            },
            _ = tick.tick() => status.report(replica),
        }
        if caught_up && fill.is_none() {
            status.set_phase_if_changed(replica, Phase::Live);
            if last_save.elapsed() >= Duration::from_secs(1) {
                if let Some(t) = highest {
                    replica.sync().await.map_err(|e| format!("replica: {e}"))?;
                    replica
                        .save_base_time(t)
                        .map_err(|e| format!("replica: {e}"))?;
                    last_save = Instant::now();
                }
            }
        }
    }
}

async fn recv_fill(fill: &mut Option<Fill>) -> Option<Learned> {
    match fill {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn apply(
    replica: &mut Replica,
    events: &mut EventSink,
    status: &mut status::Status,
    l: Learned,
    source: Source,
) {
    let base = l.base_time;
    if let Some(b) = replica.apply(l, source) {
        events.write(&b, base);
        status.applied();
    }
}
