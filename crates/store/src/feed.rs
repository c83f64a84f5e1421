//! Change feed: every committed change as `(seq, time, ip)`, a bounded
//! history for Active Leasequery catch-up (RFC 7724 §7.4), and per-subscriber
//! pending sets of addresses (not messages), so a slow subscriber costs at
//! most one entry per distinct address.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::pending::{Committed, Latest, PendingEntry, PendingSet};

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

pub struct ChangeFeed {
    inner: Mutex<FeedState>,
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
    subscribers: Vec<Weak<SubShared>>,
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

    fn live_subscribers(&mut self) -> impl Iterator<Item = Arc<SubShared>> + '_ {
        // Dropped subscriptions are pruned here (and in `subscribers()`).
        self.subscribers.retain(|w| w.strong_count() > 0);
        self.subscribers.iter().filter_map(Weak::upgrade)
    }
}

impl ChangeFeed {
    /// `start_time`: changes before it are unknown (history starts empty).
    pub fn new(limits: HistoryLimits, start_time: u32) -> Self {
        ChangeFeed {
            inner: Mutex::new(FeedState {
                next_seq: 1,
                history: VecDeque::new(),
                horizon: start_time,
                newest: start_time,
                limits,
                subscribers: Vec::new(),
            }),
        }
    }

    /// Assign sequence numbers, append to the history (trimming it by age
    /// relative to `time` and by count), add each ip to every subscriber's
    /// pending set and wake them. Returns the last seq assigned.
    ///
    /// The recorded time is `max(time, newest time seen)`: history stays
    /// ordered by time even if submitters' clocks disagree slightly. Recording
    /// a change later than it happened only adds duplicates for a resuming
    /// requestor, never a gap (architecture: Time).
    pub fn publish(&self, time: u32, ips: &[Ipv4Addr]) -> u64 {
        self.publish_entries(time, ips.iter().map(|&ip| (ip, None)))
    }

    /// [`ChangeFeed::publish`] with the committed bindings themselves: each
    /// subscriber's pending entry then holds the latest committed state, so
    /// building its message needs no store read.
    pub fn publish_bindings(&self, time: u32, bindings: &[Arc<Committed>]) -> u64 {
        self.publish_entries(
            time,
            bindings.iter().map(|b| (b.binding.ip, Some(Arc::clone(b)))),
        )
    }

    fn publish_entries(
        &self,
        time: u32,
        entries: impl Iterator<Item = (Ipv4Addr, Latest)> + Clone,
    ) -> u64 {
        let mut st = self.inner.lock();
        st.observe(time);
        let time = st.newest;
        let mut any = false;
        for (ip, _) in entries.clone() {
            let seq = st.next_seq;
            st.next_seq += 1;
            st.history.push_back(Change { seq, time, ip });
            any = true;
        }
        st.trim();
        let last = st.next_seq - 1;
        if !any {
            return last;
        }
        // Into every pending set under the feed lock (see `now`), but the
        // wake-ups after it: a woken session reads the feed's time at once,
        // and must not find the lock still held for the other subscribers.
        let woken: Vec<Arc<SubShared>> = st
            .live_subscribers()
            .filter(|sub| sub.push(entries.clone(), time))
            .collect();
        drop(st);
        for sub in woken {
            // Wakes every `changed()` whose Notified future is enabled; those
            // check `pending` after enabling, so no wakeup is lost.
            sub.notify.notify_waiters();
        }
        last
    }

    /// The feed's current time: `clock` (the caller's reading of the wall
    /// clock), or the newest time already recorded if later. Every change
    /// published after this call is recorded at or after the value returned,
    /// and every change published before it is already in the subscribers'
    /// pending sets: so a base-time taken from here, capped at the oldest
    /// pending change, never skips an undelivered change (RFC 7724 §7.4).
    pub fn now(&self, clock: u32) -> u32 {
        let mut st = self.inner.lock();
        st.observe(clock);
        st.newest
    }

    /// Rebuild the history at start-up from what the store knows: `changes`
    /// as `(time, ip)`, one per address, recorded no earlier than the change
    /// was published by the previous run. Subscribers are not told (there
    /// are none yet at start-up).
    pub fn seed(&self, mut changes: Vec<(u32, Ipv4Addr)>) {
        changes.sort_unstable();
        let mut st = self.inner.lock();
        for (time, ip) in changes {
            let time = time.max(st.horizon);
            let seq = st.next_seq;
            st.next_seq += 1;
            st.history.push_back(Change { seq, time, ip });
            st.newest = st.newest.max(time);
        }
        st.trim();
    }

