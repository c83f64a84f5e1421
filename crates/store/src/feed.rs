//! Change feed: every committed change as `(seq, time, ip)`, a bounded
//! history for Active Leasequery catch-up (RFC 7724 §7.4), and the live
//! delivery to subscribers.
//!
//! Live delivery is one shared log of published groups, a linked list each
//! subscriber walks with its own cursor, without the feed's lock:
//! publishing a change costs the same with one subscriber or a hundred (the
//! store's writer thread, which also releases the DHCPACKs, does no
//! per-subscriber work for a subscriber that keeps reading, even slowly).
//! A subscriber that falls more than [`LIVE_LOG_CAP`] / 2 changes behind (a
//! requestor that stopped reading, or a leasequery runtime starved by DHCP
//! load) skips what it has not read: it lets go of the log and keeps only
//! where it was, reading those changes back from the history (addresses;
//! their state from the store) when it goes on. The publisher's cost is the
//! same for one laggard or a hundred, the log stays bounded, and a stalled
//! subscriber costs no memory of its own.

mod subscription;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::pending::{Committed, Latest};
use subscription::SubShared;
pub use subscription::{Backlog, Subscription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub time: u32,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Keep changes at most this many seconds old.
    pub max_age: u32,
    /// Keep at most this many changes.
    pub max_count: usize,
}

/// The subscribers' backlogs at one moment ([`ChangeFeed::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedLag {
    /// Live subscribers (Active Leasequery sessions).
    pub subscribers: usize,
    /// Changes still to take, summed over the subscribers.
    pub pending_total: u64,
    /// Changes still to take by the subscriber furthest behind.
    pub pending_max: u64,
    /// The feed time of the oldest change a subscriber has not taken.
    pub oldest_pending: Option<u32>,
    /// The feed's newest time.
    pub newest: u32,
}

impl FeedLag {
    /// Seconds the slowest subscriber is behind the feed's newest change
    /// (0 when every subscriber has taken everything).
    pub fn seconds(&self) -> u32 {
        self.oldest_pending
            .map_or(0, |t| self.newest.saturating_sub(t))
    }
}

/// How far behind in the shared log a subscriber may be, in changes (plus
/// one commit group): every `LIVE_LOG_CAP / 4` changes published, those
/// more than half of it behind skip their unread changes (to be read from
/// the history). At 5,000 changes a second that is seconds of lag, or the
/// burst after a long fsync.
pub const LIVE_LOG_CAP: usize = 16_384;

pub struct ChangeFeed {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<FeedState>,
    /// One past the last published seq (a subscriber's backlog, without
    /// the feed lock).
    end: AtomicU64,
    /// Woken after every publish (after the lock is released).
    notify: tokio::sync::Notify,
}

/// Changes published together (one commit group): one feed time. Linked
/// to the next group published, set once, by the publisher under the feed
/// lock; read by subscribers without it.
struct Group {
    first: u64,
    time: u32,
    /// Each address with its committed binding (None: read it from the store).
    items: Box<[(Ipv4Addr, Latest)]>,
    next: OnceLock<Arc<Group>>,
}

impl Group {
    fn new(first: u64, time: u32, items: Box<[(Ipv4Addr, Latest)]>) -> Self {
        Group {
            first,
            time,
            items,
            next: OnceLock::new(),
        }
    }

    fn end(&self) -> u64 {
        self.first + self.items.len() as u64
    }
}

impl Drop for Group {
    /// Unlink iteratively: the last subscriber holding an old group would
    /// otherwise free the whole chain after it by recursion.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(g) = next {
            next = Arc::into_inner(g).and_then(|mut g| g.next.take());
        }
    }
}

struct FeedState {
    next_seq: u64,
    /// Oldest first; times never decrease (see `publish`).
    history: VecDeque<Change>,
    /// Earliest start time the history answers completely.
    horizon: u32,
    /// Newest time seen (published or asked about); ages are relative to it.
    newest: u32,
    limits: HistoryLimits,
    /// The last group published (where the next is linked; a placeholder
    /// with no changes before the first). Older groups live as long as a
    /// subscriber has not read them.
    tail: Arc<Group>,
    log_cap: usize,
    /// When to look for subscribers too far behind next (a seq).
    next_skip_check: u64,
    subscribers: Vec<Weak<SubShared>>,
    /// Seconds before a query-start-time that a catch-up starts from (a
    /// store shared by several servers: the base-time may come from
    /// another one); 0 for a store only this server writes.
    resume_margin: u32,
}

impl FeedState {
    fn observe(&mut self, now: u32) {
        self.newest = self.newest.max(now);
        self.trim();
    }

