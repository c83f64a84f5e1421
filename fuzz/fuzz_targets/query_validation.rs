//! Leasequery validation on arbitrary bytes: decode, then
//! `parse_leasequery`, `parse_bulk_query` and `parse_active_query`. None may
//! panic; at most one accepts; what is accepted is consistent with the
//! message; and every reply the proto builders make for it (or the
//! DHCPLEASEQUERYDONE / DHCPLEASEQUERYSTATUS for a refusal) encodes, fits
//! a TCP frame, and decodes back to the same message.
//!
//! The reply side needs bindings, a clock and a server-id. They are taken
//! from the message itself so the input stays one DHCP message: `sname`
//! (unused by the parsers) gives the times, state and addresses, and the
//! binding's client-id, option 82, hostname and vendor class are the
//! message's own options — values that, like the store's, went through the
//! decoder.
#![no_main]

use std::net::Ipv4Addr;

use leaseline_proto::{
    build_bulk_reply, build_done, build_leaseactive, build_leaseunassigned, build_leaseunknown,
    build_status, choose_primary, parse_active_query, parse_bulk_query, parse_leasequery,
    relay_info_to_raw, Binding, BulkPrimary, DhcpState, ExtraOptions, QueryKind, UdpQuery,
};
use leaseline_wire::{
    code, encode_frame, DhcpOption, Message, MessageType, RelayAgentInfo, StatusCode, BOOTREPLY,
    BOOTREQUEST,
};
use libfuzzer_sys::fuzz_target;

/// Reads fixed-size values out of `sname`, wrapping around.
struct Knobs<'a> {
    bytes: &'a [u8; 64],
    pos: usize,
}

impl Knobs<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.bytes[self.pos % 64];
        self.pos += 1;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn ip(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.u32())
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
}

struct Env {
    now: u32,
    server_id: Ipv4Addr,
    /// The operator's sensitive-option list (bulk/active) and
    /// non-sensitive list (UDP): a few codes.
    denied: Vec<u8>,
    allowed: Vec<u8>,
    bindings: Vec<Binding>,
}

fn opt<'m, T>(m: &'m Message, pick: impl Fn(&'m DhcpOption) -> Option<T>) -> Option<T> {
    m.options.iter().find_map(pick)
}

fn env(m: &Message) -> Env {
    let mut k = Knobs { bytes: &m.sname, pos: 0 };
    let now = k.u32();
    let server_id = k.ip();
    let nd = usize::from(k.u8() % 6);
    let denied = (0..nd).map(|_| k.u8()).collect();
    let na = usize::from(k.u8() % 6);
    let allowed = (0..na).map(|_| k.u8()).collect();

    let relay: Option<&RelayAgentInfo> = opt(m, |o| match o {
        DhcpOption::RelayAgentInfo(r) => Some(r),
        _ => None,
    });
    let base = Binding {
        ip: k.ip(),
        state: DhcpState::from_u8(k.u8() % 8 + 1).unwrap_or(DhcpState::Active),
        htype: m.htype,
        chaddr: m.hw_addr().to_vec(),
        client_id: opt(m, |o| match o {
            DhcpOption::ClientId(v) => Some(v.clone()),
            _ => None,
        }),
        expiry: k.u32(),
        cltt: k.u32(),
        state_since: k.u32(),
        data_source: k.u8(),
        relay_info: relay.and_then(relay_info_to_raw),
        circuit_id: relay.and_then(|r| r.circuit_id()).map(<[u8]>::to_vec),
        remote_id: relay.and_then(|r| r.remote_id()).map(<[u8]>::to_vec),
        relay_id: relay.and_then(|r| r.relay_id()).map(<[u8]>::to_vec),
        vendor_class_id: opt(m, |o| match o {
            DhcpOption::VendorClassId(v) => Some(v.clone()),
            _ => None,
        }),
        hostname: opt(m, |o| match o {
            DhcpOption::Hostname(v) => Some(v.clone()),
            _ => None,
        }),
        lease_time: k.u32(),
        renew_time: (k.u8() % 4 != 0).then(|| k.u32()),
        rebind_time: (k.u8() % 4 != 0).then(|| k.u32()),
    };
    // A few more bindings of the same client, for choose_primary and
    // option 92: other addresses (sometimes the same one), other times.
    let n = usize::from(k.u8() % 4);
    let mut bindings = vec![base.clone()];
    for _ in 0..n {
        let mut b = base.clone();
        if k.bool() {
            b.ip = k.ip();
        }
        b.state = DhcpState::from_u8(k.u8() % 8 + 1).unwrap_or(DhcpState::Active);
        b.cltt = k.u32();
        b.state_since = k.u32();
        if k.bool() {
            b.client_id = None;
            b.relay_info = None;
            b.hostname = None;
        }
        bindings.push(b);
    }
    Env {
        now,
        server_id,
        denied,
        allowed,
        bindings,
    }
}

