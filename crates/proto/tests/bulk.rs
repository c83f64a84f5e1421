#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! RFC 6926 bulk leasequery validation and reply building.

mod common;

use std::net::Ipv4Addr;

use common::*;
use leaseline_proto::{
    build_bulk_reply, build_done, build_status, in_window, parse_bulk_query, BulkPrimary,
    BulkQuery, DhcpState, DATA_SOURCE_REMOTE,
};
use leaseline_wire::{code, DhcpOption, Message, MessageType, StatusCode, BOOTREPLY};

fn bulk(f: impl FnOnce(&mut Message)) -> Message {
    let mut m = request(MessageType::BulkLeaseQuery);
    f(&mut m);
    m
}

fn status(m: &Message) -> StatusCode {
    parse_bulk_query(m).unwrap_err().0
}

#[test]
fn primary_queries() {
    let cases: Vec<(Message, BulkPrimary)> = vec![
        (bulk(|_| {}), BulkPrimary::All),
        // htype/hlen set but chaddr zero: still "all".
        (
            bulk(|m| {
                m.htype = 1;
                m.hlen = 6;
            }),
            BulkPrimary::All,
        ),
        (
            bulk(|m| set_mac(m, &MAC)),
            BulkPrimary::ByMac {
                htype: 1,
                chaddr: MAC.to_vec(),
            },
        ),
        (
            bulk(|m| m.options.push(DhcpOption::ClientId(vec![1, 2]))),
            BulkPrimary::ByClientId(vec![1, 2]),
        ),
        (
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"rid")])))
            }),
            BulkPrimary::ByRemoteId(b"rid".to_vec()),
        ),
        (
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(12, b"relay")])))
            }),
            BulkPrimary::ByRelayId(b"relay".to_vec()),
        ),
    ];
    for (m, want) in cases {
        let q = parse_bulk_query(&m).unwrap();
        assert_eq!(q.primary, want);
        assert!(!q.primary.name().is_empty());
        assert_eq!(q.xid, 0xdead_beef);
        assert_eq!((q.start, q.end), (None, None));
    }
}

#[test]
fn qualifiers() {
    let m = bulk(|m| {
        m.options
            .push(DhcpOption::ParameterRequestList(vec![152, 51]));
        m.options.push(DhcpOption::QueryStartTime(100));
        m.options.push(DhcpOption::QueryEndTime(100));
        m.options.push(DhcpOption::Vss(vec![255]));
    });
    let q = parse_bulk_query(&m).unwrap();
    assert_eq!(q.start, Some(100));
    assert_eq!(q.end, Some(100));
    assert_eq!(q.prl, vec![152, 51]);
    for vss in [vec![], vec![255], vec![254], vec![254, 1, 2]] {
        let m = bulk(|m| m.options.push(DhcpOption::Vss(vss.clone())));
        assert!(parse_bulk_query(&m).is_ok(), "{vss:?}");
    }
}

