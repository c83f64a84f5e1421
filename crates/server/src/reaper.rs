//! The reaper: the time-driven state transitions of the bindings (leases
//! that ran out, holds that ended; RFC 6926 §6.2.8 states), decided by the
//! engine at the time given, committed, once a second and on the control
//! API's `leases-reclaim`.

use std::sync::Arc;
use std::time::Duration;

use leaseline_store::{LeaseStore, StoreError};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::error;

use crate::clock::unix_now;
use crate::engine::Engine;

/// Drives time-based state transitions once a second and commits them.
pub(crate) async fn run(
    engine: Arc<Mutex<Engine>>,
    store: Arc<dyn LeaseStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut watchdog = crate::systemd::Watchdog::from_env();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = reclaim(&engine, store.as_ref(), unix_now()).await {
            error!(error = %e, event = "reclaim_failed", "could not commit state transitions");
        }
        // A pass done (even one the database refused): the engine lives.
        watchdog.alive(std::time::Instant::now());
    }
}

/// Commit the state transitions due at `now` (leases that ran out, holds
/// that ended): the reaper each second, and the control API's
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
