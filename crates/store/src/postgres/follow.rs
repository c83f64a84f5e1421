//! Following the change log: every instance's feed carries every
//! instance's committed changes, in log id order, exactly once.
//!
//! Two publishers share one position, a [`LogCursor`] ("every id up to
//! here is published, or will never exist"): the writer, right after its
//! own commit (its rows are published from memory, after reading whatever
//! other instances committed just before them), and the follower thread,
//! woken by NOTIFY or every half second, which reads the rows after the
//! position. Commits run at once, so an id can be missing while a later one
//! is visible: the rows after it wait until it comes or is known never to
//! come (`log_gaps`). Nothing depends on NOTIFY's delivery, and a row is
//! never published twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient};

use super::codec::{decode, CHANGED_BY_COLUMN, COLUMNS};
use super::connect::Database;
use super::health::Health;
use super::history::{seconds, LogRead, LoggedChange};
use super::instances::Membership;
use super::log_gaps::LogCursor;
use super::schema::{
    error_text, meta_value, NOTIFY_CHANNEL, PRUNED_ID, PRUNED_LOGGED_AT, WRITERS_LOCK,
};
use crate::{ChangeFeed, Committed, StoreError, StoreObserver};

/// Rows read from the log at a time.
const READ_CHUNK: usize = 4_096;

/// The follower reads the log at least this often without a NOTIFY.
const POLL: Duration = Duration::from_millis(500);

/// While rows wait behind a missing id, the follower reads this often.
const GAP_POLL: Duration = Duration::from_millis(5);

/// How long the writer waits for the position while the follower holds
/// it (a read takes milliseconds); longer, the follower's connection has
/// stalled, and the writer's ACKs do not wait for it: the follower
/// publishes the writer's rows from the log when it reads again.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);

pub(super) struct LogFollower {
    pub(super) me: String,
    feed: Arc<ChangeFeed>,
    observer: OnceLock<Arc<dyn StoreObserver>>,
    cursor: Mutex<LogCursor>,
    /// Rows wait behind a missing id (the follower reads often).
    waiting: AtomicBool,
}

impl LogFollower {
    pub(super) fn new(me: String, feed: Arc<ChangeFeed>, last_id: i64) -> Self {
        LogFollower {
            me,
            feed,
            observer: OnceLock::new(),
            cursor: Mutex::new(LogCursor::new(last_id)),
            waiting: AtomicBool::new(false),
        }
    }

    /// Every log id up to this one is on this instance's feed, or will
    /// never exist (metrics).
    pub(super) fn published(&self) -> i64 {
        self.cursor.lock().last()
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

    fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    pub(super) fn position(&self) -> crate::postgres::ChangeLogPosition {
        crate::postgres::ChangeLogPosition {
            published: self.published(),
            waiting: self.waiting(),
        }
    }

    /// After this instance's commit wrote log rows `first..` (`own`, in
    /// order, at log time `logged_at`): publish what committed before them
    /// (read on `client`), then them. Returns the feed seq of the last of
    /// `own`; None when the follower already published them, when an id
    /// before them is still missing (another instance's commit is running:
    /// the follower publishes all, in order, once it is there), when the
    /// rows before them could not be read, or when the follower held the
    /// position for longer than [`PUBLISH_WAIT`] (then it publishes them).
    pub(super) fn publish_own(
        &self,
        client: &mut Client,
        read: &LogRead,
        first: i64,
        logged_at: u32,
        own: Vec<Arc<Committed>>,
    ) -> Option<u64> {
        let own_last = first - 1 + own.len() as i64;
        let Some(mut cursor) = self.cursor.try_lock_for(PUBLISH_WAIT) else {
            tracing::debug!(
                event = "writer_publish_deferred",
                "change-log follower busy; the writer's rows are left to it"
            );
            return None;
        };
        loop {
            if cursor.last() >= own_last {
                return None;
            }
            if cursor.last() >= first - 1 {
                let skip = usize::try_from(cursor.last() - (first - 1)).unwrap_or(0);
                let ids: Vec<i64> = (cursor.last() + 1..=own_last).collect();
                cursor.handle_read(&ids, Instant::now());
                return Some(self.feed.publish_bindings(logged_at, &own[skip..]));
            }
            let rows = match read.rows(client, cursor.last(), first - 1, READ_CHUNK, &self.me) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::debug!(error = %e, event = "writer_log_read_failed", "writer could not read the log before its rows");
                    return None;
                }
            };
            let more = rows.len() == READ_CHUNK;
            let mut ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            if !more {
                // This connection sees its own commit's rows.
                ids.extend(first..=own_last);
            }
            let take = cursor.handle_read(&ids, Instant::now());
            let mut rows = rows;
            rows.truncate(take.publish.min(rows.len()));
            self.publish_rows(rows, &own);
            if take.publish < ids.len() {
                // A missing id before this commit's rows.
                self.waiting.store(true, Ordering::Release);
                return None;
            }
            if !more {
                return Some(self.feed.publish_bindings(logged_at, &own));
            }
        }
    }

    /// Publish every row after the position that follows it without a gap
    /// (the follower thread); a gap old enough is checked and, once final,
    /// skipped. Returns how many rows.
    fn catch_up(&self, client: &mut Client, read: &LogRead) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut cursor = self.cursor.lock();
            let mut rows = read.rows(client, cursor.last(), i64::MAX, READ_CHUNK, &self.me)?;
            let n = rows.len();
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let take = cursor.handle_read(&ids, Instant::now());
            rows.truncate(take.publish);
            total += take.publish;
            self.publish_rows(rows, &[]);
            if take.publish < n {
                if take.check_running && cursor.handle_running(&running_writers(client)?) {
                    // Final: read again (its commit may have ended with its
                    // rows since the read), and skip what is still missing.
                    let next = read.rows(client, cursor.last(), i64::MAX, 1, &self.me)?;
                    if let Some(next) = next.first().filter(|r| r.id > cursor.last() + 1) {
                        let from = cursor.last() + 1;
                        let skipped = cursor.skip_gap(next.id);
                        self.skipped(client, from, skipped, next.logged_at)?;
                    }
                    continue;
                }
                self.waiting.store(true, Ordering::Release);
                return Ok(total);
            }
            self.waiting.store(cursor.waiting(), Ordering::Release);
            if n < READ_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Rows in id order, following the position: other instances' changes
    /// go to the observer (the engine's copy), then all are published as
    /// one group at the newest log time. Returns the feed seq of the last.
    /// `own_after`: this instance's rows that follow them (the writer's
    /// commit, published next).
    fn publish_rows(&self, rows: Vec<LoggedChange>, own_after: &[Arc<Committed>]) -> Option<u64> {
        let time = rows.last()?.logged_at;
        if let Some(observer) = self.observer.get() {
            let remote = for_the_engine(&rows, own_after, &self.me);
            if !remote.is_empty() {
                observer.remote_changes(remote);
            }
        }
        let committed: Vec<Arc<Committed>> = rows
            .into_iter()
            .map(|r| Arc::new(Committed::new(r.binding)))
            .collect();
        Some(self.feed.publish_bindings(time, &committed))
    }
}