#[test]
fn validation_table() {
    use StatusCode::{MalformedQuery as M, NotAllowed as N};
    let rid = || DhcpOption::RelayAgentInfo(relay(&[(2, b"rid")]));
    let cases: Vec<(&str, Message, StatusCode)> = vec![
        (
            "wrong type",
            bulk(|m| m.options = vec![DhcpOption::MessageType(MessageType::LeaseQuery)]),
            M,
        ),
        ("no type", bulk(|m| m.options.clear()), M),
        // RFC 6926 §8.2: ciaddr, yiaddr or siaddr non-zero.
        ("ciaddr", bulk(|m| m.ciaddr = ip(1)), M),
        ("yiaddr", bulk(|m| m.yiaddr = ip(1)), M),
        ("siaddr", bulk(|m| m.siaddr = ip(1)), M),
        // ... even with two primaries as well: MalformedQuery is checked first.
        (
            "ciaddr and two primaries",
            bulk(|m| {
                m.ciaddr = ip(1);
                set_mac(m, &MAC);
                m.options.push(DhcpOption::ClientId(vec![1]));
            }),
            M,
        ),
        // RFC 6926 §8.2: more than one primary query.
        (
            "mac + client-id",
            bulk(|m| {
                set_mac(m, &MAC);
                m.options.push(DhcpOption::ClientId(vec![1]));
            }),
            N,
        ),
        (
            "mac + remote-id",
            bulk(|m| {
                set_mac(m, &MAC);
                m.options.push(rid());
            }),
            N,
        ),
        (
            "client-id + remote-id",
            bulk(|m| {
                m.options.push(DhcpOption::ClientId(vec![1]));
                m.options.push(rid());
            }),
            N,
        ),
        (
            "remote-id + relay-id",
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"r"), (12, b"y")])))
            }),
            N,
        ),
        (
            "circuit-id query",
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(1, b"c")])))
            }),
            N,
        ),
        // VPN other than the default.
        (
            "vpn nvt",
            bulk(|m| m.options.push(DhcpOption::Vss(b"\0blue".to_vec()))),
            N,
        ),
        (
            "vpn rfc2685",
            bulk(|m| {
                m.options
                    .push(DhcpOption::Vss(vec![1, 0, 0, 1, 0, 0, 0, 1]))
            }),
            N,
        ),
        (
            "vss unassigned type",
            bulk(|m| m.options.push(DhcpOption::Vss(vec![7]))),
            M,
        ),
        (
            "vss 255 with data",
            bulk(|m| m.options.push(DhcpOption::Vss(vec![255, 1]))),
            M,
        ),
        // Time window.
        (
            "end before start",
            bulk(|m| {
                m.options.push(DhcpOption::QueryStartTime(101));
                m.options.push(DhcpOption::QueryEndTime(100));
            }),
            M,
        ),
        // One of each qualifier (RFC 6926 §7.2).
        (
            "start twice",
            bulk(|m| {
                m.options.push(DhcpOption::QueryStartTime(1));
                m.options.push(DhcpOption::QueryStartTime(2));
            }),
            M,
        ),
        (
            "end twice",
            bulk(|m| {
                m.options.push(DhcpOption::QueryEndTime(1));
                m.options.push(DhcpOption::QueryEndTime(2));
            }),
            M,
        ),
        (
            "vss twice",
            bulk(|m| {
                m.options.push(DhcpOption::Vss(vec![]));
                m.options.push(DhcpOption::Vss(vec![]));
            }),
            M,
        ),
        (
            "client-id twice",
            bulk(|m| {
                m.options.push(DhcpOption::ClientId(vec![1]));
                m.options.push(DhcpOption::ClientId(vec![1]));
            }),
            M,
        ),
        (
            "option 82 twice",
            bulk(|m| {
                m.options.push(rid());
                m.options.push(rid());
            }),
            M,
        ),
        (
            "remote-id twice in 82",
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"a"), (2, b"b")])))
            }),
            M,
        ),
        (
            "empty 82",
            bulk(|m| m.options.push(DhcpOption::RelayAgentInfo(relay(&[])))),
            M,
        ),
        (
            "empty remote-id",
            bulk(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"")])))
            }),
            M,
        ),
        (
            "empty client-id",
            bulk(|m| m.options.push(DhcpOption::ClientId(vec![]))),
            M,
        ),
        ("hlen > 16", bulk(|m| m.hlen = 17), M),
        (
            "chaddr with hlen 0",
            bulk(|m| {
                m.hlen = 0;
                m.chaddr[3] = 1;
            }),
            M,
        ),
        (
            "untyped start time",
            bulk(|m| {
                m.options.push(DhcpOption::Unknown {
                    code: code::QUERY_START_TIME,
                    data: vec![0, 0, 0, 1],
                })
            }),
            M,
        ),
    ];
    for (name, m, want) in cases {
        let (got, text) = parse_bulk_query(&m).unwrap_err();
        assert_eq!(got, want, "{name}: {text}");
        assert!(!text.is_empty());
    }
    assert_eq!(status(&bulk(|m| m.ciaddr = ip(2))), M);
}

#[test]
fn window_edges_are_inclusive() {
    let q = |start, end| BulkQuery {
        xid: 1,
        primary: BulkPrimary::All,
        start,
        end,
        prl: vec![],
    };
    let mut b = active(1);
    b.cltt = 100;
    b.state_since = 50;
    // cltt on either edge.
    assert!(q(Some(100), Some(200)).matches_window(&b));
    assert!(q(Some(0), Some(100)).matches_window(&b));
    assert!(q(Some(100), Some(100)).matches_window(&b));
    // state_since on an edge, cltt outside.
    assert!(q(Some(10), Some(50)).matches_window(&b));
    assert!(q(Some(50), Some(60)).matches_window(&b));
    // Neither inside.
    assert!(!q(Some(101), Some(200)).matches_window(&b));
    assert!(!q(Some(51), Some(99)).matches_window(&b));
    assert!(!q(Some(0), Some(49)).matches_window(&b));
    // Open bounds.
    assert!(q(None, None).matches_window(&b));
    assert!(q(Some(100), None).matches_window(&b));
    assert!(!q(Some(101), None).matches_window(&b));
    assert!(q(None, Some(50)).matches_window(&b));
    assert!(!q(None, Some(49)).matches_window(&b));
    assert!(in_window(Some(u32::MAX), None, u32::MAX));
    assert!(in_window(None, Some(0), 0));
}

