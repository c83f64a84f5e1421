//! Replies to a UDP DHCPLEASEQUERY: DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED,
//! DHCPLEASEUNKNOWN (RFC 4388 §6.4, RFC 6148 §4.3–§4.4).
//!
//! The engine looks the query up in the store, then:
//! - by IP: leased → [`build_leaseactive`] with no associated addresses;
//!   configured but not leased → [`build_leaseunassigned`]; not ours →
//!   [`build_leaseunknown`];
//! - by MAC / client-id / remote-id: [`choose_primary`] over the matching
//!   bindings; `Some` → [`build_leaseactive`], `None` → [`build_leaseunknown`]
//!   (RFC 4388 §6.4.1 last paragraph, RFC 6148 §4).

use std::cmp::Reverse;
use std::net::Ipv4Addr;

use leaseline_wire::{code, DhcpOption, Message, MessageType};

use crate::opts;
use crate::udp_query::{QueryKind, UdpQuery};
use crate::Binding;

/// Options returned when the query carries no parameter request list: what a
/// DHCPACK carries (RFC 4388 §6.2 refers to RFC 2131 §4.3.1), plus the
/// operator's non-sensitive options.
pub const DEFAULT_UDP_PRL: [u8; 3] = [code::LEASE_TIME, code::RENEWAL_TIME, code::REBINDING_TIME];

/// Option codes the PRL can never pull into a reply: framing and the
/// options the builders set themselves.
const NEVER_FROM_PRL: [u8; 6] = [
    code::PAD,
    code::OVERLOAD,
    code::MESSAGE_TYPE,
    code::SERVER_ID,
    code::PARAMETER_REQUEST_LIST,
    code::END,
];

/// Look-up for the operator's "non-sensitive options" (RFC 4388 §6.4.2):
/// options beyond the ones this module computes, returned only when
/// requested (or when there is no PRL) and listed in `allowed`.
pub struct ExtraOptions<'a> {
    /// Option codes that may be returned.
    pub allowed: &'a [u8],
    /// The value of an allowed option for this binding — ideally what the
    /// client was given (RFC 4388 §6.4.2). `None` leaves it out. A returned
    /// option whose code differs from the one asked for is ignored. When it
    /// returns `None` for 12 (hostname) or 60 (vendor-class-id), the value
    /// stored in the binding is used.
    pub value: &'a dyn Fn(&Binding, u8) -> Option<DhcpOption>,
}

fn no_value(_: &Binding, _: u8) -> Option<DhcpOption> {
    None
}

impl ExtraOptions<'static> {
    /// No extra options: only those RFC 4388 §6.4.2 names.
    pub const NONE: ExtraOptions<'static> = ExtraOptions {
        allowed: &[],
        value: &no_value,
    };
}

impl std::fmt::Debug for ExtraOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraOptions")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// The binding to answer about and the client's other addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    pub primary: &'a Binding,
    /// The other ACTIVE bindings' addresses, for option 92.
    pub associated: Vec<Ipv4Addr>,
}

/// Pick the binding a client-based query answers about: among the ACTIVE
/// bindings, the one with the latest CLTT (RFC 4388 §6.4.1, RFC 6148 §4.4);
/// ties go to the later state start, then to the lower address. The other
/// ACTIVE bindings become the associated addresses (option 92). Non-ACTIVE
/// bindings are ignored; `None` when there is no ACTIVE binding, which
/// answers DHCPLEASEUNKNOWN.
pub fn choose_primary<'a, I>(bindings: I) -> Option<Selection<'a>>
where
    I: IntoIterator<Item = &'a Binding>,
{
    let active: Vec<&Binding> = bindings
        .into_iter()
        .filter(|b| b.state.is_leased())
        .collect();
    let primary = *active
        .iter()
        .max_by_key(|b| (b.cltt, b.state_since, Reverse(u32::from(b.ip))))?;
    let mut associated: Vec<Ipv4Addr> = Vec::new();
    for b in &active {
        if b.ip != primary.ip && !associated.contains(&b.ip) {
            associated.push(b.ip);
        }
    }
    Some(Selection {
        primary,
        associated,
    })
}

/// The common reply header: BOOTREPLY, the query's xid and giaddr, message
/// type then server-id.
fn udp_header(q: &UdpQuery, mt: MessageType, server_id: Ipv4Addr) -> Message {
    let mut m = opts::reply_header(q.xid, mt);
    m.giaddr = q.giaddr;
    m.options.push(DhcpOption::ServerId(server_id));
    m
}

