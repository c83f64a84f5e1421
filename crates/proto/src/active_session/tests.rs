//! Every rule of the session on a virtual clock: no socket, no feed, time
//! passed in.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType, StatusCode};

use super::*;
use crate::frame_into;
use crate::DhcpState;

const SID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const IDLE: Duration = Duration::from_secs(60);
const SEND: Duration = Duration::from_secs(120);
const DATA: Duration = Duration::from_secs(300);

fn cfg() -> Arc<ActiveConfig> {
    Arc::new(ActiveConfig {
        server_id: SID,
        denied: vec![],
        idle_timeout: IDLE,
        send_timeout: SEND,
        data_timeout: DATA,
    })
}

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
    assert_eq!(d.buffered(), 0, "whole messages only");
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

fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(&mut out, m);
    out
}

/// A session and its clock: `t` seconds after `t0`, feed time 1000 + t.
struct Clock {
    t0: Instant,
    t: u64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            t0: Instant::now(),
            t: 0,
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_secs(self.t),
            unix: 1000 + self.t as u32,
        }
    }
}

fn session(start: Option<u32>, c: &Clock) -> ActiveSession {
    ActiveSession::new(&query(start), cfg(), FrameDecoder::new(1024), c.now().mono)
}

/// Everything queued, as if written at once.
fn written(s: &mut ActiveSession, c: &Clock) -> Vec<Message> {
    let mut buf = Vec::new();
    s.poll_transmit(c.now().mono, &mut buf);
    if !buf.is_empty() {
        s.handle_written(c.now().mono, 0);
    }
    messages(&buf)
}

fn events(s: &mut ActiveSession) -> Vec<ActiveEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn end(evs: &[ActiveEvent]) -> Option<Close<ActiveEnd>> {
    evs.iter().find_map(|e| match e {
        ActiveEvent::Close(c) => Some(c.clone()),
        _ => None,
    })
}

/// Hand `bs` over as the batch asked for.
fn give(s: &mut ActiveSession, bs: &[(&Binding, u32)], now: u32, left: Option<u32>) {
    s.handle_updates(
        bs.iter().map(|&(binding, changed)| Update {
            binding,
            changed,
            shared: None,
        }),
        Taken {
            now,
            oldest_left: left,
            lost: None,
        },
    );
}

/// Ask for a batch (the session must be ready), hand `bs` over, write.
fn send(
    s: &mut ActiveSession,
    c: &Clock,
    bs: &[(&Binding, u32)],
    now: u32,
    left: Option<u32>,
) -> Vec<Message> {
    let evs = events(s);
    assert!(
        evs.contains(&ActiveEvent::Take {
            max: BATCH,
            wait: true
        }),
        "{evs:?}"
    );
    give(s, bs, now, left);
    written(s, c)
}

// ---------------------------------------------------------------------------
// Base-time and catch-up

#[test]
fn base_time_never_passes_an_unsent_change() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let (a, b, d) = (leased(1, 5000), leased(2, 5000), leased(3, 5000));
    // Three addresses changed at 990, 995 and 998; one more left at 999.
    let ms = send(
        &mut s,
        &c,
        &[(&a, 990), (&b, 995), (&d, 998)],
        1000,
        Some(999),
    );
    let bases: Vec<u32> = ms.iter().map(base_time).collect();
    assert_eq!(bases, vec![995, 998, 999]);
    // A change published after `now` was read: base-time is its own time,
    // never earlier than the change it carries.
    let ms = send(&mut s, &c, &[(&a, 1001)], 1000, None);
    assert_eq!(base_time(&ms[0]), 1001);
    // Relative times follow base-time: base-time + lease-time is the expiry.
    for m in &ms {
        assert_eq!(base_time(m) + lease_time(m).expect("lease time"), 5000);
    }
    // Nothing left: base-time is now.
    let ms = send(&mut s, &c, &[(&a, 999)], 1000, None);
    assert_eq!(base_time(&ms[0]), 1000);
}

