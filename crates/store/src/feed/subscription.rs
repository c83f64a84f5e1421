//! A subscriber of the change feed: a cursor into the shared live log, and
//! a pending set for what it must send that is not read from the log:
//! catch-up addresses, and changes folded in when it fell too far behind.
//! The pending set goes first: its changes are older.

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
    /// Reading goes on at `at.items[offset]`, or past the end of `at`,
    /// with the group linked after it.
    at: Arc<Group>,
    offset: usize,
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
        min_time(self.pending.oldest(), self.next_time())
    }
}

impl SubShared {
    /// Starts reading after `tail`, the last group published.
    pub(super) fn new(tail: Arc<Group>) -> Self {
        let offset = tail.items.len();
        SubShared {
            state: Mutex::new(SubState {
                pending: PendingSet::default(),
                at: tail,
                offset,
            }),
        }
    }

    /// More than `behind` changes behind `tail`: fold every unread change
    /// into the pending set and read on after `tail`.
    pub(super) fn fold_if_behind(&self, tail: &Arc<Group>, behind: u64) {
        let mut s = self.state.lock();
        if tail.end().saturating_sub(s.seq()) <= behind {
            return;
        }
        while s.advance() {
            let g = Arc::clone(&s.at);
            for (ip, latest) in &g.items[s.offset..] {
                s.pending.insert(*ip, latest.clone(), g.time);
            }
            s.offset = g.items.len();
        }
    }
}

/// A subscription's backlog: `own` is its pending set (memory of its own,
/// at most one entry per distinct address), `unread_log` the changes it has
/// not read from the shared log (at most [`super::LIVE_LOG_CAP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub own: usize,
    pub unread_log: usize,
}

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
        !s.pending.is_empty() || s.advance()
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
    pub fn take_entries(&self, n: usize, out: &mut Vec<PendingEntry>) -> Option<u32> {
        // Only this subscriber and the feed's occasional fold take this lock.
        let mut s = self.shared.state.lock();
        let before = out.len();
        s.pending.take_entries(n, out);
        let mut room = n - (out.len() - before);
        while room > 0 && s.advance() {
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

    /// The change time of the first entry not yet taken (None: nothing is left).
    pub fn oldest_pending(&self) -> Option<u32> {
        self.shared.state.lock().oldest()
    }

    /// Entries still to take (every unread change in the log counts).
    pub fn pending(&self) -> usize {
        let b = self.backlog();
        b.own + b.unread_log
    }

    /// What is still to take, by where it is held.
    pub fn backlog(&self) -> Backlog {
        let s = self.shared.state.lock();
        let end = self.feed.end.load(Ordering::Acquire);
        Backlog {
            own: s.pending.len(),
            unread_log: end.saturating_sub(s.seq()) as usize,
        }
    }

    /// Add addresses (catch-up) as of `time`, which must come from
    /// [`super::ChangeFeed::now`]; they go before what is unread in the log.
    pub fn extend(&self, ips: &[Ipv4Addr], time: u32) {
        {
            let mut s = self.shared.state.lock();
            for &ip in ips {
                s.pending.insert(ip, None, time);
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

fn min_time(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
