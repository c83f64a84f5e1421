#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Hand-built byte vectors: exact encoder output and decode results.

mod common;

use std::net::Ipv4Addr;

use common::header;
use leaseline_wire::{
    pad_to_bootp_minimum, DhcpOption as O, Message, MessageType, RelayAgentInfo, StatusCode,
    SubOption, BOOTP_MIN_LEN,
};

const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

fn chaddr(mac: &[u8]) -> [u8; 16] {
    let mut c = [0; 16];
    c[..mac.len()].copy_from_slice(mac);
    c
}

fn discover_bytes() -> Vec<u8> {
    let mut b = header(1, 0x1234_5678, 0x8000, [[0; 4]; 4], &MAC);
    #[rustfmt::skip]
    b.extend_from_slice(&[
        53, 1, 1,                                   // DHCPDISCOVER
        61, 7, 1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // client-id
        55, 4, 1, 3, 6, 51,                          // PRL
        12, 4, b'h', b'o', b's', b't',              // hostname
        255,
    ]);
    b
}

fn discover() -> Message {
    Message {
        xid: 0x1234_5678,
        flags: Message::BROADCAST_FLAG,
        chaddr: chaddr(&MAC),
        options: vec![
            O::MessageType(MessageType::Discover),
            O::ClientId(vec![1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            O::ParameterRequestList(vec![1, 3, 6, 51]),
            O::Hostname(b"host".to_vec()),
        ],
        ..Message::default()
    }
}

#[test]
fn discover_encodes_to_exact_bytes() {
    assert_eq!(discover().to_bytes().unwrap(), discover_bytes());
}

#[test]
fn discover_decodes() {
    let m = Message::decode(&discover_bytes()).unwrap();
    assert_eq!(m, discover());
    assert_eq!(m.message_type(), Some(MessageType::Discover));
    assert_eq!(m.hw_addr(), &MAC);
    assert!(m.broadcast());
}

const LQ_MAC: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

fn lease_active_bytes() -> Vec<u8> {
    let mut b = header(
        2,
        0xdead_beef,
        0,
        [[192, 0, 2, 10], [0; 4], [0; 4], [192, 0, 2, 1]],
        &LQ_MAC,
    );
    #[rustfmt::skip]
    b.extend_from_slice(&[
        53, 1, 13,                                  // DHCPLEASEACTIVE
        54, 4, 192, 0, 2, 1,                        // server-id
        82, 25,
            1, 4, b'e', b't', b'h', b'0',           //   circuit-id
            2, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, // remote-id
            12, 4, 10, 0, 0, 1,                     //   relay-id (RFC 6925)
            9, 3, 1, 2, 3,                          //   unknown sub-option
        91, 4, 0, 0, 0, 60,                         // CLTT: 60 s ago
        92, 8, 192, 0, 2, 20, 192, 0, 2, 21,        // associated-ip
        151, 3, 0, b'o', b'k',                      // status Success "ok"
        152, 4, 0x65, 0, 0, 0,                      // base-time
        153, 4, 0, 0, 0, 120,                       // start-time-of-state
        154, 4, 0x64, 0, 0, 0,                      // query-start-time
        155, 4, 0x66, 0, 0, 0,                      // query-end-time
        156, 1, 2,                                  // ACTIVE
        157, 1, 1,                                  // REMOTE
        255,
    ]);
    b
}

fn lease_active() -> Message {
    let sub = |code, data: &[u8]| SubOption {
        code,
        data: data.to_vec(),
    };
    Message {
        op: 2,
        xid: 0xdead_beef,
        ciaddr: Ipv4Addr::new(192, 0, 2, 10),
        giaddr: Ipv4Addr::new(192, 0, 2, 1),
        chaddr: chaddr(&LQ_MAC),
        options: vec![
            O::MessageType(MessageType::LeaseActive),
            O::ServerId(Ipv4Addr::new(192, 0, 2, 1)),
            O::RelayAgentInfo(RelayAgentInfo {
                sub_options: vec![
                    sub(1, b"eth0"),
                    sub(2, &LQ_MAC),
                    sub(12, &[10, 0, 0, 1]),
                    sub(9, &[1, 2, 3]),
                ],
            }),
            O::ClientLastTransactionTime(60),
            O::AssociatedIp(vec![
                Ipv4Addr::new(192, 0, 2, 20),
                Ipv4Addr::new(192, 0, 2, 21),
            ]),
            O::StatusCode(StatusCode::Success, "ok".into()),
            O::BaseTime(0x6500_0000),
            O::StartTimeOfState(120),
            O::QueryStartTime(0x6400_0000),
            O::QueryEndTime(0x6600_0000),
            O::DhcpState(2),
            O::DataSource(1),
        ],
        ..Message::default()
    }
}

#[test]
fn lease_active_encodes_to_exact_bytes() {
    assert_eq!(lease_active().to_bytes().unwrap(), lease_active_bytes());
}

#[test]
fn lease_active_decodes() {
    let m = Message::decode(&lease_active_bytes()).unwrap();
    assert_eq!(m, lease_active());
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    let Some(O::RelayAgentInfo(rai)) = m.option(82) else {
        panic!("no option 82")
    };
    assert_eq!(rai.circuit_id(), Some(&b"eth0"[..]));
    assert_eq!(rai.remote_id(), Some(&LQ_MAC[..]));
    assert_eq!(rai.relay_id(), Some(&[10, 0, 0, 1][..]));
    assert_eq!(rai.get(9), Some(&[1, 2, 3][..]));
}

#[test]
fn status_codes_beyond_rfc_6926_round_trip() {
    for v in 0..=255u8 {
        assert_eq!(StatusCode::from_u8(v).as_u8(), v);
    }
    let mut b = common::with_options(&[151, 1, 7, 255]);
    let m = Message::decode(&b).unwrap();
    assert_eq!(
        m.options,
        vec![O::StatusCode(StatusCode::CatchUpComplete, String::new())]
    );
    b.truncate(240);
    b.extend_from_slice(&[151, 1, 200, 255]);
    let m = Message::decode(&b).unwrap();
    assert_eq!(
        m.options,
        vec![O::StatusCode(StatusCode::Other(200), String::new())]
    );
}

#[test]
fn long_client_id_is_split_into_two_fragments() {
    let id: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let m = Message {
        options: vec![
            O::MessageType(MessageType::Request),
            O::ClientId(id.clone()),
        ],
        ..Message::default()
    };
    let b = m.to_bytes().unwrap();
    // RFC 3396 §5: 255 octets, then the remaining 45, same code, consecutive.
    let opts = &b[240..];
    assert_eq!(&opts[..3], &[53, 1, 3]);
    assert_eq!(&opts[3..5], &[61, 255]);
    assert_eq!(&opts[5..260], &id[..255]);
    assert_eq!(&opts[260..262], &[61, 45]);
    assert_eq!(&opts[262..307], &id[255..]);
    assert_eq!(&opts[307..], &[255]);
    assert_eq!(Message::decode(&b).unwrap(), m);
}

#[test]
fn fragments_join_at_first_position_even_when_not_adjacent() {
    // RFC 3396 §7: client-id split around option 53 and with PADs in between.
    let b = common::with_options(&[61, 2, 1, 0xaa, 0, 53, 1, 1, 0, 61, 1, 0xbb, 255]);
    let m = Message::decode(&b).unwrap();
    assert_eq!(
        m.options,
        vec![
            O::ClientId(vec![1, 0xaa, 0xbb]),
            O::MessageType(MessageType::Discover)
        ]
    );
}

#[test]
fn relay_agent_info_split_mid_sub_option_joins_first() {
    // The sub-option 1 header is in the first fragment, its value in the second.
    let b = common::with_options(&[82, 3, 1, 2, b'x', 82, 3, b'y', 2, 0, 255]);
    let m = Message::decode(&b).unwrap();
    let Some(O::RelayAgentInfo(rai)) = m.option(82) else {
        panic!("no option 82")
    };
    assert_eq!(rai.circuit_id(), Some(&b"xy"[..]));
    assert_eq!(rai.remote_id(), Some(&[][..]));
}

#[test]
fn bootp_message_without_type_decodes() {
    let m = Message::decode(&common::with_options(&[1, 4, 255, 255, 255, 0, 255])).unwrap();
    assert_eq!(m.message_type(), None);
    assert_eq!(
        m.options,
        vec![O::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))]
    );
}

