//! A subscriber of the change feed: a cursor into the shared live log, and
//! a pending set for what it must send that is not read from the log:
//! catch-up addresses, and the changes it skipped in the log when it fell
//! too far behind (read back from the feed's history, a chunk at a time).
//! The pending set goes first, then the skipped changes: both are older
//! than what is unread in the log.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Group, Shared};
use crate::pending::{PendingEntry, PendingSet};

/// The part of a subscription the feed reaches (under the feed lock, then
/// this lock: always in that order; the subscriber itself takes only this).
pub(super) struct SubShared {
    state: Mutex<SubState>,
}

struct SubState {
    pending: PendingSet,
    /// Changes from this seq up to the cursor were skipped in the log (the
    /// subscriber fell too far behind): they are read from the feed's
    /// history before anything more from the log. Only the seq and the
    /// time of the first are kept, so skipping costs the publisher nothing
    /// per change.
    skipped: Option<Skipped>,
    /// The history was trimmed past skipped changes before they were read:
    /// the feed time of the first of them (the subscription cannot go on).
    lost: Option<u32>,
    /// Reading goes on at `at.items[offset]`, or past the end of `at`,
    /// with the group linked after it.
    at: Arc<Group>,
    offset: usize,
}

#[derive(Debug, Clone, Copy)]
struct Skipped {
    from: u64,
    time: u32,
}

impl SubState {
    /// The seq of the next change to read from the log.
    fn seq(&self) -> u64 {
        self.at.first + self.offset as u64
    }

    /// Step to the next group when this one is read; false when there is
    /// nothing more to read yet.
    fn advance(&mut self) -> bool {
        if self.offset < self.at.items.len() {
            return true;
        }
        match self.at.next.get() {
            Some(next) => {
                self.at = Arc::clone(next);
                self.offset = 0;
                true
            }
            None => false,
        }
    }

    /// The feed time of the next change to read from the log, if published.
    fn next_time(&self) -> Option<u32> {
        if self.offset < self.at.items.len() {
            Some(self.at.time)
        } else {
            self.at.next.get().map(|g| g.time)
        }
    }

    fn oldest(&mut self) -> Option<u32> {
        let skipped = self.skipped.map(|k| k.time);
        let behind = min_time(self.lost, skipped);
        min_time(min_time(self.pending.oldest(), behind), self.next_time())
    }
}

impl SubShared {
    /// The backlog with `end` one past the last published seq, and the
    /// feed time of the oldest change not taken yet (metrics: a look under
    /// this subscriber's lock only).
    pub(super) fn backlog(&self, end: u64) -> (Backlog, Option<u32>) {
        let mut s = self.state.lock();
        let backlog = Backlog {
            own: s.pending.len(),
            unread_log: end.saturating_sub(s.seq()) as usize,
            in_history: s.skipped.map_or(0, |k| (s.seq() - k.from) as usize),
        };
        (backlog, s.oldest())
    }

    /// Starts reading after `tail`, the last group published.
    pub(super) fn new(tail: Arc<Group>) -> Self {
        let offset = tail.items.len();
        SubShared {
            state: Mutex::new(SubState {
                pending: PendingSet::default(),
                skipped: None,
                lost: None,
                at: tail,
                offset,
            }),
        }
    }

    /// More than `behind` changes behind `tail`: skip every unread change
    /// (they stay in the feed's history, to be read from there) and read
    /// on after `tail`. O(1): the publisher calls this.
    pub(super) fn skip_if_behind(&self, tail: &Arc<Group>, behind: u64) {
        let mut s = self.state.lock();
        if tail.end().saturating_sub(s.seq()) <= behind {
            return;
        }
        if s.skipped.is_none() {
            // Nothing was read from the log since an earlier skip (the
            // skipped changes go first), so one range covers them all.
            let time = s.next_time().unwrap_or(tail.time);
            s.skipped = Some(Skipped {
                from: s.seq(),
                time,
            });
        }
        s.at = Arc::clone(tail);
        s.offset = tail.items.len();
    }
}

/// A subscription's backlog: `own` is its pending set (memory of its own,
/// at most one entry per distinct address), `unread_log` the changes it has
/// not read from the shared log (at most [`super::LIVE_LOG_CAP`]),
/// `in_history` the changes it skipped in the log, to be read from the
/// feed's history (no memory of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub own: usize,
    pub unread_log: usize,
    pub in_history: usize,
}

/// The most skipped changes moved from the history into the pending set
/// per take (the feed's lock is held meanwhile).
pub(super) const FROM_HISTORY: usize = 1024;

/// A subscriber's view of the feed: every change published after it
/// subscribed, and addresses it added itself. Dropping it unsubscribes.
pub struct Subscription {
    feed: Arc<Shared>,
    shared: Arc<SubShared>,
}

impl Subscription {
    pub(super) fn new(feed: Arc<Shared>, shared: Arc<SubShared>) -> Self {
        Subscription { feed, shared }
    }

    fn has_work(&self) -> bool {
        let mut s = self.shared.state.lock();
        !s.pending.is_empty() || s.skipped.is_some() || s.lost.is_some() || s.advance()
    }

