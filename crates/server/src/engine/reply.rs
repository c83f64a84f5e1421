//! Reply building for the DHCP engine (RFC 2131 §4.3, table 3).

use std::net::{Ipv4Addr, SocketAddrV4};

use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, BOOTREPLY};

use super::{Engine, Grant};

/// A reply and where it goes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub msg: Message,
    pub dest: SocketAddrV4,
}

fn skeleton(req: &Message, kind: MessageType, sid: Ipv4Addr) -> Message {
    let mut m = Message {
        op: BOOTREPLY,
        htype: req.htype,
        hlen: req.hlen,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: req.flags,
        giaddr: req.giaddr,
        chaddr: req.chaddr,
        ..Message::default()
    };
    m.options.reserve(12);
    m.options.push(DhcpOption::MessageType(kind));
    m.options.push(DhcpOption::ServerId(sid));
    m
}

fn network_options(e: &Engine, subnet: usize, m: &mut Message) {
    let s = &e.cfg.subnets[subnet];
    m.options.push(DhcpOption::SubnetMask(s.prefix.netmask()));
    if !s.router.is_empty() {
        m.options.push(DhcpOption::Router(s.router.clone()));
    }
    if !s.dns_servers.is_empty() {
        m.options
            .push(DhcpOption::DnsServers(s.dns_servers.clone()));
    }
    if let Some(d) = &s.domain_name {
        m.options
            .push(DhcpOption::DomainName(d.as_bytes().to_vec()));
    }
}

/// RFC 3046 §2.2: echo option 82 unchanged, as the last option.
fn echo_relay_info(req: &Message, m: &mut Message) {
    if let Some(r) = relay_info(req) {
        m.options.push(DhcpOption::RelayAgentInfo(r.clone()));
    }
}

/// DHCPOFFER or DHCPACK for `ip`, with the times of `grant` (for an ACK,
/// those the binding keeps).
pub(super) fn lease(
    e: &Engine,
    req: &Message,
    subnet: usize,
    kind: MessageType,
    ip: Ipv4Addr,
    grant: Grant,
) -> Reply {
    let s = &e.cfg.subnets[subnet];
    let mut m = skeleton(req, kind, s.server_id);
    m.yiaddr = ip;
    m.ciaddr = if kind == MessageType::Ack {
        req.ciaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    m.options.push(DhcpOption::LeaseTime(grant.lease_time));
    m.options.push(DhcpOption::RenewalTime(grant.renew_time));
    m.options.push(DhcpOption::RebindingTime(grant.rebind_time));
    network_options(e, subnet, &mut m);
    echo_relay_info(req, &mut m);
    Reply {
        dest: destination(e, req, false),
        msg: m,
    }
}

pub(super) fn nak(e: &Engine, req: &Message, subnet: usize, why: &str) -> Reply {
    let s = &e.cfg.subnets[subnet];
    let mut m = skeleton(req, MessageType::Nak, s.server_id);
    // RFC 2131 §4.3.2: a NAK through a relay sets the broadcast bit.
    if !req.giaddr.is_unspecified() {
        m.flags |= Message::BROADCAST_FLAG;
    }
    m.options.push(DhcpOption::Unknown {
        code: leaseline_wire::code::MESSAGE,
        data: why.as_bytes().to_vec(),
    });
    echo_relay_info(req, &mut m);
    Reply {
        dest: destination(e, req, true),
        msg: m,
    }
}

/// DHCPINFORM → DHCPACK with configuration only (RFC 2131 §4.3.5).
pub(super) fn inform(e: &Engine, req: &Message, subnet: usize) -> Reply {
    let s = &e.cfg.subnets[subnet];
    let mut m = skeleton(req, MessageType::Ack, s.server_id);
    m.ciaddr = req.ciaddr;
    network_options(e, subnet, &mut m);
    echo_relay_info(req, &mut m);
    Reply {
        dest: destination(e, req, false),
        msg: m,
    }
}

/// The request's relay agent information (option 82), if any.
pub(super) fn relay_info(msg: &Message) -> Option<&RelayAgentInfo> {
    msg.options.iter().find_map(|o| match o {
        DhcpOption::RelayAgentInfo(r) => Some(r),
        _ => None,
    })
}

/// Destination of a reply (RFC 2131 §4.1).
pub(super) fn destination(e: &Engine, req: &Message, is_nak: bool) -> SocketAddrV4 {
    if !req.giaddr.is_unspecified() {
        return SocketAddrV4::new(req.giaddr, e.cfg.relay_port);
    }
    if !is_nak && !req.ciaddr.is_unspecified() {
        return SocketAddrV4::new(req.ciaddr, e.cfg.client_port);
    }
    // No raw sockets: a client without an address is always reached by broadcast.
    SocketAddrV4::new(Ipv4Addr::BROADCAST, e.cfg.client_port)
}
