//! Following the change log: every instance's feed carries every
//! instance's committed changes, in log (= commit) order, exactly once.
//!
//! Two publishers share one position, "the last log id published here":
//! the writer, right after its own commit (its rows are published from
//! memory, after reading whatever other instances committed just before
//! them), and the follower thread, woken by NOTIFY or every half second,
//! which reads the rows after the position. Commits are serialised by the
//! log lock and ids assigned under it without gaps, so "every id after the
//! position, in order" is exactly what has not been published yet: nothing
//! depends on NOTIFY's delivery, and a row is never published twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::connect::Database;
use super::health::Health;
use super::history::{changes_after, LoggedChange};
use super::instances::Membership;
use super::schema::{error_text, NOTIFY_CHANNEL};
use crate::{ChangeFeed, Committed, StoreError, StoreObserver};

/// Rows read from the log at a time.
const READ_CHUNK: usize = 4_096;

/// The follower reads the log at least this often without a NOTIFY.
const POLL: Duration = Duration::from_millis(500);

pub(super) struct LogFollower {
    pub(super) me: String,
    feed: Arc<ChangeFeed>,
    observer: OnceLock<Arc<dyn StoreObserver>>,
    /// The last log id published on this instance's feed.
    published: Mutex<i64>,
}

impl LogFollower {
    pub(super) fn new(me: String, feed: Arc<ChangeFeed>, last_id: i64) -> Self {
        LogFollower {
            me,
            feed,
            observer: OnceLock::new(),
            published: Mutex::new(last_id),
        }
    }

    /// The last log id published on this instance's feed (metrics).
    pub(super) fn published(&self) -> i64 {
        *self.published.lock()
    }

    pub(super) fn last_seq(&self) -> u64 {
        self.feed.last_seq()
    }

    /// False when an observer was already set.
    pub(super) fn set_observer(&self, observer: Arc<dyn StoreObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    pub(super) fn observer(&self) -> Option<&Arc<dyn StoreObserver>> {
        self.observer.get()
    }

    /// After this instance's commit wrote log rows `first..` (`own`, in
    /// order, at log time `logged_at`): publish what other instances
    /// committed before them (read on `client`), then them. Returns the
    /// feed seq of the last of `own`; None when the follower already
    /// published them, or when the rows before them could not be read
    /// (the follower then publishes everything, in order).
    pub(super) fn publish_own(
        &self,
        client: &mut Client,
        first: i64,
        logged_at: u32,
        own: Vec<Arc<Committed>>,
    ) -> Option<u64> {
        let mut published = self.published.lock();
        while *published < first - 1 {
            match changes_after(client, *published, first - 1, READ_CHUNK, &self.me) {
                Ok(rows) if !rows.is_empty() => self.publish_rows(&mut published, rows),
                Ok(_) => {
                    // Pruned before it was read: see `publish_rows`.
                    *published = first - 1;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "writer could not read the log before its rows");
                    return None;
                }
            }
        }
        let skip = usize::try_from(*published - (first - 1)).unwrap_or(usize::MAX);
        if skip >= own.len() {
            return None;
        }
        let last = first - 1 + own.len() as i64;
        let seq = self.feed.publish_bindings(logged_at, &own[skip..]);
        *published = last;
        Some(seq)
    }

    /// Publish every row after the last one published (the follower
    /// thread). Returns how many.
    fn catch_up(&self, client: &mut Client) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut published = self.published.lock();
            let rows = changes_after(client, *published, i64::MAX, READ_CHUNK, &self.me)?;
            let n = rows.len();
            if n > 0 {
                self.publish_rows(&mut published, rows);
            }
            total += n;
            if n < READ_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Rows in id order, the first after `published`: other instances'
    /// changes go to the observer (the engine's copy), then all are
    /// published as one group at the newest log time.
    fn publish_rows(&self, published: &mut i64, rows: Vec<LoggedChange>) {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return;
        };
        if first.id != *published + 1 {
            // Log ids have no gaps: these were pruned before this instance
            // read them (it was stopped, or cut off from the database for
            // longer than the history keeps).
            tracing::warn!(
                missed = first.id - *published - 1,
                "change log pruned before this instance read it; watchers resuming over that span get DataMissing"
            );
        }
        let (last_id, time) = (last.id, last.logged_at);
        if let Some(observer) = self.observer.get() {
            let remote: Vec<_> = rows
                .iter()
                .filter(|r| r.instance_id != self.me)
                .map(|r| r.binding.clone())
                .collect();
            if !remote.is_empty() {
                observer.remote_changes(&remote);
            }
        }
        let committed: Vec<Arc<Committed>> = rows
            .into_iter()
            .map(|r| Arc::new(Committed::new(r.binding)))
            .collect();
        self.feed.publish_bindings(time, &committed);
        *published = last_id;
    }
}