#[test]
fn catch_up_completes_once_every_named_address_is_sent() {
    let c = Clock::new();
    let mut s = session(Some(900), &c);
    assert_eq!(events(&mut s), vec![ActiveEvent::History { since: 900 }]);
    let (a, b, live) = (leased(1, 5000), leased(2, 5000), leased(9, 5000));
    s.handle_history(History::CatchUp(vec![a.ip, b.ip]), c.now());
    assert!(written(&mut s, &c).is_empty());
    assert!(s.catching_up());
    let ms = send(&mut s, &c, &[(&live, 1000), (&a, 1000)], 1001, Some(1000));
    assert!(ms.iter().all(|m| status(m).is_none()), "b is still owed");
    let ms = send(&mut s, &c, &[(&b, 1000)], 1002, None);
    assert_eq!(ms.len(), 2);
    assert_eq!(status(&ms[1]), Some(StatusCode::CatchUpComplete));
    assert_eq!(base_time(&ms[1]), 1002);
    assert!(!s.catching_up());
    let ms = send(&mut s, &c, &[(&a, 1002)], 1003, None);
    assert_eq!(ms.len(), 1, "CatchUpComplete is sent once");
}

#[test]
fn empty_catch_up_completes_at_once_and_missing_history_says_so() {
    let c = Clock::new();
    let mut s = session(Some(900), &c);
    events(&mut s);
    s.handle_history(History::CatchUp(vec![]), c.now());
    let ms = written(&mut s, &c);
    assert_eq!(status(&ms[0]), Some(StatusCode::CatchUpComplete));

    let mut s = session(Some(10), &c);
    assert!(
        !events(&mut s)
            .iter()
            .any(|e| matches!(e, ActiveEvent::Take { .. })),
        "nothing is taken before the history is read"
    );
    s.handle_history(History::Missing, c.now());
    let ms = written(&mut s, &c);
    assert_eq!(ms.len(), 1);
    assert_eq!(status(&ms[0]), Some(StatusCode::DataMissing));
    assert_eq!(base_time(&ms[0]), 1000);
    assert!(!s.catching_up());
    // Live updates follow (RFC 7724 §7.4.1).
    assert!(events(&mut s).contains(&ActiveEvent::Take {
        max: BATCH,
        wait: true
    }));
}

// ---------------------------------------------------------------------------
// Timing

#[test]
fn keepalive_after_the_idle_timeout_only_when_idle() {
    let mut c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    events(&mut s);
    assert_eq!(s.poll_timeout(), Some(c.now().mono + IDLE));
    // An update at 50 s: the idle period starts again once it is written.
    c.t = 50;
    give(&mut s, &[(&a, 1050)], 1050, None);
    assert_eq!(
        s.poll_timeout(),
        None,
        "nothing written yet, nothing to time"
    );
    let mut buf = Vec::new();
    s.poll_transmit(c.now().mono, &mut buf);
    assert_eq!(s.poll_timeout(), Some(c.now().mono + SEND));
    s.handle_written(c.now().mono, 0);
    assert_eq!(s.poll_timeout(), Some(c.now().mono + IDLE));
    c.t = 109;
    s.handle_timeout(c.now(), None);
    assert!(written(&mut s, &c).is_empty());
    c.t = 110;
    // RFC 7724 §7.4: ConnectionActive, its base-time never past an unsent change.
    s.handle_timeout(c.now(), Some(1100));
    let ms = written(&mut s, &c);
    assert_eq!(status(&ms[0]), Some(StatusCode::ConnectionActive));
    assert_eq!(base_time(&ms[0]), 1100);
    assert_eq!(s.poll_timeout(), Some(c.now().mono + IDLE));
}

