//! The reaper: the time-driven state transitions of the bindings (leases
//! that ran out, holds that ended; RFC 6926 §6.2.8 states), decided by the
//! engine at the time given, committed every `[dhcp] reclaim_interval`
//! seconds (1 by default; 0: never on its own) and on the control API's
//! `leases-reclaim`.

use std::sync::Arc;
use std::time::Duration;

use leaseline_store::{LeaseStore, StoreError};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::error;

use crate::clock::unix_now;
use crate::engine::Engine;

/// Wakes once a second: commits the time-based state transitions when a
/// pass is due (the interval is read from the running configuration each
/// time, so a reload changes it), and pings the systemd watchdog either way.
pub(crate) async fn run(
    engine: Arc<Mutex<Engine>>,
    store: Arc<dyn LeaseStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut watchdog = crate::systemd::Watchdog::from_env();
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = unix_now();
        let interval = engine.lock().config().reclaim_interval;
        if due(last, now, interval) {
            last = now;
            if let Err(e) = reclaim(&engine, store.as_ref(), now).await {
                error!(error = %e, event = "reclaim_failed", "could not commit state transitions");
            }
        }
        // A wake-up done (even one whose pass the database refused, or
        // with no pass due): the engine's lock was free, the engine lives.
        watchdog.alive(std::time::Instant::now());
    }
}

/// Whether a pass is due at `now` when the last one was at `last` (0:
/// none yet): `interval` seconds later, never when it is 0. A clock set
/// back before `last` makes one due at once rather than none for as long.
fn due(last: u32, now: u32, interval: u32) -> bool {
    interval != 0 && (now < last || now - last >= interval)
}

/// Commit the state transitions due at `now` (leases that ran out, holds
/// that ended): the reaper's passes, and the control API's
/// `leases-reclaim`. Returns how many bindings changed.
pub(crate) async fn reclaim(
    engine: &Mutex<Engine>,
    store: &dyn LeaseStore,
    now: u32,
) -> Result<usize, StoreError> {
    // Queued under the engine's lock, like the DHCP path's commits: the
    // store applies changes in the engine's order (see udp.rs).
    let (ticket, n) = {
        let mut engine = engine.lock();
        let changed = engine.tick(now);
        if changed.is_empty() {
            return Ok(0);
        }
        let n = changed.len();
        (store.submit_decided(changed, now), n)
    };
    match ticket.await {
        Ok(Ok(_)) => {
            tracing::debug!(
                count = n,
                event = "state_transitions_committed",
                "state transitions committed"
            );
            Ok(n)
        }
        // Another server changed some of these addresses first (renewed
        // a lease, say): its change stands, and reaches this engine
        // through the shared store's log.
        Ok(Err(StoreError::Refused { ip, reason, stored })) => {
            tracing::debug!(count = n, %ip, reason, event = "state_transitions_refused", "state transitions refused in part");
            engine.lock().follow_stored(&stored);
            Ok(n)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::WriterGone),
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    const T: u32 = 1_700_000_000;

    #[test]
    fn the_first_pass_is_due_at_once() {
        assert!(due(0, T, 1));
        assert!(due(0, T, 3600));
    }

    #[test]
    fn a_pass_is_due_interval_seconds_after_the_last() {
        assert!(!due(T, T, 1), "one pass a second at most");
        assert!(due(T, T + 1, 1));
        assert!(!due(T, T + 29, 30));
        assert!(due(T, T + 30, 30));
        assert!(due(T, T + 100, 30), "late passes are not skipped");
    }

    #[test]
    fn interval_zero_is_never_due() {
        assert!(!due(0, T, 0));
        assert!(!due(T, T + 1_000_000, 0));
        assert!(!due(T, T - 10, 0));
    }

    #[test]
    fn a_clock_set_back_makes_a_pass_due() {
        assert!(due(T, T - 10, 30));
    }
}
