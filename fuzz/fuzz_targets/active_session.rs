//! The Active Leasequery session state machine (`ActiveSession`) driven by
//! a sequence of events, against a model of the connection's pending set.
//! Input: byte 0 chooses the history (none, catch-up of the addresses
//! listed next, or missing); then ops, one byte each plus arguments:
//!
//! - 0: requestor bytes (length byte, then bytes) for the session to read;
//! - 1: binding changes (count byte, then one address byte each);
//! - 2: the driver answers the batch the session asked for (size byte);
//! - 3: the clock moves to the session's next timeout; 4: shutdown;
//! - 5: the clock moves (seconds byte); 6: the requestor stops or resumes
//!   reading; 7: the driver answers the batch, and the history lost changes.
//!
//! Checked after every step: each message frames, decodes, carries the
//! query's xid and a base-time no later than now; a binding message's
//! base-time is neither before the change it carries nor after any change
//! not yet sent (RFC 7724 §6.3, resuming from it loses nothing);
//! CatchUpComplete comes once, only after every catch-up address; a batch
//! is asked for once until answered; one close, and nothing after it.
#![no_main]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseline_proto::{
    ActiveConfig, ActiveEnd, ActiveEvent, ActiveQuery, ActiveSession, Binding, DhcpState, History,
    Now, Taken, Update,
};
use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use libfuzzer_sys::fuzz_target;

const XID: u32 = 0x5e55;

struct Pending {
    /// (address, change time) in order of change time; one per address.
    order: Vec<(Ipv4Addr, u32)>,
}

impl Pending {
    fn insert(&mut self, ip: Ipv4Addr, time: u32) {
        self.order.retain(|&(a, _)| a != ip);
        self.order.push((ip, time));
    }
    fn oldest(&self) -> Option<u32> {
        self.order.first().map(|&(_, t)| t)
    }
}

fn binding(ip: Ipv4Addr, time: u32, seed: u8) -> Binding {
    let mut b = Binding::available(ip);
    if seed % 3 != 0 {
        b.state = DhcpState::Active;
        b.htype = 1;
        b.chaddr = vec![2, 0, 0, 0, seed, ip.octets()[3]];
        b.lease_time = u32::from(seed) * 60 + 1;
        b.expiry = time + b.lease_time;
        b.renew_time = Some(b.lease_time / 2);
        b.rebind_time = Some(b.lease_time / 8 * 7);
        b.cltt = time;
        b.state_since = time;
    } else {
        b.state = DhcpState::Released;
        b.state_since = time;
        b.cltt = time;
    }
    b
}

/// Decode what the session wrote; returns (message type, status, base-time) each.
fn read(out: &[u8]) -> Vec<(MessageType, Option<StatusCode>, u32)> {
    let mut d = FrameDecoder::new(65_535);
    d.extend(out);
    let mut v = Vec::new();
    while let Some(f) = d.next_frame().expect("the session frames what it writes") {
        let m = Message::decode(f).expect("the session's messages decode");
        assert_eq!(m.xid, XID);
        let base = m
            .options
            .iter()
            .find_map(|o| match o {
                DhcpOption::BaseTime(t) => Some(*t),
                _ => None,
            })
            .expect("base-time in every message (RFC 7724 §8.2)");
        let status = m.options.iter().find_map(|o| match o {
            DhcpOption::StatusCode(c, _) => Some(*c),
            _ => None,
        });
        v.push((m.message_type().expect("a message type"), status, base));
    }
    assert_eq!(d.buffered(), 0, "a message was half-written");
    v
}

struct World {
    t0: Instant,
    secs: u64,
    unix: u32,
}

