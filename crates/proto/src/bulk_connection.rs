//! A leasequery TCP connection up to its first active query, sans IO: the
//! DHCPTLS opening (RFC 7724 §8.1, [`crate::opening`]), then bulk queries
//! (RFC 6926 §8), several at once with their replies interleaved, until
//! the connection closes or an active query takes it over
//! ([`crate::ActiveSession`]).
//!
//! Its rules: the data timeout bounds the first message, each later
//! message from its first byte, and the silence with no query outstanding
//! (RFC 6926 §8.1, §8.5); writes that make no progress for it close the
//! connection (§8.2); at `max_queries` in flight it stops reading (§8.4);
//! xids are unique among the queries in flight (§7.7); every query ends
//! with DHCPLEASEQUERYDONE, QueryTerminated at shutdown (§8.5); a message
//! type not served over TCP closes the connection (RFC 7724 §8.1.1); an
//! active query with bulk queries in flight is refused (RFC 7724 §8.3).
//!
//! The driver (see [`crate::session`]) answers each [`BulkEvent::Claim`]
//! at once, runs each [`BulkEvent::Read`] against the store and hands the
//! rows back, and writes what [`BulkConnection::poll_transmit`] gives it.

mod end;
mod query;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseline_wire::{FrameDecoder, Message, MessageType, StatusCode};

pub use end::BulkEnd;
pub use query::{StoreFailed, StoreRead, PAGE};

use crate::session::{Close, Now, Reading, Sending, LINGER};
use crate::{
    build_done, build_status, frame_into, malformed_query_xid, opening, parse_active_query,
    parse_bulk_query, ActiveQuery, Binding, Opening,
};
use query::{Fill, Query};

/// Bytes of output built per [`BulkConnection::poll_transmit`] (about;
/// the last message is never cut).
pub const CHUNK: usize = 64 * 1024;

/// A listener's settings for its connections.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    /// BULK_LQ_DATA_TIMEOUT (RFC 6926 §6.3).
    pub data_timeout: Duration,
    /// Queries in flight at once on one connection (RFC 6926 §8.4).
    pub max_queries: usize,
    /// The longest message read.
    pub max_message: usize,
    pub server_id: Ipv4Addr,
    /// Never sent even when requested (RFC 7724 §8.2), plus 92 (RFC 6926 §8.3).
    pub denied: Vec<u8>,
    /// Every configured address (pools, reservations) as sorted, disjoint
    /// ranges ([`crate::merge_ranges`]).
    pub configured: Vec<(u32, u32)>,
    /// DHCPACTIVELEASEQUERY is served here.
    pub active: bool,
    /// Plaintext sessions are taken.
    pub plaintext: bool,
    /// TLS can be started (DHCPTLS).
    pub tls: bool,
}

/// Which of the listener's budgets a connection asks to count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// BULK_LQ_MAX_CONNS (RFC 6926 §8.1).
    Bulk,
    /// The active limits (RFC 7724 §8.3, §8.4).
    Active,
}

/// What the connection asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkEvent {
    /// Take a place in the listener's budget; answer with
    /// [`BulkConnection::handle_claim`] before anything else.
    Claim(Place),
    /// A bulk query started (for the log).
    Started { xid: u32, primary: &'static str },
    /// A bulk query was refused: its DHCPLEASEQUERYDONE carries `status`
    /// (RFC 6926 §8.2).
    Refused {
        xid: u32,
        status: StatusCode,
        reason: &'static str,
    },
    /// Read from the store for query `xid`; answer with
    /// [`BulkConnection::handle_store`] (a query closed meanwhile ignores it).
    Read { xid: u32, read: StoreRead },
    /// A query ended with DHCPLEASEQUERYDONE after `bindings` replies;
    /// `failed` when the store failed it (UnspecFail).
    Done {
        xid: u32,
        bindings: u64,
        failed: bool,
    },
    /// The DHCPTLS answer is written: run the TLS handshake on the raw
    /// stream (nothing after DHCPTLS was read), then a new connection over
    /// TLS ([`BulkConnection::after_tls`]).
    StartTls,
    /// An active query, accepted and given its place: the connection
    /// carries it from now on ([`BulkConnection::into_decoder`] holds the
    /// bytes read past it).
    Active(ActiveQuery),
    /// Close once the last output ([`BulkConnection::poll_transmit`]) is
    /// written, within `linger`.
    Close(Close<BulkEnd>),
}

