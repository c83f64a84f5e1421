#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Property tests: the parsers and builders never panic, whatever the typed
//! message or binding (debug builds check arithmetic overflow too).

mod common;

use std::net::Ipv4Addr;

use leaseline_proto::{
    build_bulk_reply, build_done, build_leaseactive, build_leaseunassigned, build_leaseunknown,
    build_status, choose_primary, parse_active_query, parse_bulk_query, parse_leasequery,
    relay_info_from_raw, relay_info_to_raw, Binding, DhcpState, ExtraOptions, QueryKind, UdpQuery,
};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, StatusCode, SubOption};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        3 => Just(Ipv4Addr::UNSPECIFIED),
        1 => any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn small_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

fn relay_info() -> impl Strategy<Value = RelayAgentInfo> {
    prop::collection::vec(
        (
            prop_oneof![Just(1u8), Just(2u8), Just(12u8), any::<u8>()],
            small_bytes(),
        )
            .prop_map(|(code, data)| SubOption { code, data }),
        0..4,
    )
    .prop_map(|sub_options| RelayAgentInfo { sub_options })
}

fn interesting_code() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(53u8),
        Just(55),
        Just(61),
        Just(82),
        Just(154),
        Just(155),
        Just(221),
        any::<u8>()
    ]
}

fn option() -> impl Strategy<Value = DhcpOption> {
    prop_oneof![
        4 => (1u8..=18).prop_map(|v| DhcpOption::MessageType(MessageType::from_u8(v).unwrap())),
        2 => small_bytes().prop_map(DhcpOption::ClientId),
        2 => relay_info().prop_map(DhcpOption::RelayAgentInfo),
        2 => prop::collection::vec(any::<u8>(), 0..12).prop_map(DhcpOption::ParameterRequestList),
        2 => any::<u32>().prop_map(DhcpOption::QueryStartTime),
        2 => any::<u32>().prop_map(DhcpOption::QueryEndTime),
        2 => small_bytes().prop_map(DhcpOption::Vss),
        1 => any::<u32>().prop_map(DhcpOption::LeaseTime),
        1 => (any::<u8>(), ".{0,4}").prop_map(|(c, t)| DhcpOption::StatusCode(StatusCode::from_u8(c), t)),
        2 => (interesting_code(), small_bytes()).prop_map(|(code, data)| DhcpOption::Unknown { code, data }),
    ]
}

prop_compose! {
    fn message()(
        op in prop_oneof![Just(1u8), Just(2u8), any::<u8>()],
        htype in any::<u8>(),
        hlen in prop_oneof![Just(0u8), Just(6u8), 0u8..=20, any::<u8>()],
        xid in any::<u32>(),
        ciaddr in addr(), yiaddr in addr(), siaddr in addr(), giaddr in addr(),
        chaddr in prop_oneof![Just([0u8; 16]), any::<[u8; 16]>()],
        mt in (1u8..=18).prop_map(|v| MessageType::from_u8(v).unwrap()),
        rest in prop::collection::vec(option(), 0..6),
        lead_with_type in any::<bool>(),
    ) -> Message {
        let mut options = Vec::new();
        if lead_with_type {
            options.push(DhcpOption::MessageType(mt));
        }
        options.extend(rest);
        Message { op, htype, hlen, xid, ciaddr, yiaddr, siaddr, giaddr, chaddr, options, ..Message::default() }
    }
}