/// Other instances' changes among `rows` (in id order) for the engine's
/// copy, less each one that a later row of the same address supersedes,
/// among them or in `own_after`: the copy already holds this instance's
/// own changes (made there before they were committed), and an older row
/// applied after one of them would step it back.
fn for_the_engine(
    rows: &[LoggedChange],
    own_after: &[Arc<Committed>],
    me: &str,
) -> Vec<crate::Binding> {
    let mut later: std::collections::HashSet<std::net::Ipv4Addr> =
        own_after.iter().map(|c| c.binding.ip).collect();
    let mut remote: Vec<_> = rows
        .iter()
        .rev()
        .filter(|r| later.insert(r.binding.ip) && r.instance_id != me)
        .map(|r| r.binding.clone())
        .collect();
    remote.reverse();
    remote
}

impl LogFollower {
    /// Ids `from..from + skipped` are skipped for good (the position is
    /// past them): taken by commits that failed, or pruned before this
    /// instance read them (it was cut off from the database, or stopped,
    /// for longer than the history keeps). Pruned rows are changes this
    /// instance never saw: the feed no longer answers a query-start-time
    /// before the last of them (RFC 7724 §7.4: DataMissing), and the
    /// bindings they left, as the table holds them now, go to the engine's
    /// copy and the feed, before the rows after them (`next_logged_at`:
    /// the log time of the first of those).
    fn skipped(
        &self,
        client: &mut Client,
        from: i64,
        skipped: i64,
        next_logged_at: u32,
    ) -> Result<(), StoreError> {
        let pg = |e: postgres::Error| StoreError::Postgres(error_text(&e));
        if from > meta_value(client, PRUNED_ID).map_err(pg)? {
            tracing::debug!(
                from,
                skipped,
                event = "change_log_ids_skipped",
                "change-log ids of commits that failed: never written"
            );
            return Ok(());
        }
        let pruned_at = seconds(meta_value(client, PRUNED_LOGGED_AT).map_err(pg)?);
        self.feed.forget_before(pruned_at.saturating_add(1));
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM bindings WHERE changed_id >= $1 AND changed_id < $2 \
                     ORDER BY changed_id"
                ),
                &[&from, &(from + skipped)],
            )
            .map_err(pg)?;
        let mut bindings = Vec::with_capacity(rows.len());
        let mut remote = Vec::new();
        for row in &rows {
            let b = decode(row, 0, &self.me)?;
            let by: &str = row.try_get(CHANGED_BY_COLUMN).map_err(pg)?;
            if by != self.me {
                remote.push(b.clone());
            }
            bindings.push(Arc::new(Committed::new(b)));
        }
        tracing::warn!(
            missed = skipped,
            resynced = bindings.len(),
            event = "change_log_pruned_unread",
            "change log pruned before this instance read it: the addresses it changed are taken from the bindings as they stand; watchers resuming from before it get DataMissing"
        );
        if let (Some(observer), false) = (self.observer.get(), remote.is_empty()) {
            observer.remote_changes(remote);
        }
        if !bindings.is_empty() {
            self.feed.publish_bindings(next_logged_at, &bindings);
        }
        Ok(())
    }
}