#[test]
fn writes_without_progress_close_after_the_send_timeout() {
    let mut c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    events(&mut s);
    give(&mut s, &[(&a, 1000)], 1000, None);
    let mut buf = Vec::new();
    s.poll_transmit(c.now().mono, &mut buf);
    // A slow reader: some progress every 100 s keeps it open.
    for t in [100, 200, 300] {
        c.t = t;
        s.handle_written(c.now().mono, 10);
        s.handle_timeout(c.now(), None);
    }
    assert!(end(&events(&mut s)).is_none());
    c.t = 300 + SEND.as_secs() - 1;
    s.handle_timeout(c.now(), None);
    assert!(end(&events(&mut s)).is_none());
    c.t = 300 + SEND.as_secs();
    assert_eq!(s.poll_timeout(), Some(c.now().mono));
    s.handle_timeout(c.now(), None);
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!(close.end, ActiveEnd::SendTimeout);
    assert_eq!(close.linger, Duration::ZERO, "nothing more can be written");
}

#[test]
fn the_next_batch_is_asked_for_only_once_everything_is_written() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    assert_eq!(events(&mut s).len(), 1);
    assert!(events(&mut s).is_empty(), "asked once until answered");
    give(&mut s, &[(&a, 1000)], 1000, None);
    assert!(events(&mut s).is_empty(), "output queued: no more");
    let mut buf = Vec::new();
    s.poll_transmit(c.now().mono, &mut buf);
    s.handle_written(c.now().mono, 5);
    assert!(events(&mut s).is_empty(), "output unwritten: no more");
    s.handle_written(c.now().mono, 0);
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn a_message_begun_must_be_complete_within_the_data_timeout() {
    let mut c = Clock::new();
    let mut s = session(None, &c);
    events(&mut s);
    c.t = 10;
    s.handle_bytes(&[0, 50, 1], c.now());
    for t in 11..(10 + DATA.as_secs()) {
        c.t = t;
        if t % 50 == 0 {
            s.handle_bytes(&[1], c.now());
        }
        s.handle_timeout(c.now(), None);
    }
    assert!(end(&events(&mut s)).is_none());
    c.t = 10 + DATA.as_secs();
    s.handle_timeout(c.now(), None);
    assert_eq!(end(&events(&mut s)).unwrap().end, ActiveEnd::DataTimeout);
}

// ---------------------------------------------------------------------------
// Termination

#[test]
fn shutdown_sends_what_is_pending_then_query_terminated_last() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let (a, b) = (leased(1, 5000), leased(2, 5000));
    // A batch asked for, waiting on the feed, when the shutdown comes.
    events(&mut s);
    s.handle_shutdown(c.now(), Some(995));
    assert_eq!(
        events(&mut s),
        vec![ActiveEvent::Take {
            max: BATCH,
            wait: false
        }]
    );
    give(&mut s, &[(&a, 995)], 1000, Some(998));
    assert_eq!(
        events(&mut s),
        vec![ActiveEvent::Take {
            max: BATCH,
            wait: false
        }]
    );
    give(&mut s, &[(&b, 998)], 1000, None);
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!((close.end, close.linger), (ActiveEnd::Shutdown, LINGER));
    let ms = written(&mut s, &c);
    assert_eq!(ms.len(), 3);
    let last = ms.last().unwrap();
    assert_eq!(status(last), Some(StatusCode::QueryTerminated));
    assert_eq!(base_time(last), 1000);
    // Nothing after QueryTerminated (RFC 7724 §7.4: it is the last message).
    s.handle_timeout(Clock { t0: c.t0, t: 1000 }.now(), None);
    s.handle_bytes(
        &framed(&build_status(1, StatusCode::Success, "", 1)),
        c.now(),
    );
    s.handle_shutdown(c.now(), None);
    assert!(written(&mut s, &c).is_empty());
    assert!(events(&mut s).is_empty());
}

