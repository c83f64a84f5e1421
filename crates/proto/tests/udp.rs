#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! RFC 4388 / RFC 6148 query parsing and reply building.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::*;
use leaseline_proto::{
    build_leaseactive, build_leaseunassigned, build_leaseunknown, choose_primary, parse_leasequery,
    Binding, DhcpState, ExtraOptions, QueryKind, QueryRefusal, UdpQuery,
};
use leaseline_wire::{code, DhcpOption, Message, MessageType, BOOTREPLY};

// ---------------------------------------------------------------- parsing

#[test]
fn parses_by_ip() {
    let mut m = leasequery();
    m.ciaddr = ip(5);
    m.options
        .push(DhcpOption::ParameterRequestList(vec![51, 82]));
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(q.kind, QueryKind::ByIp(ip(5)));
    assert_eq!(q.giaddr, GIADDR);
    assert_eq!(q.xid, 0xdead_beef);
    assert_eq!(q.prl, vec![51, 82]);
    assert_eq!(q.relay_info, None);
    assert_eq!(q.kind.name(), "ip");
    assert!(!q.kind.is_client_query());
}

#[test]
fn parses_by_mac() {
    let mut m = leasequery();
    set_mac(&mut m, &MAC);
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(
        q.kind,
        QueryKind::ByMac {
            htype: 1,
            chaddr: MAC.to_vec()
        }
    );
    assert!(q.prl.is_empty());
}

#[test]
fn mac_uses_only_hlen_bytes() {
    // Non-zero bytes beyond hlen are not part of the key.
    let mut m = leasequery();
    set_mac(&mut m, &MAC);
    m.chaddr[10] = 9;
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(
        q.kind,
        QueryKind::ByMac {
            htype: 1,
            chaddr: MAC.to_vec()
        }
    );
    // And with hlen 0 they are no key at all.
    let mut m = leasequery();
    m.chaddr[0] = 1;
    assert_eq!(parse_leasequery(&m), Err(QueryRefusal::NoQueryKey));
}

#[test]
fn parses_by_client_id() {
    let mut m = leasequery();
    m.options.push(DhcpOption::ClientId(vec![1, 2, 3]));
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(q.kind, QueryKind::ByClientId(vec![1, 2, 3]));
}

#[test]
fn parses_by_remote_id() {
    let mut m = leasequery();
    let ri = relay(&[(2, b"modem-1")]);
    m.options.push(DhcpOption::RelayAgentInfo(ri.clone()));
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(q.kind, QueryKind::ByRemoteId(b"modem-1".to_vec()));
    assert_eq!(q.relay_info, Some(ri));
    assert_eq!(q.kind.name(), "remote_id");
}

#[test]
fn option_82_with_other_sub_options_is_not_a_key() {
    // The requestor's own relay information travels with a by-IP query.
    let mut m = leasequery();
    m.ciaddr = ip(9);
    let ri = relay(&[(1, b"port-1"), (2, b"modem-1")]);
    m.options.push(DhcpOption::RelayAgentInfo(ri.clone()));
    let q = parse_leasequery(&m).unwrap();
    assert_eq!(q.kind, QueryKind::ByIp(ip(9)));
    assert_eq!(q.relay_info, Some(ri));
}

/// RFC 6148 §5: a query by IP address, MAC address or client-id whose
/// option 82 holds only a remote-id is still that query (issue 16 item 1:
/// it was refused as carrying two keys and dropped); the option 82 is kept
/// for the echo. Even an empty or repeated remote-id is then no key.
#[test]
fn a_remote_id_beside_another_key_leaves_that_key_the_query() {
    type SetKey = fn(&mut Message);
    let cases: [(&str, SetKey, QueryKind); 3] = [
        ("ip", |m| m.ciaddr = ip(7), QueryKind::ByIp(ip(7))),
        (
            "mac",
            |m| set_mac(m, &MAC),
            QueryKind::ByMac {
                htype: 1,
                chaddr: MAC.to_vec(),
            },
        ),
        (
            "client_id",
            |m| m.options.push(DhcpOption::ClientId(vec![1, 2])),
            QueryKind::ByClientId(vec![1, 2]),
        ),
    ];
    for (name, set_key, kind) in cases {
        for subs in [
            &[(2u8, &b"modem-1"[..])][..],
            &[(2, b"")],
            &[(2, b"a"), (2, b"b")],
        ] {
            let mut m = leasequery();
            set_key(&mut m);
            let ri = relay(subs);
            m.options.push(DhcpOption::RelayAgentInfo(ri.clone()));
            let q = parse_leasequery(&m).unwrap_or_else(|e| panic!("{name} with {subs:?}: {e}"));
            assert_eq!(q.kind, kind, "{name} with {subs:?}");
            assert_eq!(q.kind.name(), name);
            assert_eq!(q.relay_info, Some(ri));
        }
    }
}

