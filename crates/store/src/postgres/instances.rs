//! The live instances on one database: each heart-beats into `instances`;
//! those that did within [`LIVE`] share the pools, each preferring its
//! share (ordered by name) so that two instances rarely pick the same
//! address. An instance that stops heart-beating (killed, cut off) drops
//! out after [`LIVE`], and the others' shares grow over its addresses.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::Client;

use crate::StoreObserver;

/// How often an instance heart-beats.
const BEAT: Duration = Duration::from_secs(1);
/// An instance that has not heart-beaten for this long is not live.
const LIVE: Duration = Duration::from_secs(3);
/// Rows of instances gone for this long are deleted.
const FORGET: &str = "1 day";
/// A clock this far from the database's is warned about (resuming watchers
/// rely on it, see docs/postgresql.md "Time").
const SKEW_WARN: f64 = 2.0;

pub(super) struct Membership {
    me: String,
    share: Option<(usize, usize)>,
    next_beat: Instant,
    skew_warned: bool,
}

impl Membership {
    pub(super) fn new(me: String) -> Self {
        Membership {
            me,
            share: None,
            next_beat: Instant::now(),
            skew_warned: false,
        }
    }

    /// Heart-beat when due (true: it was); tell `observer` when the share
    /// changed.
    pub(super) fn beat(
        &mut self,
        client: &mut Client,
        observer: Option<&dyn StoreObserver>,
    ) -> Result<bool, postgres::Error> {
        if Instant::now() < self.next_beat {
            return Ok(false);
        }
        self.next_beat = Instant::now() + BEAT;
        client.execute(
            "INSERT INTO instances (instance_id) VALUES ($1) \
             ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()",
            &[&self.me],
        )?;
        let rows = client.query(
            "SELECT instance_id, extract(epoch FROM clock_timestamp())::float8 FROM instances \
             WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY instance_id",
            &[&LIVE.as_secs_f64()],
        )?;
        let live: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if let Some(row) = rows.first() {
            self.check_clock(row.try_get(1)?);
        }
        let index = live.iter().position(|n| *n == self.me).unwrap_or(0);
        let share = (index, live.len().max(1));
        if self.share != Some(share) {
            tracing::info!(
                index = share.0,
                of = share.1,
                live = %live.join(","),
                event = "pool_share",
                "pool share: this instance prefers its part of each pool"
            );
            self.share = Some(share);
            if let Some(o) = observer {
                o.share(share.0, share.1);
            }
            client.execute(
                &format!("DELETE FROM instances WHERE heartbeat_at < now() - interval '{FORGET}'"),
                &[],
            )?;
        }
        Ok(true)
    }

    fn check_clock(&mut self, db_now: f64) {
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let skew = local - db_now;
        if skew.abs() > SKEW_WARN && !self.skew_warned {
            tracing::warn!(
                skew_s = format!("{skew:.1}"),
                event = "clock_skew",
                "this host's clock differs from the database's: run NTP on every instance"
            );
            self.skew_warned = true;
        }
    }

    /// Stopping: the others take this instance's share over at once.
    pub(super) fn leave(&mut self, client: &mut Client) {
        if let Err(e) = client.execute("DELETE FROM instances WHERE instance_id = $1", &[&self.me])
        {
            tracing::debug!(error = %e, event = "instance_leave_failed", "could not leave the instances table");
        }
    }
}
