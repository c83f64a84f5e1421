//! `GET /ui/events`: the live view's Server-Sent Events, fed by the
//! store's change feed like an Active Leasequery session (active.rs).
//!
//! - `changes`: up to [`BATCH`] bindings that changed, oldest first, each
//!   in its latest committed state (change_json.rs);
//! - `usage`: the pools' counts (usage.rs), at start and at most every
//!   [`USAGE_EVERY`] while changes come.
//!
//! Memory per browser is bounded whatever its read speed. The feed
//! subscription coalesces by address (one pending entry per address, the
//! shared log bounded by the feed), a task moves a batch at a time into a
//! queue of [`QUEUE`] events, and the HTTP connection pulls from that
//! queue only when its socket takes more. A browser that stops reading
//! fills the queue; once a batch has waited [`HttpConfig::ui_stall_timeout`]
//! for room, the task drops the subscription and the connection is closed
//! (the browser's EventSource reconnects by itself if it was only slow).
//!
//! [`HttpConfig::ui_stall_timeout`]: crate::config::HttpConfig

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use leaseline_store::{PendingEntry, Subscription};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{change_json, unauthorized, UiContext};

/// Most changes in one event.
const BATCH: usize = 64;
/// Events queued for one browser beyond what its socket holds.
const QUEUE: usize = 4;
/// Usage counts go out at most this often while changes come.
const USAGE_EVERY: Duration = Duration::from_millis(250);
/// Used when `[http]` is gone from the configuration (a reload).
const DEFAULT_STALL: Duration = Duration::from_secs(10);

pub(super) async fn stream(State(ui): State<Arc<UiContext>>, headers: HeaderMap) -> Response {
    if !ui.authorized(&headers) {
        return unauthorized();
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    let stalled = Arc::new(AtomicBool::new(false));
    // Subscribed before answering: every change after the page opened the
    // stream is sent.
    let sub = ui.http.shared.store.feed().subscribe();
    tokio::spawn(feed_browser(Arc::clone(&ui), sub, tx, Arc::clone(&stalled)));
    Sse::new(Events {
        rx,
        stalled,
        ended: false,
    })
    .keep_alive(KeepAlive::default())
    .into_response()
}

/// The browser stopped reading: the connection is closed.
#[derive(Debug)]
struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the browser stopped reading its event stream")
    }
}

impl std::error::Error for Stalled {}

/// The events queued by [`feed_browser`]; after it gave up on a stalled
/// browser, an error, on which the server closes the connection.
struct Events {
    rx: mpsc::Receiver<Event>,
    stalled: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for Events {
    type Item = Result<Event, Stalled>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(e)) => Poll::Ready(Some(Ok(e))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.stalled.load(Ordering::Acquire) {
                    Poll::Ready(Some(Err(Stalled)))
                } else {
                    Poll::Ready(None)
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Move the browser's changes from its subscription into its queue until
/// it goes away or stops reading.
async fn feed_browser(
    ui: Arc<UiContext>,
    mut sub: Subscription,
    tx: mpsc::Sender<Event>,
    stalled: Arc<AtomicBool>,
) {
    let shared = &ui.http.shared;
    let stall = shared
        .engine
        .lock()
        .config()
        .http
        .as_ref()
        .map_or(DEFAULT_STALL, |h| h.ui_stall_timeout);
    let feed = shared.store.feed();
    let mut seen = feed.last_seq();
    let mut usage_due: Option<Instant> = Some(Instant::now());
    let mut last_usage: Option<Instant> = None;
    let mut entries: Vec<PendingEntry> = Vec::with_capacity(BATCH);
    loop {
        let wake = tokio::select! {
            biased;
            _ = tx.closed() => return,
            _ = sleep_until(usage_due) => Wake::Usage,
            _ = sub.changed() => Wake::Changes,
        };
        let event = match wake {
            Wake::Usage => {
                usage_due = None;
                last_usage = Some(Instant::now());
                Event::default()
                    .event("usage")
                    .data(&*ui.usage.after(shared, seen))
            }
            Wake::Changes => {
                entries.clear();
                sub.take_entries(BATCH, &mut entries);
                if entries.is_empty() && sub.lost().is_some() {
                    // Changes it skipped are gone from the feed's history
                    // too (it was starved for that long): follow the live
                    // changes from here; the counts are current anyway.
                    debug!("web view: a stream lost changes older than the history; following from now");
                    sub = feed.subscribe();
                    usage_due.get_or_insert_with(Instant::now);
                    continue;
                }
                seen = feed.last_seq();
                usage_due.get_or_insert_with(|| {
                    last_usage.map_or_else(Instant::now, |t| (t + USAGE_EVERY).max(Instant::now()))
                });
                match changes_event(&ui, &entries).await {
                    Some(e) => e,
                    None => continue,
                }
            }
        };
        match tx.send_timeout(event, stall).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                let b = sub.backlog();
                warn!(
                    own = b.own,
                    unread_log = b.unread_log,
                    in_history = b.in_history,
                    queued = QUEUE,
                    "web view: a browser stopped reading its event stream for {}s: closed",
                    stall.as_secs()
                );
                stalled.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// What woke the stream's task.
enum Wake {
    Usage,
    Changes,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The `changes` event of a batch: bindings the feed carries as they
/// are, the others (changes the subscription skipped in the shared log)
/// read from the store, on the blocking pool. None: nothing to send.
async fn changes_event(ui: &UiContext, entries: &[PendingEntry]) -> Option<Event> {
    if entries.is_empty() {
        return None;
    }
    let missing: Vec<_> = entries
        .iter()
        .filter(|e| e.latest.is_none())
        .map(|e| e.ip)
        .collect();
    let mut read = if missing.is_empty() {
        Vec::new()
    } else {
        let store = Arc::clone(&ui.http.shared.store);
        match tokio::task::spawn_blocking(move || store.get_many(&missing)).await {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => {
                debug!(%error, "web view: cannot read bindings; those changes are not shown");
                Vec::new()
            }
            Err(_) => return None,
        }
    }
    .into_iter();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let row = match &e.latest {
            Some(c) => change_json::change(e.ip, Some(&c.binding), e.time),
            None => match read.next() {
                Some(b) => change_json::change(e.ip, b.as_ref(), e.time),
                None => continue,
            },
        };
        out.push(row);
    }
    Some(
        Event::default()
            .event("changes")
            .data(Value::Array(out).to_string()),
    )
}
