//! Every rule of the connection on a virtual clock: no socket, no store,
//! time passed in.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseline_wire::{
    encode_frame, DhcpOption, FrameDecoder, Message, MessageType, StatusCode, BOOTREQUEST,
};

use super::*;
use crate::{BulkPrimary, DhcpState};

const SID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const LIMIT: Duration = Duration::from_secs(30);
const UNIX0: u32 = 1_700_000_000;

fn cfg() -> BulkConfig {
    BulkConfig {
        data_timeout: LIMIT,
        max_queries: 4,
        max_message: 4096,
        server_id: SID,
        denied: vec![92],
        configured: vec![(ip(100), ip(199))],
        active: true,
        plaintext: true,
        tls: true,
    }
}

fn ip(last: u32) -> u32 {
    0x0a00_0000 + last
}

/// A leased binding at 10.0.0.`n` for MAC 02:..:n.
fn leased(n: u32) -> Binding {
    let mut b = Binding::available(Ipv4Addr::from(ip(n)));
    b.state = DhcpState::Active;
    b.htype = 1;
    b.chaddr = vec![2, 0, 0, 0, (n >> 8) as u8, n as u8];
    b.cltt = UNIX0 - 10;
    b.state_since = UNIX0 - 10;
    b.expiry = UNIX0 + 3600;
    b.lease_time = 3600;
    b
}

fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&m.to_bytes().unwrap(), &mut out).unwrap();
    out
}

fn query(mt: MessageType, xid: u32) -> Message {
    Message {
        htype: 0,
        hlen: 0,
        xid,
        options: vec![DhcpOption::MessageType(mt)],
        ..Message::default()
    }
}

fn bulk_all(xid: u32) -> Message {
    query(MessageType::BulkLeaseQuery, xid)
}

fn bulk_mac(xid: u32, n: u32) -> Message {
    let mut m = bulk_all(xid);
    m.htype = 1;
    m.hlen = 6;
    m.chaddr[..6].copy_from_slice(&leased(n).chaddr);
    m
}

fn status(m: &Message) -> Option<StatusCode> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, _) => Some(*c),
        _ => None,
    })
}

/// How the requestor side behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Takes everything at once.
    Eager,
    /// Takes nothing.
    Stalled,
}

/// A connection with a driver made of plain data: a store, a clock, the
/// listener's answers to claims, and the bytes written.
struct Harness {
    c: BulkConnection,
    t0: Instant,
    at: Duration,
    store: BTreeMap<u32, Binding>,
    grant: bool,
    /// Reads are answered by `pump` (false: held in `reads`).
    answer_reads: bool,
    reads: Vec<(u32, StoreRead)>,
    reader: Reader,
    /// Bytes handed over and not yet written (Stalled).
    unwritten: Vec<u8>,
    /// Bytes the requestor got.
    got: Vec<u8>,
    events: Vec<BulkEvent>,
}

impl Harness {
    fn new(cfg: BulkConfig) -> Self {
        let t0 = Instant::now();
        Harness {
            c: BulkConnection::new(Arc::new(cfg), t0),
            t0,
            at: Duration::ZERO,
            store: BTreeMap::new(),
            grant: true,
            answer_reads: true,
            reads: Vec::new(),
            reader: Reader::Eager,
            unwritten: Vec::new(),
            got: Vec::new(),
            events: Vec::new(),
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.t0 + self.at,
            unix: UNIX0 + self.at.as_secs() as u32,
        }
    }

    fn secs(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }

    fn send(&mut self, bytes: &[u8]) {
        let now = self.now();
        self.c.handle_bytes(bytes, now);
        self.pump();
    }

    fn send_msgs(&mut self, msgs: &[Message]) {
        let bytes: Vec<u8> = msgs.iter().flat_map(framed).collect();
        self.send(&bytes);
    }

    /// Move the clock to `s` seconds, firing the timer if it is due.
    fn wait_until(&mut self, s: u64) {
        self.at = Duration::from_secs(s);
        if self.c.poll_timeout().is_some_and(|t| t <= self.now().mono) {
            let now = self.now();
            self.c.handle_timeout(now);
        }
        self.pump();
    }

