//! The write side of a leasequery connection. RFC 6926 §8.2: a connection
//! that blocks while the server sends replies is closed after
//! BULK_LQ_DATA_TIMEOUT; RFC 7724 §8.2: after ACTIVE_LQ_SEND_TIMEOUT. Both
//! bound a write that makes no progress, not a slow requestor that keeps
//! reading: every byte that goes out restarts the clock.

use std::time::{Duration, Instant};

pub(crate) struct Sending {
    limit: Duration,
    /// Output handed to the driver and not all written yet: since when no
    /// byte went out (or since it was handed over).
    waiting: Option<Instant>,
    /// When everything handed over was last written (or the session began).
    drained_at: Instant,
}

impl Sending {
    pub(crate) fn new(limit: Duration, now: Instant) -> Self {
        Sending {
            limit,
            waiting: None,
            drained_at: now,
        }
    }

    /// The driver's buffer went from `before` to `after` bytes unwritten.
    pub(crate) fn handed(&mut self, before: usize, after: usize, now: Instant) {
        if after > before && self.waiting.is_none() {
            self.waiting = Some(now);
        }
    }

    /// Some bytes went out; `left` are still to write (0: all written).
    pub(crate) fn written(&mut self, left: usize, now: Instant) {
        if left == 0 {
            self.waiting = None;
            self.drained_at = now;
        } else {
            self.waiting = Some(now);
        }
    }

    /// When the write counts as blocked (None: nothing is waiting).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.waiting.map(|t| t + self.limit)
    }

    pub(crate) fn stalled(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Everything handed over is written.
    pub(crate) fn drained(&self) -> bool {
        self.waiting.is_none()
    }

    pub(crate) fn drained_at(&self) -> Instant {
        self.drained_at
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_write_without_progress_times_out() {
        let t0 = Instant::now();
        let s10 = Duration::from_secs(10);
        let mut s = Sending::new(s10, t0);
        assert_eq!(s.deadline(), None);
        s.handed(0, 100, t0);
        assert_eq!(s.deadline(), Some(t0 + s10));
        // A slow reader: a byte every 9 s keeps it going.
        s.written(99, t0 + Duration::from_secs(9));
        s.handed(99, 200, t0 + Duration::from_secs(9));
        s.written(1, t0 + Duration::from_secs(18));
        assert!(!s.stalled(t0 + Duration::from_secs(27)));
        assert!(s.stalled(t0 + Duration::from_secs(28)));
        s.written(0, t0 + Duration::from_secs(30));
        assert!(s.drained());
        assert_eq!(s.drained_at(), t0 + Duration::from_secs(30));
        assert_eq!(s.deadline(), None);
    }
}