/// The follower thread: reads the log when woken, heart-beats this
/// instance, and leaves the instances table when stopped.
pub(super) struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    pub(super) fn spawn(
        log: Arc<LogFollower>,
        db: Arc<Database>,
        health: Arc<Health>,
    ) -> std::io::Result<Follower> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("leaseline-pg-follower".into())
            .spawn(move || run(&log, &db, &health, &flag))?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(log: &LogFollower, db: &Database, health: &Health, stop: &AtomicBool) {
    let mut membership = Membership::new(log.me.clone());
    let mut conn: Option<Client> = None;
    let mut last_read = Instant::now();
    // Read at once after (re)connecting: rows may have come meanwhile.
    let mut woken = true;
    // The connection was opened in this round: an error on it is the
    // database's, not a connection left over from before an outage.
    let mut fresh = false;
    while !stop.load(Ordering::Acquire) {
        let Some(client) = conn.as_mut() else {
            match listen(db) {
                Ok(c) => {
                    conn = Some(c);
                    woken = true;
                    fresh = true;
                }
                Err(e) => {
                    health.failed("change-log follower", &e.to_string());
                    pause(stop, Duration::from_secs(1));
                }
            }
            continue;
        };
        let beat = membership.beat(client, log.observer().map(|o| &**o));
        let read_due = woken || last_read.elapsed() >= POLL;
        let read = if read_due {
            last_read = Instant::now();
            log.catch_up(client).map(|_| ())
        } else {
            Ok(())
        };
        let (error, queried) = match (beat, read) {
            (Ok(beaten), Ok(())) => (None, beaten || read_due),
            (Err(e), _) => (Some(error_text(&e)), true),
            (_, Err(e)) => (Some(e.to_string()), true),
        };
        match error {
            // Only a query that reached the database says it is there.
            None if queried => {
                health.ok();
                fresh = false;
            }
            None => {}
            Some(e) => {
                // A connection that broke while the database was away (or
                // was ended) is replaced at once, and only a failure on a
                // new one is an outage: the database is not reported down
                // again just after it came back.
                if fresh {
                    health.failed("change-log follower", &e);
                    pause(stop, Duration::from_secs(1));
                } else {
                    tracing::debug!(error = %e, "change-log follower reconnects");
                }
                conn = None;
                continue;
            }
        }
        let timeout = POLL.saturating_sub(last_read.elapsed());
        woken = wait_for_notify(client, stop, timeout, &log.me);
    }
    if let Some(c) = conn.as_mut() {
        membership.leave(c);
    }
}

fn listen(db: &Database) -> Result<Client, StoreError> {
    let mut c = db.connect()?;
    c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .map_err(|e| StoreError::Postgres(error_text(&e)))?;
    Ok(c)
}

/// Blocks until a notification arrives or `timeout` passes (at most a
/// second, so a stop is seen), then takes every pending one. True when one
/// came from another instance (this instance's writer publishes its own
/// rows itself).
fn wait_for_notify(client: &mut Client, stop: &AtomicBool, timeout: Duration, me: &str) -> bool {
    if stop.load(Ordering::Acquire) {
        return false;
    }
    let timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(1));
    let mut n = client.notifications();
    let mut others = match n.timeout_iter(timeout).next() {
        Ok(Some(note)) => note.payload() != me,
        _ => return false,
    };
    let mut pending = n.iter();
    while let Ok(Some(note)) = pending.next() {
        others |= note.payload() != me;
    }
    others
}

fn pause(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Acquire) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