    fn read_store(&self, read: &StoreRead) -> Vec<Binding> {
        match read {
            StoreRead::Key(BulkPrimary::ByMac { chaddr, .. }) => self
                .store
                .values()
                .filter(|b| &b.chaddr == chaddr)
                .cloned()
                .collect(),
            StoreRead::Key(_) => Vec::new(),
            StoreRead::Range { from, limit } => self
                .store
                .range(u32::from(*from)..)
                .take(*limit)
                .map(|(_, b)| b.clone())
                .collect(),
        }
    }

    fn answer(&mut self, xid: u32, read: &StoreRead) {
        let rows = self.read_store(read);
        let at = self.now().unix;
        self.c.handle_store(xid, Ok(rows), at);
    }

    /// The driver's loop: answer events, write what the connection gives.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(ev) = self.c.poll_event() {
                busy = true;
                match &ev {
                    BulkEvent::Claim(_) => {
                        let now = self.now();
                        let answer = if self.grant {
                            Ok(())
                        } else {
                            Err("limit: 1".into())
                        };
                        self.c.handle_claim(answer, now);
                    }
                    BulkEvent::Read { xid, read } if self.answer_reads => {
                        self.answer(*xid, read);
                    }
                    BulkEvent::Read { xid, read } => self.reads.push((*xid, read.clone())),
                    _ => {}
                }
                self.events.push(ev);
            }
            if self.unwritten.is_empty() {
                let now = self.now();
                let mut buf = Vec::new();
                self.c.poll_transmit(now, &mut buf);
                assert!(buf.len() <= CHUNK + 2048, "bounded output per call");
                if !buf.is_empty() {
                    busy = true;
                    self.unwritten = buf;
                }
            }
            if self.reader == Reader::Eager && !self.unwritten.is_empty() {
                self.got.append(&mut self.unwritten);
                let now = self.now();
                self.c.handle_written(now.mono, 0);
                busy = true;
            }
            if !busy {
                break;
            }
        }
    }

    /// Every message the requestor got so far (taken).
    fn messages(&mut self) -> Vec<Message> {
        let mut d = FrameDecoder::new(65_535);
        d.extend(&std::mem::take(&mut self.got));
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            v.push(Message::decode(f).unwrap());
        }
        assert_eq!(d.buffered(), 0, "whole messages only");
        v
    }

    fn closed(&self) -> Option<&Close<BulkEnd>> {
        self.events.iter().find_map(|e| match e {
            BulkEvent::Close(c) => Some(c),
            _ => None,
        })
    }

    fn end(&self) -> Option<&BulkEnd> {
        self.closed().map(|c| &c.end)
    }
}

// ---------------------------------------------------------------------------
// Queries and their replies

