//! Reading a change log whose ids can be missing, in id order, each row
//! once: the pure rule, no database here (`follow` does the reading).
//!
//! Commits run at once (schema version 4): each takes its ids under the
//! log lock for an instant, then writes and commits in its own time. So a
//! reader can see id 11 before id 10: 10's commit is still running, or it
//! failed and 10 will never exist. Both look the same from one read. What
//! tells them apart: every commit holds the writers' lock (shared) from
//! before it takes ids to its end, and takes an xid before that, so once
//! every holder seen *after* the gap was found has ended, a still-missing
//! id below a visible one will never come. Until then the rows after a gap
//! wait: every instance's feed gets the log in id order, which is the
//! order of the log times.

use std::time::{Duration, Instant};

/// A gap younger than this is waited out (the commit holding it is still
/// flushing, and its NOTIFY will wake the reader); older, the reader asks
/// which commits are running and waits for those to end.
pub(super) const GAP_SETTLE: Duration = Duration::from_millis(100);

/// Where a reader of the log is: every id up to `last` is published or
/// will never exist; `gap`, the first missing id that a visible one
/// follows, while it is not known to be final.
#[derive(Debug, Default)]
pub(super) struct LogCursor {
    last: i64,
    gap: Option<Gap>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Gap {
    /// The first missing id.
    at: i64,
    /// When it was first seen.
    seen: Instant,
    /// The commits running when the gap was first checked (their virtual
    /// transaction ids); None: not checked yet.
    waiting_for: Option<Vec<String>>,
}

/// What to do with the ids of one read (ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Take {
    /// Publish this many rows from the start of the read: the ones that
    /// follow the last published id without a gap.
    pub(super) publish: usize,
    /// A gap is old enough to ask which commits are running
    /// ([`LogCursor::handle_running`]).
    pub(super) check_running: bool,
}

impl LogCursor {
    pub(super) fn new(last: i64) -> Self {
        LogCursor { last, gap: None }
    }

    /// Every id up to this one is published or final.
    pub(super) fn last(&self) -> i64 {
        self.last
    }

    /// Rows wait behind a gap.
    pub(super) fn waiting(&self) -> bool {
        self.gap.is_some()
    }

    /// The ids of one read of `id > last()`, ascending, at `now`.
    pub(super) fn handle_read(&mut self, ids: &[i64], now: Instant) -> Take {
        let publish = ids
            .iter()
            .enumerate()
            .take_while(|&(i, &id)| id == self.last + 1 + i as i64)
            .count();
        if let Some(&id) = publish.checked_sub(1).and_then(|i| ids.get(i)) {
            self.last = id;
        }
        if publish == ids.len() {
            // Nothing visible after a missing id: nothing waits.
            self.gap = None;
            return Take {
                publish,
                check_running: false,
            };
        }
        let at = self.last + 1;
        match &self.gap {
            Some(g) if g.at == at => {}
            _ => {
                self.gap = Some(Gap {
                    at,
                    seen: now,
                    waiting_for: None,
                })
            }
        }
        let seen = self.gap.as_ref().map_or(now, |g| g.seen);
        Take {
            publish,
            check_running: now.saturating_duration_since(seen) >= GAP_SETTLE,
        }
    }

    /// The commits running now (holders of the writers' lock). True when
    /// the gap is final: every commit that could still write it has ended.
    /// Then read again (a commit may have ended with its rows between the
    /// read and this check) and [`LogCursor::skip_gap`] if still missing.
    pub(super) fn handle_running(&mut self, running: &[String]) -> bool {
        let Some(gap) = self.gap.as_mut() else {
            return false;
        };
        match &mut gap.waiting_for {
            // The first check: the gap's commit, if any is still running,
            // is one of these.
            None => {
                if running.is_empty() {
                    return true;
                }
                gap.waiting_for = Some(running.to_vec());
                false
            }
            Some(waiting) => {
                waiting.retain(|w| running.contains(w));
                waiting.is_empty()
            }
        }
    }

