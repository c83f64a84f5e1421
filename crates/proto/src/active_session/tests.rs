use std::net::Ipv4Addr;

use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType, StatusCode};

use super::*;
use crate::frame_into;
use crate::DhcpState;

const SID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn query(start: Option<u32>) -> ActiveQuery {
    ActiveQuery {
        xid: 7,
        start,
        prl: vec![51, 91, 152],
    }
}

fn leased(n: u8, expiry: u32) -> Binding {
    let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, n));
    b.state = DhcpState::Active;
    b.htype = 1;
    b.chaddr = vec![2, 0, 0, 0, 0, n];
    b.expiry = expiry;
    b.cltt = expiry - 3600;
    b.state_since = expiry - 3600;
    b.lease_time = 3600;
    b.renew_time = Some(1800);
    b.rebind_time = Some(3150);
    b
}

/// Every framed message in `out`, decoded.
fn messages(out: &[u8]) -> Vec<Message> {
    let mut d = FrameDecoder::new(65_535);
    d.extend(out);
    let mut v = Vec::new();
    while let Some(f) = d.next_frame().expect("framing") {
        v.push(Message::decode(f).expect("decodes"));
    }
    v
}

fn base_time(m: &Message) -> u32 {
    m.options
        .iter()
        .find_map(|o| match o {
            DhcpOption::BaseTime(t) => Some(*t),
            _ => None,
        })
        .expect("base-time in every message (RFC 7724 §8.2)")
}

fn lease_time(m: &Message) -> Option<u32> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::LeaseTime(t) => Some(*t),
        _ => None,
    })
}

fn status(m: &Message) -> Option<StatusCode> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, _) => Some(*c),
        _ => None,
    })
}

fn send(
    s: &mut ActiveSession,
    bs: &[(&Binding, u32)],
    now: u32,
    left: Option<u32>,
) -> Vec<Message> {
    let mut out = Vec::new();
    s.updates(
        bs.iter().map(|&(binding, changed)| Update {
            binding,
            changed,
            shared: None,
        }),
        &[],
        now,
        left,
        &mut out,
    );
    messages(&out)
}

#[test]
fn base_time_never_passes_an_unsent_change() {
    let mut s = ActiveSession::new(&query(None), SID);
    assert!(s.begin(History::None, 1000, &mut Vec::new()).is_empty());
    let (a, b, c) = (leased(1, 5000), leased(2, 5000), leased(3, 5000));
    // Three addresses changed at 990, 995 and 998; one more left at 999.
    let ms = send(&mut s, &[(&a, 990), (&b, 995), (&c, 998)], 1000, Some(999));
    let bases: Vec<u32> = ms.iter().map(base_time).collect();
    assert_eq!(bases, vec![995, 998, 999]);
    // A change published after `now` was read: base-time is its own time,
    // never earlier than the change it carries.
    let ms = send(&mut s, &[(&a, 1001)], 1000, None);
    assert_eq!(base_time(&ms[0]), 1001);
    // Relative times follow base-time: base-time + lease-time is the expiry.
    for m in &ms {
        assert_eq!(base_time(m) + lease_time(m).expect("lease time"), 5000);
    }
    // Nothing left: base-time is now.
    let ms = send(&mut s, &[(&a, 999)], 1000, None);
    assert_eq!(base_time(&ms[0]), 1000);
}

#[test]
fn catch_up_completes_once_every_named_address_is_sent() {
    let mut s = ActiveSession::new(&query(Some(900)), SID);
    let (a, b, live) = (leased(1, 5000), leased(2, 5000), leased(9, 5000));
    let mut out = Vec::new();
    let ips = s.begin(History::CatchUp(vec![a.ip, b.ip]), 1000, &mut out);
    assert_eq!(ips, vec![a.ip, b.ip]);
    assert!(out.is_empty());
    assert!(s.catching_up());
    let ms = send(&mut s, &[(&live, 1000), (&a, 1000)], 1001, Some(1000));
    assert!(ms.iter().all(|m| status(m).is_none()), "b is still owed");
    let ms = send(&mut s, &[(&b, 1000)], 1002, None);
    assert_eq!(ms.len(), 2);
    assert_eq!(status(&ms[1]), Some(StatusCode::CatchUpComplete));
    assert_eq!(base_time(&ms[1]), 1002);
    assert!(!s.catching_up());
    let ms = send(&mut s, &[(&a, 1002)], 1003, None);
    assert_eq!(ms.len(), 1, "CatchUpComplete is sent once");
}