#[test]
fn a_query_for_all_merges_configured_addresses_with_stored_pages_once_each() {
    let mut h = Harness::new(cfg());
    // Stored: every 2nd address from .0 to .4000 (several pages), some
    // inside the configured .100-.199.
    for n in (0..4000).step_by(2) {
        h.store.insert(ip(n), leased(n));
    }
    h.send_msgs(&[bulk_all(7)]);
    let msgs = h.messages();
    let (done, replies) = msgs.split_last().unwrap();
    assert_eq!(done.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(status(done), None);
    let ips: Vec<u32> = replies.iter().map(|m| u32::from(m.ciaddr)).collect();
    assert!(ips.windows(2).all(|w| w[0] < w[1]), "ascending, each once");
    let mut want: Vec<u32> = (0..4000).step_by(2).map(ip).collect();
    want.extend((101..200).step_by(2).map(ip));
    want.sort_unstable();
    assert_eq!(ips, want);
    for m in replies {
        let stored = (u32::from(m.ciaddr) - ip(0)).is_multiple_of(2);
        let t = if stored {
            MessageType::LeaseActive
        } else {
            MessageType::LeaseUnassigned
        };
        assert_eq!(m.message_type(), Some(t));
    }
    // RFC 6926 §8.3: server-id in the first message only.
    assert!(msgs[0].has_option(54));
    assert!(msgs[1..].iter().all(|m| !m.has_option(54)));
    assert!(h.events.contains(&BulkEvent::Done {
        xid: 7,
        bindings: replies.len() as u64,
        failed: false
    }));
}

#[test]
fn reads_are_asked_one_at_a_time_and_at_most_two_pages_are_held() {
    let mut h = Harness::new(cfg());
    for n in 0..(5 * PAGE as u32) {
        h.store.insert(ip(n), leased(n));
    }
    h.answer_reads = false;
    h.reader = Reader::Stalled;
    h.send_msgs(&[bulk_all(7)]);
    // One read out; nothing more until it is answered.
    assert_eq!(h.reads.len(), 1);
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.pump();
    // A full page held: the next page is asked for once replies take from it.
    let (xid, read) = h.reads.pop().expect("the next page, read ahead");
    assert_eq!(
        read,
        StoreRead::Range {
            from: Ipv4Addr::from(ip(PAGE as u32)),
            limit: PAGE
        }
    );
    h.answer(xid, &read);
    h.pump();
    assert!(
        h.reads.is_empty(),
        "two pages held: no more reads while blocked"
    );
}

#[test]
fn a_key_query_answers_current_bindings_only() {
    let mut h = Harness::new(cfg());
    let mut current = leased(10);
    current.ip = Ipv4Addr::from(ip(20));
    h.store.insert(ip(20), current);
    let mut released = leased(10);
    released.ip = Ipv4Addr::from(ip(21));
    released.state = DhcpState::Released;
    h.store.insert(ip(21), released);
    h.send_msgs(&[bulk_mac(5, 10)]);
    let msgs = h.messages();
    assert_eq!(msgs.len(), 2, "one reply, then DONE: {msgs:?}");
    assert_eq!(msgs[0].ciaddr, Ipv4Addr::from(ip(20)));
    assert_eq!(msgs[0].message_type(), Some(MessageType::LeaseActive));
    // Nothing current: DONE alone carries server-id (RFC 6926 §8.3).
    h.send_msgs(&[bulk_mac(6, 99)]);
    let msgs = h.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].has_option(54));
}

#[test]
fn queries_in_flight_take_turns() {
    let mut h = Harness::new(cfg());
    for n in 0..3000 {
        h.store.insert(ip(n), leased(n));
    }
    h.send_msgs(&[bulk_all(1), bulk_all(2)]);
    let xids: Vec<u32> = h.messages().iter().map(|m| m.xid).collect();
    // RFC 6926 §7.7: neither waits for the other to complete.
    let first_two = xids.iter().position(|&x| x == 2).unwrap();
    let last_one = xids.iter().rposition(|&x| x == 1).unwrap();
    assert!(first_two < last_one, "replies interleave");
}

#[test]
fn a_refused_query_gets_done_with_its_status_and_the_connection_goes_on() {
    let mut h = Harness::new(cfg());
    let mut bad = bulk_all(9);
    bad.ciaddr = Ipv4Addr::new(10, 0, 0, 1);
    h.send_msgs(&[bad, bulk_mac(10, 1)]);
    let msgs = h.messages();
    assert_eq!(msgs[0].xid, 9);
    assert_eq!(status(&msgs[0]), Some(StatusCode::MalformedQuery));
    assert!(msgs[0].has_option(54));
    assert_eq!(msgs[1].xid, 10);
    assert!(h.closed().is_none());
}

#[test]
fn a_store_failure_ends_the_query_with_unspec_fail() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(3)]);
    let (xid, _) = h.reads.pop().unwrap();
    h.c.handle_store(xid, Err(StoreFailed), UNIX0);
    h.pump();
    let msgs = h.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(status(&msgs[0]), Some(StatusCode::UnspecFail));
    assert!(h.events.contains(&BulkEvent::Done {
        xid: 3,
        bindings: 0,
        failed: true
    }));
}