enum Phase {
    /// Before the first message: it may be DHCPTLS (RFC 7724 §8.1).
    Opening { deadline: Instant },
    /// Queries.
    Open,
    /// The DHCPTLS answer is being written; then TLS.
    StartingTls,
    /// Claimed for an active query: handed over once all is written.
    ToActive(ActiveQuery),
    /// Handed over (TLS or active), or closed.
    Over,
}

/// A message waiting for the driver's answer to its claim.
enum Claimed {
    Bulk(Box<Message>),
    Active(ActiveQuery),
}

pub struct BulkConnection {
    cfg: Arc<BulkConfig>,
    phase: Phase,
    reading: Reading,
    sending: Sending,
    /// Framed messages outside the queries' streams (refusals, DONEs of a
    /// shutdown, the DHCPTLS answer): written first.
    queued: Vec<u8>,
    /// Queries in flight, in arrival order.
    queries: Vec<Query>,
    /// The query whose turn it is to fill the output.
    turn: usize,
    claim: Option<Claimed>,
    /// Holds a place in BULK_LQ_MAX_CONNS.
    bulk_place: bool,
    /// The last message read or query answered (RFC 6926 §8.5).
    last_activity: Instant,
    events: VecDeque<BulkEvent>,
    closed: bool,
}

impl BulkConnection {
    /// A connection just accepted: its first message may open TLS.
    pub fn new(cfg: Arc<BulkConfig>, now: Instant) -> Self {
        let deadline = now + cfg.data_timeout;
        Self::with_phase(cfg, Phase::Opening { deadline }, now)
    }

    /// The connection once TLS is up (RFC 7724 §8.1): queries from here;
    /// a further DHCPTLS is refused.
    pub fn after_tls(cfg: Arc<BulkConfig>, now: Instant) -> Self {
        Self::with_phase(cfg, Phase::Open, now)
    }