/// A built reply must encode, fit a TCP frame, and decode to itself.
fn check(built: &Message, what: &str, xid: u32, mt: MessageType) {
    assert_eq!(built.op, BOOTREPLY, "{what}: not a BOOTREPLY");
    assert_eq!(built.xid, xid, "{what}: xid not echoed");
    assert_eq!(built.message_type(), Some(mt), "{what}: message type");
    let bytes = built
        .to_bytes()
        .unwrap_or_else(|e| panic!("{what} does not encode: {e:?}\n{built:?}"));
    let mut framed = Vec::new();
    encode_frame(&bytes, &mut framed).unwrap_or_else(|e| panic!("{what} does not frame: {e:?}"));
    let back = Message::decode(&bytes)
        .unwrap_or_else(|e| panic!("{what} does not decode: {e:?}\n{built:?}"));
    assert_eq!(&back, built, "{what}: decode(encode(reply)) differs");
}

fn udp(m: &Message, q: &UdpQuery, e: &Env) {
    assert_eq!(m.message_type(), Some(MessageType::LeaseQuery));
    assert_eq!(m.op, BOOTREQUEST);
    assert!(!q.giaddr.is_unspecified());
    assert_eq!((q.giaddr, q.xid), (m.giaddr, m.xid));
    // The key is what the message holds.
    let mut bindings = e.bindings.clone();
    match &q.kind {
        QueryKind::ByIp(ip) => {
            assert_eq!(*ip, m.ciaddr);
            bindings[0].ip = *ip;
        }
        QueryKind::ByMac { htype, chaddr } => {
            assert!(m.ciaddr.is_unspecified());
            assert_eq!((*htype, &chaddr[..]), (m.htype, m.hw_addr()));
            assert!(chaddr.iter().any(|&b| b != 0));
        }
        QueryKind::ByClientId(c) => {
            assert!(!c.is_empty());
            assert_eq!(bindings[0].client_id.as_ref(), Some(c));
        }
        QueryKind::ByRemoteId(r) => {
            assert!(!r.is_empty());
            assert_eq!(bindings[0].remote_id.as_ref(), Some(r));
        }
    }
    let _ = (q.kind.name(), q.kind.is_client_query());

    let extra = ExtraOptions {
        allowed: &e.allowed,
        value: &|_, _| None,
    };
    let assoc: Vec<Ipv4Addr> = bindings.iter().map(|b| b.ip).collect();
    let la = build_leaseactive(q, &bindings[0], &assoc, e.now, e.server_id, &extra);
    check(&la, "DHCPLEASEACTIVE", q.xid, MessageType::LeaseActive);
    assert_eq!(la.giaddr, q.giaddr);
    if let Some(sel) = choose_primary(&bindings) {
        assert!(sel.primary.state.is_leased());
        assert!(!sel.associated.contains(&sel.primary.ip));
        let la = build_leaseactive(q, sel.primary, &sel.associated, e.now, e.server_id, &extra);
        check(&la, "DHCPLEASEACTIVE (chosen)", q.xid, MessageType::LeaseActive);
        let la = build_leaseactive(
            q,
            sel.primary,
            &sel.associated,
            e.now,
            e.server_id,
            &ExtraOptions::NONE,
        );
        check(&la, "DHCPLEASEACTIVE (no extra)", q.xid, MessageType::LeaseActive);
    }
    let lu = build_leaseunassigned(q, bindings[0].ip, e.server_id);
    check(&lu, "DHCPLEASEUNASSIGNED", q.xid, MessageType::LeaseUnassigned);
    let lk = build_leaseunknown(q, e.server_id);
    check(&lk, "DHCPLEASEUNKNOWN", q.xid, MessageType::LeaseUnknown);
    // RFC 6148 §4.3: option 82 echoed unchanged.
    if let Some(ri) = &q.relay_info {
        assert!(lk.options.contains(&DhcpOption::RelayAgentInfo(ri.clone())));
    }
}

