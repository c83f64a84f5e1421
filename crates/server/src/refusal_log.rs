//! The log of refusals (of a datagram, of a connection, of a request):
//! every refusal is counted and accounted for in the log, but a flood of
//! them cannot turn into a flood of log lines (`RefusalThrottle`). Shared
//! by every front end of the server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

/// Refusals (of a datagram, of a connection) logged in full per peer
/// address and reason within one second; the rest are summarised. Enough
/// for a requestor's honest mistakes to be logged one by one.
pub(crate) const REFUSALS_LOGGED_PER_SECOND: u32 = 32;
/// Refusals logged in full within one second, all peers together.
const REFUSALS_LOGGED_PER_SECOND_TOTAL: u32 = 256;
/// Peer and reason pairs tracked within one second; refusals of further
/// pairs (a flood from spoofed sources) are summarised together.
const REFUSAL_KEYS: usize = 1024;
/// Summary lines per second; the pairs with the fewest suppressed refusals
/// beyond these are summarised together.
const SUMMARY_LINES: usize = 32;

/// The log throttle shared by every refusal of the server: every refusal is
/// counted (stats) and accounted for in the log, but a flood cannot turn into
/// a flood of log lines. Within each one-second window, the first
/// [`REFUSALS_LOGGED_PER_SECOND`] refusals of one (peer address, reason)
/// pair are logged in full; the others are counted and reported once the
/// window ends in a single line, `suppressed N similar refusals from PEER in
/// the last second`. At most `total` refusals are logged in full in one
/// window, and at most `max_lines` summary lines (the largest) follow it:
/// the log's rate stays bounded whatever the number of (spoofed) peers.
pub(crate) struct RefusalThrottle {
    per_window: u32,
    total: u32,
    max_lines: usize,
    window: Duration,
    max_keys: usize,
    window_start: Instant,
    logged: u32,
    seen: HashMap<(IpAddr, &'static str), (u32, u64)>,
    /// Refusals of pairs beyond `max_keys` in this window (none logged in
    /// full), and how many such pairs were summarised together.
    overflow: u64,
}

/// One summary line: `suppressed` refusals of `peer` (`None`: of pairs
/// beyond the tracked number, or beyond the summary lines) for `reason`
/// were not logged in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppressed {
    pub peer: Option<IpAddr>,
    pub reason: &'static str,
    pub suppressed: u64,
}

impl RefusalThrottle {
    pub(crate) fn new(
        (per_window, total, max_lines): (u32, u32, usize),
        window: Duration,
        max_keys: usize,
        now: Instant,
    ) -> Self {
        RefusalThrottle {
            per_window,
            total,
            max_lines,
            window,
            max_keys,
            window_start: now,
            logged: 0,
            seen: HashMap::new(),
            overflow: 0,
        }
    }

    /// Ends the window if it is over: the summaries of what it suppressed.
    pub(crate) fn flush(&mut self, now: Instant) -> Vec<Suppressed> {
        if now.saturating_duration_since(self.window_start) < self.window {
            return Vec::new();
        }
        self.window_start = now;
        self.logged = 0;
        let mut out: Vec<Suppressed> = self
            .seen
            .drain()
            .filter(|(_, (_, n))| *n > 0)
            .map(|((peer, reason), (_, n))| Suppressed {
                peer: Some(peer),
                reason,
                suppressed: n,
            })
            .collect();
        // The largest first; the smallest beyond the line budget together.
        out.sort_by(|a, b| (b.suppressed, a.peer, a.reason).cmp(&(a.suppressed, b.peer, b.reason)));
        let mut rest = std::mem::take(&mut self.overflow);
        if out.len() > self.max_lines {
            rest += out
                .drain(self.max_lines.saturating_sub(1)..)
                .map(|s| s.suppressed)
                .sum::<u64>();
        }
        if rest > 0 {
            out.push(Suppressed {
                peer: None,
                reason: "(any)",
                suppressed: rest,
            });
        }
        out
    }

    /// Whether this refusal is logged in full (else it is counted).
    pub(crate) fn admit(&mut self, peer: IpAddr, reason: &'static str) -> bool {
        let len = self.seen.len();
        let entry = match self.seen.get_mut(&(peer, reason)) {
            Some(e) => e,
            None if len >= self.max_keys => {
                self.overflow += 1;
                return false;
            }
            None => self.seen.entry((peer, reason)).or_insert((0, 0)),
        };
        if entry.0 < self.per_window && self.logged < self.total {
            entry.0 += 1;
            self.logged += 1;
            true
        } else {
            entry.1 += 1;
            false
        }
    }
}