#[test]
fn base_time_of_the_first_message_is_the_time_read_before_the_rows() {
    let mut h = Harness::new(cfg());
    h.store.insert(ip(20), leased(20));
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(3)]);
    let (xid, read) = h.reads.pop().unwrap();
    let rows = h.read_store(&read);
    h.at = Duration::from_secs(5);
    h.c.handle_store(xid, Ok(rows), UNIX0 + 1);
    h.pump();
    let msgs = h.messages();
    let base = |m: &Message| {
        m.options.iter().find_map(|o| match o {
            DhcpOption::BaseTime(t) => Some(*t),
            _ => None,
        })
    };
    assert_eq!(base(&msgs[0]), Some(UNIX0 + 1));
    assert_eq!(base(msgs.last().unwrap()), Some(UNIX0 + 5), "DONE: now");
}

// ---------------------------------------------------------------------------
// Limits and timeouts

#[test]
fn at_the_query_limit_it_stops_reading_and_the_wait_is_not_timed() {
    let mut h = Harness::new(BulkConfig {
        max_queries: 1,
        ..cfg()
    });
    h.answer_reads = false;
    let mut two = framed(&bulk_all(1));
    let second = framed(&bulk_all(2));
    // The second query arrives whole, then half of a third.
    two.extend(&second);
    two.extend(&framed(&bulk_all(3))[..10]);
    h.send(&two);
    assert!(
        !h.c.wants_read(),
        "RFC 6926 §8.4: no more read at the limit"
    );
    assert!(h.events.contains(&BulkEvent::Started {
        xid: 1,
        primary: "all"
    }));
    assert!(!h
        .events
        .iter()
        .any(|e| matches!(e, BulkEvent::Started { xid: 2, .. })));
    // The first query's store read takes far longer than the data timeout.
    h.wait_until(10 * LIMIT.as_secs());
    assert!(h.closed().is_none(), "the wait at the limit is ours");
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.pump();
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, BulkEvent::Started { xid: 2, .. })));
    // The half message counts again from when reading resumed... but the
    // limit is reached again by query 2, so it is still not timed.
    h.wait_until(20 * LIMIT.as_secs());
    assert!(h.closed().is_none());
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.pump();
    assert!(h.c.wants_read());
    // Reading resumed at 20 × LIMIT: the half message is due LIMIT later.
    h.wait_until(21 * LIMIT.as_secs() - 1);
    assert!(h.closed().is_none());
    h.wait_until(21 * LIMIT.as_secs());
    assert_eq!(h.end(), Some(&BulkEnd::MessageTimeout(LIMIT)));
}

#[test]
fn the_first_message_must_be_complete_within_the_data_timeout() {
    for bytes in [&[][..], &[0x01][..], &[0x01, 0x2c, 1, 2, 3][..]] {
        let mut h = Harness::new(cfg());
        h.send(bytes);
        h.wait_until(LIMIT.as_secs() - 1);
        assert!(h.closed().is_none());
        h.wait_until(LIMIT.as_secs());
        let close = h.closed().unwrap();
        assert_eq!(close.end, BulkEnd::OpeningTimeout(LIMIT));
        assert!(close.end.to_string().contains("BULK_LQ_DATA_TIMEOUT"));
        assert!(h.messages().is_empty());
    }
}

#[test]
fn a_message_trickled_in_is_timed_from_its_first_byte() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1)]);
    // A query in flight (so no idle timer); from 10 s, one byte a second
    // of the next query.
    let body = framed(&bulk_all(2));
    for (s, b) in body.iter().enumerate() {
        h.wait_until(10 + s as u64);
        if h.closed().is_some() {
            break;
        }
        h.send(&[*b]);
    }
    // Every byte came well within the timeout; the message did not.
    assert_eq!(h.end(), Some(&BulkEnd::MessageTimeout(LIMIT)));
    assert_eq!(h.at, Duration::from_secs(40));
    assert!(h.messages().is_empty(), "a partial query is never answered");

    // With no query outstanding the idle timer runs too: a message begun
    // 10 s after the DONE does not restart it.
    let mut h = Harness::new(cfg());
    h.send_msgs(&[bulk_mac(1, 1)]);
    h.wait_until(10);
    h.send(&framed(&bulk_all(2))[..5]);
    h.wait_until(LIMIT.as_secs());
    assert_eq!(h.end(), Some(&BulkEnd::MessageTimeout(LIMIT)));
}

