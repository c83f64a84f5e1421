#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! RFC 7724 active leasequery validation.

mod common;

use common::*;
use leaseline_proto::{build_bulk_reply, parse_active_query, ActiveRefusal};
use leaseline_wire::{code, DhcpOption, Message, MessageType, StatusCode};

fn active_q(f: impl FnOnce(&mut Message)) -> Message {
    let mut m = request(MessageType::ActiveLeaseQuery);
    f(&mut m);
    m
}

#[test]
fn accepts() {
    let q = parse_active_query(&active_q(|_| {})).unwrap();
    assert_eq!((q.xid, q.start), (0xdead_beef, None));
    assert!(q.prl.is_empty());

    let q = parse_active_query(&active_q(|m| {
        // htype/hlen alone are not a chaddr.
        m.htype = 1;
        m.hlen = 6;
        m.options
            .push(DhcpOption::ParameterRequestList(vec![152, 153]));
        m.options.push(DhcpOption::QueryStartTime(NOW - 60));
        m.options.push(DhcpOption::Vss(vec![255]));
    }))
    .unwrap();
    assert_eq!(q.start, Some(NOW - 60));
    assert_eq!(q.prl, vec![152, 153]);
}

#[test]
fn validation_table() {
    use ActiveRefusal::*;
    let cases: Vec<(Message, ActiveRefusal, StatusCode)> = vec![
        (
            active_q(|m| m.options = vec![DhcpOption::MessageType(MessageType::BulkLeaseQuery)]),
            NotAnActiveQuery,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| m.options.clear()),
            NotAnActiveQuery,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| m.ciaddr = ip(1)),
            CiaddrSet,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| set_mac(m, &MAC)),
            ChaddrSet,
            StatusCode::MalformedQuery,
        ),
        // Any non-zero chaddr byte, even beyond hlen.
        (
            active_q(|m| m.chaddr[15] = 1),
            ChaddrSet,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| m.options.push(DhcpOption::ClientId(vec![1]))),
            ClientIdPresent,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| m.options.push(DhcpOption::QueryEndTime(NOW))),
            QueryEndTime,
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| {
                m.options.push(DhcpOption::QueryStartTime(1));
                m.options.push(DhcpOption::QueryStartTime(2));
            }),
            DuplicateOption(code::QUERY_START_TIME),
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| {
                m.options.push(DhcpOption::Unknown {
                    code: code::QUERY_START_TIME,
                    data: vec![1],
                })
            }),
            BadOption(code::QUERY_START_TIME),
            StatusCode::MalformedQuery,
        ),
        (
            active_q(|m| m.options.push(DhcpOption::Vss(b"\0red".to_vec()))),
            Vpn("only the default VPN is served", StatusCode::NotAllowed),
            StatusCode::NotAllowed,
        ),
    ];
    for (m, want, st) in cases {
        let got = parse_active_query(&m).unwrap_err();
        assert_eq!(got, want);
        assert_eq!(got.status(), st);
        assert!(!got.reason().is_empty());
        assert!(!got.to_string().is_empty());
    }
}

#[test]
fn active_replies_carry_base_time() {
    let b = active(5);
    for first in [true, false] {
        let m = build_bulk_reply(1, &b, NOW, first, SERVER, &[], &[]);
        assert_eq!(m.option(152), Some(&DhcpOption::BaseTime(NOW)));
        assert_eq!(m.has_option(54), first);
    }
}