#[test]
fn default_htype_hlen_with_zero_chaddr_is_no_mac() {
    let mut m = leasequery();
    m.htype = 1;
    m.hlen = 6;
    m.ciaddr = ip(3);
    assert_eq!(parse_leasequery(&m).unwrap().kind, QueryKind::ByIp(ip(3)));
}

fn refusal(f: impl FnOnce(&mut Message)) -> QueryRefusal {
    let mut m = leasequery();
    f(&mut m);
    parse_leasequery(&m).unwrap_err()
}

#[test]
fn every_refusal_reason() {
    use QueryRefusal::*;
    let cases: Vec<(QueryRefusal, QueryRefusal)> = vec![
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.options.clear();
            }),
            NotALeaseQuery,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.options = vec![DhcpOption::MessageType(MessageType::Discover)];
            }),
            NotALeaseQuery,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.options
                    .push(DhcpOption::MessageType(MessageType::LeaseQuery));
            }),
            NotALeaseQuery,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.op = BOOTREPLY;
            }),
            NotABootRequest,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.giaddr = Ipv4Addr::UNSPECIFIED;
            }),
            ZeroGiaddr,
        ),
        (refusal(|_| {}), NoQueryKey),
        (
            refusal(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(1, b"c")])));
            }),
            NoQueryKey,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                set_mac(m, &MAC);
            }),
            SeveralQueryKeys,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.options.push(DhcpOption::ClientId(vec![1]));
            }),
            SeveralQueryKeys,
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.hlen = 17;
            }),
            BadHlen(17),
        ),
        (
            refusal(|m| m.options.push(DhcpOption::ClientId(vec![]))),
            EmptyClientId,
        ),
        (
            refusal(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"")])))
            }),
            EmptyRemoteId,
        ),
        (
            refusal(|m| {
                m.options
                    .push(DhcpOption::RelayAgentInfo(relay(&[(2, b"a"), (2, b"b")])))
            }),
            SeveralRemoteIds,
        ),
        (
            refusal(|m| {
                m.options.push(DhcpOption::ClientId(vec![1]));
                m.options.push(DhcpOption::ClientId(vec![2]));
            }),
            DuplicateOption(code::CLIENT_ID),
        ),
        (
            refusal(|m| {
                m.ciaddr = ip(1);
                m.options.push(DhcpOption::ParameterRequestList(vec![51]));
                m.options.push(DhcpOption::ParameterRequestList(vec![82]));
            }),
            DuplicateOption(code::PARAMETER_REQUEST_LIST),
        ),
        (
            refusal(|m| {
                m.options.push(DhcpOption::Unknown {
                    code: code::CLIENT_ID,
                    data: vec![1, 2],
                })
            }),
            BadOption(code::CLIENT_ID),
        ),
    ];
    let mut reasons = HashSet::new();
    for (got, want) in cases {
        assert_eq!(got, want);
        let r = got.reason();
        assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r}");
        assert!(!got.to_string().is_empty());
        reasons.insert(r);
    }
    // Every variant was exercised.
    assert_eq!(reasons.len(), 11);
}

// ---------------------------------------------------------------- replies

fn query(kind: QueryKind, prl: &[u8]) -> UdpQuery {
    UdpQuery {
        kind,
        giaddr: GIADDR,
        xid: 42,
        prl: prl.to_vec(),
        relay_info: None,
    }
}

