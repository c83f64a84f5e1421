//! A lease record → the binding Leaseline stores for its address (pure:
//! `now` is given). docs/migration.md, "What is imported", says the same.

use leaseline_proto::{Binding, DhcpState};

use crate::{LeaseRecord, RecordState};

/// The server configuration's say in the mapping.
#[derive(Debug, Clone, Copy)]
pub struct MappingRules {
    /// `[dhcp] expired_grace`: how long an expired or released address
    /// stays reserved for its client before it is available again.
    pub expired_grace: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Stored as it is.
    Binding(Binding),
    /// An active lease whose end has passed: stored as EXPIRED (the
    /// address stays its client's for the grace time, then is available).
    Expired(Binding),
    /// Nothing to store: the address is available (dhcpd `free`/`backup`,
    /// a deleted Kea lease).
    Available,
}

pub fn to_binding(rec: &LeaseRecord, now: u32, rules: MappingRules) -> Mapped {
    let ends = rec.ends.unwrap_or(u32::MAX);
    let starts = rec.starts.or(rec.cltt).unwrap_or(0);
    let mut b = Binding::available(rec.ip);
    if let Some((htype, hw)) = &rec.hardware {
        b.htype = *htype;
        b.chaddr = hw.clone();
    }
    b.client_id = rec.client_id.clone();
    b.hostname = rec.hostname.clone();
    b.vendor_class_id = rec.vendor_class_id.clone();
    b.circuit_id = rec.circuit_id.clone();
    b.remote_id = rec.remote_id.clone();
    b.cltt = rec.cltt.or(rec.starts).unwrap_or(0);
    b.lease_time = rec
        .lease_time
        .unwrap_or_else(|| ends.saturating_sub(starts));
    let after_end = |b: &mut Binding, state| {
        b.state = state;
        b.state_since = rec.ends.unwrap_or(now).min(now);
        b.expiry = b.state_since.saturating_add(rules.expired_grace);
    };
    match rec.state {
        RecordState::Free | RecordState::Backup | RecordState::Removed => Mapped::Available,
        RecordState::Active if ends > now => {
            b.state = DhcpState::Active;
            b.state_since = starts;
            b.expiry = ends;
            Mapped::Binding(b)
        }
        RecordState::Active => {
            after_end(&mut b, DhcpState::Expired);
            Mapped::Expired(b)
        }
        RecordState::Expired => {
            after_end(&mut b, DhcpState::Expired);
            Mapped::Binding(b)
        }
        RecordState::Released => {
            after_end(&mut b, DhcpState::Released);
            Mapped::Binding(b)
        }
        RecordState::Abandoned => {
            // dhcpd and Kea both hold a declined / abandoned address until
            // the record's end.
            b.state = DhcpState::Abandoned;
            b.state_since = starts.min(now);
            b.expiry = ends;
            Mapped::Binding(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const RULES: MappingRules = MappingRules { expired_grace: 600 };

    fn rec(state: RecordState, ends: u32) -> LeaseRecord {
        let mut r = LeaseRecord::new(1, Ipv4Addr::new(10, 0, 0, 1));
        r.state = state;
        r.hardware = Some((1, vec![2, 0, 0, 0, 0, 1]));
        r.client_id = Some(vec![1, 2, 0, 0, 0, 0, 1]);
        (r.starts, r.cltt, r.ends) = (Some(ends - 3600), Some(ends - 1800), Some(ends));
        r
    }

    #[test]
    fn states_map_as_documented() {
        let now = 10_000;
        let Mapped::Binding(b) = to_binding(&rec(RecordState::Active, now + 60), now, RULES) else {
            panic!()
        };
        assert_eq!(
            (b.state, b.expiry, b.cltt, b.lease_time),
            (DhcpState::Active, now + 60, now + 60 - 1800, 3600)
        );
        assert_eq!(
            (b.htype, b.chaddr.len(), b.client_id.is_some()),
            (1, 6, true)
        );
        let Mapped::Expired(b) = to_binding(&rec(RecordState::Active, now - 60), now, RULES) else {
            panic!()
        };
        assert_eq!(
            (b.state, b.state_since, b.expiry),
            (DhcpState::Expired, now - 60, now + 540)
        );
        let Mapped::Binding(b) = to_binding(&rec(RecordState::Abandoned, now + 60), now, RULES)
        else {
            panic!()
        };
        assert_eq!((b.state, b.expiry), (DhcpState::Abandoned, now + 60));
        for s in [RecordState::Free, RecordState::Backup, RecordState::Removed] {
            assert_eq!(to_binding(&rec(s, now + 60), now, RULES), Mapped::Available);
        }
    }
}
