//! Per-subnet allocation cursor: walks the pools in order, wrapping, so
//! addresses are spread and a freed address is not reused at once.

use crate::config::Subnet;

#[derive(Debug, Clone, Default)]
pub struct PoolCursor {
    pool: usize,
    next: u32,
}

impl PoolCursor {
    /// Visit every pool address once, starting after the last one handed
    /// out; `free` decides. Returns the first accepted address.
    pub fn find(&mut self, subnet: &Subnet, mut free: impl FnMut(u32) -> bool) -> Option<u32> {
        let total = subnet.pool_size();
        if total == 0 {
            return None;
        }
        if self.pool >= subnet.pools.len() {
            self.pool = 0;
        }
        let (lo, hi) = subnet.pools[self.pool];
        if self.next < lo || self.next > hi {
            self.next = lo;
        }
        for _ in 0..total {
            let ip = self.next;
            self.advance(subnet);
            if free(ip) {
                return Some(ip);
            }
        }
        None
    }

    fn advance(&mut self, subnet: &Subnet) {
        let (_, hi) = subnet.pools[self.pool];
        if self.next < hi {
            self.next += 1;
        } else {
            self.pool = (self.pool + 1) % subnet.pools.len();
            self.next = subnet.pools[self.pool].0;
        }
    }
}