fn mac_query(prl: &[u8]) -> UdpQuery {
    query(
        QueryKind::ByMac {
            htype: 1,
            chaddr: MAC.to_vec(),
        },
        prl,
    )
}

#[test]
fn leaseactive_header() {
    let b = active(5);
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[]),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(m.op, BOOTREPLY);
    assert_eq!(m.xid, 42);
    assert_eq!(m.giaddr, GIADDR);
    assert_eq!(m.ciaddr, ip(5));
    assert_eq!(m.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!((m.htype, m.hlen), (1, 6));
    assert_eq!(m.hw_addr(), &MAC);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(&codes(&m)[..2], &[53, 54]);
    assert_eq!(find(&m, 54), Some(&DhcpOption::ServerId(SERVER)));
}

#[test]
fn leaseactive_options_follow_prl() {
    let b = active(5);
    let prl = [91, 82, 61, 59, 58, 51];
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &prl),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54, 91, 82, 61, 59, 58, 51]);
    // Leased 100 s ago for 3600 s.
    assert_eq!(find(&m, 51), Some(&DhcpOption::LeaseTime(3500)));
    assert_eq!(find(&m, 58), Some(&DhcpOption::RenewalTime(1700)));
    assert_eq!(find(&m, 59), Some(&DhcpOption::RebindingTime(3050)));
    assert_eq!(
        find(&m, 91),
        Some(&DhcpOption::ClientLastTransactionTime(100))
    );
    assert_eq!(
        find(&m, 61),
        Some(&DhcpOption::ClientId(b.client_id.clone().unwrap()))
    );
    assert_eq!(
        find(&m, 82),
        Some(&DhcpOption::RelayAgentInfo(relay(&[
            (1, &[0xaa, 0xbb]),
            (2, b"rid")
        ])))
    );
}

#[test]
fn leaseactive_omits_unrequested() {
    let b = active(5);
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[1, 3]),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54]);
}

#[test]
fn leaseactive_without_prl_sends_lease_times() {
    let b = active(5);
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[]),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54, 51, 58, 59]);
}

/// RFC 4388 §6.4.2: 51/58/59 as the client's DHCPACK gave them (here T1
/// 2 s, T2 4 s of a 60 s lease), less the time since, each left out once
/// reached.
#[test]
fn leaseactive_reports_the_granted_times() {
    let mut b = active(5);
    b.cltt = NOW;
    b.expiry = NOW + 60;
    b.lease_time = 60;
    b.renew_time = Some(2);
    b.rebind_time = Some(4);
    let q = query(QueryKind::ByIp(ip(5)), &[51, 58, 59]);
    let at = |now: u32| {
        let m = build_leaseactive(&q, &b, &[], now, SERVER, &ExtraOptions::NONE);
        (
            find(&m, 51).cloned(),
            find(&m, 58).cloned(),
            find(&m, 59).cloned(),
        )
    };
    use DhcpOption::{LeaseTime as L, RebindingTime as T2, RenewalTime as T1};
    assert_eq!(at(NOW), (Some(L(60)), Some(T1(2)), Some(T2(4))));
    assert_eq!(at(NOW + 1), (Some(L(59)), Some(T1(1)), Some(T2(3))));
    assert_eq!(at(NOW + 2), (Some(L(58)), None, Some(T2(2))));
    assert_eq!(at(NOW + 3), (Some(L(57)), None, Some(T2(1))));
    assert_eq!(at(NOW + 4), (Some(L(56)), None, None));
    assert_eq!(at(NOW + 5), (Some(L(55)), None, None));
    assert_eq!(at(NOW + 60), (None, None, None));
}

