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
    for o in &m.options {
        match o {
            DhcpOption::BaseTime(t) => base = Some(*t),
            DhcpOption::ClientLastTransactionTime(a) => cltt_age = Some(*a),
            DhcpOption::StartTimeOfState(a) => state_age = Some(*a),
            DhcpOption::LeaseTime(l) => remaining = Some(*l),
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
    Some(Learned {
        binding: b,
        base_time: base,
        has_cltt: cltt_age.is_some(),
    })
}