impl World {
    fn now(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_secs(self.secs),
            unix: self.unix,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut w = World {
        t0: Instant::now(),
        secs: 0,
        unix: 1_000_000,
    };
    let mut pending = Pending { order: Vec::new() };
    let mut bindings = HashMap::new();
    let cfg = Arc::new(ActiveConfig {
        server_id: Ipv4Addr::new(192, 0, 2, 1),
        denied: vec![82],
        idle_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(120),
        data_timeout: Duration::from_secs(30),
    });
    let start = (mode % 3 != 0).then_some(1);
    let query = ActiveQuery { xid: XID, start, prl: vec![51, 91, 152, 153] };
    let mut s = ActiveSession::new(&query, cfg, FrameDecoder::new(1024), w.now().mono);
    let mut owed: Option<HashSet<Ipv4Addr>> = None;
    let mut complete = false;
    let mut history = match mode % 3 {
        0 => None,
        1 => {
            let n = rest.first().map_or(0, |&n| usize::from(n % 32));
            let ips: Vec<Ipv4Addr> = rest
                .iter()
                .skip(1)
                .take(n)
                .map(|&b| Ipv4Addr::new(10, 0, 0, b))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            rest = rest.get(1 + n..).unwrap_or(&[]);
            Some(History::CatchUp(ips))
        }
        _ => Some(History::Missing),
    };
    let mut asked: Option<(usize, bool)> = None;
    let mut closed: Option<ActiveEnd> = None;
    let mut stalled = false;
    let mut sent_any = false;
    let mut ops = rest.iter();
    loop {
        // The driver: events, then the output.
        let mut msgs = Vec::new();
        while let Some(ev) = s.poll_event() {
            assert!(closed.is_none(), "an event after the close: {ev:?}");
            match ev {
                ActiveEvent::History { since } => {
                    assert_eq!(Some(since), start);
                    let h = history.take().expect("the history is asked for once");
                    if let History::CatchUp(ips) = &h {
                        for &ip in ips {
                            pending.insert(ip, w.unix);
                            bindings.insert(ip, binding(ip, w.unix - 1, 1));
                        }
                        owed = Some(ips.iter().copied().collect());
                    }
                    let missing = matches!(h, History::Missing);
                    s.handle_history(h, w.now());
                    let mut out = Vec::new();
                    s.poll_transmit(w.now().mono, &mut out);
                    let got = read(&out);
                    if missing {
                        assert_eq!(got.len(), 1);
                        assert_eq!(got[0].1, Some(StatusCode::DataMissing));
                        assert!(!sent_any, "DataMissing comes first");
                    }
                    if owed.as_ref().is_some_and(HashSet::is_empty) {
                        assert_eq!(got.last().map(|m| m.1), Some(Some(StatusCode::CatchUpComplete)));
                        complete = true;
                        owed = None;
                    }
                    sent_any |= !got.is_empty();
                    msgs.extend(got);
                    if !out.is_empty() && !stalled {
                        s.handle_written(w.now().mono, 0);
                    }
                }
                ActiveEvent::Take { max, wait } => {
                    assert!(asked.is_none() || !wait, "a batch asked for twice");
                    assert!(max > 0);
                    asked = Some((max, wait));
                }
                ActiveEvent::Close(c) => closed = Some(c.end),
            }
        }
        let mut out = Vec::new();
        s.poll_transmit(w.now().mono, &mut out);
        if !out.is_empty() && !stalled {
            s.handle_written(w.now().mono, 0);
        }
        for m in read(&out).into_iter().chain(msgs) {
            assert!(m.2 <= w.unix, "base-time in the future");
        }
        let Some(&op) = ops.next() else { break };
        let arg = ops.next().copied().unwrap_or(0);
        let now = w.now();
        match op % 8 {
            0 => {
                let bytes: Vec<u8> = ops.by_ref().take(usize::from(arg)).copied().collect();
                let was_closed = s.is_closed();
                s.handle_bytes(&bytes, now);
                let mut out = Vec::new();
                s.poll_transmit(now.mono, &mut out);
                let got = read(&out);
                if !out.is_empty() && !stalled {
                    s.handle_written(now.mono, 0);
                }
                if was_closed {
                    assert!(got.is_empty(), "output after the close");
                } else if s.is_closed() {
                    assert!(got.len() <= 1, "one refusal at most");
                    if let Some(m) = got.last() {
                        assert!(m.1 == Some(StatusCode::NotAllowed) || m.1.is_none());
                    }
                }
            }
            1 => {
                for &b in ops.by_ref().take(usize::from(arg % 16)) {
                    let ip = Ipv4Addr::new(10, 0, 0, b);
                    pending.insert(ip, w.unix);
                    bindings.insert(ip, binding(ip, w.unix, b));
                }
            }
            2 | 7 => {
                let Some((max, _)) = asked.take() else { continue };
                let n = usize::from(arg).min(max).min(pending.order.len());
                let batch: Vec<(Ipv4Addr, u32)> = pending.order.drain(..n).collect();
                let bs: Vec<(Binding, u32)> =
                    batch.iter().map(|&(ip, t)| (bindings[&ip].clone(), t)).collect();
                let lost = (op % 8 == 7).then(|| pending.oldest().unwrap_or(w.unix));
                let was_closed = s.is_closed();
                s.handle_updates(
                    bs.iter().map(|(b, t)| Update { binding: b, changed: *t, shared: None }),
                    Taken { now: w.unix, oldest_left: pending.oldest(), lost },
                );
                let mut out = Vec::new();
                s.poll_transmit(now.mono, &mut out);
                let msgs = read(&out);
                if !out.is_empty() && !stalled {
                    s.handle_written(w.now().mono, 0);
                }
                if was_closed {
                    assert!(msgs.is_empty(), "output after the session ended");
                    continue;
                }
                assert!(msgs.len() >= batch.len());
                assert!(msgs.len() <= batch.len() + 2, "bounded output per batch");
                for (i, (ip, changed)) in batch.iter().enumerate() {
                    let (ty, status, base) = msgs[i];
                    assert!(status.is_none());
                    assert!(matches!(ty, MessageType::LeaseActive | MessageType::LeaseUnassigned));
                    assert!(base >= *changed, "base-time before the change it carries");
                    let unsent = batch[i + 1..].iter().map(|&(_, t)| t).chain(pending.oldest());
                    for t in unsent {
                        assert!(base <= t, "base-time past an unsent change: resuming would skip it");
                    }
                    if let Some(o) = owed.as_mut() {
                        o.remove(ip);
                    }
                    sent_any = true;
                }
                let mut extra = &msgs[batch.len()..];
                if owed.as_ref().is_some_and(HashSet::is_empty) {
                    assert_eq!(extra.first().map(|m| m.1), Some(Some(StatusCode::CatchUpComplete)));
                    assert!(!complete);
                    complete = true;
                    owed = None;
                    extra = &extra[1..];
                } else {
                    assert!(
                        extra.iter().all(|m| m.1 != Some(StatusCode::CatchUpComplete)),
                        "CatchUpComplete before the catch-up was sent"
                    );
                }
                if let Some(m) = extra.first() {
                    assert_eq!(m.1, Some(StatusCode::QueryTerminated));
                    assert!(pending.oldest().is_none_or(|t| m.2 <= t));
                    assert!(lost.is_none_or(|t| m.2 <= t), "resuming from it would skip what was lost");
                    assert!(s.is_closed());
                }
                assert_eq!(extra.len(), usize::from(s.is_closed()));
            }
            3 => {
                if let Some(t) = s.poll_timeout() {
                    let secs = t.duration_since(w.t0).as_secs();
                    w.unix += (secs.saturating_sub(w.secs)) as u32;
                    w.secs = w.secs.max(secs);
                }
                let was_closed = s.is_closed();
                s.handle_timeout(w.now(), pending.oldest());
                let mut out = Vec::new();
                s.poll_transmit(w.now().mono, &mut out);
                let msgs = read(&out);
                if was_closed {
                    assert!(msgs.is_empty());
                } else if let Some(m) = msgs.first() {
                    assert_eq!(msgs.len(), 1);
                    assert_eq!(m.1, Some(StatusCode::ConnectionActive));
                    assert!(pending.oldest().is_none_or(|t| m.2 <= t));
                }
                if !out.is_empty() && !stalled {
                    s.handle_written(w.now().mono, 0);
                }
            }
            4 => {
                let was_closed = s.is_closed();
                s.handle_shutdown(now, pending.oldest());
                let mut out = Vec::new();
                s.poll_transmit(now.mono, &mut out);
                let msgs = read(&out);
                if was_closed {
                    assert!(msgs.is_empty());
                } else if s.is_closed() {
                    assert_eq!(msgs.last().map(|m| m.1), Some(Some(StatusCode::QueryTerminated)));
                    assert!(pending.oldest().is_none_or(|t| msgs[msgs.len() - 1].2 <= t));
                }
                if !out.is_empty() && !stalled {
                    s.handle_written(w.now().mono, 0);
                }
            }
            5 => {
                w.secs += u64::from(arg % 8);
                w.unix = w.unix.saturating_add(u32::from(arg % 8));
            }
            _ => {
                stalled = !stalled;
                if !stalled {
                    s.handle_written(w.now().mono, 0);
                }
            }
        }
    }
});