/// DHCPLEASEACTIVE about `primary` (RFC 4388 §6.4.2).
///
/// Header: ciaddr = the binding's address, htype/hlen/chaddr = the
/// binding's hardware address, xid and giaddr from the query. Options: 53,
/// 54, then in PRL order (each once; [`DEFAULT_UDP_PRL`] plus
/// `extra.allowed` when the query had no PRL):
/// - 51 remaining lease time, 58/59 remaining T1/T2 as granted in the
///   client's DHCPACK (stored with the binding), counted from the grant;
///   each only while the lease is valid and that time is not reached
///   (RFC 4388 §6.4.2), and 58/59 only when the grant is known;
/// - 61 the stored client-id, 82 the stored relay information;
/// - 91 seconds since the CLTT (when known);
/// - 92 when requested and there are associated addresses;
/// - any other code only when in `extra.allowed` and `extra.value` has it.
///
/// For MAC / client-id / remote-id queries, option 92 listing `associated`
/// (minus the primary's address, deduplicated) is appended when not
/// requested and there is any (RFC 4388 §6.4.2, RFC 6148 §4.3).
pub fn build_leaseactive(
    q: &UdpQuery,
    primary: &Binding,
    associated: &[Ipv4Addr],
    now: u32,
    server_id: Ipv4Addr,
    extra: &ExtraOptions<'_>,
) -> Message {
    let mut m = udp_header(q, MessageType::LeaseActive, server_id);
    m.ciaddr = primary.ip;
    let (chaddr, hlen) = opts::chaddr_field(&primary.chaddr);
    m.htype = primary.htype;
    m.hlen = hlen;
    m.chaddr = chaddr;

    let mut assoc: Vec<Ipv4Addr> = Vec::new();
    for &ip in associated {
        if ip != primary.ip && !assoc.contains(&ip) {
            assoc.push(ip);
        }
    }

    let wanted = if q.prl.is_empty() {
        let mut w = DEFAULT_UDP_PRL.to_vec();
        w.extend_from_slice(extra.allowed);
        opts::dedup_codes(&w)
    } else {
        opts::dedup_codes(&q.prl)
    };

    let mut sent_92 = false;
    for c in wanted {
        if NEVER_FROM_PRL.contains(&c) {
            continue;
        }
        let opt = match c {
            code::LEASE_TIME => primary.remaining_lease(now).map(DhcpOption::LeaseTime),
            code::RENEWAL_TIME => primary.remaining_t1(now).map(DhcpOption::RenewalTime),
            code::REBINDING_TIME => primary.remaining_t2(now).map(DhcpOption::RebindingTime),
            code::CLIENT_ID => primary.client_id.clone().map(DhcpOption::ClientId),
            code::RELAY_AGENT_INFO => primary.relay_agent_info().map(DhcpOption::RelayAgentInfo),
            code::CLIENT_LAST_TRANSACTION_TIME => primary
                .cltt_age(now)
                .map(DhcpOption::ClientLastTransactionTime),
            code::ASSOCIATED_IP => {
                sent_92 = true;
                (!assoc.is_empty()).then(|| DhcpOption::AssociatedIp(assoc.clone()))
            }
            // RFC 4388 §6.4.2: other options only from the non-sensitive list.
            c if extra.allowed.contains(&c) => extra_value(primary, c, extra),
            _ => None,
        };
        if let Some(o) = opt {
            m.options.push(o);
        }
    }
    // RFC 4388 §6.4.2, RFC 6148 §4.3: option 92 whether requested or not.
    if !sent_92 && q.kind.is_client_query() && !assoc.is_empty() {
        m.options.push(DhcpOption::AssociatedIp(assoc));
    }
    m
}

fn extra_value(b: &Binding, c: u8, extra: &ExtraOptions<'_>) -> Option<DhcpOption> {
    if let Some(o) = (extra.value)(b, c) {
        return (o.code() == c).then_some(o);
    }
    match c {
        code::HOSTNAME => b.hostname.clone().map(DhcpOption::Hostname),
        code::VENDOR_CLASS_ID => b.vendor_class_id.clone().map(DhcpOption::VendorClassId),
        _ => None,
    }
}

/// DHCPLEASEUNASSIGNED for a by-IP query about an address we manage but
/// that is not leased: ciaddr = `ip`, options 53 and 54 only (RFC 4388
/// §6.4.2: "No other options are returned").
pub fn build_leaseunassigned(q: &UdpQuery, ip: Ipv4Addr, server_id: Ipv4Addr) -> Message {
    let mut m = udp_header(q, MessageType::LeaseUnassigned, server_id);
    m.ciaddr = ip;
    m
}

/// DHCPLEASEUNKNOWN: options 53, 54 and, when the query carried one, its
/// option 82 echoed unchanged (RFC 4388 §6.4: no other options; RFC 6148
/// §4.3: echo option 82; RFC 3046 §2.2 also asks servers to echo it). The
/// query's key is echoed in the header so the requestor can match the
/// answer: ciaddr for a by-IP query, htype/hlen/chaddr for a by-MAC query.
pub fn build_leaseunknown(q: &UdpQuery, server_id: Ipv4Addr) -> Message {
    let mut m = udp_header(q, MessageType::LeaseUnknown, server_id);
    match &q.kind {
        QueryKind::ByIp(ip) => m.ciaddr = *ip,
        QueryKind::ByMac { htype, chaddr } => {
            let (field, hlen) = opts::chaddr_field(chaddr);
            m.htype = *htype;
            m.hlen = hlen;
            m.chaddr = field;
        }
        QueryKind::ByClientId(_) | QueryKind::ByRemoteId(_) => {}
    }
    if let Some(ri) = &q.relay_info {
        m.options.push(DhcpOption::RelayAgentInfo(ri.clone()));
    }
    m
}
