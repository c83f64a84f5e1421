//! Which of two records about one address is newer (RFC 6926 §7.6), so a
//! duplicate or an out-of-order reply never overwrites a newer state.

use std::cmp::Ordering;

use leaseline_proto::DATA_SOURCE_REMOTE;

/// What the comparison needs of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Absolute CLTT, when the record carried one.
    pub cltt: Option<u32>,
    pub state_since: u32,
    pub data_source: u8,
    /// When the server built the message: the last tie-breaker.
    pub base_time: u32,
}

impl Freshness {
    /// RFC 6926 §7.6: later CLTT; with one CLTT missing, that CLTT against
    /// the other's start-time-of-state; else start-time-of-state. Then
    /// §7.6's "additional information": the later start-time-of-state (a
    /// lease that expired keeps its CLTT but starts a new state), then the
    /// later base-time (the later report), and only then local beats
    /// REMOTE. REMOTE is relative to the server that sent the record: after
    /// a mirror moves to another instance on the same database, that
    /// instance reports the first one's changes as REMOTE, and a later
    /// report of them (a RELEASE in the same second as the ACK the first
    /// instance sent) must not lose to the older local one.
    pub fn compare(&self, other: &Freshness) -> Ordering {
        let primary = match (self.cltt, other.cltt) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(a), None) => a.cmp(&other.state_since),
            (None, Some(b)) => self.state_since.cmp(&b),
            (None, None) => self.state_since.cmp(&other.state_since),
        };
        let local = |f: &Freshness| f.data_source & DATA_SOURCE_REMOTE == 0;
        primary
            .then_with(|| self.state_since.cmp(&other.state_since))
            .then_with(|| self.base_time.cmp(&other.base_time))
            .then_with(|| local(self).cmp(&local(other)))
    }

    /// Should `incoming` replace `self`? Equal records are duplicates: keep.
    pub fn superseded_by(&self, incoming: &Freshness) -> bool {
        incoming.compare(self) == Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(cltt: Option<u32>, since: u32, remote: bool, base: u32) -> Freshness {
        Freshness {
            cltt,
            state_since: since,
            data_source: u8::from(remote),
            base_time: base,
        }
    }

    #[test]
    fn later_cltt_wins() {
        assert!(f(Some(10), 10, false, 50).superseded_by(&f(Some(11), 5, false, 40)));
        assert!(!f(Some(11), 10, false, 50).superseded_by(&f(Some(10), 20, false, 60)));
    }

    #[test]
    fn missing_cltt_compares_against_start_time_of_state() {
        assert!(f(Some(10), 10, false, 50).superseded_by(&f(None, 12, false, 50)));
        assert!(!f(None, 12, false, 50).superseded_by(&f(Some(11), 11, false, 50)));
    }

    #[test]
    fn local_beats_remote_on_a_tie() {
        assert!(f(Some(10), 10, true, 50).superseded_by(&f(Some(10), 10, false, 50)));
        assert!(!f(Some(10), 10, false, 50).superseded_by(&f(Some(10), 10, true, 50)));
    }

    #[test]
    fn a_later_report_from_another_instance_wins_over_an_older_local_one() {
        // ACK from instance A (local there), then the RELEASE in the same
        // second reported by instance B (REMOTE there), after a failover.
        let ack_from_a = f(Some(100), 100, false, 100);
        let release_from_b = f(Some(100), 100, true, 103);
        assert!(ack_from_a.superseded_by(&release_from_b));
    }

    #[test]
    fn expiry_keeps_cltt_but_starts_a_new_state() {
        let active = f(Some(100), 100, false, 150);
        let expired = f(Some(100), 400, false, 400);
        assert!(active.superseded_by(&expired));
        assert!(
            !expired.superseded_by(&active),
            "an out-of-order older reply is ignored"
        );
    }

    #[test]
    fn exact_duplicate_is_not_applied_twice() {
        let a = f(Some(100), 100, false, 150);
        assert!(!a.superseded_by(&a));
    }
}
