//! The Active Leasequery session state machine (`ActiveSession`) driven by
//! a sequence of events, against a model of the connection's pending set.
//! Input: byte 0 chooses the history (none, catch-up of the addresses
//! listed next, or missing); then ops, one byte each plus arguments:
//!
//! - 0: requestor bytes (length byte, then bytes) for the session to read;
//! - 1: binding changes (count byte, then one address byte each);
//! - 2: the driver takes a batch (size byte) and hands it to the session;
//! - 3: idle tick; 4: shutdown; 5: the clock moves (seconds byte).
//!
//! Checked after every step: each message frames, decodes, carries the
//! query's xid and a base-time no later than now; a binding message's
//! base-time is neither before the change it carries nor after any change
//! not yet sent (RFC 7724 §6.3, resuming from it loses nothing);
//! CatchUpComplete comes once, only after every catch-up address; nothing
//! follows QueryTerminated or a refusal.
#![no_main]

use std::net::Ipv4Addr;

use leaseline_proto::{ActiveQuery, ActiveSession, Binding, DhcpState, History, SessionEnd, Update};
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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut now: u32 = 1_000_000;
    let mut pending = Pending { order: Vec::new() };
    let mut bindings = std::collections::HashMap::new();
    let query = ActiveQuery { xid: XID, start: Some(1), prl: vec![51, 91, 152, 153] };
    let mut s = ActiveSession::new(&query, Ipv4Addr::new(192, 0, 2, 1));
    let mut out = Vec::new();
    let mut owed: Option<std::collections::HashSet<Ipv4Addr>> = None;
    let history = match mode % 3 {
        0 => History::None,
        1 => {
            let n = rest.first().map_or(0, |&n| usize::from(n % 32));
            let ips: Vec<Ipv4Addr> = rest
                .iter()
                .skip(1)
                .take(n)
                .map(|&b| Ipv4Addr::new(10, 0, 0, b))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            rest = rest.get(1 + n..).unwrap_or(&[]);
            owed = Some(ips.iter().copied().collect());
            History::CatchUp(ips)
        }
        _ => History::Missing,
    };
    let missing = matches!(history, History::Missing);
    let catchup = s.begin(history, now, &mut out);
    for ip in catchup {
        pending.insert(ip, now);
        bindings.insert(ip, binding(ip, now - 1, 1));
    }
    let mut msgs = read(&out);
    if missing {
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].1, Some(StatusCode::DataMissing));
    }
    let mut complete = owed.as_ref().is_some_and(|o| o.is_empty());
    if complete {
        assert_eq!(msgs.last().map(|m| m.1), Some(Some(StatusCode::CatchUpComplete)));
        owed = None;
    }
    let mut ended = false;
    let mut decoder = FrameDecoder::new(1024);
    let mut ops = rest.iter();
    while let Some(&op) = ops.next() {
        out.clear();
        let arg = ops.next().copied().unwrap_or(0);
        match op % 6 {
            0 => {
                let bytes: Vec<u8> = ops.by_ref().take(usize::from(arg)).copied().collect();
                decoder.extend(&bytes);
                if let Some(end) = s.requestor(&mut decoder, || now, &mut out) {
                    let msgs = read(&out);
                    if ended {
                        // Already over: the same end again, nothing written.
                        assert!(msgs.is_empty(), "output after the session ended");
                    } else {
                        assert!(msgs.len() <= 1);
                        if let Some(m) = msgs.first() {
                            assert_eq!(m.1, Some(StatusCode::NotAllowed));
                        }
                        assert!(matches!(end, SessionEnd::Refused(_)));
                    }
                    ended = true;
                    out.clear();
                }
            }
            1 => {
                for &b in ops.by_ref().take(usize::from(arg % 16)) {
                    let ip = Ipv4Addr::new(10, 0, 0, b);
                    pending.insert(ip, now);
                    bindings.insert(ip, binding(ip, now, b));
                }
            }
            2 => {
                let n = usize::from(arg).min(pending.order.len());
                let batch: Vec<(Ipv4Addr, u32)> = pending.order.drain(..n).collect();
                let bs: Vec<(Binding, u32)> =
                    batch.iter().map(|&(ip, t)| (bindings[&ip].clone(), t)).collect();
                s.updates(
                    bs.iter().map(|(b, t)| Update {
                        binding: b,
                        changed: *t,
                        shared: None,
                    }),
                    &[82],
                    now,
                    pending.oldest(),
                    &mut out,
                );
                msgs = read(&out);
                if ended {
                    assert!(msgs.is_empty(), "output after the session ended");
                    continue;
                }
                assert!(msgs.len() >= batch.len());
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
                }
                let extra = &msgs[batch.len()..];
                if owed.as_ref().is_some_and(|o| o.is_empty()) {
                    assert_eq!(extra.len(), 1, "CatchUpComplete once every address is sent");
                    assert_eq!(extra[0].1, Some(StatusCode::CatchUpComplete));
                    assert!(!complete);
                    complete = true;
                    owed = None;
                } else {
                    assert!(extra.is_empty(), "CatchUpComplete before the catch-up was sent");
                }
            }
            3 => {
                s.idle(now, pending.oldest(), &mut out);
                let msgs = read(&out);
                if ended {
                    assert!(msgs.is_empty());
                } else {
                    assert_eq!(msgs.len(), 1);
                    assert_eq!(msgs[0].1, Some(StatusCode::ConnectionActive));
                    assert!(pending.oldest().is_none_or(|t| msgs[0].2 <= t));
                }
            }
            4 => {
                let was_ended = ended;
                s.terminate(now, pending.oldest(), &mut out);
                let msgs = read(&out);
                if was_ended {
                    assert!(msgs.is_empty());
                } else {
                    assert_eq!(msgs.len(), 1);
                    assert_eq!(msgs[0].1, Some(StatusCode::QueryTerminated));
                    assert!(pending.oldest().is_none_or(|t| msgs[0].2 <= t));
                }
                ended = true;
            }
            _ => now = now.saturating_add(u32::from(arg % 8)),
        }
        for m in read(&out) {
            assert!(m.2 <= now, "base-time in the future");
        }
    }
});