/// The server's refusal log: one per server, passed to every front end
/// (the UDP threads, the leasequery listener, the HTTP endpoint), so that
/// all their refusals share one throttle and one log rate.
pub(crate) struct RefusalLog {
    throttle: Mutex<RefusalThrottle>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog {
            throttle: Mutex::new(RefusalThrottle::new(
                (
                    REFUSALS_LOGGED_PER_SECOND,
                    REFUSALS_LOGGED_PER_SECOND_TOTAL,
                    SUMMARY_LINES,
                ),
                Duration::from_secs(1),
                REFUSAL_KEYS,
                Instant::now(),
            )),
        }
    }
}

impl RefusalLog {
    /// Logs the summaries of the last second's suppressed refusals once it
    /// is over. Cheap; called after every datagram and every 250 ms.
    pub(crate) fn flush(&self) {
        let summaries = self.throttle.lock().flush(Instant::now());
        log_summaries(summaries);
    }

    /// Whether to log this refusal in full; false when it is counted
    /// instead, for the summary line. Every refusal log of the server goes
    /// through it.
    pub(crate) fn admit(&self, peer: IpAddr, reason: &'static str) -> bool {
        let mut t = self.throttle.lock();
        let summaries = t.flush(Instant::now());
        let admit = t.admit(peer, reason);
        drop(t);
        log_summaries(summaries);
        admit
    }
}

fn log_summaries(summaries: Vec<Suppressed>) {
    for s in summaries {
        let n = s.suppressed;
        match s.peer {
            Some(peer) => warn!(
                peer = %peer,
                reason = s.reason,
                suppressed = n,
                event = "refusals_suppressed",
                "suppressed {n} similar refusals from {peer} in the last second"
            ),
            None => warn!(
                suppressed = n,
                event = "refusals_suppressed",
                "suppressed {n} similar refusals from further peers in the last second"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refusals_are_logged_in_full_up_to_the_limit_then_summarised() {
        let t0 = Instant::now();
        let mut t = RefusalThrottle::new((3, 100, 10), Duration::from_secs(1), 16, t0);
        let (a, b) = (ip("127.0.0.2"), ip("127.0.0.3"));
        let full = (0..10).filter(|_| t.admit(a, "rate limited")).count();
        assert_eq!(full, 3, "the first 3 of a peer and reason in full");
        // Another reason, another peer: their own allowance.
        assert!(t.admit(a, "malformed"));
        assert!(t.admit(b, "rate limited"));
        assert!(t.flush(t0 + Duration::from_millis(999)).is_empty());
        let s = t.flush(t0 + Duration::from_secs(1));
        assert_eq!(
            s,
            vec![Suppressed {
                peer: Some(a),
                reason: "rate limited",
                suppressed: 7
            }],
            "one summary, for the pair that went over"
        );
        // A new window: in full again, nothing left to summarise.
        assert!(t.admit(a, "rate limited"));
        assert!(t.flush(t0 + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn pairs_beyond_the_tracked_number_are_summarised_together() {
        let t0 = Instant::now();
        let mut t = RefusalThrottle::new((2, 100, 10), Duration::from_secs(1), 4, t0);
        for i in 0..4u8 {
            assert!(t.admit(IpAddr::from([10, 0, 0, i]), "malformed"));
        }
        for i in 4..100u8 {
            assert!(!t.admit(IpAddr::from([10, 0, 0, i]), "malformed"));
        }
        // A tracked pair still has its allowance.
        assert!(t.admit(IpAddr::from([10, 0, 0, 1]), "malformed"));
        let s = t.flush(t0 + Duration::from_secs(2));
        assert_eq!(
            s,
            vec![Suppressed {
                peer: None,
                reason: "(any)",
                suppressed: 96
            }]
        );
        assert!(t.seen.is_empty(), "the map is cleared every window");
    }

    #[test]
    fn the_log_rate_is_bounded_overall() {
        let t0 = Instant::now();
        // 4 in full per pair, 10 in all, 3 summary lines.
        let mut t = RefusalThrottle::new((4, 10, 3), Duration::from_secs(1), 100, t0);
        let mut full = 0;
        for i in 0..50u8 {
            for _ in 0..(i as u32 + 5) {
                full += usize::from(t.admit(IpAddr::from([10, 0, 0, i]), "malformed"));
            }
        }
        assert_eq!(full, 10);
        let s = t.flush(t0 + Duration::from_secs(1));
        assert_eq!(s.len(), 3, "{s:?}");
        // The two largest by name, everything else in one line.
        assert_eq!(s[0].peer, Some(IpAddr::from([10, 0, 0, 49])));
        assert_eq!(s[0].suppressed, 54);
        assert_eq!(s[1].peer, Some(IpAddr::from([10, 0, 0, 48])));
        assert_eq!(s[2].peer, None);
        let sent: u64 = (0..50u64).map(|i| i + 5).sum();
        assert_eq!(
            s.iter().map(|x| x.suppressed).sum::<u64>() + full as u64,
            sent,
            "every refusal is accounted for"
        );
    }
}
