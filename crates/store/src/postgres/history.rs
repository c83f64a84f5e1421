//! The Active Leasequery history after a restart (rebuilt from the rows'
//! `changed_at`, as SQLite's), the change log's reader by id, and its pruning
//! by the history's limits.

use postgres::Client;

use super::codec::{decode, ip_key_to_ip, COLUMNS};
use super::schema::{error_text, HISTORY_SINCE};
use crate::{Binding, ChangeFeed, HistoryLimits, StoreError};

/// As SQLite's: `changed_at` is the handling time, the feed recorded the
/// change after the commit; seeded entries are this much later.
const PUBLISH_SLACK: u32 = 60;

/// Prune the log every this many committed changes.
const PRUNE_EVERY: usize = 4_096;

pub(super) fn rebuild(
    client: &mut Client,
    limits: HistoryLimits,
    now: u32,
) -> Result<ChangeFeed, postgres::Error> {
    let since: i64 = client
        .query_one("SELECT value FROM meta WHERE key = $1", &[&HISTORY_SINCE])?
        .try_get(0)?;
    let since = u32::try_from(since.max(0)).unwrap_or(u32::MAX);
    let horizon = since.max(now.saturating_sub(limits.max_age)).min(now);
    let rows = client.query(
        "SELECT ip, changed_at FROM bindings WHERE changed_at >= $1",
        &[&i64::from(horizon.saturating_sub(PUBLISH_SLACK))],
    )?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let (key, changed_at): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let changed_at = u32::try_from(changed_at).unwrap_or(u32::MAX);
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

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Increasing in commit order of the rows' inserts (an identity column).
    pub id: i64,
    /// The instance whose commit wrote it.
    pub instance_id: String,
    /// The handling time of its commit (u32 seconds).
    pub changed_at: u32,
    pub binding: Binding,
}

/// Up to `limit` log rows with `id > after`, ascending by id.
///
/// Ids are allocated at insert, so a transaction still in flight may commit
/// a smaller id than one already visible: a reader that must see every row
/// (a later phase: the feed across instances) keeps the gaps it saw and
/// reads them again until they fill or age out.
pub(super) fn changes_after(
    client: &mut Client,
    after: i64,
    limit: usize,
) -> Result<Vec<LoggedChange>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "SELECT id, instance_id, changed_at, {COLUMNS} FROM lease_changes \
                 WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            &[&after, &limit],
        )
        .map_err(|e| StoreError::Postgres(error_text(&e)))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let binding = decode(&row, 3)?;
        let bad = |what: &str| StoreError::Corrupt {
            ip: binding.ip.to_string(),
            reason: format!("lease_changes.{what}"),
        };
        let id: i64 = row.try_get(0).map_err(|_| bad("id"))?;
        let instance_id: String = row.try_get(1).map_err(|_| bad("instance_id"))?;
        let changed_at: i64 = row.try_get(2).map_err(|_| bad("changed_at"))?;
        out.push(LoggedChange {
            id,
            instance_id,
            changed_at: u32::try_from(changed_at).map_err(|_| bad("changed_at"))?,
            binding,
        });
    }
    Ok(out)
}

/// Deletes log rows older than `max_age` or beyond the newest `max_count`,
/// every [`PRUNE_EVERY`] committed changes (after the commit, so it never
/// delays a ticket; a failure is logged and retried next time).
pub(super) struct Pruner {
    limits: HistoryLimits,
    since_last: usize,
}

impl Pruner {
    pub(super) fn new(limits: HistoryLimits) -> Self {
        Pruner {
            limits,
            since_last: 0,
        }
    }

    pub(super) fn after_commit(&mut self, client: &mut Client, changes: usize) {
        self.since_last += changes;
        if self.since_last < PRUNE_EVERY {
            return;
        }
        self.since_last = 0;
        if let Err(e) = prune(client, self.limits, crate_now()) {
            tracing::warn!(error = %error_text(&e), "pruning lease_changes failed");
        }
    }
}

fn crate_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

pub(super) fn prune(
    client: &mut Client,
    limits: HistoryLimits,
    now: u32,
) -> Result<u64, postgres::Error> {
    let oldest = i64::from(now.saturating_sub(limits.max_age));
    let keep = i64::try_from(limits.max_count).unwrap_or(i64::MAX);
    client.execute(
        "DELETE FROM lease_changes WHERE changed_at < $1 \
         OR id <= (SELECT max(id) FROM lease_changes) - $2",
        &[&oldest, &keep],
    )
}