    pub fn last_seq(&self) -> u64 {
        self.inner.lock().next_seq - 1
    }

    /// The earliest query-start-time the history answers completely
    /// (inclusive comparisons: a change at exactly `since` is included).
    pub fn horizon(&self) -> u32 {
        self.inner.lock().horizon
    }

    /// Addresses changed at or after `since`, deduplicated, in order of
    /// their latest change; `None` when `since` is before the horizon
    /// (RFC 7724 §7.4: DataMissing). `now` lets age-trimming happen here too.
    pub fn changed_since(&self, since: u32, now: u32) -> Option<Vec<Ipv4Addr>> {
        let mut st = self.inner.lock();
        st.observe(now);
        if since < st.horizon {
            return None;
        }
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
        self.inner.lock().history.iter().copied().collect()
    }

    /// Register a subscriber; it sees every change published after this call.
    pub fn subscribe(&self) -> Subscription {
        let shared = Arc::new(SubShared::default());
        // Registered under the feed lock, so no concurrent publish is half-seen.
        self.inner.lock().subscribers.push(Arc::downgrade(&shared));
        Subscription { shared }
    }

    pub fn subscribers(&self) -> usize {
        self.inner.lock().live_subscribers().count()
    }
}

#[derive(Default)]
struct SubShared {
    pending: Mutex<PendingSet>,
    notify: tokio::sync::Notify,
}

impl SubShared {
    /// Add to the pending set; true if an address was not pending before
    /// (the subscriber must be woken).
    fn push(&self, entries: impl Iterator<Item = (Ipv4Addr, Latest)>, time: u32) -> bool {
        let mut p = self.pending.lock();
        entries.fold(false, |acc, (ip, latest)| p.insert(ip, latest, time) | acc)
    }
}

/// A subscriber's pending set of addresses: insertion-ordered, deduplicated.
/// Dropping it unsubscribes.
pub struct Subscription {
    shared: Arc<SubShared>,
}

