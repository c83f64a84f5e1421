//! A binding reply (DHCPLEASEACTIVE / DHCPLEASEUNASSIGNED, RFC 6926 §6.2)
//! turned back into the server's binding model, times made absolute.

use leaseline_proto::{relay_info_to_raw, Binding, DhcpState};
use leaseline_wire::{DhcpOption, Message, MessageType};

/// What a reply says about one address, and whether it carried a CLTT
/// (RFC 6926 §7.6 treats a missing CLTT differently from an old one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub binding: Binding,
    pub base_time: u32,
    pub has_cltt: bool,
}

pub fn from_reply(m: &Message) -> Option<Learned> {
    let leased = match m.message_type()? {
        MessageType::LeaseActive => true,
        MessageType::LeaseUnassigned => false,
        _ => return None,
    };
    if m.ciaddr.is_unspecified() {
        return None; // RFC 7724 §7.4: binding data carries a non-zero ciaddr
    }
    let mut b = Binding::available(m.ciaddr);
    b.state = if leased {
        DhcpState::Active
    } else {
        DhcpState::Available
    };
    b.htype = m.htype;
    b.chaddr = m.hw_addr().to_vec();
    let (mut base, mut cltt_age, mut state_age, mut remaining) = (None, None, None, None);
    let (mut t1, mut t2) = (None, None);
    for o in &m.options {
        match o {
            DhcpOption::BaseTime(t) => base = Some(*t),
            DhcpOption::ClientLastTransactionTime(a) => cltt_age = Some(*a),
            DhcpOption::StartTimeOfState(a) => state_age = Some(*a),
            DhcpOption::LeaseTime(l) => remaining = Some(*l),
            DhcpOption::RenewalTime(t) => t1 = Some(*t),
            DhcpOption::RebindingTime(t) => t2 = Some(*t),
            DhcpOption::DhcpState(s) => {
                if let Some(s) = DhcpState::from_u8(*s) {
                    b.state = s;
                }
            }
            DhcpOption::DataSource(d) => b.data_source = *d,
            DhcpOption::ClientId(id) => b.client_id = Some(id.clone()),
            DhcpOption::VendorClassId(v) => b.vendor_class_id = Some(v.clone()),
            DhcpOption::Hostname(h) => b.hostname = Some(h.clone()),
            DhcpOption::RelayAgentInfo(r) => {
                b.relay_info = relay_info_to_raw(r);
                b.circuit_id = r.circuit_id().map(<[u8]>::to_vec);
                b.remote_id = r.remote_id().map(<[u8]>::to_vec);
                b.relay_id = r.relay_id().map(<[u8]>::to_vec);
            }
            _ => {}
        }
    }
    // RFC 6926 §6.2.5: times are ages against base-time.
    let base = base?;
    b.cltt = cltt_age.map(|a| base.saturating_sub(a)).unwrap_or(0);
    b.state_since = state_age.map(|a| base.saturating_sub(a)).unwrap_or(base);
    b.expiry = remaining.map(|r| base.saturating_add(r)).unwrap_or(0);
    // T1 / T2 are remaining times too; kept as the binding model keeps them,
    // from the grant start, which without a lease length is the CLTT.
    let since_grant = |t: Option<u32>| {
        let at = u64::from(base) + u64::from(t?);
        u32::try_from(at.checked_sub(u64::from(b.cltt))?).ok()
    };
    if cltt_age.is_some() && b.cltt != 0 {
        b.renew_time = since_grant(t1);
        b.rebind_time = since_grant(t2);
    }
    Some(Learned {
        binding: b,
        base_time: base,
        has_cltt: cltt_age.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use leaseline_proto::build_bulk_reply;

    use super::*;

    /// The replica says what the server says: 51/58/59 from a learned
    /// binding equal the server's own, now and later, and T1 / T2 are not
    /// made up when the server sent none.
    #[test]
    fn learned_grant_gives_the_servers_times() {
        let (now, start) = (1_700_000_100, 1_700_000_000);
        let mut server = Binding::available(Ipv4Addr::new(10, 0, 0, 7));
        server.state = DhcpState::Active;
        server.htype = 1;
        server.chaddr = vec![2, 0, 0, 0, 0, 7];
        server.cltt = start;
        server.state_since = start;
        server.expiry = start + 3600;
        server.lease_time = 3600;
        server.renew_time = Some(1000);
        server.rebind_time = Some(3000);
        let prl = [51, 58, 59, 91];
        let m = build_bulk_reply(1, &server, now, false, Ipv4Addr::LOCALHOST, &prl, &[]);
        let learned = from_reply(&m).expect("a binding").binding;
        for t in [now, now + 899, now + 900, now + 2900, now + 3500] {
            let times = |b: &Binding| (b.remaining_lease(t), b.remaining_t1(t), b.remaining_t2(t));
            assert_eq!(times(&learned), times(&server), "at +{}", t - now);
        }

        server.renew_time = None;
        server.rebind_time = None;
        let m = build_bulk_reply(1, &server, now, false, Ipv4Addr::LOCALHOST, &prl, &[]);
        let learned = from_reply(&m).expect("a binding").binding;
        assert_eq!((learned.renew_time, learned.rebind_time), (None, None));
    }
}
