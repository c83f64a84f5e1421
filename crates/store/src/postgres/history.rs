//! The Active Leasequery history after a restart (rebuilt from the change
//! log's times, which every instance shares), the log's reader by id, and
//! its pruning by the history's limits.

use postgres::{Client, GenericClient};

use super::codec::{decode, ip_key_to_ip, COLUMNS};
use super::schema::{
    error_text, meta_value, HISTORY_SINCE, LOG_IDS, PRUNED_ID, PRUNED_LOGGED_AT, PRUNE_LOCK,
    WRITERS_LOCK,
};
use crate::{Binding, ChangeFeed, HistoryLimits, LeaseLogLimits, StoreError};

/// Prune the log every this many committed changes.
const PRUNE_EVERY: usize = 4_096;

/// The feed at start: every address whose latest logged change is within
/// the history's reach, recorded at that change's log time (the feed's
/// clock, shared by every instance), and the log id from which this
/// instance follows the log: the last id taken, once every commit that
/// held one has ended ([`settle`]).
pub(super) fn rebuild(
    client: &mut Client,
    limits: HistoryLimits,
    now: u32,
) -> Result<(ChangeFeed, i64), StoreError> {
    let last_id = settle(client)?;
    let pg = |e: postgres::Error| StoreError::Postgres(error_text(&e));
    let since = seconds(meta_value(client, HISTORY_SINCE).map_err(pg)?);
    // Changes at the last pruned second may be gone in part: that second
    // is no longer answered in full.
    let pruned = seconds(meta_value(client, PRUNED_LOGGED_AT).map_err(pg)?).saturating_add(1);
    let horizon = since
        .max(pruned)
        .max(now.saturating_sub(limits.max_age))
        .min(now);
    let rows = client
        .query(
            "SELECT ip, max(logged_at) FROM lease_changes WHERE logged_at >= $1 GROUP BY ip",
            &[&i64::from(horizon)],
        )
        .map_err(pg)?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let (key, logged_at): (i64, i64) =
            (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        // A row whose key is not an address is reported by the readers.
        if let Some(ip) = ip_key_to_ip(key) {
            changes.push((seconds(logged_at), ip));
        }
    }
    let feed = ChangeFeed::new(limits, horizon);
    feed.seed(changes);
    feed.now(now);
    Ok((feed, last_id))
}

/// The last log id taken, once every commit that may hold one up to it
/// has ended: from then on, each id up to it is in the log or never will
/// be, so the rows read after it are exactly what this instance has not
/// seen (commits run at once and end in any order: `log_gaps`). The
/// writers' lock taken exclusively waits for every running commit (each
/// holds it shared to its end) and holds new ones back for that instant.
fn settle(client: &mut Client) -> Result<i64, StoreError> {
    let pg = |e: postgres::Error| StoreError::Postgres(error_text(&e));
    let mut tx = client.transaction().map_err(pg)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '30s'; SELECT pg_advisory_xact_lock({WRITERS_LOCK})"
    ))
    .map_err(|e| {
        StoreError::Postgres(format!(
            "waiting for the running commits: {}",
            error_text(&e)
        ))
    })?;
    let last: i64 = tx
        .query_one(&format!("SELECT last_value FROM {LOG_IDS}"), &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok(last)
}

pub(super) fn seconds(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    /// Increasing in the order commits took them (under the log lock),
    /// with a gap where a commit failed; pruning removes the oldest.
    pub id: i64,
    /// The instance whose commit wrote it.
    pub instance_id: String,
    /// The log time: the newest handling time of its commit's batch, never
    /// less than an earlier row's (u32 seconds): the feed's clock, shared by
    /// every instance.
    pub logged_at: u32,
    /// The handling time of its commit, by the writer's clock (u32 seconds).
    pub changed_at: u32,
    pub binding: Binding,
}

/// The log's rows after an id, in id order.
fn changes_after_query() -> String {
    format!(
        "SELECT id, logged_at, changed_at, {COLUMNS} FROM lease_changes \
         WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
    )
}

/// The log read, prepared once on a connection that reads the log after
/// every commit (the writer's, the follower's): parsed and planned once,
/// not at each read.
pub(super) struct LogRead(postgres::Statement);

