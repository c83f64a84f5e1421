//! Time arithmetic on u32 Unix seconds. The wire carries ages and remaining
//! durations relative to `now` (RFC 4388 §6.1, RFC 6926 §6.2.3–§6.2.4); a
//! time in the future or the past never makes these underflow.

/// Seconds from `then` to `now`; 0 when `then` is in the future.
pub fn age(now: u32, then: u32) -> u32 {
    now.saturating_sub(then)
}

/// Seconds from `now` until `until`; 0 when `until` is already past.
pub fn remaining(now: u32, until: u32) -> u32 {
    until.saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates() {
        assert_eq!(age(100, 40), 60);
        assert_eq!(age(40, 100), 0);
        assert_eq!(age(0, u32::MAX), 0);
        assert_eq!(remaining(40, 100), 60);
        assert_eq!(remaining(100, 40), 0);
        assert_eq!(remaining(u32::MAX, 0), 0);
    }
}
