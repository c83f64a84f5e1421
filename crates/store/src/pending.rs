//! An insertion-ordered, deduplicated set of addresses: an Active Leasequery
//! connection's pending work (architecture, data flow 4). Its size is bounded
//! by the number of distinct addresses, whatever the reader's speed.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::Binding;

/// The latest committed binding of a pending address, when the publisher
/// had it (None: the reader looks it up, e.g. for catch-up addresses).
pub type Latest = Option<Arc<Binding>>;

#[derive(Default)]
pub(crate) struct PendingSet {
    order: VecDeque<Ipv4Addr>,
    members: HashMap<Ipv4Addr, Latest>,
}

/// Above this capacity an emptied set gives its memory back.
const SHRINK_ABOVE: usize = 4096;

impl PendingSet {
    /// Append `ip` unless already pending (then it keeps its place).
    /// Returns whether it was added.
    /// A newer `latest` replaces the one held (the entry keeps its place).
    pub(crate) fn insert(&mut self, ip: Ipv4Addr, latest: Latest) -> bool {
        match self.members.entry(ip) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if latest.is_some() {
                    e.insert(latest);
                }
                false
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(latest);
                self.order.push_back(ip);
                true
            }
        }
    }

    /// Move up to `n` addresses from the front into `out`.
    pub(crate) fn take(&mut self, n: usize, out: &mut Vec<Ipv4Addr>) {
        let n = n.min(self.order.len());
        for ip in self.order.drain(..n) {
            self.members.remove(&ip);
            out.push(ip);
        }
        self.shrink();
    }

    /// Move up to `n` entries (address and latest binding) from the front into `out`.
    pub(crate) fn take_entries(&mut self, n: usize, out: &mut Vec<(Ipv4Addr, Latest)>) {
        let n = n.min(self.order.len());
        for ip in self.order.drain(..n) {
            let latest = self.members.remove(&ip).flatten();
            out.push((ip, latest));
        }
        self.shrink();
    }

    fn shrink(&mut self) {
        if self.order.is_empty() && self.order.capacity() > SHRINK_ABOVE {
            self.order = VecDeque::new();
            self.members = HashMap::new();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
