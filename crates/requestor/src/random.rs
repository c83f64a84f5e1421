//! The requestor's one source of randomness: transaction ids (xids) of
//! every query it sends and the mirror's reconnection jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// 32 unpredictable bits: SipHash keyed with the standard library's random
/// keys (drawn from the operating system once per thread), over a
/// process-wide call count and the clock. Two calls never repeat in
/// practice, and one run's values say nothing about another's (RFC 2131
/// §4.1 asks for random xids). Not for secrets.
pub fn random_u32() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let v = h.finish();
    (v as u32) ^ ((v >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_differ() {
        let v: std::collections::HashSet<u32> = (0..1000).map(|_| random_u32()).collect();
        assert!(v.len() >= 999, "{} distinct of 1000", v.len());
    }
}