#[test]
fn a_revoked_requestor_gets_query_terminated_at_once_and_nothing_pending() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    assert_eq!(send(&mut s, &c, &[(&a, 995)], 1000, None).len(), 1);
    // A batch asked for, with changes pending (from 998), when the reload comes.
    events(&mut s);
    s.handle_revoked(c.now(), Some(998));
    // No drain: what is pending is no longer this requestor's to see.
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!((close.end, close.linger), (ActiveEnd::Revoked, LINGER));
    let ms = written(&mut s, &c);
    assert_eq!(ms.len(), 1, "QueryTerminated only");
    assert_eq!(status(&ms[0]), Some(StatusCode::QueryTerminated));
    // RFC 7724 §7.4: a base-time, never past a change not sent.
    assert_eq!(base_time(&ms[0]), 998);
    s.handle_revoked(c.now(), None);
    s.handle_shutdown(c.now(), None);
    assert!(written(&mut s, &c).is_empty());
    assert!(events(&mut s).is_empty());
}

#[test]
fn the_drain_at_shutdown_is_bounded() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    s.handle_shutdown(c.now(), Some(990));
    let mut batches = 0;
    loop {
        let evs = events(&mut s);
        if let Some(close) = end(&evs) {
            assert_eq!(close.end, ActiveEnd::Shutdown);
            break;
        }
        assert!(evs
            .iter()
            .any(|e| matches!(e, ActiveEvent::Take { wait: false, .. })));
        batches += 1;
        // Changes keep coming: something is always left.
        give(&mut s, &[(&a, 990)], 1000, Some(990));
    }
    assert_eq!(batches, DRAIN_BATCHES);
    let ms = written(&mut s, &c);
    let last = ms.last().unwrap();
    assert_eq!(status(last), Some(StatusCode::QueryTerminated));
    assert_eq!(base_time(last), 990, "a resume from it misses nothing left");
}

#[test]
fn with_nothing_pending_shutdown_terminates_at_once() {
    let c = Clock::new();
    let mut s = session(None, &c);
    s.handle_shutdown(c.now(), None);
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!(close.end, ActiveEnd::Shutdown);
    let ms = written(&mut s, &c);
    assert_eq!(ms.len(), 1);
    assert_eq!(status(&ms[0]), Some(StatusCode::QueryTerminated));
    assert_eq!(base_time(&ms[0]), 1000);
}

#[test]
fn falling_behind_the_history_ends_with_query_terminated_before_the_gap() {
    let c = Clock::new();
    let mut s = session(None, &c);
    let a = leased(1, 5000);
    events(&mut s);
    s.handle_updates(
        std::iter::once(Update {
            binding: &a,
            changed: 900,
            shared: None,
        }),
        Taken {
            now: 1000,
            oldest_left: Some(990),
            lost: Some(950),
        },
    );
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!(close.end, ActiveEnd::FellBehind { since: 950 });
    let ms = written(&mut s, &c);
    let last = ms.last().unwrap();
    assert_eq!(status(last), Some(StatusCode::QueryTerminated));
    // RFC 7724 §7.4: resuming from it is outside the history (DataMissing).
    assert_eq!(base_time(last), 950);
}

#[test]
fn the_requestor_closing_ends_the_session() {
    let c = Clock::new();
    let mut s = session(None, &c);
    s.handle_eof();
    let close = end(&events(&mut s)).expect("closed");
    assert_eq!(close.end, ActiveEnd::RequestorClosed);
    assert!(!s.wants_read());
    assert_eq!(s.poll_timeout(), None);
}

fn requestor_sends(bytes: &[u8]) -> (Option<ActiveEnd>, Vec<Message>) {
    let c = Clock::new();
    let mut s = session(None, &c);
    s.handle_bytes(bytes, c.now());
    let end = end(&events(&mut s)).map(|c| c.end);
    (end, written(&mut s, &c))
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
    assert_eq!(end, Some(ActiveEnd::Refused("second active query")));
    assert_eq!(status(&ms[0]), Some(StatusCode::NotAllowed));

    q.options
        .retain(|o| !matches!(o, DhcpOption::MessageType(_)));
    q.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    let (end, ms) = requestor_sends(&framed(&q));
    assert_eq!(
        end,
        Some(ActiveEnd::Refused("bulk query on an active connection"))
    );
    assert_eq!(status(&ms[0]), Some(StatusCode::NotAllowed));

    // Any other message, or garbage: closed without an answer.
    let (end, ms) = requestor_sends(&[0, 3, 1, 2, 3]);
    assert_eq!(
        end,
        Some(ActiveEnd::Refused(
            "message type not allowed on an active connection"
        ))
    );
    assert!(ms.is_empty());
    // A length past the decoder's maximum.
    let (end, _) = requestor_sends(&[0xff, 0xff]);
    assert_eq!(end, Some(ActiveEnd::Refused("bad framing")));
    // Half a message: nothing yet.
    let (end, _) = requestor_sends(&[0, 10, 1]);
    assert_eq!(end, None);
}

