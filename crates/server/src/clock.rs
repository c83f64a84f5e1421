//! The wall clock, read in one place: the front ends and the reaper pass
//! the time it gives to the engine and the session state machines, which
//! never read it themselves.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it, `u32::MAX` after 2106): the
/// time of DHCP bindings and of the Leasequery options (RFC 4388 §6.1).
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}