#[test]
fn active_reply_contents() {
    let b = active(5);
    let m = build_bulk_reply(7, &b, NOW, true, SERVER, &[], &[]);
    assert_eq!(m.op, BOOTREPLY);
    assert_eq!(m.xid, 7);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, ip(5));
    assert_eq!(m.hw_addr(), &MAC);
    assert_eq!(codes(&m), vec![53, 54, 152, 153, 156, 91, 51]);
    assert_eq!(find(&m, 152), Some(&DhcpOption::BaseTime(NOW)));
    assert_eq!(find(&m, 153), Some(&DhcpOption::StartTimeOfState(100)));
    assert_eq!(find(&m, 156), Some(&DhcpOption::DhcpState(2)));
    assert_eq!(
        find(&m, 91),
        Some(&DhcpOption::ClientLastTransactionTime(100))
    );
    assert_eq!(find(&m, 51), Some(&DhcpOption::LeaseTime(3500)));
}

#[test]
fn reply_options_per_prl() {
    let b = active(5);
    let prl = [51, 58, 59, 61, 82, 91, 92, 152, 153, 156, 157];
    let m = build_bulk_reply(7, &b, NOW, false, SERVER, &prl, &[]);
    assert_eq!(
        codes(&m),
        vec![53, 152, 153, 156, 91, 51, 58, 59, 61, 82],
        "no 54 after the first reply, never 92"
    );
    assert_eq!(
        find(&m, 82),
        Some(&DhcpOption::RelayAgentInfo(relay(&[
            (1, &[0xaa, 0xbb]),
            (2, b"rid")
        ])))
    );
    // Not stored: not sent even when requested.
    let mut b2 = b.clone();
    b2.client_id = None;
    b2.relay_info = None;
    let m = build_bulk_reply(7, &b2, NOW, false, SERVER, &prl, &[]);
    assert!(find(&m, 61).is_none() && find(&m, 82).is_none());
}

#[test]
fn unassigned_reply_contents() {
    let mut b = active(5);
    b.state = DhcpState::Released;
    b.state_since = NOW - 20;
    b.expiry = 0;
    b.data_source = DATA_SOURCE_REMOTE;
    let m = build_bulk_reply(7, &b, NOW, false, SERVER, &[61], &[]);
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(m.ciaddr, ip(5));
    // The last client's address stays (RFC 6926 §7.3).
    assert_eq!(m.hw_addr(), &MAC);
    assert_eq!(codes(&m), vec![53, 152, 153, 156, 157, 91, 61]);
    assert_eq!(find(&m, 156), Some(&DhcpOption::DhcpState(4)));
    assert_eq!(find(&m, 157), Some(&DhcpOption::DataSource(1)));
    assert_eq!(find(&m, 153), Some(&DhcpOption::StartTimeOfState(20)));

    // A state with a timeout (RFC 6926 §8.3 item 4): option 51 carries it.
    b.state = DhcpState::Expired;
    b.expiry = NOW + 30;
    let m = build_bulk_reply(7, &b, NOW, false, SERVER, &[], &[]);
    assert_eq!(find(&m, 51), Some(&DhcpOption::LeaseTime(30)));
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));

    // Never leased: no CLTT, no hardware address, no lease time.
    let a = leaseline_proto::Binding::available(ip(9));
    let m = build_bulk_reply(7, &a, NOW, true, SERVER, &[51, 91, 61, 82], &[]);
    assert_eq!(codes(&m), vec![53, 54, 152, 153, 156]);
    assert_eq!((m.htype, m.hlen), (0, 0));
    assert_eq!(find(&m, 153), Some(&DhcpOption::StartTimeOfState(NOW)));
}

#[test]
fn lease_time_absent_when_past() {
    let mut b = active(5);
    b.expiry = NOW;
    let m = build_bulk_reply(7, &b, NOW, false, SERVER, &[51, 58, 59], &[]);
    assert!(find(&m, 51).is_none());
    assert!(find(&m, 58).is_none());
    assert!(find(&m, 59).is_none());
}