#[test]
fn idle_closes_after_the_data_timeout_with_no_query_outstanding() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1)]);
    // RFC 6926 §8.5: not while a query is outstanding...
    h.wait_until(100);
    assert!(h.closed().is_none());
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.pump();
    assert!(h.events.iter().any(|e| matches!(e, BulkEvent::Done { .. })));
    // ...and from the DONE on.
    h.wait_until(100 + LIMIT.as_secs() - 1);
    assert!(h.closed().is_none());
    h.wait_until(100 + LIMIT.as_secs());
    assert_eq!(h.end(), Some(&BulkEnd::Idle(LIMIT)));
}

#[test]
fn a_requestor_that_stops_reading_is_closed_after_the_data_timeout_without_progress() {
    let mut h = Harness::new(cfg());
    for n in 0..3000 {
        h.store.insert(ip(n), leased(n));
    }
    h.reader = Reader::Stalled;
    h.send_msgs(&[bulk_all(1)]);
    assert!(!h.unwritten.is_empty());
    // A slow reader: a few bytes every 20 s keep it going.
    for s in [20, 40, 60] {
        h.wait_until(s);
        h.unwritten.drain(..10);
        let now = h.now();
        h.c.handle_written(now.mono, h.unwritten.len());
    }
    h.wait_until(60 + LIMIT.as_secs() - 1);
    assert!(h.closed().is_none());
    h.wait_until(60 + LIMIT.as_secs());
    let close = h.closed().unwrap();
    assert_eq!(close.end, BulkEnd::NotReading(LIMIT));
    assert_eq!(close.linger, Duration::ZERO);
    assert!(close.end.to_string().contains("not reading"));
}

#[test]
fn a_requestor_that_sends_and_does_not_read_gets_a_bounded_backlog() {
    let mut h = Harness::new(cfg());
    h.reader = Reader::Stalled;
    let mut bad = bulk_all(0);
    bad.ciaddr = Ipv4Addr::new(10, 0, 0, 1);
    let one = framed(&bad);
    let many: Vec<u8> = (0..2000).flat_map(|_| one.clone()).collect();
    h.send(&many);
    // Answers for a chunk's worth are queued; the rest waits unread.
    assert!(!h.c.wants_read());
    assert!(h.c.queued.len() < CHUNK + 1024, "{}", h.c.queued.len());
    assert!(h.c.reading.buffered() > 0);
    // The requestor reads: the next messages are taken.
    let now = h.now();
    h.c.handle_written(now.mono, 0);
    h.got.append(&mut h.unwritten);
    h.reader = Reader::Eager;
    h.pump();
    let dones = h.messages().len();
    assert_eq!(dones, 2000, "each refused query answered");
    assert!(h.c.wants_read());
}

#[test]
fn a_duplicate_xid_closes_the_connection() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(0xd0b1), bulk_all(0xd0b1)]);
    assert_eq!(h.end(), Some(&BulkEnd::DuplicateXid(0xd0b1)));
    assert!(h.end().unwrap().to_string().contains("duplicate xid"));
    // After a query is done its xid may come again.
    let mut h = Harness::new(cfg());
    h.send_msgs(&[bulk_mac(4, 1)]);
    h.send_msgs(&[bulk_mac(4, 1)]);
    assert!(h.closed().is_none());
}

#[test]
fn over_the_bulk_limit_the_connection_closes_with_no_answer() {
    let mut h = Harness::new(cfg());
    h.grant = false;
    h.send_msgs(&[bulk_all(1)]);
    assert_eq!(h.end(), Some(&BulkEnd::OverLimit));
    assert!(h.messages().is_empty());
    assert_eq!(h.events[0], BulkEvent::Claim(Place::Bulk));
}

#[test]
fn the_bulk_place_is_claimed_once() {
    let mut h = Harness::new(cfg());
    h.send_msgs(&[bulk_mac(1, 1), bulk_mac(2, 1)]);
    let claims = h
        .events
        .iter()
        .filter(|e| matches!(e, BulkEvent::Claim(_)))
        .count();
    assert_eq!(claims, 1);
}