    /// Drop entries older than `max_age` (relative to the newest time seen)
    /// and beyond `max_count`. Other changes at a trimmed entry's time may be
    /// gone too, so that second can no longer be answered in full: the
    /// horizon moves past it (comparisons are inclusive, "on or after").
    fn trim(&mut self) {
        let oldest_kept = self.newest.saturating_sub(self.limits.max_age);
        while let Some(front) = self.history.front() {
            let too_old = front.time < oldest_kept;
            let too_many = self.history.len() > self.limits.max_count;
            if !(too_old || too_many) {
                break;
            }
            self.horizon = self.horizon.max(front.time.saturating_add(1));
            self.history.pop_front();
        }
    }

    /// Every quarter of the log's capacity: subscribers more than half of
    /// it behind skip their unread changes, so none holds on to more of the
    /// log than that (plus a quarter, plus one group). A look and O(1) per
    /// subscriber, whatever it skips.
    fn skip_laggards(&mut self) {
        if self.next_seq < self.next_skip_check {
            return;
        }
        self.next_skip_check = self.next_seq + (self.log_cap / 4).max(1) as u64;
        let tail = Arc::clone(&self.tail);
        let behind = (self.log_cap / 2) as u64;
        self.subscribers.retain(|w| w.strong_count() > 0);
        for sub in self.subscribers.iter().filter_map(Weak::upgrade) {
            sub.skip_if_behind(&tail, behind);
        }
    }

    fn live_subscribers(&mut self) -> usize {
        self.subscribers.retain(|w| w.strong_count() > 0);
        self.subscribers.len()
    }
}

impl ChangeFeed {
    /// `start_time`: changes before it are unknown (history starts empty).
    pub fn new(limits: HistoryLimits, start_time: u32) -> Self {
        Self::with_log_cap(limits, start_time, LIVE_LOG_CAP)
    }

