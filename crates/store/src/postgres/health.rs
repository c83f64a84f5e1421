//! The database's availability as this instance sees it, logged once per
//! outage: the first failure (of the writer, the follower or a reader) is an
//! error line naming the cause, the ones after it are debug lines, and the
//! first success after it says how long it lasted.

use std::time::Instant;

use parking_lot::Mutex;

#[derive(Default)]
pub(super) struct Health {
    outage: Mutex<Option<Outage>>,
}

struct Outage {
    since: Instant,
    failures: u64,
}

impl Health {
    pub(super) fn failed(&self, who: &str, error: &str) {
        let mut outage = self.outage.lock();
        match outage.as_mut() {
            Some(o) => {
                o.failures += 1;
                tracing::debug!(
                    who,
                    error,
                    event = "database_still_unavailable",
                    "database still unavailable"
                );
            }
            None => {
                tracing::error!(
                    who,
                    error,
                    event = "database_unavailable",
                    "database unavailable: no DHCPACK leaves until commits succeed again; retrying"
                );
                *outage = Some(Outage {
                    since: Instant::now(),
                    failures: 1,
                });
            }
        }
    }

    pub(super) fn ok(&self) {
        let mut outage = self.outage.lock();
        if let Some(o) = outage.take() {
            tracing::info!(
                after_ms = o.since.elapsed().as_millis() as u64,
                failures = o.failures,
                event = "database_available",
                "database available again"
            );
        }
    }
}
