//! "The last record of an address wins" over a stream, in memory that
//! grows with the number of addresses, not of records: per address, the
//! line of its last record and what is needed to spot two clients
//! holding it at once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::Ipv4Addr;

use crate::{LeaseRecord, RecordState};

/// Two live leases of one address for different clients: a record for a
/// client starts while an earlier record gave the address to another
/// client until later. The later record wins (as it does for the server
/// that wrote the file); the import reports both lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub ip: Ipv4Addr,
    pub earlier_line: u64,
    pub line: u64,
}

#[derive(Clone, Copy)]
struct Last {
    line: u64,
    client: u64,
    /// End of an active lease (u32::MAX: never); 0 when not active.
    live_until: u32,
}

#[derive(Default)]
pub struct LastRecord {
    by_ip: HashMap<u32, Last, BuildHasherDefault<AddressHasher>>,
}

/// The map's hash of an IPv4 address, instead of SipHash, whose lookups
/// were 14 % of a million-address import's CPU (perf). The keys come from
/// the operator's own file, so there is no one to flood the map with
/// colliding keys.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    /// The address itself in the low bits (the table's bucket: addresses
    /// close in the file are close in memory, as lease files tend to list
    /// them) and a multiplicative hash of it in the top seven (the table's
    /// tag within a group).
    fn write_u32(&mut self, n: u32) {
        let n = u64::from(n);
        self.0 = n | (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (0x7F << 57));
    }
}

impl LastRecord {
    pub fn new() -> Self {
        Self::default()
    }

    /// Addresses seen.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Take `rec` as its address's latest record (records in file order).
    pub fn see(&mut self, rec: &LeaseRecord) -> Option<Conflict> {
        let client = client_key(rec);
        let live_until = match rec.state {
            RecordState::Active => rec.ends.unwrap_or(u32::MAX),
            _ => 0,
        };
        let starts = rec.starts.or(rec.cltt).unwrap_or(0);
        let new = Last {
            line: rec.line,
            client,
            live_until,
        };
        let earlier = self.by_ip.insert(u32::from(rec.ip), new)?;
        (live_until != 0 && earlier.live_until > starts && earlier.client != client).then_some(
            Conflict {
                ip: rec.ip,
                earlier_line: earlier.line,
                line: rec.line,
            },
        )
    }

    /// Whether `rec` is the last record of its address (after every record
    /// was [`LastRecord::see`]n).
    pub fn is_last(&self, rec: &LeaseRecord) -> bool {
        self.is_last_at(rec.ip, rec.line)
    }

    /// Whether the record of `ip` on `line` is its last.
    pub fn is_last_at(&self, ip: Ipv4Addr, line: u64) -> bool {
        self.by_ip
            .get(&u32::from(ip))
            .is_some_and(|l| l.line == line)
    }
}

/// Who holds the lease: client-id, else hardware address (RFC 2131 §4.2).
fn client_key(rec: &LeaseRecord) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match (&rec.client_id, &rec.hardware) {
        (Some(id), _) => (0u8, id).hash(&mut h),
        (None, Some(hw)) => (1u8, hw).hash(&mut h),
        (None, None) => 2u8.hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: u64, mac: u8, state: RecordState, starts: u32, ends: u32) -> LeaseRecord {
        let mut r = LeaseRecord::new(line, Ipv4Addr::new(10, 0, 0, 1));
        r.state = state;
        r.hardware = Some((1, vec![2, 0, 0, 0, 0, mac]));
        (r.starts, r.ends) = (Some(starts), Some(ends));
        r
    }

    #[test]
    fn the_last_record_wins_and_overlapping_clients_are_conflicts() {
        let mut last = LastRecord::new();
        let a = rec(1, 1, RecordState::Active, 100, 200);
        let renewed = rec(2, 1, RecordState::Active, 150, 250);
        let other_after = rec(3, 2, RecordState::Active, 260, 400);
        let other_during = rec(4, 3, RecordState::Active, 300, 500);
        assert_eq!(last.see(&a), None);
        assert_eq!(last.see(&renewed), None, "a renewal by the same client");
        assert_eq!(last.see(&other_after), None, "a new client after the end");
        assert_eq!(
            last.see(&other_during),
            Some(Conflict {
                ip: a.ip,
                earlier_line: 3,
                line: 4
            })
        );
        assert!(last.is_last(&other_during) && !last.is_last(&a));
        assert_eq!(last.len(), 1);
    }
}