    /// [`ChangeFeed::new`] with another [`LIVE_LOG_CAP`] (tests).
    pub(crate) fn with_log_cap(limits: HistoryLimits, start_time: u32, log_cap: usize) -> Self {
        ChangeFeed {
            shared: Arc::new(Shared {
                state: Mutex::new(FeedState {
                    next_seq: 1,
                    history: VecDeque::new(),
                    horizon: start_time,
                    newest: start_time,
                    limits,
                    tail: Arc::new(Group::new(1, start_time, Box::new([]))),
                    log_cap: log_cap.max(1),
                    next_skip_check: 1,
                    subscribers: Vec::new(),
                    resume_margin: 0,
                }),
                end: AtomicU64::new(1),
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Assign sequence numbers, append to the history (trimming it by age
    /// relative to `time` and by count) and to the live log, and wake the
    /// subscribers. Returns the last seq assigned.
    ///
    /// The recorded time is `max(time, newest time seen)`: history stays
    /// ordered by time even if submitters' clocks disagree slightly. Recording
    /// a change later than it happened only adds duplicates for a resuming
    /// requestor, never a gap (architecture: Time).
    pub fn publish(&self, time: u32, ips: &[Ipv4Addr]) -> u64 {
        self.publish_items(time, ips.iter().map(|&ip| (ip, None)).collect())
    }

    /// [`ChangeFeed::publish`] with the committed bindings themselves: a
    /// subscriber then builds its message from the committed state, without
    /// a store read.
    pub fn publish_bindings(&self, time: u32, bindings: &[Arc<Committed>]) -> u64 {
        self.publish_items(
            time,
            bindings
                .iter()
                .map(|b| (b.binding.ip, Some(Arc::clone(b))))
                .collect(),
        )
    }

    fn publish_items(&self, time: u32, items: Box<[(Ipv4Addr, Latest)]>) -> u64 {
        let mut st = self.shared.state.lock();
        st.observe(time);
        let time = st.newest;
        let first = st.next_seq;
        for (i, &(ip, _)) in items.iter().enumerate() {
            let seq = first + i as u64;
            st.history.push_back(Change { seq, time, ip });
        }
        st.next_seq += items.len() as u64;
        st.trim();
        let last = st.next_seq - 1;
        if items.is_empty() {
            return last;
        }
        let group = Arc::new(Group::new(first, time, items));
        // Never set twice: `tail` moves to the group just linked.
        let _ = st.tail.next.set(Arc::clone(&group));
        st.tail = group;
        st.skip_laggards();
        self.shared.end.store(st.next_seq, Ordering::Release);
        // Woken after the lock is released: a woken session takes the lock
        // at once to read the log.
        drop(st);
        // Wakes every `changed()` whose Notified future is enabled; those
        // check their cursor after enabling, so no wakeup is lost.
        self.shared.notify.notify_waiters();
        last
    }

    /// The feed's current time: `clock` (the caller's reading of the wall
    /// clock), or the newest time already recorded if later. Every change
    /// published after this call is recorded at or after the value returned,
    /// and every change published before it is already in the subscribers'
    /// reach (log or pending set): so a base-time taken from here, capped at
    /// the oldest unsent change, never skips an undelivered change
    /// (RFC 7724 §7.4).
    pub fn now(&self, clock: u32) -> u32 {
        let mut st = self.shared.state.lock();
        st.observe(clock);
        st.newest
    }

    /// Rebuild the history at start-up from what the store knows: `changes`
    /// as `(time, ip)`, one per address, recorded no earlier than the change
    /// was published by the previous run. Subscribers are not told (there
    /// are none yet at start-up).
    pub fn seed(&self, mut changes: Vec<(u32, Ipv4Addr)>) {
        changes.sort_unstable();
        let mut st = self.shared.state.lock();
        for (time, ip) in changes {
            let time = time.max(st.horizon);
            let seq = st.next_seq;
            st.next_seq += 1;
            st.history.push_back(Change { seq, time, ip });
            st.newest = st.newest.max(time);
        }
        st.trim();
        // New subscribers start reading after the seeded changes (seeding
        // comes before any publish: the placeholder is not linked yet).
        if st.tail.items.is_empty() && st.tail.next.get().is_none() {
            st.tail = Arc::new(Group::new(st.next_seq, st.newest, Box::new([])));
        }
        self.shared.end.store(st.next_seq, Ordering::Release);
    }

    pub fn last_seq(&self) -> u64 {
        self.shared.state.lock().next_seq - 1
    }

    /// The earliest query-start-time the history answers completely
    /// (inclusive comparisons: a change at exactly `since` is included).
    pub fn horizon(&self) -> u32 {
        self.shared.state.lock().horizon
    }

    /// Changes before `time` were missed (a store shared with other
    /// servers pruned them before this one read them): a query-start-time
    /// before it is no longer answered in full (RFC 7724 §7.4: DataMissing).
    pub(crate) fn forget_before(&self, time: u32) {
        let mut st = self.shared.state.lock();
        st.horizon = st.horizon.max(time);
    }

    /// Answer every query-start-time from `margin` seconds before it (as
    /// far as the history reaches): for a store several servers share,
    /// whose requestors may resume with a base-time another server gave.
    /// Sending a binding's latest state again is harmless; missing one is
    /// not (docs/postgresql.md, "Time across instances").
    pub fn set_resume_margin(&self, margin: u32) {
        self.shared.state.lock().resume_margin = margin;
    }

    /// Addresses changed at or after `since` (less the resume margin, see
    /// [`ChangeFeed::set_resume_margin`]), deduplicated, in order of their
    /// latest change; `None` when `since` is before the horizon
    /// (RFC 7724 §7.4: DataMissing). `now` lets age-trimming happen here too.
    pub fn changed_since(&self, since: u32, now: u32) -> Option<Vec<Ipv4Addr>> {
        let mut st = self.shared.state.lock();
        st.observe(now);
        if since < st.horizon {
            return None;
        }
        let since = since.saturating_sub(st.resume_margin).max(st.horizon);
        // History is time-ordered: find the first entry at or after `since`.
        let start = st.history.partition_point(|c| c.time < since);
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<Ipv4Addr> = st
            .history
            .range(start..)
            .rev()
            .filter(|c| seen.insert(c.ip))
            .map(|c| c.ip)
            .collect();
        out.reverse();
        Some(out)
    }

    /// A copy of the retained history, oldest first (tests, diagnostics).
    pub fn changes(&self) -> Vec<Change> {
        self.shared.state.lock().history.iter().copied().collect()
    }

    /// Register a subscriber; it sees every change published after this call.
    pub fn subscribe(&self) -> Subscription {
        // Registered under the feed lock, so no concurrent publish is half-seen.
        let mut st = self.shared.state.lock();
        let sub = Arc::new(SubShared::new(Arc::clone(&st.tail)));
        st.subscribers.push(Arc::downgrade(&sub));
        Subscription::new(Arc::clone(&self.shared), sub)
    }

    pub fn subscribers(&self) -> usize {
        self.shared.state.lock().live_subscribers()
    }

    /// How far the subscribers are behind the feed (metrics, read at a
    /// scrape). The feed's lock is held only to copy the subscriber list
    /// (the publisher, on the DHCP path, takes it); each subscriber's own
    /// lock is taken in turn after it.
    pub fn lag(&self) -> FeedLag {
        let (subs, newest) = {
            let mut st = self.shared.state.lock();
            st.live_subscribers();
            let subs: Vec<_> = st.subscribers.iter().filter_map(Weak::upgrade).collect();
            (subs, st.newest)
        };
        let end = self.shared.end.load(Ordering::Acquire);
        let mut lag = FeedLag {
            subscribers: subs.len(),
            newest,
            ..FeedLag::default()
        };
        for sub in &subs {
            let (b, oldest) = sub.backlog(end);
            let pending = (b.own + b.unread_log + b.in_history) as u64;
            lag.pending_total += pending;
            lag.pending_max = lag.pending_max.max(pending);
            lag.oldest_pending = subscription::min_time(lag.oldest_pending, oldest);
        }
        lag
    }
}

#[cfg(test)]
mod tests;