#[test]
fn a_message_read_with_the_query_is_looked_at_first() {
    let c = Clock::new();
    let mut d = FrameDecoder::new(1024);
    d.extend(&[0, 3, 1, 2, 3]);
    let mut s = ActiveSession::new(&query(None), cfg(), d, c.now().mono);
    // The driver hands any bytes in; none here: the frame already held.
    s.handle_bytes(&[], c.now());
    assert!(end(&events(&mut s)).is_some());
}

// ---------------------------------------------------------------------------
// Shared encodings

/// Queue `bs` on `s`, sharing encodings through `slots` (one per binding).
fn send_shared(s: &mut ActiveSession, bs: &[&Binding], slots: &[WireSlot], now: u32) -> Vec<u8> {
    let c = Clock::new();
    events(s);
    s.handle_updates(
        bs.iter().zip(slots).map(|(&binding, slot)| Update {
            binding,
            changed: now,
            shared: Some(slot),
        }),
        Taken {
            now,
            oldest_left: None,
            lost: None,
        },
    );
    let mut out = Vec::new();
    s.poll_transmit(c.now().mono, &mut out);
    s.handle_written(c.now().mono, 0);
    out
}

#[test]
fn sessions_sharing_an_encoding_send_what_each_would_build() {
    let c = Clock::new();
    let bs = [leased(1, 5000), leased(2, 6000), leased(3, 7000)];
    let refs: Vec<&Binding> = bs.iter().collect();
    let slots: Vec<WireSlot> = (0..bs.len()).map(|_| WireSlot::new()).collect();
    let q = |xid, prl: &[u8]| ActiveQuery {
        xid,
        start: None,
        prl: prl.to_vec(),
    };
    let new = |xid, prl: &[u8]| {
        ActiveSession::new(&q(xid, prl), cfg(), FrameDecoder::new(64), c.now().mono)
    };
    let mut a = new(7, &[51, 58]);
    let mut b = new(8, &[51, 58]);
    let mut d = new(9, &[51]);
    let mut alone = new(8, &[51, 58]);
    // a's first message has server-id and is not shared; b and d are on
    // their second batch, so they take the slots a filled in its second.
    send_shared(&mut a, &refs[..1], &slots[..1], 1000);
    send_shared(&mut b, &refs[..1], &[WireSlot::new()], 1000);
    send_shared(&mut d, &refs[..1], &[WireSlot::new()], 1000);
    send_shared(&mut alone, &refs[..1], &[WireSlot::new()], 1000);
    let from_a = messages(&send_shared(&mut a, &refs[1..], &slots[1..], 1000));
    let from_b = send_shared(&mut b, &refs[1..], &slots[1..], 1000);
    let from_d = messages(&send_shared(&mut d, &refs[1..], &slots[1..], 1000));
    let fresh: Vec<WireSlot> = (1..bs.len()).map(|_| WireSlot::new()).collect();
    let built = send_shared(&mut alone, &refs[1..], &fresh, 1000);
    // b copied a's bytes with its own xid: exactly what it would have built.
    assert_eq!(from_b, built);
    assert!(messages(&from_b).iter().all(|m| m.xid == 8));
    assert!(from_a.iter().all(|m| m.xid == 7));
    // d asked for other options: built its own (no renewal time, 58).
    assert!(from_d.iter().all(|m| m.xid == 9 && m.option(58).is_none()));
    assert!(from_a.iter().all(|m| m.option(58).is_some()));
}