impl LogRead {
    pub(super) fn prepare(client: &mut impl GenericClient) -> Result<Self, postgres::Error> {
        client.prepare(&changes_after_query()).map(LogRead)
    }

    /// Up to `limit` log rows with `after < id <= upto`, ascending by id,
    /// as instance `me` sees them. Commits run at once: a row can be
    /// visible before one with a smaller id (`log_gaps`).
    pub(super) fn rows(
        &self,
        client: &mut impl GenericClient,
        after: i64,
        upto: i64,
        limit: usize,
        me: &str,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&self.0, &[&after, &upto, &limit])
            .map_err(|e| StoreError::Postgres(error_text(&e)))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let binding = decode(&row, 3, me)?;
            let bad = |what: &str| StoreError::Corrupt {
                ip: binding.ip.to_string(),
                reason: format!("lease_changes.{what}"),
            };
            let id: i64 = row.try_get(0).map_err(|_| bad("id"))?;
            let logged_at: i64 = row.try_get(1).map_err(|_| bad("logged_at"))?;
            let changed_at: i64 = row.try_get(2).map_err(|_| bad("changed_at"))?;
            let instance_id: String = row.try_get(3 + 18).map_err(|_| bad("changed_by"))?;
            out.push(LoggedChange {
                id,
                instance_id,
                logged_at: u32::try_from(logged_at).map_err(|_| bad("logged_at"))?,
                changed_at: u32::try_from(changed_at).map_err(|_| bad("changed_at"))?,
                binding,
            });
        }
        Ok(out)
    }
}

/// How long the change log is kept: the longer of the Active Leasequery
/// history and the lease history (which reads the same log).
pub(super) fn retention(
    history: HistoryLimits,
    lease_log: Option<LeaseLogLimits>,
) -> HistoryLimits {
    match lease_log {
        None => history,
        Some(l) => HistoryLimits {
            max_age: history.max_age.max(l.keep_secs),
            max_count: history
                .max_count
                .max(usize::try_from(l.max_rows).unwrap_or(usize::MAX)),
        },
    }
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
        if let Err(e) = prune(client, self.limits, unix_now()) {
            tracing::warn!(error = %error_text(&e), event = "history_prune_failed", "pruning lease_changes failed");
        }
    }
}

/// Deletes what is older than the history keeps at `now` (log times), and
/// records the last id and log time deleted (ids and log times go on from
/// there). Skipped (0) while another instance prunes.
pub(super) fn prune(
    client: &mut Client,
    limits: HistoryLimits,
    now: u32,
) -> Result<u64, postgres::Error> {
    let oldest = i64::from(now.saturating_sub(limits.max_age));
    let keep = i64::try_from(limits.max_count).unwrap_or(i64::MAX);
    let mut tx = client.transaction()?;
    let free: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])?
        .try_get(0)?;
    if !free {
        // Another instance is pruning the same rows right now.
        return Ok(0);
    }
    let row = tx.query_one(
        "WITH d AS (DELETE FROM lease_changes \
             WHERE logged_at < $1 \
             OR id <= (SELECT max(id) FROM lease_changes) - $2 RETURNING id, logged_at) \
         SELECT count(*), coalesce(max(id), 0), coalesce(max(logged_at), 0) FROM d",
        &[&oldest, &keep],
    )?;
    let (count, id, logged_at): (i64, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if count > 0 {
        for (key, value) in [(PRUNED_ID, id), (PRUNED_LOGGED_AT, logged_at)] {
            tx.execute(
                "UPDATE meta SET value = greatest(value, $2) WHERE key = $1",
                &[&key, &value],
            )?;
        }
    }
    tx.commit()?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::retention;
    use crate::{HistoryLimits, LeaseLogLimits};

    #[test]
    fn the_log_is_kept_for_the_longer_of_the_two_histories() {
        let feed = HistoryLimits {
            max_age: 3_600,
            max_count: 1_000_000,
        };
        let r = retention(feed, None);
        assert_eq!((r.max_age, r.max_count), (3_600, 1_000_000));
        let r = retention(
            feed,
            Some(LeaseLogLimits {
                keep_secs: 86_400,
                max_rows: 500,
            }),
        );
        assert_eq!((r.max_age, r.max_count), (86_400, 1_000_000));
    }
}
