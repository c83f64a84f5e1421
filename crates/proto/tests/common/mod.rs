//! Fixtures shared by the proto integration tests: typed messages and
//! bindings built directly (no bytes).
#![allow(dead_code)]

use std::net::Ipv4Addr;

use leaseline_proto::{Binding, DhcpState};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, SubOption};

pub const NOW: u32 = 1_700_000_000;
pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const GIADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

/// A request of type `mt` with nothing set but the type and xid (htype 0,
/// hlen 0, all addresses zero).
pub fn request(mt: MessageType) -> Message {
    Message {
        htype: 0,
        hlen: 0,
        xid: 0xdead_beef,
        options: vec![DhcpOption::MessageType(mt)],
        ..Message::default()
    }
}

/// A DHCPLEASEQUERY with giaddr set and no key.
pub fn leasequery() -> Message {
    let mut m = request(MessageType::LeaseQuery);
    m.giaddr = GIADDR;
    m
}

pub fn set_mac(m: &mut Message, mac: &[u8]) {
    m.htype = 1;
    m.hlen = mac.len() as u8;
    m.chaddr = [0; 16];
    m.chaddr[..mac.len()].copy_from_slice(mac);
}

pub fn relay(subs: &[(u8, &[u8])]) -> RelayAgentInfo {
    RelayAgentInfo {
        sub_options: subs
            .iter()
            .map(|(code, data)| SubOption {
                code: *code,
                data: data.to_vec(),
            })
            .collect(),
    }
}

/// An ACTIVE binding leased 100 s ago for 3600 s.
pub fn active(last: u8) -> Binding {
    let cltt = NOW - 100;
    Binding {
        state: DhcpState::Active,
        htype: 1,
        chaddr: MAC.to_vec(),
        client_id: Some(vec![1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
        expiry: cltt + 3600,
        cltt,
        state_since: cltt,
        relay_info: Some(vec![1, 2, 0xaa, 0xbb, 2, 3, b'r', b'i', b'd']),
        circuit_id: Some(vec![0xaa, 0xbb]),
        remote_id: Some(b"rid".to_vec()),
        lease_time: 3600,
        renew_time: Some(1800),
        rebind_time: Some(3150),
        hostname: Some(b"host".to_vec()),
        ..Binding::available(ip(last))
    }
}

pub fn codes(m: &Message) -> Vec<u8> {
    m.options.iter().map(|o| o.code()).collect()
}

pub fn find(m: &Message, code: u8) -> Option<&DhcpOption> {
    m.option(code)
}