#[test]
fn empty_catch_up_completes_at_once_and_missing_history_says_so() {
    let mut s = ActiveSession::new(&query(Some(900)), SID);
    let mut out = Vec::new();
    assert!(s.begin(History::CatchUp(vec![]), 1000, &mut out).is_empty());
    let ms = messages(&out);
    assert_eq!(status(&ms[0]), Some(StatusCode::CatchUpComplete));

    let mut s = ActiveSession::new(&query(Some(10)), SID);
    let mut out = Vec::new();
    assert!(s.begin(History::Missing, 1000, &mut out).is_empty());
    let ms = messages(&out);
    assert_eq!(ms.len(), 1);
    assert_eq!(status(&ms[0]), Some(StatusCode::DataMissing));
    assert_eq!(base_time(&ms[0]), 1000);
    assert!(!s.catching_up());
}

#[test]
fn keepalive_and_termination_carry_a_safe_base_time() {
    let mut s = ActiveSession::new(&query(None), SID);
    let mut out = Vec::new();
    s.idle(1000, None, &mut out);
    s.idle(1060, Some(1050), &mut out);
    let ms = messages(&out);
    assert_eq!(status(&ms[0]), Some(StatusCode::ConnectionActive));
    assert_eq!((base_time(&ms[0]), base_time(&ms[1])), (1000, 1050));
    let mut out = Vec::new();
    assert_eq!(
        s.terminate(1100, Some(1090), &mut out),
        SessionEnd::Terminated
    );
    let ms = messages(&out);
    assert_eq!(status(&ms[0]), Some(StatusCode::QueryTerminated));
    assert_eq!(base_time(&ms[0]), 1090);
    // Nothing after QueryTerminated (RFC 7724 §7.4: it is the last message).
    let mut out = Vec::new();
    s.idle(1200, None, &mut out);
    s.updates(std::iter::empty(), &[], 1200, None, &mut out);
    // A requestor message after QueryTerminated (found by the fuzz target's
    // first run): the session stays terminated and writes nothing.
    let mut d = FrameDecoder::new(1024);
    d.extend(&[0, 3, 1, 2, 3]);
    assert_eq!(
        s.requestor(&mut d, || 1200, &mut out),
        Some(SessionEnd::Terminated)
    );
    assert!(out.is_empty());
}

fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(&mut out, m);
    out
}

fn requestor_sends(bytes: &[u8]) -> (Option<SessionEnd>, Vec<Message>) {
    let mut s = ActiveSession::new(&query(None), SID);
    let mut d = FrameDecoder::new(1024);
    d.extend(bytes);
    let mut out = Vec::new();
    let end = s.requestor(&mut d, || 1000, &mut out);
    (end, messages(&out))
}

