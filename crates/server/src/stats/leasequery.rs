//! Leasequery's counters: UDP answers by type and refusals by reason
//! (RFC 4388 §6.4), Bulk Leasequery queries and bindings (RFC 6926), Active
//! Leasequery updates, holds, catch-ups and DataMissing (RFC 7724). Bumped
//! where the work happens, with atomics only; read at a scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use leaseline_wire::MessageType;

/// A UDP leasequery's answer (RFC 4388 §6.4.1–§6.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Active,
    Unassigned,
    Unknown,
}

impl Answer {
    pub const ALL: [Answer; 3] = [Answer::Active, Answer::Unassigned, Answer::Unknown];

    pub fn of(kind: Option<MessageType>) -> Option<Answer> {
        match kind? {
            MessageType::LeaseActive => Some(Answer::Active),
            MessageType::LeaseUnassigned => Some(Answer::Unassigned),
            MessageType::LeaseUnknown => Some(Answer::Unknown),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Answer::Active => "active",
            Answer::Unassigned => "unassigned",
            Answer::Unknown => "unknown",
        }
    }
}

/// Distinct refusal reasons kept apart; any further ones count as "other".
const REASON_SLOTS: usize = 32;

/// Counts by a `&'static str` reason without a lock: each slot is claimed
/// once by the first reason that lands in it, then only read.
struct ReasonCounts {
    slots: [(OnceLock<&'static str>, AtomicU64); REASON_SLOTS],
    other: AtomicU64,
}

impl Default for ReasonCounts {
    fn default() -> Self {
        ReasonCounts {
            slots: std::array::from_fn(|_| (OnceLock::new(), AtomicU64::new(0))),
            other: AtomicU64::new(0),
        }
    }
}

impl ReasonCounts {
    fn add(&self, reason: &'static str) {
        for (name, count) in &self.slots {
            if *name.get_or_init(|| reason) == reason {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.other.fetch_add(1, Ordering::Relaxed);
    }

    fn all(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = self
            .slots
            .iter()
            .map_while(|(name, count)| Some((*name.get()?, count.load(Ordering::Relaxed))))
            .collect();
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            out.push(("other", other));
        }
        out
    }
}

#[derive(Default)]
pub struct LeasequeryStats {
    answers: [AtomicU64; 3],
    refusals: ReasonCounts,
    bulk_queries: AtomicU64,
    bulk_bindings: AtomicU64,
    active_updates: AtomicU64,
    active_holds: AtomicU64,
    active_catch_ups: AtomicU64,
    active_data_missing: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl LeasequeryStats {
    /// A UDP leasequery answered with `kind`.
    pub fn answered(&self, kind: Option<MessageType>) {
        if let Some(a) = Answer::of(kind) {
            bump(&self.answers[a as usize], 1);
        }
    }

    /// A UDP leasequery refused (no reply).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.add(reason);
    }

    pub fn bulk_query(&self) {
        bump(&self.bulk_queries, 1);
    }

    pub fn bulk_bindings_sent(&self, n: u64) {
        bump(&self.bulk_bindings, n);
    }

    pub fn active_updates_sent(&self, n: u64) {
        bump(&self.active_updates, n);
    }

    /// An active session began waiting because DHCP is overloaded.
    pub fn active_held(&self) {
        bump(&self.active_holds, 1);
    }

    pub fn active_catch_up(&self) {
        bump(&self.active_catch_ups, 1);
    }

    pub fn active_data_missing_sent(&self) {
        bump(&self.active_data_missing, 1);
    }

    pub fn answers(&self, a: Answer) -> u64 {
        read(&self.answers[a as usize])
    }

    /// Every refusal reason seen so far, in order of first sight.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.refusals.all()
    }

    pub fn bulk_queries(&self) -> u64 {
        read(&self.bulk_queries)
    }

    pub fn bulk_bindings(&self) -> u64 {
        read(&self.bulk_bindings)
    }

    pub fn active_updates(&self) -> u64 {
        read(&self.active_updates)
    }

    pub fn active_holds(&self) -> u64 {
        read(&self.active_holds)
    }

    pub fn active_catch_ups(&self) -> u64 {
        read(&self.active_catch_ups)
    }

    pub fn active_data_missing(&self) -> u64 {
        read(&self.active_data_missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_counted_apart_and_overflow_into_other() {
        let c = ReasonCounts::default();
        c.add("rate limited");
        c.add("zero_giaddr");
        c.add("rate limited");
        assert_eq!(c.all(), vec![("rate limited", 2), ("zero_giaddr", 1)]);
        let names: Vec<&'static str> = (0..REASON_SLOTS + 3)
            .map(|i| &*Box::leak(format!("r{i}").into_boxed_str()))
            .collect();
        for n in &names {
            c.add(n);
        }
        let all = c.all();
        assert_eq!(all.len(), REASON_SLOTS + 1);
        assert_eq!(all.last(), Some(&("other", 5)));
    }

    #[test]
    fn answers_by_type() {
        let s = LeasequeryStats::default();
        s.answered(Some(MessageType::LeaseActive));
        s.answered(Some(MessageType::LeaseUnknown));
        s.answered(Some(MessageType::LeaseUnknown));
        s.answered(Some(MessageType::Ack));
        assert_eq!(
            Answer::ALL.map(|a| s.answers(a)),
            [1, 0, 2],
            "active, unassigned, unknown"
        );
    }
}
