//! Per-subnet allocation cursor: walks the pools in order, wrapping, so
//! addresses are spread and a freed address is not reused at once. With
//! several servers on one database, each walks its own share of the pool
//! first (see [`Share`]), so two servers rarely pick the same address.

use crate::config::Subnet;

/// This server's share of every pool: part `index` of `of` equal parts of
/// the pool's addresses, in order. The whole pool when it runs alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub of: usize,
}

impl Share {
    pub const WHOLE: Share = Share { index: 0, of: 1 };

    /// `(first position, count)` of this share in a pool of `total` addresses.
    fn bounds(self, total: u64) -> (u64, u64) {
        let of = self.of.max(1) as u64;
        let index = (self.index as u64).min(of - 1);
        let lo = total * index / of;
        let hi = total * (index + 1) / of;
        (lo, hi - lo)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PoolCursor {
    /// Position of the next address to look at, in the subnet's pool order.
    next: u64,
}

impl PoolCursor {
    /// Visit every address of `share` once, starting after the last one
    /// handed out (or at the share's start); `free` decides. Returns the
    /// first accepted address.
    pub fn find(
        &mut self,
        subnet: &Subnet,
        share: Share,
        mut free: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let (lo, len) = share.bounds(subnet.pool_size());
        if len == 0 {
            return None;
        }
        let mut pos = if (lo..lo + len).contains(&self.next) {
            self.next
        } else {
            lo
        };
        let mut walk = Walk::at(subnet, pos);
        for _ in 0..len {
            let ip = walk.ip;
            pos += 1;
            if pos == lo + len {
                pos = lo;
                walk = Walk::at(subnet, lo);
            } else {
                walk.advance(subnet);
            }
            if free(ip) {
                self.next = pos;
                return Some(ip);
            }
        }
        self.next = pos;
        None
    }
}

/// An address of the pools and where it is, stepped in pool order.
struct Walk {
    pool: usize,
    ip: u32,
}

impl Walk {
    /// The address at position `pos` (< the pools' size).
    fn at(subnet: &Subnet, mut pos: u64) -> Walk {
        for (i, &(lo, hi)) in subnet.pools.iter().enumerate() {
            let size = u64::from(hi - lo) + 1;
            if pos < size {
                return Walk {
                    pool: i,
                    ip: lo + pos as u32,
                };
            }
            pos -= size;
        }
        Walk {
            pool: 0,
            ip: subnet.pools.first().map_or(0, |p| p.0),
        }
    }

    fn advance(&mut self, subnet: &Subnet) {
        let (_, hi) = subnet.pools[self.pool];
        if self.ip < hi {
            self.ip += 1;
        } else {
            self.pool = (self.pool + 1) % subnet.pools.len();
            self.ip = subnet.pools[self.pool].0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(pools: &[(u32, u32)]) -> Subnet {
        let text = "[server]\nserver_id = \"10.0.0.1\"\n[dhcp]\nlisten = \"127.0.0.1:1067\"\n\
                    [[subnet]]\nprefix = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.19\"]\n\
                    relay_addresses = [\"10.0.0.1\"]\n";
        let mut s = crate::config::Config::parse(text, "t")
            .expect("config")
            .subnets
            .remove(0);
        s.pools = pools.to_vec();
        s
    }

    fn walk_all(s: &Subnet, share: Share) -> Vec<u32> {
        let mut c = PoolCursor::default();
        let mut seen = Vec::new();
        while let Some(ip) = c.find(s, share, |ip| !seen.contains(&ip)) {
            seen.push(ip);
        }
        seen
    }

    #[test]
    fn the_whole_pool_in_order_across_ranges() {
        let s = subnet(&[(10, 12), (20, 21)]);
        assert_eq!(walk_all(&s, Share::WHOLE), vec![10, 11, 12, 20, 21]);
    }

    #[test]
    fn shares_split_the_pool_without_overlap_or_gap() {
        let s = subnet(&[(10, 12), (20, 23)]);
        let parts: Vec<Vec<u32>> = (0..3)
            .map(|index| walk_all(&s, Share { index, of: 3 }))
            .collect();
        assert_eq!(parts, vec![vec![10, 11], vec![12, 20], vec![21, 22, 23]]);
    }

    #[test]
    fn a_share_wraps_within_itself() {
        let s = subnet(&[(10, 19)]);
        let share = Share { index: 1, of: 2 };
        let mut c = PoolCursor::default();
        assert_eq!(c.find(&s, share, |_| true), Some(15));
        assert_eq!(c.find(&s, share, |ip| ip != 16), Some(17));
        assert_eq!(c.find(&s, share, |ip| ip == 15), Some(15), "wrapped");
        assert_eq!(c.find(&s, share, |ip| ip < 15), None, "never leaves it");
    }

    #[test]
    fn more_servers_than_addresses_leaves_some_shares_empty() {
        let s = subnet(&[(10, 11)]);
        assert_eq!(walk_all(&s, Share { index: 0, of: 3 }), Vec::<u32>::new());
        assert_eq!(walk_all(&s, Share { index: 2, of: 3 }), vec![11]);
    }
}