#[test]
fn requestor_messages_end_the_session() {
    let mut q = Message::decode(&framed(&build_status(1, StatusCode::Success, "", 1))[2..])
        .expect("decodes");
    q.options
        .retain(|o| !matches!(o, DhcpOption::MessageType(_)));
    q.options
        .push(DhcpOption::MessageType(MessageType::ActiveLeaseQuery));
    let (end, ms) = requestor_sends(&framed(&q));
    assert_eq!(end, Some(SessionEnd::Refused("second active query")));
    assert_eq!(status(&ms[0]), Some(StatusCode::NotAllowed));

    q.options
        .retain(|o| !matches!(o, DhcpOption::MessageType(_)));
    q.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    let (end, ms) = requestor_sends(&framed(&q));
    assert_eq!(
        end,
        Some(SessionEnd::Refused("bulk query on an active connection"))
    );
    assert_eq!(status(&ms[0]), Some(StatusCode::NotAllowed));

    // Any other message, or garbage: closed without an answer.
    let (end, ms) = requestor_sends(&[0, 3, 1, 2, 3]);
    assert_eq!(
        end,
        Some(SessionEnd::Refused(
            "message type not allowed on an active connection"
        ))
    );
    assert!(ms.is_empty());
    // A length past the decoder's maximum.
    let (end, _) = requestor_sends(&[0xff, 0xff]);
    assert_eq!(end, Some(SessionEnd::Refused("bad framing")));
    // Half a message: nothing yet.
    let (end, _) = requestor_sends(&[0, 10, 1]);
    assert_eq!(end, None);
}

/// Queue `bs` on `s`, sharing encodings through `slots` (one per binding).
fn send_shared(s: &mut ActiveSession, bs: &[&Binding], slots: &[WireSlot], now: u32) -> Vec<u8> {
    let mut out = Vec::new();
    s.updates(
        bs.iter().zip(slots).map(|(&binding, slot)| Update {
            binding,
            changed: now,
            shared: Some(slot),
        }),
        &[],
        now,
        None,
        &mut out,
    );
    out
}

#[test]
fn sessions_sharing_an_encoding_send_what_each_would_build() {
    let bs = [leased(1, 5000), leased(2, 6000), leased(3, 7000)];
    let refs: Vec<&Binding> = bs.iter().collect();
    let slots: Vec<WireSlot> = (0..bs.len()).map(|_| WireSlot::new()).collect();
    let q = |xid, prl: &[u8]| ActiveQuery {
        xid,
        start: None,
        prl: prl.to_vec(),
    };
    let mut a = ActiveSession::new(&q(7, &[51, 58]), SID);
    let mut b = ActiveSession::new(&q(8, &[51, 58]), SID);
    let mut c = ActiveSession::new(&q(9, &[51]), SID);
    let mut alone = ActiveSession::new(&q(8, &[51, 58]), SID);
    for s in [&mut a, &mut b, &mut c, &mut alone] {
        s.begin(History::None, 1000, &mut Vec::new());
    }
    // a's first message has server-id and is not shared; b and c are on
    // their second batch, so they take the slots a filled in its second.
    send_shared(&mut a, &refs[..1], &slots[..1], 1000);
    send_shared(&mut b, &refs[..1], &[WireSlot::new()], 1000);
    send_shared(&mut c, &refs[..1], &[WireSlot::new()], 1000);
    alone.updates(
        std::iter::once(Update {
            binding: &bs[0],
            changed: 1000,
            shared: None,
        }),
        &[],
        1000,
        None,
        &mut Vec::new(),
    );
    let from_a = messages(&send_shared(&mut a, &refs[1..], &slots[1..], 1000));
    let from_b = send_shared(&mut b, &refs[1..], &slots[1..], 1000);
    let from_c = messages(&send_shared(&mut c, &refs[1..], &slots[1..], 1000));
    let mut built = Vec::new();
    alone.updates(
        refs[1..].iter().map(|&binding| Update {
            binding,
            changed: 1000,
            shared: None,
        }),
        &[],
        1000,
        None,
        &mut built,
    );
    // b copied a's bytes with its own xid: exactly what it would have built.
    assert_eq!(from_b, built);
    assert!(messages(&from_b).iter().all(|m| m.xid == 8));
    assert!(from_a.iter().all(|m| m.xid == 7));
    // c asked for other options: built its own (no renewal time, 58).
    assert!(from_c.iter().all(|m| m.xid == 9 && m.option(58).is_none()));
    assert!(from_a.iter().all(|m| m.option(58).is_some()));
}