#[test]
fn pad_to_bootp_minimum_pads_with_zeros_and_still_decodes() {
    let mut b = discover().to_bytes().unwrap();
    let unpadded = b.len();
    pad_to_bootp_minimum(&mut b);
    assert_eq!(b.len(), BOOTP_MIN_LEN);
    assert!(b[unpadded..].iter().all(|&x| x == 0));
    assert_eq!(Message::decode(&b).unwrap(), discover());
    let mut long = lease_active().to_bytes().unwrap();
    let n = long.len();
    assert!(n > BOOTP_MIN_LEN);
    pad_to_bootp_minimum(&mut long);
    assert_eq!(long.len(), n);
}

#[test]
fn encode_appends_without_touching_existing_bytes() {
    let mut out = vec![9, 9];
    discover().encode(&mut out).unwrap();
    assert_eq!(&out[..2], &[9, 9]);
    assert_eq!(&out[2..], &discover_bytes()[..]);
}

#[test]
fn unknown_and_vss_options_round_trip_unchanged() {
    let b = common::with_options(&[200, 0, 221, 2, 254, 0, 250, 3, 1, 2, 3, 255]);
    let m = Message::decode(&b).unwrap();
    assert_eq!(
        m.options,
        vec![
            O::Unknown {
                code: 200,
                data: vec![]
            },
            O::Vss(vec![254, 0]),
            O::Unknown {
                code: 250,
                data: vec![1, 2, 3]
            },
        ]
    );
    assert_eq!(m.to_bytes().unwrap(), b);
}
