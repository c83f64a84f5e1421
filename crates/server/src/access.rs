//! Who may ask: requestor allowlists and a per-requestor rate limit, so a
//! scan flood from one requestor cannot starve DHCP clients or other requestors.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Requestor networks allowed to use a leasequery service. Empty: nobody.
#[derive(Debug, Clone, Default)]
pub struct NetworkAllowlist {
    nets: Vec<IpNet>,
}

impl NetworkAllowlist {
    pub fn new(nets: Vec<IpNet>) -> Self {
        NetworkAllowlist { nets }
    }
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// Token bucket per requestor address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
    max_tracked: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: f64,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`; `rate == 0` disables the limit.
    pub fn new(rate: u32, burst: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            max_tracked: 65_536,
        }
    }

    /// May `who` send one more request at time `now` (seconds, fractional)?
    pub fn allow(&mut self, who: IpAddr, now: f64) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if self.buckets.len() >= self.max_tracked && !self.buckets.contains_key(&who) {
            // Forget requestors whose bucket has refilled: they lose nothing.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets
                .retain(|_, b| b.tokens + (now - b.last) * rate < burst);
            if self.buckets.len() >= self.max_tracked {
                return false;
            }
        }
        let b = self.buckets.entry(who).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        b.tokens = (b.tokens + (now - b.last).max(0.0) * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_networks_and_mapped_v4() {
        let a = NetworkAllowlist::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        assert!(a.allows("127.0.0.9".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.9".parse().unwrap()));
        assert!(a.allows("2001:db8::1".parse().unwrap()));
        assert!(!a.allows("10.0.0.1".parse().unwrap()));
        assert!(!NetworkAllowlist::default().allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut r = RateLimiter::new(10, 5);
        let who: IpAddr = "127.0.0.1".parse().unwrap();
        let granted = (0..20).filter(|_| r.allow(who, 100.0)).count();
        assert_eq!(granted, 5, "burst");
        // 0.5 s later, 5 more tokens.
        let granted = (0..20).filter(|_| r.allow(who, 100.5)).count();
        assert_eq!(granted, 5);
        // Another requestor has its own bucket.
        assert!(r.allow("127.0.0.2".parse().unwrap(), 100.5));
    }
}