    /// After a final gap and a read of `id > last()` that starts at
    /// `next_visible`: the ids before it will never exist. Returns how
    /// many ids were skipped.
    pub(super) fn skip_gap(&mut self, next_visible: i64) -> i64 {
        self.gap = None;
        let skipped = (next_visible - 1 - self.last).max(0);
        self.last = self.last.max(next_visible - 1);
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        // A fixed origin: the rule only compares instants.
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_millis(ms)
    }

    #[test]
    fn ids_without_a_gap_are_published_and_nothing_waits() {
        let mut c = LogCursor::new(10);
        let t = c.handle_read(&[11, 12, 13], at(0));
        assert_eq!(t.publish, 3);
        assert!(!t.check_running);
        assert_eq!(c.last(), 13);
        assert!(!c.waiting());
    }

    #[test]
    fn rows_after_a_missing_id_wait_and_the_ones_before_it_go() {
        let mut c = LogCursor::new(10);
        let t = c.handle_read(&[11, 13, 14], at(0));
        assert_eq!(t.publish, 1);
        assert_eq!(c.last(), 11);
        assert!(c.waiting());
        assert!(!t.check_running, "a young gap is waited out");
    }

    #[test]
    fn a_gap_filled_by_its_commit_publishes_everything_in_id_order() {
        let mut c = LogCursor::new(10);
        c.handle_read(&[12, 13], at(0));
        let t = c.handle_read(&[11, 12, 13], at(5));
        assert_eq!(t.publish, 3);
        assert_eq!(c.last(), 13);
        assert!(!c.waiting());
    }

    #[test]
    fn an_old_gap_asks_which_commits_run_and_waits_for_those() {
        let mut c = LogCursor::new(10);
        c.handle_read(&[12], at(0));
        let t = c.handle_read(&[12], at(150));
        assert!(t.check_running);
        // Two commits running: the gap's may be one of them.
        assert!(!c.handle_running(&["3/7".into(), "4/9".into()]));
        // One ended, one still runs (and a new one began: not waited for).
        assert!(!c.handle_running(&["4/9".into(), "5/1".into()]));
        // Both ended: whatever is still missing never comes.
        assert!(c.handle_running(&["5/1".into()]));
        assert_eq!(c.skip_gap(12), 1);
        assert_eq!(c.last(), 11);
        let t = c.handle_read(&[12], at(160));
        assert_eq!(t.publish, 1);
        assert!(!c.waiting());
    }

    #[test]
    fn no_commit_running_makes_the_gap_final_at_the_first_check() {
        let mut c = LogCursor::new(0);
        c.handle_read(&[4, 5], at(0));
        assert!(c.handle_read(&[4, 5], at(100)).check_running);
        assert!(c.handle_running(&[]));
        // Ids 1..3 were pruned before this reader came, or their commits
        // failed.
        assert_eq!(c.skip_gap(4), 3);
        assert_eq!(c.handle_read(&[4, 5], at(101)).publish, 2);
        assert_eq!(c.last(), 5);
    }

    #[test]
    fn a_new_gap_further_on_starts_its_own_wait() {
        let mut c = LogCursor::new(10);
        c.handle_read(&[12], at(0));
        // 11 came; now 13 is missing, seen at 150: young again.
        let t = c.handle_read(&[11, 12, 14], at(150));
        assert_eq!(t.publish, 2);
        assert!(!t.check_running);
        assert!(c.handle_read(&[14], at(250)).check_running);
    }

    #[test]
    fn a_check_with_no_gap_left_changes_nothing() {
        let mut c = LogCursor::new(3);
        assert!(!c.handle_running(&[]));
        assert_eq!(c.last(), 3);
    }

    #[test]
    fn an_empty_read_publishes_nothing_and_clears_the_wait() {
        let mut c = LogCursor::new(3);
        c.handle_read(&[5], at(0));
        // The rows after the gap were pruned meanwhile.
        let t = c.handle_read(&[], at(1));
        assert_eq!(t.publish, 0);
        assert!(!c.waiting());
        assert_eq!(c.last(), 3);
    }
}