/// The commits running now, of every instance (their virtual transaction
/// ids): the holders of the writers' lock.
pub(super) fn running_writers(client: &mut impl GenericClient) -> Result<Vec<String>, StoreError> {
    // A bigint advisory key shows as its high half in classid, its low
    // half in objid, objsubid 1.
    let sql = format!(
        "SELECT coalesce(array_agg(virtualtransaction), '{{}}') FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = {hi} AND objid = {lo} \
         AND objsubid = 1 AND granted",
        hi = WRITERS_LOCK >> 32,
        lo = WRITERS_LOCK & 0xffff_ffff
    );
    client
        .query_one(&sql, &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| StoreError::Postgres(error_text(&e)))
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
    let mut conn: Option<(Client, LogRead)> = None;
    let mut last_read = Instant::now();
    // Read at once after (re)connecting: rows may have come meanwhile.
    let mut woken = true;
    // The connection was opened in this round: an error on it is the
    // database's, not a connection left over from before an outage.
    let mut fresh = false;
    while !stop.load(Ordering::Acquire) {
        let Some((client, log_read)) = conn.as_mut() else {
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
        let read_due = woken || log.waiting() || last_read.elapsed() >= POLL;
        let read = if read_due {
            last_read = Instant::now();
            log.catch_up(client, log_read).map(|_| ())
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
                    tracing::debug!(error = %e, event = "follower_reconnects", "change-log follower reconnects");
                }
                conn = None;
                continue;
            }
        }
        let timeout = if log.waiting() {
            GAP_POLL
        } else {
            POLL.saturating_sub(last_read.elapsed())
        };
        woken = wait_for_notify(client, stop, timeout, &log.me);
    }
    if let Some((c, _)) = conn.as_mut() {
        membership.leave(c);
    }
}

fn listen(db: &Database) -> Result<(Client, LogRead), StoreError> {
    let mut c = db.connect_hot_path()?;
    let pg = |e: postgres::Error| StoreError::Postgres(error_text(&e));
    c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .map_err(pg)?;
    let read = LogRead::prepare(&mut c).map_err(pg)?;
    Ok((c, read))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
    use super::*;
    use crate::HistoryLimits;
    use leaseline_test_support::pg_database;

    fn logged(id: i64, n: u32, instance: &str) -> LoggedChange {
        LoggedChange {
            id,
            instance_id: instance.into(),
            logged_at: 1_700_000_000,
            changed_at: 1_700_000_000,
            binding: crate::battery::sample(n, 1_700_000_000),
        }
    }

    /// The engine's copy gets other instances' changes, each address's
    /// newest only: never a row that a later one (this instance's own, read
    /// with them or committed right after them) supersedes.
    #[test]
    fn the_engine_gets_no_row_that_a_later_one_supersedes() {
        let ips = |v: Vec<crate::Binding>| v.iter().map(|b| b.ip).collect::<Vec<_>>();
        let ip = |n| crate::battery::sample(n, 0).ip;
        let rows = vec![
            logged(1, 1, "b"),
            logged(2, 2, "b"),
            logged(3, 1, "me"),
            logged(4, 3, "b"),
            logged(5, 3, "c"),
            logged(6, 4, "b"),
        ];
        assert_eq!(
            ips(for_the_engine(&rows, &[], "me")),
            vec![ip(2), ip(3), ip(4)],
            "1 is superseded by this instance's 3, 3's b row by its c row"
        );
        let own = vec![Arc::new(Committed::new(crate::battery::sample(4, 0)))];
        assert_eq!(
            ips(for_the_engine(&rows, &own, "me")),
            vec![ip(2), ip(3)],
            "4's b row is older than this instance's commit after it"
        );
    }

    /// The follower holds the position while its connection has stalled
    /// (a database host gone without a reset): the writer's commit still
    /// resolves, its rows left for the follower to publish from the log.
    #[test]
    fn a_stalled_follower_does_not_hold_the_writers_acks() {
        let db = pg_database();
        crate::postgres::make_schema(&db.url, "stall");
        let limits = HistoryLimits {
            max_age: 3_600,
            max_count: 1_000,
        };
        let feed = Arc::new(ChangeFeed::new(limits, 1_700_000_000));
        let log = Arc::new(LogFollower::new("stall".into(), Arc::clone(&feed), 0));
        let follower_reading = log.cursor.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_log = Arc::clone(&log);
        let url = db.url.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let read = LogRead::prepare(&mut client).expect("prepare");
            let own = vec![Arc::new(Committed::new(crate::battery::sample(
                1,
                1_700_000_000,
            )))];
            let _ = tx.send(writer_log.publish_own(&mut client, &read, 1, 1_700_000_000, own));
        });
        let published = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer went on while the follower held the position");
        assert_eq!(published, None, "left to the follower");
        drop(follower_reading);
        assert_eq!(log.published(), 0, "nothing published by the writer");
        assert_eq!(feed.last_seq(), 0);
    }
}