#[test]
fn leaseactive_past_t1_and_expired() {
    let mut b = active(5);
    // 2000 s into a 3600 s lease: T1 (1800) past, T2 (3150) not.
    b.cltt = NOW - 2000;
    b.expiry = b.cltt + 3600;
    let q = query(QueryKind::ByIp(ip(5)), &[51, 58, 59, 91]);
    let m = build_leaseactive(&q, &b, &[], NOW, SERVER, &ExtraOptions::NONE);
    assert_eq!(codes(&m), vec![53, 54, 51, 59, 91]);
    assert_eq!(find(&m, 59), Some(&DhcpOption::RebindingTime(1150)));
    // Past expiry: no lease time, no T1/T2.
    b.expiry = NOW;
    let m = build_leaseactive(&q, &b, &[], NOW, SERVER, &ExtraOptions::NONE);
    assert_eq!(codes(&m), vec![53, 54, 91]);
    // Unknown CLTT: no option 91.
    b.cltt = 0;
    let m = build_leaseactive(&q, &b, &[], NOW, SERVER, &ExtraOptions::NONE);
    assert_eq!(codes(&m), vec![53, 54]);
}

#[test]
fn leaseactive_future_times_do_not_underflow() {
    let mut b = active(5);
    b.cltt = NOW + 50;
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[91]),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(
        find(&m, 91),
        Some(&DhcpOption::ClientLastTransactionTime(0))
    );
}

#[test]
fn leaseactive_skips_missing_and_malformed_stored_values() {
    let mut b = active(5);
    b.client_id = None;
    b.relay_info = Some(vec![1, 9, 0]); // sub-option runs past the end
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[61, 82]),
        &b,
        &[],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54]);
}

#[test]
fn associated_ip_always_for_client_queries() {
    let b = active(5);
    let assoc = [ip(6), ip(5), ip(7), ip(6)];
    for q in [
        mac_query(&[51]),
        query(QueryKind::ByClientId(vec![1]), &[51]),
        query(QueryKind::ByRemoteId(b"r".to_vec()), &[51]),
    ] {
        let m = build_leaseactive(&q, &b, &assoc, NOW, SERVER, &ExtraOptions::NONE);
        assert_eq!(codes(&m), vec![53, 54, 51, 92]);
        // The primary is not listed again; duplicates collapse.
        assert_eq!(
            find(&m, 92),
            Some(&DhcpOption::AssociatedIp(vec![ip(6), ip(7)]))
        );
    }
    // Requested: at its PRL position, once.
    let m = build_leaseactive(
        &mac_query(&[92, 51]),
        &b,
        &assoc,
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54, 92, 51]);
    // A single binding: no option 92 (n >= 1 addresses).
    let m = build_leaseactive(
        &mac_query(&[92]),
        &b,
        &[ip(5)],
        NOW,
        SERVER,
        &ExtraOptions::NONE,
    );
    assert_eq!(codes(&m), vec![53, 54]);
}

#[test]
fn associated_ip_for_ip_queries_only_when_requested() {
    let b = active(5);
    let q = query(QueryKind::ByIp(ip(5)), &[51]);
    let m = build_leaseactive(&q, &b, &[ip(6)], NOW, SERVER, &ExtraOptions::NONE);
    assert!(find(&m, 92).is_none());
    let q = query(QueryKind::ByIp(ip(5)), &[92]);
    let m = build_leaseactive(&q, &b, &[ip(6)], NOW, SERVER, &ExtraOptions::NONE);
    assert_eq!(find(&m, 92), Some(&DhcpOption::AssociatedIp(vec![ip(6)])));
}

