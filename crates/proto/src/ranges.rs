//! Configured addresses (pools, reservations) as sorted, disjoint,
//! inclusive ranges of u32, walked address by address: a bulk query for
//! all addresses answers each of them, leased or not (RFC 6926 §8.2).

/// Merge ranges (and single addresses) into sorted, disjoint ranges.
pub fn merge_ranges(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// A position in merged ranges; the ranges are passed to each call, so a
/// walk can be kept beside them.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    idx: usize,
    next: Option<u32>,
}

impl Walk {
    pub(crate) fn new(ranges: &[(u32, u32)]) -> Walk {
        Walk {
            idx: 0,
            next: ranges.first().map(|r| r.0),
        }
    }

    /// The next address, not taken.
    pub(crate) fn peek(&self) -> Option<u32> {
        self.next
    }

    /// Step past the next address.
    pub(crate) fn advance(&mut self, ranges: &[(u32, u32)]) {
        let Some(cur) = self.next else { return };
        let hi = ranges.get(self.idx).map_or(cur, |r| r.1);
        self.next = if cur < hi {
            Some(cur + 1)
        } else {
            self.idx += 1;
            ranges.get(self.idx).map(|r| r.0)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(ranges: &[(u32, u32)]) -> Vec<u32> {
        let mut w = Walk::new(ranges);
        let mut v = Vec::new();
        while let Some(a) = w.peek() {
            v.push(a);
            w.advance(ranges);
        }
        v
    }

    #[test]
    fn ranges_merge_and_walk_each_address_once() {
        let m = merge_ranges(vec![(10, 12), (5, 5), (11, 14), (16, 16), (15, 15)]);
        assert_eq!(m, vec![(5, 5), (10, 16)]);
        assert_eq!(all(&m), vec![5, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(all(&[(u32::MAX, u32::MAX)]), vec![u32::MAX]);
        assert!(all(&[]).is_empty());
    }
}