    /// Resolves when there is something to take (immediately if there is).
    pub async fn changed(&self) {
        loop {
            // Enable the Notified future before checking, so a publish
            // between the check and the await still wakes us.
            let notified = self.feed.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.has_work() {
                return;
            }
            notified.await;
        }
    }

    /// Move up to `n` addresses into `out`, in the order of [`Subscription::take_entries`].
    pub fn take(&self, n: usize, out: &mut Vec<Ipv4Addr>) {
        let mut taken = Vec::new();
        self.take_entries(n, &mut taken);
        out.extend(taken.into_iter().map(|e| e.ip));
    }

    /// Move up to `n` entries into `out`, in order of change: each address
    /// with the committed binding of its change (None: read it from the
    /// store) and that change's feed time. Returns the change time of the
    /// first entry still to take (None: nothing is left).
    ///
    /// Changes skipped in the log come from the history, without their
    /// binding: like catch-up, they are read from the store when sent.
    pub fn take_entries(&self, n: usize, out: &mut Vec<PendingEntry>) -> Option<u32> {
        let before = out.len();
        let room = |out: &Vec<PendingEntry>| n - (out.len() - before);
        // Skipped changes, a chunk at a time, behind what is pending already.
        while room(out) > 0 && self.shared.state.lock().skipped.is_some() {
            self.read_back_skipped(room(out).min(FROM_HISTORY));
            self.shared
                .state
                .lock()
                .pending
                .take_entries(room(out), out);
        }
        // The feed's writer takes this lock too, only to skip a laggard.
        let mut s = self.shared.state.lock();
        s.pending.take_entries(room(out), out);
        let mut room = room(out);
        while room > 0 && s.skipped.is_none() && s.lost.is_none() && s.advance() {
            let (g, from) = (Arc::clone(&s.at), s.offset);
            let to = g.items.len().min(from + room);
            out.extend(g.items[from..to].iter().map(|(ip, latest)| PendingEntry {
                ip: *ip,
                latest: latest.clone(),
                time: g.time,
            }));
            room -= to - from;
            s.offset = to;
        }
        s.oldest()
    }

    /// Move up to `n` skipped changes from the feed's history into the
    /// pending set (feed lock, then this one: the publisher's order). The
    /// feed's lock is held only to copy them out: the publisher (the DHCP
    /// path) waits for it, and this runs at the leasequery threads' lower
    /// priority.
    fn read_back_skipped(&self, n: usize) {
        let mut chunk = Vec::new();
        let mut s = {
            let feed = self.feed.state.lock();
            let mut s = self.shared.state.lock();
            let Some(skipped) = s.skipped else { return };
            let end = s.seq();
            // The history holds consecutive seqs, oldest first.
            let front = feed.history.front().map_or(feed.next_seq, |c| c.seq);
            let Some(at) = skipped.from.checked_sub(front) else {
                s.lost = Some(skipped.time);
                s.skipped = None;
                return;
            };
            let at = at as usize;
            let to = end.min(skipped.from + n as u64);
            let count = (to - skipped.from) as usize;
            chunk.extend(feed.history.range(at..at + count).map(|c| (c.ip, c.time)));
            s.skipped = (to < end).then(|| Skipped {
                from: to,
                time: feed.history[at + count].time,
            });
            s
        };
        // The publisher takes this lock only to skip a laggard (rarely).
        for (ip, time) in chunk {
            s.pending.insert(ip, time);
        }
    }

    /// The history was trimmed past changes this subscriber skipped before
    /// it read them: it cannot give every address's latest state any more.
    /// The time of the first of them (cap base-time at it).
    pub fn lost(&self) -> Option<u32> {
        self.shared.state.lock().lost
    }

    /// The change time of the first entry not yet taken (None: nothing is left).
    pub fn oldest_pending(&self) -> Option<u32> {
        self.shared.state.lock().oldest()
    }

    /// Entries still to take (every unread or skipped change counts).
    pub fn pending(&self) -> usize {
        let b = self.backlog();
        b.own + b.unread_log + b.in_history
    }

    /// What is still to take, by where it is held.
    pub fn backlog(&self) -> Backlog {
        let end = self.feed.end.load(Ordering::Acquire);
        self.shared.backlog(end).0
    }

    /// Add addresses (catch-up) as of `time`, which must come from
    /// [`super::ChangeFeed::now`]; they go before what is unread in the log.
    pub fn extend(&self, ips: &[Ipv4Addr], time: u32) {
        {
            let mut s = self.shared.state.lock();
            for &ip in ips {
                s.pending.insert(ip, time);
            }
        }
        if !ips.is_empty() {
            self.feed.notify.notify_waiters();
        }
    }

    /// Entries held in this subscription's own pending set, stale places
    /// included (tests: the memory a slow subscriber costs).
    #[cfg(test)]
    pub(super) fn own_queue_len(&self) -> usize {
        self.shared.state.lock().pending.queue_len()
    }
}

pub(super) fn min_time(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