#[test]
fn a_revoked_requestor_s_queries_end_with_query_terminated() {
    let mut h = Harness::new(cfg());
    for n in 0..3000 {
        h.store.insert(ip(n), leased(n));
    }
    h.reader = Reader::Stalled;
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1)]);
    h.pump();
    let now = h.now();
    h.c.handle_revoked(now);
    h.pump();
    let close = h.closed().unwrap().clone();
    assert_eq!(close.end, BulkEnd::Revoked);
    let now = h.now();
    h.c.poll_transmit(now, &mut h.unwritten);
    h.got = std::mem::take(&mut h.unwritten);
    let msgs = h.messages();
    let last = msgs.last().expect("a message");
    assert_eq!(last.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(status(last), Some(StatusCode::QueryTerminated));
}

#[test]
fn shutdown_ends_every_query_in_flight_with_query_terminated() {
    let mut h = Harness::new(cfg());
    for n in 0..3000 {
        h.store.insert(ip(n), leased(n));
    }
    h.reader = Reader::Stalled;
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1)]);
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.answer_reads = true;
    h.send_msgs(&[bulk_mac(2, 5000)]);
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(3)]);
    h.pump();
    let now = h.now();
    h.c.handle_shutdown(now);
    h.pump();
    let close = h.closed().unwrap().clone();
    assert_eq!(close.end, BulkEnd::Shutdown);
    assert_eq!(close.linger, LINGER);
    // The last bytes: what was handed over, then the DONEs.
    let now = h.now();
    h.c.poll_transmit(now, &mut h.unwritten);
    h.got = std::mem::take(&mut h.unwritten);
    let msgs = h.messages();
    let dones: Vec<&Message> = msgs
        .iter()
        .filter(|m| m.message_type() == Some(MessageType::LeaseQueryDone))
        .collect();
    // Query 2 finished (no binding); 1 and 3 were cut.
    assert_eq!(dones.len(), 3, "{dones:?}");
    for d in &dones[1..] {
        assert_eq!(status(d), Some(StatusCode::QueryTerminated));
        // RFC 6926 §8.3: server-id only when it is the query's first message.
        assert_eq!(d.has_option(54), d.xid == 3, "{d:?}");
    }
    assert!(!msgs
        .iter()
        .any(|m| m.xid == 1 && m.has_option(54) && status(m).is_some()));
    assert!(h.c.poll_event().is_none());
}

#[test]
fn the_requestor_closing_ends_the_connection_once_everything_is_answered() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1)]);
    let now = h.now();
    h.c.handle_eof(now);
    h.pump();
    assert!(h.closed().is_none(), "the query is still answered");
    let (xid, read) = h.reads.pop().unwrap();
    h.answer(xid, &read);
    h.pump();
    let close = h.closed().unwrap();
    assert_eq!(close.end, BulkEnd::RequestorClosed);
    assert_eq!(close.linger, LIMIT);
    assert_eq!(
        h.messages().last().unwrap().message_type(),
        Some(MessageType::LeaseQueryDone)
    );
    // Before any message: logged as such.
    let mut h = Harness::new(cfg());
    h.send(&[0, 5, 1]);
    let now = h.now();
    h.c.handle_eof(now);
    h.pump();
    assert_eq!(h.end(), Some(&BulkEnd::ClosedBeforeMessage));
}

// ---------------------------------------------------------------------------
// What closes a connection

#[test]
fn bad_framing_closes_at_once_without_an_answer() {
    for bytes in [vec![0, 0], vec![0xff, 0xff, 1]] {
        let mut h = Harness::new(BulkConfig {
            max_message: 1000,
            ..cfg()
        });
        h.send(&bytes);
        assert!(matches!(h.end(), Some(BulkEnd::BadFraming(_))), "{bytes:?}");
        assert!(h.messages().is_empty());
    }
}