#[test]
fn extra_options_only_when_allowed() {
    let b = active(5);
    let value = |_: &Binding, c: u8| match c {
        1 => Some(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))),
        3 => Some(DhcpOption::Router(vec![ip(1)])),
        // Wrong code for what was asked: ignored.
        6 => Some(DhcpOption::Router(vec![ip(1)])),
        // Never from the PRL, even if allowed.
        54 => Some(DhcpOption::ServerId(ip(99))),
        _ => None,
    };
    let extra = ExtraOptions {
        allowed: &[1, 6, 12, 54],
        value: &value,
    };
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[1, 3, 6, 12, 60, 54, 53, 55]),
        &b,
        &[],
        NOW,
        SERVER,
        &extra,
    );
    // 3 and 60 not allowed; 6's value has the wrong code; 12 comes from the
    // binding's stored hostname.
    assert_eq!(codes(&m), vec![53, 54, 1, 12]);
    assert_eq!(find(&m, 12), Some(&DhcpOption::Hostname(b"host".to_vec())));
    assert_eq!(find(&m, 54), Some(&DhcpOption::ServerId(SERVER)));
    // Without a PRL the allowed options come after 51/58/59.
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[]),
        &b,
        &[],
        NOW,
        SERVER,
        &extra,
    );
    assert_eq!(codes(&m), vec![53, 54, 51, 58, 59, 1, 12]);
    // Duplicate PRL codes give one option.
    let m = build_leaseactive(
        &query(QueryKind::ByIp(ip(5)), &[51, 51, 1, 1]),
        &b,
        &[],
        NOW,
        SERVER,
        &extra,
    );
    assert_eq!(codes(&m), vec![53, 54, 51, 1]);
}

#[test]
fn leaseunassigned_has_only_type_and_server_id() {
    let mut q = query(QueryKind::ByIp(ip(8)), &[51, 82, 91]);
    q.relay_info = Some(relay(&[(1, b"c")]));
    let m = build_leaseunassigned(&q, ip(8), SERVER);
    assert_eq!(m.op, BOOTREPLY);
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!((m.xid, m.giaddr, m.ciaddr), (42, GIADDR, ip(8)));
    assert_eq!(codes(&m), vec![53, 54]);
    assert_eq!((m.htype, m.hlen), (0, 0));
}

#[test]
fn leaseunknown_has_only_53_54_82() {
    let ri = relay(&[(2, b"modem-1")]);
    let mut q = query(QueryKind::ByRemoteId(b"modem-1".to_vec()), &[51, 92, 91]);
    q.relay_info = Some(ri.clone());
    let m = build_leaseunknown(&q, SERVER);
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnknown));
    assert_eq!(codes(&m), vec![53, 54, 82]);
    assert_eq!(find(&m, 82), Some(&DhcpOption::RelayAgentInfo(ri)));
    assert_eq!((m.op, m.xid, m.giaddr), (BOOTREPLY, 42, GIADDR));
    assert_eq!(m.ciaddr, Ipv4Addr::UNSPECIFIED);

    // Without option 82 in the query: 53 and 54 only; the key is echoed.
    let m = build_leaseunknown(&query(QueryKind::ByIp(ip(77)), &[51]), SERVER);
    assert_eq!(codes(&m), vec![53, 54]);
    assert_eq!(m.ciaddr, ip(77));
    let m = build_leaseunknown(&mac_query(&[51]), SERVER);
    assert_eq!(codes(&m), vec![53, 54]);
    assert_eq!((m.htype, m.hw_addr()), (1, &MAC[..]));
}

#[test]
fn choose_primary_latest_cltt_among_active() {
    let mut a = active(1);
    a.cltt = NOW - 500;
    let mut b = active(2);
    b.cltt = NOW - 10;
    let mut c = active(3);
    c.cltt = NOW - 300;
    // Most recent transaction, but no longer leased: ignored.
    let mut d = active(4);
    d.cltt = NOW - 1;
    d.state = DhcpState::Expired;
    let all = vec![a, b, c, d];
    let s = choose_primary(&all).unwrap();
    assert_eq!(s.primary.ip, ip(2));
    assert_eq!(s.associated, vec![ip(1), ip(3)]);

    let only = vec![all[3].clone()];
    assert!(choose_primary(&only).is_none());
    assert!(choose_primary(&Vec::<Binding>::new()).is_none());

    // Ties: later state start, then the lower address.
    let mut x = active(9);
    let mut y = active(8);
    x.cltt = NOW;
    y.cltt = NOW;
    let s = choose_primary([&x, &y]).unwrap();
    assert_eq!(s.primary.ip, ip(8));
    x.state_since = NOW;
    y.state_since = NOW - 1;
    let s = choose_primary([&x, &y]).unwrap();
    assert_eq!(s.primary.ip, ip(9));
    assert_eq!(s.associated, vec![ip(8)]);
}
