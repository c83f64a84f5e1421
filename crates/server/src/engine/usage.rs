//! How full each pool is: the numbers behind the pool metrics and the
//! control API's statistics.

use std::net::Ipv4Addr;

use leaseline_proto::DhcpState;

use super::Engine;

/// One pool of one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The subnet's index in the configuration (Kea's subnet-id is this + 1).
    pub subnet: usize,
    pub prefix: ipnet::Ipv4Net,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    /// Addresses in the pool.
    pub total: u64,
    /// Leased now (state Active).
    pub assigned: u64,
    /// Declined by a client and held back (state Abandoned, RFC 2131 §4.3.3).
    pub declined: u64,
}

impl Engine {
    /// Every configured pool, in configuration order, with its counts.
    /// One pass over the bindings (under the engine's lock: a scrape of a
    /// 100,000-binding engine holds it for a few milliseconds).
    pub fn pool_usage(&self) -> Vec<PoolUsage> {
        let mut pools: Vec<PoolUsage> = self
            .cfg
            .subnets
            .iter()
            .enumerate()
            .flat_map(|(subnet, s)| {
                s.pools.iter().map(move |&(a, b)| PoolUsage {
                    subnet,
                    prefix: s.prefix,
                    first: Ipv4Addr::from(a),
                    last: Ipv4Addr::from(b),
                    total: u64::from(b - a) + 1,
                    assigned: 0,
                    declined: 0,
                })
            })
            .collect();
        let mut ranges: Vec<(u32, u32, usize)> = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (u32::from(p.first), u32::from(p.last), i))
            .collect();
        ranges.sort_unstable();
        for (&ip, b) in &self.leases {
            let slot = match b.state {
                DhcpState::Active => 0,
                DhcpState::Abandoned => 1,
                _ => continue,
            };
            // The last pool starting at or before `ip`, if it reaches it.
            let at = ranges.partition_point(|&(first, _, _)| first <= ip);
            let Some(&(_, last, i)) = at.checked_sub(1).and_then(|k| ranges.get(k)) else {
                continue;
            };
            if ip <= last {
                match slot {
                    0 => pools[i].assigned += 1,
                    _ => pools[i].declined += 1,
                }
            }
        }
        pools
    }
}