prop_compose! {
    fn binding()(
        ip in any::<u32>(),
        state in 1u8..=8,
        htype in any::<u8>(),
        chaddr in prop::collection::vec(any::<u8>(), 0..20),
        client_id in prop::option::of(small_bytes()),
        expiry in any::<u32>(),
        cltt in any::<u32>(),
        state_since in any::<u32>(),
        data_source in any::<u8>(),
        relay_raw in prop::option::of(small_bytes()),
        hostname in prop::option::of(small_bytes()),
        lease_time in prop_oneof![Just(0u32), any::<u32>(), 0u32..100_000],
        renew_time in prop::option::of(any::<u32>()),
        rebind_time in prop::option::of(any::<u32>()),
    ) -> Binding {
        Binding {
            state: DhcpState::from_u8(state).unwrap(),
            htype,
            chaddr,
            client_id,
            expiry,
            cltt,
            state_since,
            data_source,
            relay_info: relay_raw,
            hostname,
            lease_time,
            renew_time,
            rebind_time,
            ..Binding::available(Ipv4Addr::from(ip))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(m in message()) {
        let udp = parse_leasequery(&m);
        if let Err(r) = &udp {
            prop_assert!(!r.reason().is_empty());
        }
        if let Ok(q) = &udp {
            prop_assert!(!q.giaddr.is_unspecified());
        }
        let bulk = parse_bulk_query(&m);
        if let Ok(q) = &bulk {
            if let (Some(s), Some(e)) = (q.start, q.end) {
                prop_assert!(s <= e);
            }
        }
        let active = parse_active_query(&m);
        if let Err(r) = &active {
            let _ = (r.status(), r.reason());
        }
    }

    #[test]
    fn builders_never_panic(
        m in message(),
        bs in prop::collection::vec(binding(), 0..4),
        now in prop_oneof![any::<u32>(), Just(0u32), Just(u32::MAX)],
        prl in prop::collection::vec(any::<u8>(), 0..16),
        denied in prop::collection::vec(any::<u8>(), 0..8),
        first in any::<bool>(),
    ) {
        let sid = Ipv4Addr::new(192, 0, 2, 1);
        let q = parse_leasequery(&m).unwrap_or(UdpQuery {
            kind: match m.xid % 4 {
                0 => QueryKind::ByIp(m.ciaddr),
                1 => QueryKind::ByMac { htype: m.htype, chaddr: m.chaddr[..usize::from(m.hlen % 17)].to_vec() },
                2 => QueryKind::ByClientId(m.chaddr.to_vec()),
                _ => QueryKind::ByRemoteId(vec![]),
            },
            giaddr: m.giaddr,
            xid: m.xid,
            prl: prl.clone(),
            relay_info: m.xid.is_multiple_of(3).then(RelayAgentInfo::default),
        });
        {
            let unknown = build_leaseunknown(&q, sid);
            prop_assert!(unknown.options.iter().all(|o| matches!(o.code(), 53 | 54 | 82)));
            let _ = build_leaseunassigned(&q, Ipv4Addr::new(10, 0, 0, 1), sid);
            let value = |b: &Binding, c: u8| (c == 1).then_some(DhcpOption::SubnetMask(b.ip));
            let extra = ExtraOptions { allowed: &denied, value: &value };
            if let Some(sel) = choose_primary(&bs) {
                let r = build_leaseactive(&q, sel.primary, &sel.associated, now, sid, &extra);
                prop_assert_eq!(r.ciaddr, sel.primary.ip);
                prop_assert!(r.hlen <= 16);
            }
        }
        for b in &bs {
            let r = build_bulk_reply(7, b, now, first, sid, &prl, &denied);
            prop_assert!(!r.has_option(92));
            prop_assert_eq!(r.option(152), Some(&DhcpOption::BaseTime(now)));
            prop_assert_eq!(r.has_option(54), first);
            prop_assert_eq!(
                r.message_type(),
                Some(if b.state == DhcpState::Active { MessageType::LeaseActive } else { MessageType::LeaseUnassigned })
            );
            for c in &denied {
                if !matches!(c, 53 | 54 | 152) {
                    prop_assert!(!r.has_option(*c));
                }
            }
            let _ = (b.remaining_t1(now), b.remaining_t2(now), b.remaining_lease(now), b.cltt_age(now));
            if let Some(ri) = b.relay_agent_info() {
                prop_assert_eq!(relay_info_to_raw(&ri), b.relay_info.clone());
            }
        }
        let _ = build_done(1, Some((StatusCode::MalformedQuery, "x\0y")), now, Some(sid));
        let _ = build_status(1, StatusCode::DataMissing, "", now);
    }

    #[test]
    fn relay_raw_never_panics(raw in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Some(ri) = relay_info_from_raw(&raw) {
            prop_assert_eq!(relay_info_to_raw(&ri), Some(raw));
        }
    }
}
