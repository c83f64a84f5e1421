//! Change feed: every committed change as `(seq, time, ip)`, a bounded
//! history for Active Leasequery catch-up (RFC 7724 §7.4), and per-subscriber
//! pending sets of addresses (not messages), so a slow subscriber costs at
//! most one entry per distinct address.

use std::net::Ipv4Addr;

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
    _todo: (),
}

impl ChangeFeed {
    /// `start_time`: changes before it are unknown (history starts empty).
    pub fn new(_limits: HistoryLimits, _start_time: u32) -> Self {
        todo!()
    }
    /// Assign sequence numbers, append to the history (trimming it by age
    /// relative to `time` and by count), add each ip to every subscriber's
    /// pending set and wake them. Returns the last seq assigned.
    pub fn publish(&self, _time: u32, _ips: &[Ipv4Addr]) -> u64 {
        todo!()
    }
    pub fn last_seq(&self) -> u64 {
        todo!()
    }
    /// The earliest query-start-time the history answers completely
    /// (inclusive comparisons: a change at exactly `since` is included).
    pub fn horizon(&self) -> u32 {
        todo!()
    }
    /// Addresses changed at or after `since`, deduplicated, in order of
    /// their latest change; `None` when `since` is before the horizon
    /// (RFC 7724 §7.4: DataMissing). `now` lets age-trimming happen here too.
    pub fn changed_since(&self, _since: u32, _now: u32) -> Option<Vec<Ipv4Addr>> {
        todo!()
    }
    /// Register a subscriber; it sees every change published after this call.
    pub fn subscribe(&self) -> Subscription {
        todo!()
    }
    pub fn subscribers(&self) -> usize {
        todo!()
    }
}

/// A subscriber's pending set of addresses: insertion-ordered, deduplicated.
/// Dropping it unsubscribes.
pub struct Subscription {
    _todo: (),
}

impl Subscription {
    /// Resolves when the pending set is non-empty (immediately if it already is).
    pub async fn changed(&self) {
        todo!()
    }
    /// Move up to `n` addresses from the front of the pending set into `out`.
    pub fn take(&self, _n: usize, _out: &mut Vec<Ipv4Addr>) {
        todo!()
    }
    pub fn pending(&self) -> usize {
        todo!()
    }
    /// Add addresses (catch-up); ones already pending keep their place.
    pub fn extend(&self, _ips: &[Ipv4Addr]) {
        todo!()
    }
}
