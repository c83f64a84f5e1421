//! DHCP service on or off (`dhcp-disable` / `dhcp-enable` of the control
//! API, as Kea's): while off, client messages are dropped (counted as
//! "dhcp disabled"); Leasequery goes on. An optional maximum period turns
//! it back on by itself, so a forgotten `dhcp-disable` cannot leave a
//! network without DHCP.

use std::sync::atomic::{AtomicU64, Ordering};

/// Off until this Unix time (0: on; `u64::MAX`: until `dhcp-enable`).
#[derive(Debug, Default)]
pub struct DhcpSwitch {
    off_until: AtomicU64,
}

impl DhcpSwitch {
    /// Off from `now`, for `max_period` seconds or until enabled.
    pub fn disable(&self, max_period: Option<u32>, now: u32) {
        let until = match max_period {
            Some(p) => u64::from(now) + u64::from(p),
            None => u64::MAX,
        };
        self.off_until.store(until, Ordering::Relaxed);
    }

    pub fn enable(&self) {
        self.off_until.store(0, Ordering::Relaxed);
    }

    /// Whether client messages are to be dropped at `now` (one load: the
    /// DHCP path asks for each message).
    pub fn is_off(&self, now: u32) -> bool {
        u64::from(now) < self.off_until.load(Ordering::Relaxed)
    }

    /// Seconds left before it turns back on by itself (None: on, or off
    /// until enabled).
    pub fn remaining(&self, now: u32) -> Option<u64> {
        let until = self.off_until.load(Ordering::Relaxed);
        (until != u64::MAX && u64::from(now) < until).then(|| until - u64::from(now))
    }
}

#[cfg(test)]
mod tests {
    use super::DhcpSwitch;

    #[test]
    fn on_off_for_a_period_and_until_enabled() {
        let s = DhcpSwitch::default();
        assert!(!s.is_off(100));
        s.disable(Some(30), 100);
        assert!(s.is_off(100) && s.is_off(129));
        assert_eq!(s.remaining(110), Some(20));
        assert!(!s.is_off(130), "back on by itself after max-period");
        s.disable(None, 100);
        assert!(s.is_off(u32::MAX));
        assert_eq!(s.remaining(100), None);
        s.enable();
        assert!(!s.is_off(100));
    }
}