/// 51/58/59 are what the client was granted (here T1 1000 s, T2 3000 s
/// of a 3600 s lease, not lease/2 and 7/8) less the time since the grant,
/// each left out once reached; unknown T1/T2 are left out.
#[test]
fn renewal_times_are_the_grant() {
    let mut b = active(5); // granted 100 s ago
    b.renew_time = Some(1000);
    b.rebind_time = Some(3000);
    let at = |now: u32, b: &leaseline_proto::Binding| {
        let m = build_bulk_reply(7, b, now, false, SERVER, &[51, 58, 59], &[]);
        (
            find(&m, 51).cloned(),
            find(&m, 58).cloned(),
            find(&m, 59).cloned(),
        )
    };
    assert_eq!(
        at(NOW, &b),
        (
            Some(DhcpOption::LeaseTime(3500)),
            Some(DhcpOption::RenewalTime(900)),
            Some(DhcpOption::RebindingTime(2900))
        )
    );
    assert_eq!(at(NOW + 899, &b).1, Some(DhcpOption::RenewalTime(1)));
    assert_eq!(
        at(NOW + 900, &b),
        (
            Some(DhcpOption::LeaseTime(2600)),
            None,
            Some(DhcpOption::RebindingTime(2000))
        )
    );
    assert_eq!(
        at(NOW + 2900, &b),
        (Some(DhcpOption::LeaseTime(600)), None, None)
    );
    b.renew_time = None;
    b.rebind_time = None;
    assert_eq!(at(NOW, &b), (Some(DhcpOption::LeaseTime(3500)), None, None));
}

#[test]
fn future_times_saturate() {
    let mut b = active(5);
    b.cltt = NOW + 10;
    b.state_since = NOW + 10;
    let m = build_bulk_reply(7, &b, NOW, false, SERVER, &[], &[]);
    assert_eq!(find(&m, 153), Some(&DhcpOption::StartTimeOfState(0)));
    assert_eq!(
        find(&m, 91),
        Some(&DhcpOption::ClientLastTransactionTime(0))
    );
}

#[test]
fn denied_options_never_sent() {
    let mut b = active(5);
    b.data_source = DATA_SOURCE_REMOTE;
    let prl = [51, 58, 59, 61, 82, 91, 153, 156, 157];
    let denied = [51, 58, 59, 61, 82, 91, 153, 156, 157, 53, 54, 152];
    let m = build_bulk_reply(7, &b, NOW, true, SERVER, &prl, &denied);
    // 53, 54 and 152 frame the protocol and stay.
    assert_eq!(codes(&m), vec![53, 54, 152]);
}

#[test]
fn done_and_status() {
    let m = build_done(9, None, NOW, None);
    assert_eq!(m.op, BOOTREPLY);
    assert_eq!(m.xid, 9);
    assert_eq!(m.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(codes(&m), vec![53, 152]);

    let m = build_done(
        9,
        Some((StatusCode::NotAllowed, "two primaries")),
        NOW,
        Some(SERVER),
    );
    assert_eq!(codes(&m), vec![53, 54, 151, 152]);
    assert_eq!(
        find(&m, 151),
        Some(&DhcpOption::StatusCode(
            StatusCode::NotAllowed,
            "two primaries".into()
        ))
    );

    for code in [
        StatusCode::ConnectionActive,
        StatusCode::CatchUpComplete,
        StatusCode::DataMissing,
        StatusCode::QueryTerminated,
        StatusCode::MalformedQuery,
    ] {
        let m = build_status(3, code, "bye\0", NOW);
        assert_eq!(m.message_type(), Some(MessageType::LeaseQueryStatus));
        assert_eq!(m.xid, 3);
        assert_eq!(codes(&m), vec![53, 151, 152]);
        // RFC 6926 §6.2.2: no NUL in the text.
        assert_eq!(
            find(&m, 151),
            Some(&DhcpOption::StatusCode(code, "bye".into()))
        );
        assert_eq!(find(&m, 152), Some(&DhcpOption::BaseTime(NOW)));
    }
    // Long text is cut at a character boundary within one option.
    let long = "é".repeat(200);
    let m = build_status(3, StatusCode::QueryTerminated, &long, NOW);
    match find(&m, 151) {
        Some(DhcpOption::StatusCode(_, t)) => assert!(t.len() <= 254 && t.len() >= 252),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.giaddr, Ipv4Addr::UNSPECIFIED);
}

/// Which undecodable frames are answered MalformedQuery (RFC 6926 §8.2; Kea
/// #4549), one case per branch.
#[test]
fn malformed_query_xid_answers_only_dhcp_requests() {
    use leaseline_proto::malformed_query_xid;
    let mut good = bulk(|_| {}).to_bytes().unwrap();
    good[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    assert_eq!(
        malformed_query_xid(&good),
        Some(0x0102_0304),
        "a DHCP request"
    );
    let mut reply = good.clone();
    reply[0] = 2;
    assert_eq!(malformed_query_xid(&reply), None, "BOOTREPLY");
    let mut no_cookie = good.clone();
    no_cookie[236..240].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(malformed_query_xid(&no_cookie), None, "no magic cookie");
    assert_eq!(malformed_query_xid(&good[..239]), None, "header cut short");
    assert_eq!(malformed_query_xid(&[]), None, "nothing");
}