impl Subscription {
    /// Resolves when the pending set is non-empty (immediately if it already is).
    pub async fn changed(&self) {
        loop {
            // Enable the Notified future before checking, so a publish
            // between the check and the await still wakes us.
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self.shared.pending.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Move up to `n` addresses from the front of the pending set into `out`.
    pub fn take(&self, n: usize, out: &mut Vec<Ipv4Addr>) {
        self.shared.pending.lock().take(n, out);
    }

    /// Move up to `n` pending entries into `out`, in order of their latest
    /// change: each address with the latest committed binding the feed saw
    /// for it (None: read it from the store) and that change's feed time.
    /// Returns the change time of the first entry still pending (None: the
    /// set is now empty).
    pub fn take_entries(&self, n: usize, out: &mut Vec<PendingEntry>) -> Option<u32> {
        self.shared.pending.lock().take_entries(n, out)
    }

    /// The change time of the first entry not yet taken (None: nothing pending).
    pub fn oldest_pending(&self) -> Option<u32> {
        self.shared.pending.lock().oldest()
    }

    pub fn pending(&self) -> usize {
        self.shared.pending.lock().len()
    }

    /// Add addresses (catch-up) as of `time`, which must come from
    /// [`ChangeFeed::now`] so that pending times stay in order.
    pub fn extend(&self, ips: &[Ipv4Addr], time: u32) {
        if self.shared.push(ips.iter().map(|&ip| (ip, None)), time) {
            self.shared.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    fn feed(max_age: u32, max_count: usize) -> ChangeFeed {
        ChangeFeed::new(HistoryLimits { max_age, max_count }, 100)
    }

    #[test]
    fn seqs_are_consecutive() {
        let f = feed(1000, 1000);
        assert_eq!(f.last_seq(), 0);
        assert_eq!(f.publish(100, &[ip(1), ip(2)]), 2);
        assert_eq!(f.publish(101, &[]), 2);
        assert_eq!(f.publish(101, &[ip(3)]), 3);
        let seqs: Vec<u64> = f.changes().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn changed_since_is_inclusive_and_dedups_by_latest() {
        let f = feed(1000, 1000);
        f.publish(110, &[ip(1), ip(2)]);
        f.publish(120, &[ip(3), ip(1)]);
        assert_eq!(f.changed_since(99, 120), None);
        assert_eq!(f.changed_since(100, 120), Some(vec![ip(2), ip(3), ip(1)]));
        assert_eq!(f.changed_since(110, 120), Some(vec![ip(2), ip(3), ip(1)]));
        assert_eq!(f.changed_since(111, 120), Some(vec![ip(3), ip(1)]));
        assert_eq!(f.changed_since(120, 120), Some(vec![ip(3), ip(1)]));
        assert_eq!(f.changed_since(121, 120), Some(vec![]));
    }

    #[test]
    fn count_trim_moves_horizon_past_trimmed_second() {
        let f = feed(1000, 2);
        f.publish(110, &[ip(1)]);
        f.publish(110, &[ip(2)]);
        assert_eq!(f.horizon(), 100);
        f.publish(111, &[ip(3)]);
        // ip(1) at 110 was trimmed; ip(2) at 110 remains but 110 is incomplete.
        assert_eq!(f.horizon(), 111);
        assert_eq!(f.changed_since(110, 111), None);
        assert_eq!(f.changed_since(111, 111), Some(vec![ip(3)]));
    }

    #[test]
    fn age_trim_relative_to_newest_time() {
        let f = feed(10, 1000);
        f.publish(100, &[ip(1)]);
        f.publish(105, &[ip(2)]);
        f.publish(110, &[ip(3)]);
        assert_eq!(f.horizon(), 100, "age exactly max_age is kept");
        // Asking with a later `now` trims too.
        assert_eq!(f.changed_since(105, 115), Some(vec![ip(2), ip(3)]));
        assert_eq!(f.horizon(), 101);
        assert_eq!(f.changed_since(100, 115), None);
        assert_eq!(f.changed_since(121, 121), Some(vec![]));
        assert_eq!(f.horizon(), 111);
        assert!(f.changes().is_empty());
    }

    #[test]
    fn clock_going_back_is_recorded_as_newest() {
        let f = feed(1000, 1000);
        f.publish(120, &[ip(1)]);
        f.publish(115, &[ip(2)]);
        assert_eq!(f.changes()[1].time, 120);
        assert_eq!(f.changed_since(120, 120), Some(vec![ip(1), ip(2)]));
    }

    #[test]
    fn subscription_dedups_in_order_of_latest_change() {
        let f = feed(1000, 1000);
        let s = f.subscribe();
        f.publish(100, &[ip(1), ip(2), ip(1)]);
        s.extend(&[ip(3), ip(2)], f.now(100));
        f.publish(101, &[ip(4)]);
        assert_eq!(s.pending(), 4);
        let mut out = Vec::new();
        s.take(2, &mut out);
        assert_eq!(out, vec![ip(1), ip(3)]);
        f.publish(102, &[ip(1)]);
        out.clear();
        s.take(10, &mut out);
        assert_eq!(out, vec![ip(2), ip(4), ip(1)]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn subscription_memory_bounded_by_distinct_addresses() {
        let f = feed(10, 10);
        let s = f.subscribe();
        for t in 0..10_000u32 {
            f.publish(100 + t, &[ip(t % 7)]);
        }
        assert_eq!(s.pending(), 7);
        assert!(
            s.shared.pending.lock().queue_len() <= 2 * 7 + 65,
            "stale places compacted"
        );
        let mut out = Vec::new();
        s.take(100, &mut out);
        assert_eq!(out, vec![ip(4), ip(5), ip(6), ip(0), ip(1), ip(2), ip(3)]);
    }

    #[test]
    fn only_changes_after_subscribe_and_drop_unsubscribes() {
        let f = feed(1000, 1000);
        f.publish(100, &[ip(1)]);
        let s = f.subscribe();
        let s2 = f.subscribe();
        assert_eq!(f.subscribers(), 2);
        f.publish(100, &[ip(2)]);
        let mut out = Vec::new();
        s.take(10, &mut out);
        assert_eq!(out, vec![ip(2)]);
        drop(s2);
        assert_eq!(f.subscribers(), 1);
        drop(s);
        f.publish(100, &[ip(3)]);
        assert_eq!(f.subscribers(), 0);
    }

    #[test]
    fn changed_wakes_without_losing_notifications() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let f = Arc::new(feed(1_000_000, 1_000_000));
            // Already pending: immediate.
            let s = f.subscribe();
            f.publish(100, &[ip(0)]);
            tokio::time::timeout(Duration::from_secs(5), s.changed())
                .await
                .expect("immediate");
            let mut out = Vec::new();
            s.take(1, &mut out);

            // Racing publisher: every published address is eventually taken.
            const N: u32 = 20_000;
            let pubf = f.clone();
            let publisher = tokio::spawn(async move {
                for i in 1..=N {
                    pubf.publish(100, &[ip(i)]);
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
            let mut got = 0;
            while got < N as usize {
                tokio::time::timeout(Duration::from_secs(5), s.changed())
                    .await
                    .expect("lost wakeup");
                out.clear();
                s.take(usize::MAX, &mut out);
                got += out.len();
            }
            publisher.await.expect("publisher");
            assert_eq!(got, N as usize);
        });
    }

    #[test]
    fn pending_entry_holds_the_latest_committed_binding() {
        let f = feed(3600, 100);
        let sub = f.subscribe();
        let mut b = crate::Binding::available(ip(1));
        b.cltt = 1;
        f.publish_bindings(110, &[Arc::new(Committed::new(b.clone()))]);
        f.publish(111, &[ip(2)]);
        b.cltt = 2;
        f.publish_bindings(112, &[Arc::new(Committed::new(b.clone()))]);
        let mut out = Vec::new();
        assert_eq!(sub.take_entries(10, &mut out), None, "nothing left");
        assert_eq!(out.len(), 2, "deduplicated by address");
        assert_eq!(
            (out[0].ip, out[0].latest.clone(), out[0].time),
            (ip(2), None, 111)
        );
        assert_eq!(out[1].ip, ip(1), "moved behind by its later change");
        assert_eq!(
            out[1].latest.as_ref().map(|c| c.binding.cltt),
            Some(2),
            "the newest state wins"
        );
        assert_eq!(out[1].time, 112, "the latest change's time");
    }

    #[test]
    fn take_reports_the_oldest_change_left_pending() {
        let f = feed(3600, 100);
        let sub = f.subscribe();
        f.publish(110, &[ip(1)]);
        f.publish(112, &[ip(2)]);
        f.publish(115, &[ip(1), ip(3)]);
        assert_eq!(sub.oldest_pending(), Some(112));
        let mut out = Vec::new();
        assert_eq!(sub.take_entries(1, &mut out), Some(115));
        assert_eq!(out[0].ip, ip(2));
        assert_eq!(sub.take_entries(5, &mut out), None);
        assert_eq!(sub.oldest_pending(), None);
        let ips: Vec<Ipv4Addr> = out.iter().map(|e| e.ip).collect();
        assert_eq!(ips, vec![ip(2), ip(1), ip(3)]);
    }

    #[test]
    fn now_is_never_behind_a_recorded_change() {
        let f = feed(3600, 100);
        f.publish(50, &[ip(1)]);
        assert_eq!(f.now(40), 100, "the start time is already recorded");
        assert_eq!(f.now(120), 120);
        // A change handled before that reading but published after it is
        // recorded at the reading, so a requestor resuming from it gets it.
        f.publish(119, &[ip(2)]);
        assert_eq!(f.changed_since(120, 120), Some(vec![ip(2)]));
    }

    #[test]
    fn seeded_history_answers_catch_up_after_a_restart() {
        // Horizon 900: what the store vouches for; 1000: the restart.
        let f = ChangeFeed::new(
            HistoryLimits {
                max_age: 100,
                max_count: 3,
            },
            900,
        );
        f.seed(vec![(995, ip(2)), (990, ip(1)), (1000, ip(3))]);
        assert_eq!(f.now(1000), 1000);
        assert_eq!(f.changed_since(1000, 1000), Some(vec![ip(3)]));
        assert_eq!(f.changed_since(991, 1000), Some(vec![ip(2), ip(3)]));
        assert_eq!(f.changed_since(900, 1000), Some(vec![ip(1), ip(2), ip(3)]));
        assert_eq!(f.changed_since(899, 1000), None, "before the horizon");
        let f = ChangeFeed::new(
            HistoryLimits {
                max_age: 100,
                max_count: 2,
            },
            900,
        );
        f.seed(vec![(990, ip(1)), (995, ip(2)), (999, ip(3))]);
        assert_eq!(
            f.horizon(),
            991,
            "count trim moves the horizon past the dropped time"
        );
        assert_eq!(f.changed_since(991, 1000), Some(vec![ip(2), ip(3)]));
    }
}
