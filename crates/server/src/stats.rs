//! Counters: messages in and out by type, drops by reason. Logged
//! periodically and at shutdown; the same numbers will feed metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use parking_lot::Mutex;

mod leasequery;
pub use leasequery::{Answer, LeasequeryStats};

#[derive(Default)]
pub struct Stats {
    received: [AtomicU64; 19],
    sent: [AtomicU64; 19],
    drops: Mutex<BTreeMap<&'static str, u64>>,
    commit_failures: AtomicU64,
    /// Shared with the leasequery listener and its active sessions.
    pub leasequery: Arc<LeasequeryStats>,
}

impl Stats {
    pub fn received(&self, kind: u8) {
        if let Some(c) = self.received.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn sent(&self, kind: u8) {
        if let Some(c) = self.sent.get(kind as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn dropped(&self, reason: &'static str) {
        *self.drops.lock().entry(reason).or_insert(0) += 1;
    }
    pub fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub fn drops(&self, reason: &str) -> u64 {
        self.drops.lock().get(reason).copied().unwrap_or(0)
    }

    /// Messages received, by DHCP message type (types seen at least once).
    pub fn received_by_type(&self) -> Vec<(leaseline_wire::MessageType, u64)> {
        Self::by_type(&self.received)
    }

    /// Messages sent, by DHCP message type (types sent at least once).
    pub fn sent_by_type(&self) -> Vec<(leaseline_wire::MessageType, u64)> {
        Self::by_type(&self.sent)
    }

    /// Every drop reason counted so far, with its count.
    pub fn all_drops(&self) -> Vec<(&'static str, u64)> {
        self.drops.lock().iter().map(|(&r, &n)| (r, n)).collect()
    }

    pub fn commit_failures(&self) -> u64 {
        self.commit_failures.load(Ordering::Relaxed)
    }

    fn by_type(counters: &[AtomicU64; 19]) -> Vec<(leaseline_wire::MessageType, u64)> {
        counters
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                let t = leaseline_wire::MessageType::from_u8(u8::try_from(i).ok()?)?;
                (n > 0).then_some((t, n))
            })
            .collect()
    }

    /// One line for the log: `in: DISCOVER=10 REQUEST=10 out: OFFER=10 ... drops: reason=n`.
    pub fn summary(&self) -> String {
        let mut s = String::from("in:");
        Self::append(&mut s, &self.received);
        s.push_str(" out:");
        Self::append(&mut s, &self.sent);
        let drops = self.drops.lock();
        if !drops.is_empty() {
            s.push_str(" drops:");
            for (r, n) in drops.iter() {
                s.push_str(&format!(" \"{r}\"={n}"));
            }
        }
        let cf = self.commit_failures.load(Ordering::Relaxed);
        if cf > 0 {
            s.push_str(&format!(" commit_failures={cf}"));
        }
        s
    }

    fn append(s: &mut String, counters: &[AtomicU64; 19]) {
        for (i, c) in counters.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let name = leaseline_wire::MessageType::from_u8(i as u8)
                    .map(|t| t.name().trim_start_matches("DHCP"))
                    .unwrap_or("?");
                s.push_str(&format!(" {name}={n}"));
            }
        }
    }
}