#[test]
fn an_undecodable_query_is_told_malformed_garbage_is_not() {
    let mut h = Harness::new(cfg());
    let mut q = bulk_all(0x77).to_bytes().unwrap();
    q.extend_from_slice(&[61, 200, 1]); // an option running past the end
    let mut bytes = Vec::new();
    encode_frame(&q, &mut bytes).unwrap();
    h.send(&bytes);
    assert!(matches!(h.end(), Some(BulkEnd::Undecodable(_))));
    let msgs = h.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].xid, status(&msgs[0])),
        (0x77, Some(StatusCode::MalformedQuery))
    );

    let mut h = Harness::new(cfg());
    let mut garbage = vec![7u8; 300];
    garbage[0] = BOOTREQUEST + 1;
    let mut bytes = Vec::new();
    encode_frame(&garbage, &mut bytes).unwrap();
    h.send(&bytes);
    assert!(matches!(h.end(), Some(BulkEnd::Undecodable(_))));
    assert!(h.messages().is_empty());
}

#[test]
fn message_types_not_served_over_tcp_close_the_connection() {
    for mt in [MessageType::Discover, MessageType::LeaseQuery] {
        let mut h = Harness::new(cfg());
        h.send_msgs(&[query(mt, 1)]);
        let end = h.end().unwrap().to_string();
        assert!(
            end.contains("not allowed on a leasequery connection"),
            "{end}"
        );
        assert!(h.messages().is_empty());
    }
    // Active Leasequery off: its query is such a type (RFC 7724 §8.1.1).
    let mut h = Harness::new(BulkConfig {
        active: false,
        ..cfg()
    });
    h.send_msgs(&[query(MessageType::ActiveLeaseQuery, 1)]);
    assert_eq!(
        h.end(),
        Some(&BulkEnd::NotAllowedType("DHCPACTIVELEASEQUERY"))
    );
    // DHCPTLS after the first message.
    let mut h = Harness::new(cfg());
    h.send_msgs(&[bulk_mac(1, 1), query(MessageType::Tls, 2)]);
    assert_eq!(h.end(), Some(&BulkEnd::TlsNotFirst));
}

// ---------------------------------------------------------------------------
// Active queries on this connection

#[test]
fn an_active_query_takes_the_connection_once_all_before_is_written() {
    let mut h = Harness::new(cfg());
    h.reader = Reader::Stalled;
    h.send_msgs(&[bulk_mac(1, 1)]);
    let mut active = query(MessageType::ActiveLeaseQuery, 2);
    active.options.push(DhcpOption::QueryStartTime(UNIX0));
    h.send_msgs(&[active]);
    assert!(h.events.contains(&BulkEvent::Claim(Place::Active)));
    assert!(!h.events.iter().any(|e| matches!(e, BulkEvent::Active(_))));
    assert!(!h.c.wants_read(), "the active session reads from here");
    let now = h.now();
    h.c.handle_written(now.mono, 0);
    h.unwritten.clear();
    h.pump();
    let q = h.events.iter().find_map(|e| match e {
        BulkEvent::Active(q) => Some(q.clone()),
        _ => None,
    });
    assert_eq!(q.map(|q| (q.xid, q.start)), Some((2, Some(UNIX0))));
    assert!(h.closed().is_none());
}

#[test]
fn an_active_query_beside_bulk_queries_is_refused() {
    let mut h = Harness::new(cfg());
    h.answer_reads = false;
    h.send_msgs(&[bulk_all(1), query(MessageType::ActiveLeaseQuery, 2)]);
    assert_eq!(h.end(), Some(&BulkEnd::ActiveWithBulk));
    let msgs = h.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(
        (msgs[0].xid, status(&msgs[0])),
        (2, Some(StatusCode::NotAllowed))
    );
}

#[test]
fn a_refused_active_query_gets_its_status_then_the_close() {
    let mut h = Harness::new(cfg());
    let mut q = query(MessageType::ActiveLeaseQuery, 3);
    q.options.push(DhcpOption::QueryEndTime(UNIX0));
    h.send_msgs(&[q]);
    assert_eq!(h.end(), Some(&BulkEnd::ActiveRefused("query_end_time")));
    let msgs = h.messages();
    assert_eq!(status(&msgs[0]), Some(StatusCode::MalformedQuery));
    // Over the active limits (RFC 7724 §8.1): NotAllowed.
    let mut h = Harness::new(cfg());
    h.grant = false;
    h.send_msgs(&[query(MessageType::ActiveLeaseQuery, 4)]);
    let end = h.end().unwrap().to_string();
    assert!(
        end.contains("over the connection limit (limit: 1)"),
        "{end}"
    );
    let msgs = h.messages();
    assert_eq!(
        (msgs[0].xid, status(&msgs[0])),
        (4, Some(StatusCode::NotAllowed))
    );
}

