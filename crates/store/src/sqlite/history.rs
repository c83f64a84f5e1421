//! The Active Leasequery history after a restart (RFC 7724 §7.4.1): rebuilt
//! from each row's `changed_at`, so a requestor that resumes from a
//! base-time of the previous run catches up instead of getting DataMissing,
//! and a change committed just before a kill -9 is still caught up on.

use rusqlite::Connection;

use super::codec::ip_key_to_ip;
use super::schema::HISTORY_SINCE;
use crate::{ChangeFeed, HistoryLimits};

/// `changed_at` is the handling time; the previous run's feed recorded the
/// change at its publish time, after the commit's fsync. Seeded entries are
/// recorded this much later (a resuming requestor gets a few duplicates,
/// never a gap), and rows this much older than the horizon are included.
const PUBLISH_SLACK: u32 = 60;

pub(super) fn rebuild(
    conn: &Connection,
    limits: HistoryLimits,
    now: u32,
) -> rusqlite::Result<ChangeFeed> {
    let since: u32 = conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        [HISTORY_SINCE],
        |r| r.get(0),
    )?;
    // Before `since` changes were not recorded; older than max_age they are
    // not kept anyway.
    let horizon = since.max(now.saturating_sub(limits.max_age)).min(now);
    let mut stmt = conn.prepare("SELECT ip, changed_at FROM bindings WHERE changed_at >= ?1")?;
    let rows = stmt.query_map([horizon.saturating_sub(PUBLISH_SLACK)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?))
    })?;
    let mut changes = Vec::new();
    for row in rows {
        let (key, changed_at) = row?;
        // A row whose key is not an address is reported by the readers.
        if let Some(ip) = ip_key_to_ip(key) {
            changes.push((changed_at.saturating_add(PUBLISH_SLACK).min(now), ip));
        }
    }
    let feed = ChangeFeed::new(limits, horizon);
    feed.seed(changes);
    feed.now(now);
    Ok(feed)
}
