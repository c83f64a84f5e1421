#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Every builder's reply survives the wire codec: encode, decode, compare.

mod common;

use common::*;
use leaseline_proto::{
    build_bulk_reply, build_done, build_leaseactive, build_leaseunassigned, build_leaseunknown,
    build_status, parse_active_query, parse_bulk_query, parse_leasequery, Binding, DhcpState,
    ExtraOptions, QueryKind, UdpQuery, DATA_SOURCE_REMOTE,
};
use leaseline_wire::{DhcpOption, Message, MessageType, StatusCode};

fn round_trip(m: &Message) -> Message {
    let bytes = m.to_bytes().expect("encode");
    let back = Message::decode(&bytes).expect("decode");
    assert_eq!(&back, m, "decode(encode(m)) != m");
    back
}

fn query(kind: QueryKind, prl: &[u8]) -> UdpQuery {
    UdpQuery {
        kind,
        giaddr: GIADDR,
        xid: 42,
        prl: prl.to_vec(),
        relay_info: Some(relay(&[(2, b"modem-1")])),
    }
}

#[test]
fn leaseactive_round_trips() {
    let b = active(5);
    let q = query(
        QueryKind::ByMac {
            htype: 1,
            chaddr: MAC.to_vec(),
        },
        &[51, 58, 59, 61, 82, 91, 12],
    );
    let extra = ExtraOptions {
        allowed: &[12],
        value: &|_: &Binding, _| None,
    };
    let m = build_leaseactive(&q, &b, &[ip(6), ip(7)], NOW, SERVER, &extra);
    let back = round_trip(&m);
    assert_eq!(back.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(codes(&back), vec![53, 54, 51, 58, 59, 61, 82, 91, 12, 92]);
}

#[test]
fn leaseunassigned_round_trips() {
    let q = query(QueryKind::ByIp(ip(8)), &[51]);
    let back = round_trip(&build_leaseunassigned(&q, ip(8), SERVER));
    assert_eq!(codes(&back), vec![53, 54]);
}

#[test]
fn leaseunknown_round_trips() {
    let q = query(QueryKind::ByRemoteId(b"modem-1".to_vec()), &[92]);
    let back = round_trip(&build_leaseunknown(&q, SERVER));
    assert_eq!(codes(&back), vec![53, 54, 82]);
}

#[test]
fn bulk_reply_round_trips() {
    let mut b = active(5);
    b.data_source = DATA_SOURCE_REMOTE;
    let back = round_trip(&build_bulk_reply(
        9,
        &b,
        NOW,
        true,
        SERVER,
        &[51, 58, 59, 61, 82, 91],
        &[],
    ));
    assert_eq!(back.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(
        codes(&back),
        vec![53, 54, 152, 153, 156, 157, 91, 51, 58, 59, 61, 82]
    );
    let mut u = b.clone();
    u.state = DhcpState::Abandoned;
    let back = round_trip(&build_bulk_reply(9, &u, NOW, false, SERVER, &[], &[]));
    assert_eq!(back.message_type(), Some(MessageType::LeaseUnassigned));
}

#[test]
fn done_round_trips() {
    round_trip(&build_done(9, None, NOW, None));
    let back = round_trip(&build_done(
        9,
        Some((StatusCode::NotAllowed, "more than one primary query")),
        NOW,
        Some(SERVER),
    ));
    assert_eq!(codes(&back), vec![53, 54, 151, 152]);
}

#[test]
fn status_round_trips() {
    let back = round_trip(&build_status(3, StatusCode::CatchUpComplete, "", NOW));
    assert_eq!(
        back.option(151),
        Some(&DhcpOption::StatusCode(
            StatusCode::CatchUpComplete,
            String::new()
        ))
    );
    round_trip(&build_status(
        3,
        StatusCode::DataMissing,
        &"x".repeat(300),
        NOW,
    ));
}

/// Queries built as structs, encoded, decoded, then parsed.
#[test]
fn queries_parse_after_decoding() {
    let mut m = leasequery();
    set_mac(&mut m, &MAC);
    m.options
        .push(DhcpOption::ParameterRequestList(vec![51, 92]));
    let q = parse_leasequery(&round_trip(&m)).unwrap();
    assert!(matches!(q.kind, QueryKind::ByMac { .. }));

    let mut m = request(MessageType::BulkLeaseQuery);
    m.options.push(DhcpOption::QueryStartTime(NOW - 10));
    m.options.push(DhcpOption::QueryEndTime(NOW));
    m.options
        .push(DhcpOption::RelayAgentInfo(relay(&[(12, b"relay-1")])));
    let q = parse_bulk_query(&round_trip(&m)).unwrap();
    assert_eq!((q.start, q.end), (Some(NOW - 10), Some(NOW)));

    let mut m = request(MessageType::ActiveLeaseQuery);
    m.options.push(DhcpOption::QueryStartTime(NOW - 10));
    let q = parse_active_query(&round_trip(&m)).unwrap();
    assert_eq!(q.start, Some(NOW - 10));
}