    fn with_phase(cfg: Arc<BulkConfig>, phase: Phase, now: Instant) -> Self {
        BulkConnection {
            reading: Reading::new(FrameDecoder::new(cfg.max_message), cfg.data_timeout, now),
            sending: Sending::new(cfg.data_timeout, now),
            cfg,
            phase,
            queued: Vec::new(),
            queries: Vec::new(),
            turn: 0,
            claim: None,
            bulk_place: false,
            last_activity: now,
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Bytes from the requestor.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Now) {
        if !self.closed {
            self.reading.bytes(bytes, now.mono);
            self.process(now);
        }
    }

    /// The requestor closed its side.
    pub fn handle_eof(&mut self, now: Now) {
        self.reading.eof();
        self.process(now);
    }

    /// Bytes went out; `left` are still to write (0: everything handed over
    /// is written and flushed).
    pub fn handle_written(&mut self, now: Instant, left: usize) {
        self.sending.written(left, now);
    }

    /// The driver's answer to [`BulkEvent::Claim`]: `Err` names the limit.
    pub fn handle_claim(&mut self, granted: Result<(), String>, now: Now) {
        match (self.claim.take(), granted) {
            (Some(Claimed::Bulk(msg)), Ok(())) => {
                self.bulk_place = true;
                self.bulk_query(&msg, now);
            }
            // RFC 6926 §8.1: over BULK_LQ_MAX_CONNS, closed with no answer.
            (Some(Claimed::Bulk(_)), Err(_)) => self.close(BulkEnd::OverLimit, LINGER),
            (Some(Claimed::Active(q)), Ok(())) => self.phase = Phase::ToActive(q),
            (Some(Claimed::Active(q)), Err(limit)) => {
                // RFC 7724 §8.1: a capacity refusal answers the active query.
                self.queue_status(
                    q.xid,
                    StatusCode::NotAllowed,
                    "too many active queries",
                    now,
                );
                self.close(BulkEnd::ActiveOverLimit(limit), LINGER);
            }
            (None, _) => {}
        }
        self.process(now);
    }

    /// The store's answer to [`BulkEvent::Read`] for `xid`, read at feed
    /// time `read_at` (taken before the read).
    pub fn handle_store(
        &mut self,
        xid: u32,
        rows: Result<Vec<Binding>, StoreFailed>,
        read_at: u32,
    ) {
        if let Some(q) = self.queries.iter_mut().find(|q| q.xid() == xid) {
            q.answer(rows, read_at);
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        if self.closed {
            return;
        }
        // RFC 6926 §8.2: blocked while sending replies.
        if self.sending.stalled(now.mono) {
            let end = match self.phase {
                Phase::StartingTls => BulkEnd::BlockedTlsAnswer,
                _ => BulkEnd::NotReading(self.sending.limit()),
            };
            return self.close(end, Duration::ZERO);
        }
        let limit = self.cfg.data_timeout;
        match self.phase {
            // RFC 6926 §8.1, RFC 7724 §8.1: blocked while accepting.
            Phase::Opening { deadline } if now.mono >= deadline => {
                self.close(BulkEnd::OpeningTimeout(limit), Duration::ZERO);
            }
            // RFC 6926 §8.1: blocked reading a query; §8.5: idle.
            Phase::Open => {
                let partial = self.reading.deadline();
                if self.open_deadline().is_some_and(|d| now.mono >= d) {
                    let end = if partial.is_some() {
                        BulkEnd::MessageTimeout(limit)
                    } else {
                        BulkEnd::Idle(limit)
                    };
                    self.close(end, LINGER);
                }
            }
            _ => {}
        }
    }

    /// The server is shutting down: every query in flight ends with
    /// QueryTerminated (RFC 6926 §8.5), then the connection closes.
    pub fn handle_shutdown(&mut self, now: Now) {
        self.terminate(now, "server shutting down", BulkEnd::Shutdown);
    }

    /// A reload no longer allows this requestor: as at shutdown, every
    /// query in flight ends with QueryTerminated, then the connection
    /// closes (RFC 6926 §8.5's way of aborting a query).
    pub fn handle_revoked(&mut self, now: Now) {
        self.terminate(now, "requestor no longer allowed", BulkEnd::Revoked);
    }

    fn terminate(&mut self, now: Now, text: &str, end: BulkEnd) {
        if self.closed {
            return;
        }
        for q in std::mem::take(&mut self.queries) {
            let sid = q.first().then_some(self.cfg.server_id);
            let status = Some((StatusCode::QueryTerminated, text));
            frame_into(
                &mut self.queued,
                &build_done(q.xid(), status, now.unix, sid),
            );
        }
        let linger = if self.queued.is_empty() && matches!(self.phase, Phase::Opening { .. }) {
            Duration::ZERO
        } else {
            LINGER
        };
        self.close(end, linger);
    }

    /// Append output to `buf` (about [`CHUNK`] bytes at most): messages
    /// queued, then the queries' replies, each query in turn. After
    /// [`BulkEvent::Close`], once more for the last bytes.
    pub fn poll_transmit(&mut self, now: Now, buf: &mut Vec<u8>) {
        let before = buf.len();
        let held_back = self.queued.len() >= CHUNK;
        buf.append(&mut self.queued);
        if !self.closed && matches!(self.phase, Phase::Open) && !self.queries.is_empty() {
            self.fill(now, buf, before + CHUNK);
        }
        self.sending.handed(before, buf.len(), now.mono);
        if held_back {
            // Messages waited for the answers to go out: read on.
            self.process(now);
        }
    }

    pub fn poll_event(&mut self) -> Option<BulkEvent> {
        if let Some(ev) = self.events.pop_front() {
            return Some(ev);
        }
        if self.closed {
            return None;
        }
        for q in &mut self.queries {
            if let Some(read) = q.wants_read() {
                return Some(BulkEvent::Read { xid: q.xid(), read });
            }
        }
        // Handed over only once everything before is written.
        if !(self.sending.drained() && self.queued.is_empty()) {
            return None;
        }
        match std::mem::replace(&mut self.phase, Phase::Over) {
            Phase::StartingTls => Some(BulkEvent::StartTls),
            Phase::ToActive(q) => Some(BulkEvent::Active(q)),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// The next instant [`BulkConnection::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let phase = match self.phase {
            Phase::Opening { deadline } => Some(deadline),
            Phase::Open => self.open_deadline(),
            _ => None,
        };
        earliest(phase, self.sending.deadline())
    }

    /// Whether the driver should read: not once the connection ends or is
    /// handed over, not while a claim is out, not at the query limit
    /// (RFC 6926 §8.4), not while a chunk of answers waits to go out, not
    /// after DHCPTLS (what follows is the TLS handshake, for rustls to read).
    pub fn wants_read(&self) -> bool {
        !self.closed
            && matches!(self.phase, Phase::Opening { .. } | Phase::Open)
            && !self.reading.at_eof()
            && self.claim.is_none()
            && self.queries.len() < self.cfg.max_queries
            && self.queued.len() < CHUNK
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The bytes read past the active query, for its session.
    pub fn into_decoder(self) -> FrameDecoder {
        self.reading.into_decoder()
    }

    /// The data timeout of an open connection: the message partly read,
    /// or the silence with no query outstanding (RFC 6926 §8.5).
    fn open_deadline(&self) -> Option<Instant> {
        let idle = (self.queries.is_empty() && self.claim.is_none())
            .then(|| self.last_activity + self.cfg.data_timeout);
        earliest(self.reading.deadline(), idle)
    }

    /// Take messages while the connection may (RFC 6926 §8.4: not past the
    /// query limit; none while a claim is out).
    fn process(&mut self, now: Now) {
        loop {
            if self.closed || self.claim.is_some() {
                break;
            }
            let opening = match self.phase {
                Phase::Opening { .. } => true,
                Phase::Open => false,
                _ => break,
            };
            // A requestor that sends and does not read gets no more
            // answers queued than one chunk: its messages wait in TCP.
            if self.queries.len() >= self.cfg.max_queries || self.queued.len() >= CHUNK {
                break;
            }
            let frame = match self.reading.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return self.close(BulkEnd::BadFraming(e.to_string()), LINGER),
            };
            self.last_activity = now.mono;
            if opening {
                self.open(&frame, now);
            } else {
                self.message(&frame, now);
            }
        }
        if !self.closed && self.reading.at_eof() && self.claim.is_none() {
            match self.phase {
                Phase::Opening { .. } => {
                    self.close(BulkEnd::ClosedBeforeMessage, Duration::ZERO);
                }
                // Every query answered: the requestor's close is ours too.
                Phase::Open if self.queries.is_empty() => {
                    self.close(BulkEnd::RequestorClosed, self.cfg.data_timeout);
                }
                _ => {}
            }
        }
        let reading = self.wants_read();
        self.reading.pause(!reading, now.mono);
    }

    /// The first message decides how the connection goes on (RFC 7724 §8.1).
    fn open(&mut self, first: &[u8], now: Now) {
        let cfg = &self.cfg;
        match opening(first, self.reading.buffered(), cfg.plaintext, cfg.tls) {
            Opening::Plain => {
                self.phase = Phase::Open;
                self.message(first, now);
            }
            Opening::RefusePlain => self.close(BulkEnd::PlainOnSecure, Duration::ZERO),
            Opening::RefuseTls(answer) => {
                frame_into(&mut self.queued, &answer);
                self.close(BulkEnd::TlsRefused, self.cfg.data_timeout);
            }
            Opening::EarlyData(n) => self.close(BulkEnd::EarlyData(n), Duration::ZERO),
            Opening::StartTls(answer) => {
                frame_into(&mut self.queued, &answer);
                self.phase = Phase::StartingTls;
            }
        }
    }

    fn message(&mut self, frame: &[u8], now: Now) {
        let msg = match Message::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                if let Some(xid) = malformed_query_xid(frame) {
                    // RFC 6926 §8.2: a query whose options do not parse is a
                    // malformed query; it is told so before the close.
                    let status = Some((StatusCode::MalformedQuery, "undecodable options"));
                    let sid = Some(self.cfg.server_id);
                    frame_into(&mut self.queued, &build_done(xid, status, now.unix, sid));
                }
                return self.close(BulkEnd::Undecodable(e.to_string()), LINGER);
            }
        };
        match msg.message_type() {
            Some(MessageType::BulkLeaseQuery) if self.bulk_place => self.bulk_query(&msg, now),
            Some(MessageType::BulkLeaseQuery) => {
                // The first bulk query makes it a bulk connection: it takes
                // one of BULK_LQ_MAX_CONNS (RFC 6926 §8.1), or is closed.
                self.claim = Some(Claimed::Bulk(Box::new(msg)));
                self.events.push_back(BulkEvent::Claim(Place::Bulk));
            }
            Some(MessageType::ActiveLeaseQuery) if self.cfg.active => {
                if !self.queries.is_empty() {
                    // RFC 7724 §8.3: active and bulk queries need separate connections.
                    let text = "bulk queries in progress on this connection";
                    self.queue_status(msg.xid, StatusCode::NotAllowed, text, now);
                    return self.close(BulkEnd::ActiveWithBulk, LINGER);
                }
                match parse_active_query(&msg) {
                    Ok(q) => {
                        self.claim = Some(Claimed::Active(q));
                        self.events.push_back(BulkEvent::Claim(Place::Active));
                    }
                    Err(refusal) => {
                        // RFC 7724 §8.2: a status, then the close.
                        self.queue_status(msg.xid, refusal.status(), refusal.reason(), now);
                        self.close(BulkEnd::ActiveRefused(refusal.reason()), LINGER);
                    }
                }
            }
            Some(MessageType::Tls) => self.close(BulkEnd::TlsNotFirst, LINGER),
            // RFC 7724 §8.1.1: a type not supported over TCP closes the connection.
            other => {
                let name = other.map_or("(none)", |t| t.name());
                self.close(BulkEnd::NotAllowedType(name), LINGER);
            }
        }
    }