// ---------------------------------------------------------------------------
// The opening (RFC 7724 §8.1)

#[test]
fn dhcptls_is_answered_then_tls_starts_once_the_answer_is_written() {
    let mut h = Harness::new(cfg());
    h.reader = Reader::Stalled;
    h.send_msgs(&[query(MessageType::Tls, 5)]);
    assert!(!h.c.wants_read(), "what follows is for the TLS handshake");
    assert!(!h.events.contains(&BulkEvent::StartTls));
    let now = h.now();
    h.c.handle_written(now.mono, 0);
    h.got = std::mem::take(&mut h.unwritten);
    h.pump();
    assert!(h.events.contains(&BulkEvent::StartTls));
    let msgs = h.messages();
    assert_eq!(
        (msgs[0].xid, msgs[0].message_type()),
        (5, Some(MessageType::Tls))
    );
    // Over TLS, a query.
    let mut h2 = Harness::new(cfg());
    h2.c = BulkConnection::after_tls(Arc::new(cfg()), h2.t0);
    h2.send_msgs(&[bulk_mac(1, 1)]);
    assert_eq!(h2.messages().len(), 1);
}

#[test]
fn a_dhcptls_answer_not_read_closes_after_the_data_timeout() {
    let mut h = Harness::new(cfg());
    h.reader = Reader::Stalled;
    h.send_msgs(&[query(MessageType::Tls, 5)]);
    h.wait_until(LIMIT.as_secs());
    assert_eq!(h.end(), Some(&BulkEnd::BlockedTlsAnswer));
    assert!(!h.events.contains(&BulkEvent::StartTls));
}

#[test]
fn bytes_after_dhcptls_close_without_reading_them() {
    let mut h = Harness::new(cfg());
    let mut bytes = framed(&query(MessageType::Tls, 5));
    bytes.extend_from_slice(&[0x16, 3, 1]);
    h.send(&bytes);
    assert_eq!(h.end(), Some(&BulkEnd::EarlyData(3)));
    assert!(h.messages().is_empty());
}

#[test]
fn each_listener_mode_opens_as_configured() {
    // Secure only: plaintext is closed with no answer.
    let mut h = Harness::new(BulkConfig {
        plaintext: false,
        ..cfg()
    });
    h.send_msgs(&[bulk_all(1)]);
    assert_eq!(h.end(), Some(&BulkEnd::PlainOnSecure));
    assert!(h.messages().is_empty());
    // No TLS: DHCPTLS gets TLSConnectionRefused, then the close.
    let mut h = Harness::new(BulkConfig {
        tls: false,
        ..cfg()
    });
    h.send_msgs(&[query(MessageType::Tls, 6)]);
    let close = h.closed().unwrap();
    assert_eq!((&close.end, close.linger), (&BulkEnd::TlsRefused, LIMIT));
    let msgs = h.messages();
    assert_eq!(status(&msgs[0]), Some(StatusCode::TlsConnectionRefused));
}

#[test]
fn a_closed_connection_takes_and_gives_nothing_more() {
    let mut h = Harness::new(cfg());
    h.send_msgs(&[query(MessageType::Discover, 1)]);
    assert!(h.c.is_closed());
    assert!(!h.c.wants_read());
    assert_eq!(h.c.poll_timeout(), None);
    h.send_msgs(&[bulk_all(2)]);
    let now = h.now();
    h.c.handle_shutdown(now);
    h.pump();
    assert!(h.messages().is_empty());
    let closes = h
        .events
        .iter()
        .filter(|e| matches!(e, BulkEvent::Close(_)))
        .count();
    assert_eq!(closes, 1, "one close");
    assert_eq!(h.secs(0), h.t0);
}
