//! One leasequery connection from accept to close, sans IO: a
//! `BulkConnection` (the DHCPTLS opening, bulk queries) and, when an active
//! query takes it over, an `ActiveSession`, driven by a fuzzed driver.
//! Input: byte 0 sets the listener (plaintext, TLS, active, query limit);
//! then ops, one byte each plus an argument byte:
//!
//! - 0: requestor bytes (length byte, then bytes);
//! - 1: a whole requestor message from templates (bulk for all, by MAC,
//!   refused; active query; DHCPTLS; DHCPDISCOVER), the argument its xid;
//! - 2: the store answers the oldest read (argument: rows, 255 = failure),
//!   or the batch an active session asked for;
//! - 3: the clock jumps to the next timeout; 4: shutdown; 5: the clock
//!   moves (seconds); 6: the requestor stops or resumes reading;
//!   7: the requestor closes; 8: the listener refuses the next claims.
//!
//! Checked: no panic; every message frames and decodes; output is bounded
//! per `poll_transmit` and per input; a read is asked for once until
//! answered, a batch too; a timeout that fires moves the next one on; one
//! close, nothing after it; every bulk query ends with DHCPLEASEQUERYDONE
//! unless the connection closed, and every DONE is for a query the
//! requestor sent; once everything is answered and written, nothing is
//! left hanging (the connection waits on the requestor, or closed).
#![no_main]

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseline_proto::{
    bulk_connection::CHUNK, ActiveConfig, ActiveEvent, ActiveSession, Binding, BulkConfig,
    BulkConnection, BulkEvent, BulkPrimary, DhcpState, History, Now, StoreFailed, StoreRead, Taken,
    Update,
};
use leaseline_wire::{encode_frame, DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use libfuzzer_sys::fuzz_target;

const T0_UNIX: u32 = 1_700_000_000;
const DATA: Duration = Duration::from_secs(30);

enum Conn {
    Bulk(BulkConnection),
    Active(ActiveSession),
    Gone,
}

struct Driver {
    conn: Conn,
    t0: Instant,
    secs: u64,
    /// Reads asked for and not yet answered, oldest first.
    reads: VecDeque<(u32, StoreRead)>,
    /// The batch an active session asked for.
    take: Option<(usize, bool)>,
    grant: bool,
    stalled: bool,
    closed: bool,
    /// Bytes handed over and not yet written.
    unwritten: usize,
    decoder: FrameDecoder,
    /// Bulk queries the requestor sent (by the connection's events) and
    /// not yet ended.
    open_queries: BTreeSet<u32>,
    /// xids the requestor sent in any message.
    sent_xids: HashSet<u32>,
    /// Messages received since the current input began.
    per_input: usize,
    bulk_cfg: Arc<BulkConfig>,
    active_cfg: Arc<ActiveConfig>,
}

impl Driver {
    fn now(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_secs(self.secs),
            unix: T0_UNIX + self.secs as u32,
        }
    }

    fn wants_read(&self) -> bool {
        match &self.conn {
            Conn::Bulk(c) => c.wants_read(),
            Conn::Active(s) => s.wants_read(),
            Conn::Gone => false,
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if !self.wants_read() {
            return;
        }
        let now = self.now();
        match &mut self.conn {
            Conn::Bulk(c) => c.handle_bytes(bytes, now),
            Conn::Active(s) => s.handle_bytes(bytes, now),
            Conn::Gone => {}
        }
    }

    /// The driver's loop until the connection asks nothing more.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the connection never settles");
    }

    fn step(&mut self) -> bool {
        let now = self.now();
        let mut busy = false;
        let mut to_active = None;
        let mut tls_up = false;
        match &mut self.conn {
            Conn::Bulk(c) => {
                while let Some(ev) = c.poll_event() {
                    busy = true;
                    assert!(!self.closed, "an event after the close: {ev:?}");
                    match ev {
                        BulkEvent::Claim(_) => {
                            let r = if self.grant { Ok(()) } else { Err("1".into()) };
                            c.handle_claim(r, now);
                        }
                        BulkEvent::Started { xid, .. } => {
                            assert!(self.open_queries.insert(xid), "xid {xid} twice in flight");
                        }
                        BulkEvent::Refused { xid, .. } => {
                            self.sent_xids.insert(xid);
                        }
                        BulkEvent::Read { xid, read } => {
                            assert!(self.open_queries.contains(&xid));
                            assert!(
                                !self.reads.iter().any(|(x, _)| *x == xid),
                                "a second read for {xid} before the first is answered"
                            );
                            self.reads.push_back((xid, read));
                        }
                        BulkEvent::Done { .. } => {}
                        BulkEvent::StartTls => tls_up = true,
                        BulkEvent::Active(q) => to_active = Some(q),
                        BulkEvent::Close(_) => self.closed = true,
                    }
                }
            }
            Conn::Active(s) => {
                while let Some(ev) = s.poll_event() {
                    busy = true;
                    assert!(!self.closed, "an event after the close: {ev:?}");
                    match ev {
                        ActiveEvent::History { since } => {
                            let h = match since % 3 {
                                0 => History::None,
                                1 => History::Missing,
                                _ => History::CatchUp(vec![Ipv4Addr::new(10, 0, 0, since as u8)]),
                            };
                            s.handle_history(h, now);
                        }
                        ActiveEvent::Take { max, wait } => {
                            assert!(max > 0);
                            assert!(self.take.is_none() || !wait, "a batch asked for twice");
                            self.take = Some((max, wait));
                        }
                        ActiveEvent::Close(_) => self.closed = true,
                    }
                }
            }
            Conn::Gone => return false,
        }
        if tls_up {
            // The handshake went through: the connection over TLS.
            self.conn = Conn::Bulk(BulkConnection::after_tls(Arc::clone(&self.bulk_cfg), now.mono));
            return true;
        }
        if let Some(q) = to_active {
            let Conn::Bulk(c) = std::mem::replace(&mut self.conn, Conn::Gone) else {
                unreachable!()
            };
            assert!(self.open_queries.is_empty(), "an active query beside bulk queries");
            assert_eq!(self.unwritten, 0, "handed over before the output was written");
            self.reads.clear();
            let s = ActiveSession::new(&q, Arc::clone(&self.active_cfg), c.into_decoder(), now.mono);
            self.conn = Conn::Active(s);
            return true;
        }
        // The output, when the last is written (or, closed, the last bytes).
        if self.unwritten == 0 || self.closed {
            let mut buf = Vec::new();
            match &mut self.conn {
                Conn::Bulk(c) => c.poll_transmit(now, &mut buf),
                Conn::Active(s) => s.poll_transmit(now.mono, &mut buf),
                Conn::Gone => {}
            }
            assert!(buf.len() <= CHUNK + 16 * 1024, "{} bytes at once", buf.len());
            if !buf.is_empty() {
                busy = true;
                self.receive(&buf);
                self.unwritten += buf.len();
            }
            if self.closed {
                self.conn = Conn::Gone;
                self.open_queries.clear();
                return false;
            }
        }
        if self.unwritten > 0 && !self.stalled {
            self.unwritten = 0;
            match &mut self.conn {
                Conn::Bulk(c) => c.handle_written(now.mono, 0),
                Conn::Active(s) => s.handle_written(now.mono, 0),
                Conn::Gone => {}
            }
            busy = true;
        }
        busy
    }

    /// What the requestor reads.
    fn receive(&mut self, bytes: &[u8]) {
        self.decoder.extend(bytes);
        while let Some(f) = self.decoder.next_frame().expect("the server frames what it writes") {
            let m = Message::decode(f).expect("the server's messages decode");
            self.per_input += 1;
            assert!(self.per_input <= 20_000, "output unbounded for one input");
            if m.message_type() == Some(MessageType::LeaseQueryDone) {
                let status = m.options.iter().find_map(|o| match o {
                    DhcpOption::StatusCode(c, _) => Some(*c),
                    _ => None,
                });
                // A DONE for a query the requestor sent (MalformedQuery: the
                // xid of a message that did not decode).
                assert!(
                    self.open_queries.remove(&m.xid)
                        || self.sent_xids.contains(&m.xid)
                        || status == Some(StatusCode::MalformedQuery),
                    "DONE for an xid never sent: {m:?}"
                );
            }
        }
    }

    fn answer(&mut self, arg: u8) {
        let now = self.now();
        match &mut self.conn {
            Conn::Bulk(c) => {
                let Some((xid, read)) = self.reads.pop_front() else { return };
                let rows = if arg == 255 { Err(StoreFailed) } else { Ok(rows(&read, arg)) };
                c.handle_store(xid, rows, now.unix);
            }
            Conn::Active(s) => {
                let Some((max, _)) = self.take.take() else { return };
                let n = usize::from(arg % 8).min(max);
                let bs: Vec<Binding> = (0..n as u8).map(|i| binding(arg.wrapping_add(i), now.unix)).collect();
                let left = (arg % 3 == 0).then_some(now.unix);
                let lost = (arg % 17 == 1).then_some(now.unix);
                s.handle_updates(
                    bs.iter().map(|b| Update { binding: b, changed: now.unix, shared: None }),
                    Taken { now: now.unix, oldest_left: left, lost },
                );
            }
            Conn::Gone => {}
        }
    }

    fn timeout(&mut self) {
        let next = match &self.conn {
            Conn::Bulk(c) => c.poll_timeout(),
            Conn::Active(s) => s.poll_timeout(),
            Conn::Gone => None,
        };
        let Some(t) = next else { return };
        let at = t.duration_since(self.t0);
        self.secs = self.secs.max(at.as_secs() + u64::from(at.subsec_nanos() > 0));
        let now = self.now();
        match &mut self.conn {
            Conn::Bulk(c) => {
                c.handle_timeout(now);
                // A timer that fired moves on (or the connection closed).
                assert!(c.is_closed() || c.poll_timeout().is_none_or(|n| n > now.mono));
            }
            Conn::Active(s) => {
                s.handle_timeout(now, None);
                assert!(s.is_closed() || s.poll_timeout().is_none_or(|n| n > now.mono));
            }
            Conn::Gone => {}
        }
    }
}