    fn bulk_query(&mut self, msg: &Message, now: Now) {
        if self.queries.iter().any(|q| q.xid() == msg.xid) {
            // RFC 6926 §7.7: xids are unique per connection; replies could
            // not be told apart.
            return self.close(BulkEnd::DuplicateXid(msg.xid), LINGER);
        }
        match parse_bulk_query(msg) {
            Ok(q) => {
                self.events.push_back(BulkEvent::Started {
                    xid: q.xid,
                    primary: q.primary.name(),
                });
                self.queries.push(Query::new(q, &self.cfg, now.unix));
            }
            Err((status, reason)) => {
                // RFC 6926 §8.2: a refused query ends with DONE and a status.
                self.events.push_back(BulkEvent::Refused {
                    xid: msg.xid,
                    status,
                    reason,
                });
                let sid = Some(self.cfg.server_id);
                let done = build_done(msg.xid, Some((status, reason)), now.unix, sid);
                frame_into(&mut self.queued, &done);
            }
        }
    }

    /// Replies of the queries in turn (RFC 6926 §7.7: no query waits for
    /// another to complete) until `buf` holds `limit` bytes.
    fn fill(&mut self, now: Now, buf: &mut Vec<u8>, limit: usize) {
        let mut ended = false;
        let mut tried = 0;
        while tried < self.queries.len() && buf.len() < limit {
            let i = self.turn % self.queries.len();
            match self.queries[i].fill(&self.cfg, buf, limit, now.unix) {
                Fill::Done => {
                    let q = self.queries.remove(i);
                    self.events.push_back(BulkEvent::Done {
                        xid: q.xid(),
                        bindings: q.sent(),
                        failed: q.failed(),
                    });
                    self.last_activity = now.mono;
                    ended = true;
                    tried = 0;
                }
                Fill::Blocked => {
                    self.turn = i + 1;
                    tried += 1;
                }
                Fill::Full => self.turn = i + 1,
            }
        }
        if ended {
            // Room for more queries (RFC 6926 §8.4), or the requestor's
            // close to follow.
            self.process(now);
        }
    }

    fn queue_status(&mut self, xid: u32, code: StatusCode, text: &str, now: Now) {
        frame_into(&mut self.queued, &build_status(xid, code, text, now.unix));
    }

    fn close(&mut self, end: BulkEnd, linger: Duration) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.queries.clear();
        self.claim = None;
        self.phase = Phase::Over;
        self.events
            .push_back(BulkEvent::Close(Close { end, linger }));
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
