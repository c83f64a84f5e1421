//! An insertion-ordered, deduplicated set of addresses: an Active Leasequery
//! connection's pending work (architecture, data flow 4). Its size is bounded
//! by the number of distinct addresses, whatever the reader's speed.

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;

#[derive(Default)]
pub(crate) struct PendingSet {
    order: VecDeque<Ipv4Addr>,
    members: HashSet<Ipv4Addr>,
}

/// Above this capacity an emptied set gives its memory back.
const SHRINK_ABOVE: usize = 4096;

impl PendingSet {
    /// Append `ip` unless already pending (then it keeps its place).
    /// Returns whether it was added.
    pub(crate) fn insert(&mut self, ip: Ipv4Addr) -> bool {
        if self.members.insert(ip) {
            self.order.push_back(ip);
            true
        } else {
            false
        }
    }

    /// Move up to `n` addresses from the front into `out`.
    pub(crate) fn take(&mut self, n: usize, out: &mut Vec<Ipv4Addr>) {
        let n = n.min(self.order.len());
        for ip in self.order.drain(..n) {
            self.members.remove(&ip);
            out.push(ip);
        }
        if self.order.is_empty() && self.order.capacity() > SHRINK_ABOVE {
            self.order = VecDeque::new();
            self.members = HashSet::new();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