fn binding(n: u8, now: u32) -> Binding {
    let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, n));
    if n % 3 != 0 {
        b.state = DhcpState::Active;
        b.htype = 1;
        b.chaddr = vec![2, 0, 0, 0, 0, n % 4];
        b.lease_time = 600;
        b.expiry = now + 600;
        b.cltt = now - 10;
        b.state_since = now - 10;
    } else {
        b.state = DhcpState::Released;
        b.state_since = now.saturating_sub(u32::from(n));
    }
    b
}

/// The store: `n` rows from where the read starts (a key read: bindings
/// with the key's MAC, and some without).
fn rows(read: &StoreRead, n: u8) -> Vec<Binding> {
    match read {
        StoreRead::Range { from, limit } => (0..u32::from(n))
            .filter_map(|i| u32::from(*from).checked_add(i * 3))
            .take(*limit)
            .map(|ip| {
                let mut b = binding(ip as u8, T0_UNIX);
                b.ip = Ipv4Addr::from(ip);
                b
            })
            .collect(),
        StoreRead::Key(BulkPrimary::ByMac { chaddr, .. }) => (0..n)
            .map(|i| {
                let mut b = binding(i, T0_UNIX);
                if i % 2 == 0 {
                    b.chaddr = chaddr.clone();
                }
                b
            })
            .collect(),
        StoreRead::Key(_) => (0..n).map(|i| binding(i, T0_UNIX)).collect(),
    }
}