fn bulk_replies(xid: u32, prl: &[u8], e: &Env, what: &str) {
    for (i, b) in e.bindings.iter().enumerate() {
        let r = build_bulk_reply(xid, b, e.now, i == 0, e.server_id, prl, &e.denied);
        let mt = if b.state.is_leased() {
            MessageType::LeaseActive
        } else {
            MessageType::LeaseUnassigned
        };
        check(&r, what, xid, mt);
        assert_eq!(r.ciaddr, b.ip);
        assert_eq!(r.has_option(code::SERVER_ID), i == 0, "{what}: server-id only first");
        assert!(r.has_option(code::BASE_TIME), "{what}: base-time");
        for &d in &e.denied {
            if ![code::MESSAGE_TYPE, code::SERVER_ID, code::BASE_TIME].contains(&d) {
                assert!(!r.has_option(d), "{what}: denied option {d} sent");
            }
        }
    }
}

fn status_text(e: &Env) -> String {
    // A text with NULs and multi-byte characters, cut by the builders.
    let mut s = String::from("x\0é");
    s.extend(std::iter::repeat_n('ü', usize::from(e.now as u8)));
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    let e = env(&m);
    let mut accepted = 0;

    match parse_leasequery(&m) {
        Ok(q) => {
            accepted += 1;
            udp(&m, &q, &e);
        }
        Err(r) => {
            let _ = (r.reason(), r.to_string());
        }
    }

    match parse_bulk_query(&m) {
        Ok(q) => {
            accepted += 1;
            assert_eq!(m.message_type(), Some(MessageType::BulkLeaseQuery));
            assert!(m.ciaddr.is_unspecified() && m.yiaddr.is_unspecified());
            assert!(m.siaddr.is_unspecified());
            if let (Some(s), Some(t)) = (q.start, q.end) {
                assert!(s <= t);
            }
            let _ = q.primary.name();
            if let BulkPrimary::ByMac { htype, chaddr } = &q.primary {
                assert_eq!((*htype, &chaddr[..]), (m.htype, m.hw_addr()));
            }
            for b in &e.bindings {
                let _ = q.matches_window(b);
            }
            bulk_replies(q.xid, &q.prl, &e, "bulk reply");
            let done = build_done(q.xid, None, e.now, None);
            check(&done, "DHCPLEASEQUERYDONE", q.xid, MessageType::LeaseQueryDone);
            let done = build_done(q.xid, None, e.now, Some(e.server_id));
            check(&done, "DHCPLEASEQUERYDONE (sid)", q.xid, MessageType::LeaseQueryDone);
        }
        Err((status, text)) => {
            assert_ne!(status, StatusCode::Success);
            let done = build_done(m.xid, Some((status, text)), e.now, Some(e.server_id));
            check(&done, "DHCPLEASEQUERYDONE (refusal)", m.xid, MessageType::LeaseQueryDone);
            let long = status_text(&e);
            let done = build_done(m.xid, Some((status, &long)), e.now, None);
            check(&done, "DHCPLEASEQUERYDONE (long text)", m.xid, MessageType::LeaseQueryDone);
        }
    }

    match parse_active_query(&m) {
        Ok(q) => {
            accepted += 1;
            assert_eq!(m.message_type(), Some(MessageType::ActiveLeaseQuery));
            assert!(m.ciaddr.is_unspecified());
            assert!(m.chaddr.iter().all(|&b| b == 0));
            assert!(!m.has_option(code::CLIENT_ID) && !m.has_option(code::QUERY_END_TIME));
            bulk_replies(q.xid, &q.prl, &e, "active reply");
            for s in [StatusCode::ConnectionActive, StatusCode::CatchUpComplete] {
                let st = build_status(q.xid, s, "", e.now);
                check(&st, "DHCPLEASEQUERYSTATUS", q.xid, MessageType::LeaseQueryStatus);
            }
        }
        Err(r) => {
            let _ = r.reason();
            let st = build_status(m.xid, r.status(), &r.to_string(), e.now);
            check(&st, "DHCPLEASEQUERYSTATUS (refusal)", m.xid, MessageType::LeaseQueryStatus);
        }
    }

    assert!(accepted <= 1, "more than one parser accepted the message");
});
