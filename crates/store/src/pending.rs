//! An Active Leasequery connection's own pending work (architecture, data
//! flow 4): a deduplicated set of addresses (catch-up, and changes read
//! back from the history after a skip), each with the feed time of its
//! latest change, kept in order of that time; their state is read from the
//! store when they are sent. Its size is bounded by the number of distinct
//! addresses, whatever the reader's speed.
//!
//! Why that order: a requestor resumes from the highest base-time it saw
//! (RFC 7724 §6.3), and catch-up sends every address changed at or after it.
//! Sending addresses in order of their latest change lets each message's
//! base-time be the next unsent address's change time: never past a change
//! the requestor has not got, and never before the change the message
//! itself carries (so its relative times stay non-negative).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;

use leaseline_proto::WireSlot;

use crate::Binding;

/// A committed binding as the feed hands it to every subscriber, with a
/// slot where the first Active Leasequery session to send it leaves its
/// encoding for the others (see `leaseline_proto::shared_wire`).
#[derive(Debug)]
pub struct Committed {
    pub binding: Binding,
    pub wire: WireSlot,
}

impl Committed {
    pub fn new(binding: Binding) -> Self {
        Committed {
            binding,
            wire: WireSlot::new(),
        }
    }
}

impl PartialEq for Committed {
    /// The binding; the encoding slot is a cache.
    fn eq(&self, other: &Self) -> bool {
        self.binding == other.binding
    }
}

impl Eq for Committed {}

/// The latest committed binding of a pending address, when the publisher
/// had it (None: the reader looks it up, e.g. for catch-up addresses).
pub type Latest = Option<Arc<Committed>>;

/// One pending address as handed to the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub ip: Ipv4Addr,
    /// Latest committed binding (None: read it from the store).
    pub latest: Latest,
    /// Feed time of the address's latest change.
    pub time: u32,
}

struct Member {
    time: u32,
    /// Which `order` slot is this member's current place.
    stamp: u64,
}

#[derive(Default)]
pub(crate) struct PendingSet {
    /// `(ip, stamp)` in order of change time; a slot whose stamp is not its
    /// member's is a stale place left by a later change (skipped, and
    /// compacted away so the queue stays within twice the members).
    order: VecDeque<(Ipv4Addr, u64)>,
    /// foldhash: a pending set is touched per change per subscriber, where
    /// SipHash showed in profiles; seeded per set, so keys stay unpredictable.
    members: HashMap<Ipv4Addr, Member, foldhash::fast::RandomState>,
    next_stamp: u64,
    /// The latest time inserted since the set was last empty, and the
    /// earliest time inserted out of order (behind it) since then: the
    /// front's time is then no longer the oldest, and `oldest` answers this
    /// floor instead (earlier is safe: a resuming requestor gets
    /// duplicates, never a gap).
    latest_time: Option<u32>,
    floor: Option<u32>,
}

/// Above this capacity an emptied set gives its memory back.
const SHRINK_ABOVE: usize = 4096;

impl PendingSet {
    /// Record a change of `ip` at feed time `time` (normally non-decreasing
    /// across calls; see `floor`): the address goes to the back. Returns
    /// whether the address was not pending.
    pub(crate) fn insert(&mut self, ip: Ipv4Addr, time: u32) -> bool {
        match self.latest_time {
            Some(t) if time < t => self.floor = Some(self.floor.map_or(time, |f| f.min(time))),
            _ => self.latest_time = Some(time),
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.push_back((ip, stamp));
        let added = match self.members.entry(ip) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let m = e.get_mut();
                m.time = time;
                m.stamp = stamp;
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Member { time, stamp });
                true
            }
        };
        if self.order.len() > 2 * self.members.len() + 64 {
            let members = &self.members;
            self.order
                .retain(|(ip, s)| members.get(ip).is_some_and(|m| m.stamp == *s));
        }
        added
    }

    /// Move up to `n` entries from the front into `out`. Returns the change
    /// time of the first entry left pending (None when none are left).
    pub(crate) fn take_entries(&mut self, n: usize, out: &mut Vec<PendingEntry>) -> Option<u32> {
        let mut taken = 0;
        while taken < n {
            let Some((ip, stamp)) = self.order.pop_front() else {
                break;
            };
            match self.members.entry(ip) {
                std::collections::hash_map::Entry::Occupied(e) if e.get().stamp == stamp => {
                    let m = e.remove();
                    out.push(PendingEntry {
                        ip,
                        latest: None,
                        time: m.time,
                    });
                    taken += 1;
                }
                _ => {} // a stale place
            }
        }
        self.shrink();
        self.oldest()
    }

    /// The change time of the front entry: the oldest latest-change pending
    /// (or earlier, after an out-of-order insert).
    pub(crate) fn oldest(&mut self) -> Option<u32> {
        while let Some(&(ip, stamp)) = self.order.front() {
            match self.members.get(&ip) {
                Some(m) if m.stamp == stamp => {
                    return Some(self.floor.map_or(m.time, |f| f.min(m.time)))
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        None
    }

    fn shrink(&mut self) {
        if self.members.is_empty() {
            self.latest_time = None;
            self.floor = None;
            self.order.clear();
            if self.order.capacity() > SHRINK_ABOVE {
                self.order = VecDeque::new();
                self.members = HashMap::default();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    #[cfg(test)]
    pub(crate) fn queue_len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}