fn template(kind: u8, xid: u32) -> Message {
    let mt = match kind % 6 {
        0 | 1 | 5 => MessageType::BulkLeaseQuery,
        2 => MessageType::ActiveLeaseQuery,
        3 => MessageType::Tls,
        _ => MessageType::Discover,
    };
    let mut m = Message { htype: 0, hlen: 0, xid, ..Message::default() };
    m.options.push(DhcpOption::MessageType(mt));
    match kind % 6 {
        1 => {
            m.htype = 1;
            m.hlen = 6;
            m.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, kind % 4]);
        }
        2 if kind & 0x40 != 0 => m.options.push(DhcpOption::QueryStartTime(u32::from(kind))),
        5 => m.ciaddr = Ipv4Addr::new(10, 0, 0, 1),
        _ => {}
    }
    if kind & 0x80 != 0 {
        m.options.push(DhcpOption::QueryStartTime(T0_UNIX - 5));
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let bulk_cfg = Arc::new(BulkConfig {
        data_timeout: DATA,
        max_queries: 1 + usize::from(flags >> 4 & 3),
        max_message: 1024,
        server_id: Ipv4Addr::new(192, 0, 2, 1),
        denied: vec![92],
        configured: vec![(0x0a00_0010, 0x0a00_0030)],
        active: flags & 4 != 0,
        plaintext: flags & 1 != 0,
        tls: flags & 2 != 0,
    });
    let active_cfg = Arc::new(ActiveConfig {
        server_id: Ipv4Addr::new(192, 0, 2, 1),
        denied: vec![92],
        idle_timeout: Duration::from_secs(60),
        send_timeout: Duration::from_secs(120),
        data_timeout: DATA,
    });
    let t0 = Instant::now();
    let mut d = Driver {
        conn: Conn::Bulk(BulkConnection::new(Arc::clone(&bulk_cfg), t0)),
        t0,
        secs: 0,
        reads: VecDeque::new(),
        take: None,
        grant: true,
        stalled: false,
        closed: false,
        unwritten: 0,
        decoder: FrameDecoder::new(65_535),
        open_queries: BTreeSet::new(),
        sent_xids: HashSet::new(),
        per_input: 0,
        bulk_cfg,
        active_cfg,
    };
    let mut ops = rest.iter();
    while let Some(&op) = ops.next() {
        let arg = ops.next().copied().unwrap_or(0);
        d.per_input = 0;
        match op % 9 {
            0 => {
                let bytes: Vec<u8> = ops.by_ref().take(usize::from(arg)).copied().collect();
                d.bytes(&bytes);
            }
            1 => {
                let kind = ops.next().copied().unwrap_or(0);
                let xid = u32::from(arg);
                d.sent_xids.insert(xid);
                let mut bytes = Vec::new();
                encode_frame(&template(kind, xid).to_bytes().expect("encodes"), &mut bytes)
                    .expect("frames");
                d.bytes(&bytes);
            }
            2 => d.answer(arg),
            3 => d.timeout(),
            4 => {
                let now = d.now();
                match &mut d.conn {
                    Conn::Bulk(c) => c.handle_shutdown(now),
                    Conn::Active(s) => s.handle_shutdown(now, (arg % 2 == 0).then_some(now.unix)),
                    Conn::Gone => {}
                }
            }
            5 => d.secs += u64::from(arg % 64),
            6 => d.stalled = !d.stalled,
            7 => {
                if d.wants_read() {
                    let now = d.now();
                    match &mut d.conn {
                        Conn::Bulk(c) => c.handle_eof(now),
                        Conn::Active(s) => s.handle_eof(),
                        Conn::Gone => {}
                    }
                }
            }
            _ => d.grant = !d.grant,
        }
        d.pump();
    }
    // The end: the requestor reads everything, the store answers every read
    // with its last rows: every query ends, or the connection closes.
    d.stalled = false;
    for _ in 0..1000 {
        d.per_input = 0;
        d.pump();
        if d.reads.is_empty() {
            break;
        }
        d.answer(0);
    }
    if let Conn::Bulk(c) = &d.conn {
        assert!(d.reads.is_empty());
        assert!(
            d.open_queries.is_empty(),
            "queries {:?} never ended (closed: {})",
            d.open_queries,
            c.is_closed()
        );
    }
});
