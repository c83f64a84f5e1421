#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! dhcproto as an independent decoder (and encoder) of our bytes.

use std::net::Ipv4Addr;

use dhcproto::v4::{self, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use leaseline_wire::{DhcpOption as O, Message, MessageType};

const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

fn chaddr() -> [u8; 16] {
    let mut c = [0; 16];
    c[..6].copy_from_slice(&MAC);
    c
}

fn client_id() -> Vec<u8> {
    let mut id = vec![1];
    id.extend_from_slice(&MAC);
    id
}

fn theirs(bytes: &[u8]) -> v4::Message {
    v4::Message::decode(&mut Decoder::new(bytes)).expect("dhcproto decodes our bytes")
}

fn check_common(ours: &Message, t: &v4::Message, mt: v4::MessageType) {
    assert_eq!(t.xid(), ours.xid);
    assert_eq!(t.chaddr(), &MAC);
    assert_eq!(t.yiaddr(), ours.yiaddr);
    assert_eq!(t.opts().msg_type(), Some(mt));
    assert_eq!(
        t.opts().get(OptionCode::ClientIdentifier),
        Some(&v4::DhcpOption::ClientIdentifier(client_id()))
    );
}

#[test]
fn discover_decodes_in_dhcproto() {
    let m = Message {
        xid: 0x0bad_cafe,
        chaddr: chaddr(),
        options: vec![
            O::MessageType(MessageType::Discover),
            O::ClientId(client_id()),
            O::LeaseTime(7200),
            O::ParameterRequestList(vec![1, 3, 6, 51, 54]),
            O::ServerId(Ipv4Addr::new(198, 51, 100, 1)),
        ],
        ..Message::default()
    };
    let t = theirs(&m.to_bytes().unwrap());
    check_common(&m, &t, v4::MessageType::Discover);
    assert_eq!(
        t.opts().get(OptionCode::AddressLeaseTime),
        Some(&v4::DhcpOption::AddressLeaseTime(7200))
    );
}

#[test]
fn ack_decodes_in_dhcproto() {
    let m = Message {
        op: 2,
        xid: 0x1357_9bdf,
        yiaddr: Ipv4Addr::new(198, 51, 100, 77),
        chaddr: chaddr(),
        options: vec![
            O::MessageType(MessageType::Ack),
            O::ServerId(Ipv4Addr::new(198, 51, 100, 1)),
            O::LeaseTime(3600),
            O::RenewalTime(1800),
            O::RebindingTime(3150),
            O::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            O::Router(vec![Ipv4Addr::new(198, 51, 100, 1)]),
            O::ClientId(client_id()),
        ],
        ..Message::default()
    };
    let t = theirs(&m.to_bytes().unwrap());
    check_common(&m, &t, v4::MessageType::Ack);
    assert_eq!(t.yiaddr(), Ipv4Addr::new(198, 51, 100, 77));
    assert_eq!(
        t.opts().get(OptionCode::AddressLeaseTime),
        Some(&v4::DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        t.opts().get(OptionCode::ServerIdentifier),
        Some(&v4::DhcpOption::ServerIdentifier(Ipv4Addr::new(
            198, 51, 100, 1
        )))
    );
}

#[test]
fn dhcproto_request_decodes_in_ours() {
    let mut t = v4::Message::new(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &MAC,
    );
    t.set_xid(0x2468_ace0);
    t.opts_mut()
        .insert(v4::DhcpOption::MessageType(v4::MessageType::Request));
    t.opts_mut()
        .insert(v4::DhcpOption::ClientIdentifier(client_id()));
    t.opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(Ipv4Addr::new(
            198, 51, 100, 9,
        )));
    let mut bytes = Vec::new();
    t.encode(&mut Encoder::new(&mut bytes)).unwrap();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.xid, 0x2468_ace0);
    assert_eq!(m.hw_addr(), &MAC);
    assert_eq!(m.message_type(), Some(MessageType::Request));
    assert_eq!(m.option(61), Some(&O::ClientId(client_id())));
    assert_eq!(
        m.option(50),
        Some(&O::RequestedIp(Ipv4Addr::new(198, 51, 100, 9)))
    );
}
