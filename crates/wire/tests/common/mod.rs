//! Helpers shared by the integration tests: hand-built headers and a typed
//! option generator for proptest.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, StatusCode, SubOption};
use proptest::prelude::*;

/// A 236-byte BOOTP header plus the magic cookie, written out field by field
/// (independently of the encoder). Unnamed fields are zero.
pub fn header(op: u8, xid: u32, flags: u16, addrs: [[u8; 4]; 4], chaddr: &[u8]) -> Vec<u8> {
    let mut b = vec![op, 1, chaddr.len() as u8, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0]); // secs
    b.extend_from_slice(&flags.to_be_bytes());
    for a in addrs {
        b.extend_from_slice(&a); // ciaddr, yiaddr, siaddr, giaddr
    }
    let mut ch = [0u8; 16];
    ch[..chaddr.len()].copy_from_slice(chaddr);
    b.extend_from_slice(&ch);
    b.extend_from_slice(&[0; 64]); // sname
    b.extend_from_slice(&[0; 128]); // file
    assert_eq!(b.len(), 236);
    b.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
    b
}

/// A BOOTREQUEST header with zero fields and the given option bytes after it.
pub fn with_options(opts: &[u8]) -> Vec<u8> {
    let mut b = header(1, 1, 0, [[0; 4]; 4], &[1, 2, 3, 4, 5, 6]);
    b.extend_from_slice(opts);
    b
}

/// The value bytes an option encodes to (fragments joined).
pub fn value_bytes(opt: &DhcpOption) -> Vec<u8> {
    let m = Message {
        options: vec![opt.clone()],
        ..Message::default()
    };
    let bytes = m.to_bytes().expect("valid option encodes");
    let mut area = &bytes[240..bytes.len() - 1];
    let mut v = Vec::new();
    while !area.is_empty() {
        let len = area[1] as usize;
        v.extend_from_slice(&area[2..2 + len]);
        area = &area[2 + len..];
    }
    v
}

const TYPED: &[u8] = &[
    1, 3, 6, 12, 15, 50, 51, 53, 54, 55, 58, 59, 60, 61, 82, 91, 92, 151, 152, 153, 154, 155, 156,
    157, 221,
];

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), min..=max)
}

fn message_type() -> impl Strategy<Value = MessageType> {
    (1u8..=18).prop_map(|v| MessageType::from_u8(v).unwrap())
}

fn relay_info() -> impl Strategy<Value = RelayAgentInfo> {
    prop::collection::vec((any::<u8>(), bytes(0, 60)), 1..10).prop_map(|subs| RelayAgentInfo {
        sub_options: subs
            .into_iter()
            .map(|(code, data)| SubOption { code, data })
            .collect(),
    })
}

/// Any option whose value is valid for its type; values up to ~600 bytes so
/// RFC 3396 splitting is exercised.
pub fn option() -> impl Strategy<Value = DhcpOption> {
    use DhcpOption as O;
    prop_oneof![
        ip().prop_map(O::SubnetMask),
        prop::collection::vec(ip(), 1..80).prop_map(O::Router),
        prop::collection::vec(ip(), 1..5).prop_map(O::DnsServers),
        bytes(1, 600).prop_map(O::Hostname),
        bytes(1, 40).prop_map(O::DomainName),
        ip().prop_map(O::RequestedIp),
        any::<u32>().prop_map(O::LeaseTime),
        message_type().prop_map(O::MessageType),
        ip().prop_map(O::ServerId),
        bytes(1, 30).prop_map(O::ParameterRequestList),
        any::<u32>().prop_map(O::RenewalTime),
        any::<u32>().prop_map(O::RebindingTime),
        bytes(1, 40).prop_map(O::VendorClassId),
        bytes(2, 600).prop_map(O::ClientId),
        relay_info().prop_map(O::RelayAgentInfo),
        any::<u32>().prop_map(O::ClientLastTransactionTime),
        prop::collection::vec(ip(), 1..100).prop_map(O::AssociatedIp),
        (any::<u8>(), ".{0,80}").prop_map(|(c, t)| O::StatusCode(StatusCode::from_u8(c), t)),
        any::<u32>().prop_map(O::BaseTime),
        any::<u32>().prop_map(O::StartTimeOfState),
        any::<u32>().prop_map(O::QueryStartTime),
        any::<u32>().prop_map(O::QueryEndTime),
        any::<u8>().prop_map(O::DhcpState),
        any::<u8>().prop_map(O::DataSource),
        bytes(0, 300).prop_map(O::Vss),
        (any::<u8>(), bytes(0, 600))
            .prop_filter("untyped code", |(c, _)| {
                !TYPED.contains(c) && ![0, 52, 255].contains(c)
            })
            .prop_map(|(code, data)| O::Unknown { code, data }),
    ]
}

/// Options with unique codes (duplicates would be joined per RFC 3396).
pub fn options() -> impl Strategy<Value = Vec<DhcpOption>> {
    prop::collection::vec(option(), 0..24).prop_map(|v| {
        let mut seen = [false; 256];
        v.into_iter()
            .filter(|o| !std::mem::replace(&mut seen[o.code() as usize], true))
            .collect()
    })
}

pub fn message() -> impl Strategy<Value = Message> {
    (
        (
            prop::bool::ANY,
            any::<u8>(),
            0u8..=16,
            any::<u8>(),
            any::<u32>(),
            any::<u16>(),
        ),
        (any::<u16>(), ip(), ip(), ip(), ip()),
        (any::<[u8; 16]>(), bytes(64, 64), bytes(128, 128)),
        options(),
    )
        .prop_map(
            |(
                (reply, htype, hlen, hops, xid, secs),
                (flags, ciaddr, yiaddr, siaddr, giaddr),
                (chaddr, sname, file),
                options,
            )| Message {
                op: if reply { 2 } else { 1 },
                htype,
                hlen,
                hops,
                xid,
                secs,
                flags,
                ciaddr,
                yiaddr,
                siaddr,
                giaddr,
                chaddr,
                sname: sname.try_into().unwrap(),
                file: file.try_into().unwrap(),
                options,
            },
        )
}
