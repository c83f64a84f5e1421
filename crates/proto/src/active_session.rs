//! An Active Leasequery session (RFC 7724 §7.4, §8.2), sans IO, from the
//! accepted DHCPACTIVELEASEQUERY to the close. The driver (see
//! [`crate::session`]) hands it the requestor's bytes, the history lookup,
//! batches of changed bindings it asked for, timer ticks and shutdown; it
//! builds every message and decides every close:
//!
//! - catch-up: DataMissing when the history does not reach
//!   query-start-time, else CatchUpComplete once every address changed
//!   since was sent (RFC 7724 §7.4.1);
//! - ConnectionActive after ACTIVE_LQ_IDLE_TIMEOUT with nothing sent
//!   (§7.4, §5.3);
//! - a close when writes make no progress for ACTIVE_LQ_SEND_TIMEOUT
//!   (§8.2), or a message begun is not complete within
//!   BULK_LQ_DATA_TIMEOUT (§8.1);
//! - only one active query per connection, and nothing else may follow it
//!   (§8.3, §8.1.1);
//! - QueryTerminated as the last message when the server shuts down (after
//!   sending what is pending, within a bound) or the requestor fell so far
//!   behind that the history lost changes it had not read (§7.4, §8.4).
//!
//! Base-time (RFC 7724 §6.3): a requestor keeps the highest base-time seen
//! after catch-up and resumes from it, and catch-up sends every address
//! changed at or after it. The driver hands over addresses in order of their
//! latest change, so a message's base-time is capped at the change time of
//! the next address not yet sent: resuming from it can repeat addresses but
//! never skip one. It is never earlier than the change the message carries,
//! and every time field is relative to it, so base-time + lease-time is
//! still the lease's expiry.

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseline_wire::{FrameDecoder, Message, MessageType, StatusCode};

use crate::session::{Close, Now, Reading, Sending, LINGER};
use crate::shared_wire::{copy_shared, offer_shared, WireKey, WireSlot};
use crate::{build_bulk_reply, build_status, frame_into as push, ActiveQuery, Binding};

/// Updates asked for at a time: bounds the output, keeps latency low.
pub const BATCH: usize = 256;
/// At shutdown, batches sent before QueryTerminated at most: what is
/// already committed goes out first, so a requestor resuming from
/// QueryTerminated's base-time misses as few as possible, within a bound.
pub const DRAIN_BATCHES: usize = 64;

/// A listener's settings for its active sessions.
#[derive(Debug, Clone)]
pub struct ActiveConfig {
    pub server_id: Ipv4Addr,
    /// Options never sent: the configured list plus 92 (RFC 7724 §7.4).
    pub denied: Vec<u8>,
    /// ACTIVE_LQ_IDLE_TIMEOUT (RFC 7724 §5.3).
    pub idle_timeout: Duration,
    /// ACTIVE_LQ_SEND_TIMEOUT (RFC 7724 §5.3).
    pub send_timeout: Duration,
    /// BULK_LQ_DATA_TIMEOUT: bounds a message the requestor began.
    pub data_timeout: Duration,
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveEnd {
    RequestorClosed,
    /// No write progress for ACTIVE_LQ_SEND_TIMEOUT (RFC 7724 §8.2).
    SendTimeout,
    /// Changes it had not read left the history: QueryTerminated (RFC 7724
    /// §7.4); `since` is the feed time of the first of them.
    FellBehind {
        since: u32,
    },
    /// QueryTerminated at shutdown (RFC 7724 §7.4).
    Shutdown,
    /// QueryTerminated: a reload no longer allows the requestor (RFC 7724
    /// §8.4: the server aborts the query and says so).
    Revoked,
    /// The requestor sent something that has no place on an active
    /// connection (RFC 7724 §8.1.1, §8.3); a status may precede the close.
    Refused(&'static str),
    /// A message begun and not complete within BULK_LQ_DATA_TIMEOUT.
    DataTimeout,
}

/// What the history holds for the query's query-start-time.
pub enum History {
    /// No query-start-time: live updates only.
    None,
    /// The addresses changed since query-start-time (catch-up); the driver
    /// adds them to the connection's pending set.
    CatchUp(Vec<Ipv4Addr>),
    /// The history does not reach query-start-time (RFC 7724 §7.4.1).
    Missing,
}

/// One changed binding to send, with the feed time of its latest change.
#[derive(Clone, Copy)]
pub struct Update<'a> {
    pub binding: &'a Binding,
    pub changed: u32,
    /// The change's encoding shared with the other sessions sending it
    /// (None: build it here, share nothing).
    pub shared: Option<&'a WireSlot>,
}

/// How a batch of updates was taken from the pending set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The feed's time, read before the batch was taken (a change published
    /// later is recorded at or after it).
    pub now: u32,
    /// The change time of the first address still pending (None: none is).
    pub oldest_left: Option<u32>,
    /// The history lost changes not yet read: the time of the first.
    pub lost: Option<u32>,
}

/// What the session asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveEvent {
    /// Look up the history from `since` (RFC 7724 §7.4.1); answer with
    /// [`ActiveSession::handle_history`].
    History { since: u32 },
    /// Ready for up to `max` updates: once the pending set has some
    /// (`wait`), or at once even if empty (draining at shutdown); answer
    /// with [`ActiveSession::handle_updates`]. Asked once until answered.
    Take { max: usize, wait: bool },
    /// Close once the last output ([`ActiveSession::poll_transmit`]) is
    /// written, within `linger`.
    Close(Close<ActiveEnd>),
}

pub struct ActiveSession {
    cfg: Arc<ActiveConfig>,
    xid: u32,
    prl: Vec<u8>,
    key: WireKey,
    first: bool,
    /// The history lookup is answered (or there was none to do).
    begun: bool,
    /// Catch-up addresses not yet sent; None once CatchUpComplete (or
    /// DataMissing) is queued, or when there was no catch-up.
    catchup: Option<HashSet<Ipv4Addr>>,
    reading: Reading,
    sending: Sending,
    out: Vec<u8>,
    events: VecDeque<ActiveEvent>,
    /// A Take is out.
    taking: bool,
    /// Shutting down: batches still allowed before QueryTerminated.
    draining: Option<usize>,
    closed: bool,
}

impl ActiveSession {
    /// The query was accepted; `decoder` holds what was read past it.
    pub fn new(
        query: &ActiveQuery,
        cfg: Arc<ActiveConfig>,
        decoder: FrameDecoder,
        now: Instant,
    ) -> Self {
        let mut events = VecDeque::new();
        if let Some(since) = query.start {
            events.push_back(ActiveEvent::History { since });
        }
        ActiveSession {
            xid: query.xid,
            prl: query.prl.clone(),
            key: WireKey::new(cfg.server_id, &cfg.denied, &query.prl),
            first: true,
            begun: query.start.is_none(),
            catchup: None,
            reading: Reading::new(decoder, cfg.data_timeout, now),
            sending: Sending::new(cfg.send_timeout, now),
            cfg,
            out: Vec::with_capacity(64 * 1024),
            events,
            taking: false,
            draining: None,
            closed: false,
        }
    }

    /// The history lookup for query-start-time, made at feed time `now.unix`.
    pub fn handle_history(&mut self, history: History, now: Now) {
        if self.begun || self.closed {
            return;
        }
        self.begun = true;
        match history {
            History::None => {}
            History::Missing => {
                // RFC 7724 §7.4.1: DataMissing with base-time = now, at once.
                let text = "history does not reach query-start-time";
                self.status(StatusCode::DataMissing, text, now.unix);
            }
            History::CatchUp(ips) => {
                self.catchup = Some(ips.into_iter().collect());
                self.catch_up_check(now.unix, None);
            }
        }
    }

    /// The batch asked for with [`ActiveEvent::Take`], in the order taken
    /// (the pending set's: non-decreasing `changed`).
    pub fn handle_updates<'a>(
        &mut self,
        updates: impl ExactSizeIterator<Item = Update<'a>> + Clone,
        taken: Taken,
    ) {
        if !std::mem::take(&mut self.taking) || self.closed {
            return;
        }
        self.updates(updates, taken.now, taken.oldest_left);
        let cap_at = min_time(taken.oldest_left, taken.lost);
        if let Some(left) = self.draining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 || taken.oldest_left.is_none() || taken.lost.is_some() {
                self.terminate(taken.now, cap_at, ActiveEnd::Shutdown);
            } else {
                self.take(false);
            }
        } else if let Some(since) = taken.lost {
            // RFC 7724 §7.4: the server cannot go on with the query. Base-time
            // no later than the first change lost: the requestor resumes from
            // there (DataMissing, then a bulk query).
            self.terminate(taken.now, cap_at, ActiveEnd::FellBehind { since });
        }
    }

    /// Bytes from the requestor. Only one active query per connection (RFC
    /// 7724 §8.3), and nothing else belongs here (§8.1.1): what warrants an
    /// answer gets one, then the connection closes.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Now) {
        if self.closed {
            return;
        }
        self.reading.bytes(bytes, now.mono);
        let frame = match self.reading.next_frame() {
            Ok(None) => return,
            Ok(Some(f)) => f,
            Err(_) => return self.close(ActiveEnd::Refused("bad framing"), LINGER),
        };
        let kind = Message::decode(&frame).ok().and_then(|m| m.message_type());
        let (status, text, reason) = match kind {
            Some(MessageType::ActiveLeaseQuery) => (
                Some(StatusCode::NotAllowed),
                "one active query per connection",
                "second active query",
            ),
            Some(MessageType::BulkLeaseQuery) => (
                Some(StatusCode::NotAllowed),
                "bulk queries need their own connection",
                "bulk query on an active connection",
            ),
            _ => (None, "", "message type not allowed on an active connection"),
        };
        if let Some(code) = status {
            self.status(code, text, now.unix);
        }
        self.close(ActiveEnd::Refused(reason), LINGER);
    }

    pub fn handle_eof(&mut self) {
        self.close(ActiveEnd::RequestorClosed, Duration::ZERO);
    }

    /// Bytes went out; `left` are still to write (0: all written and flushed).
    pub fn handle_written(&mut self, now: Instant, left: usize) {
        self.sending.written(left, now);
    }

    /// `oldest_unsent`: the change time of the first address pending.
    pub fn handle_timeout(&mut self, now: Now, oldest_unsent: Option<u32>) {
        if self.closed {
            return;
        }
        // RFC 7724 §8.2: blocked while sending.
        if self.sending.stalled(now.mono) {
            return self.close(ActiveEnd::SendTimeout, Duration::ZERO);
        }
        // RFC 7724 §8.1: blocked while reading a message.
        if self.reading.deadline().is_some_and(|d| now.mono >= d) {
            return self.close(ActiveEnd::DataTimeout, Duration::ZERO);
        }
        if self.keepalive_due().is_some_and(|d| now.mono >= d) {
            // RFC 7724 §7.4: ConnectionActive when idle, never past an unsent change.
            let base = cap(now.unix, oldest_unsent);
            self.status(StatusCode::ConnectionActive, "", base);
        }
    }

    /// The server is shutting down: what is pending goes out first (at
    /// most [`DRAIN_BATCHES`] batches), then QueryTerminated, the last
    /// message (RFC 7724 §7.4).
    pub fn handle_shutdown(&mut self, now: Now, oldest_unsent: Option<u32>) {
        if self.closed || self.draining.is_some() {
            return;
        }
        if !self.begun || oldest_unsent.is_none() {
            return self.terminate(now.unix, oldest_unsent, ActiveEnd::Shutdown);
        }
        self.draining = Some(DRAIN_BATCHES);
        // A Take already out is answered as the first of the drain.
        if !self.taking {
            self.take(false);
        } else {
            self.events.push_back(ActiveEvent::Take {
                max: BATCH,
                wait: false,
            });
        }
    }

    /// A reload no longer allows this requestor: QueryTerminated at once,
    /// the last message (RFC 7724 §7.4, §8.4), and nothing pending is sent
    /// (it is no longer the requestor's to see). Its base-time is capped at
    /// the first change not sent, as at shutdown.
    pub fn handle_revoked(&mut self, now: Now, oldest_unsent: Option<u32>) {
        if self.closed {
            return;
        }
        self.terminate(now.unix, oldest_unsent, ActiveEnd::Revoked);
    }

    /// Move the output built so far into `buf`. After [`ActiveEvent::Close`],
    /// once more for the last bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) {
        let before = buf.len();
        buf.append(&mut self.out);
        self.sending.handed(before, buf.len(), now);
    }

    pub fn poll_event(&mut self) -> Option<ActiveEvent> {
        if let Some(ev) = self.events.pop_front() {
            return Some(ev);
        }
        // The next batch once everything before is written: a requestor
        // that does not read costs its pending set, never our buffers.
        if !self.closed
            && self.begun
            && !self.taking
            && self.draining.is_none()
            && self.out.is_empty()
            && self.sending.drained()
        {
            self.take(true);
            return self.events.pop_front();
        }
        None
    }

    /// The next instant [`ActiveSession::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.sending.deadline(),
            self.reading.deadline(),
            self.keepalive_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn wants_read(&self) -> bool {
        !self.closed && !self.reading.at_eof()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether catch-up addresses remain to be sent.
    pub fn catching_up(&self) -> bool {
        self.catchup.is_some()
    }

    /// ACTIVE_LQ_IDLE_TIMEOUT after the last write, when nothing waits.
    fn keepalive_due(&self) -> Option<Instant> {
        (self.out.is_empty() && self.sending.drained() && self.draining.is_none())
            .then(|| self.sending.drained_at() + self.cfg.idle_timeout)
    }

    fn take(&mut self, wait: bool) {
        self.taking = true;
        self.events
            .push_back(ActiveEvent::Take { max: BATCH, wait });
    }

    /// Queue one message per update. `now` is the feed's time, read before
    /// the updates were taken, and `oldest_left` the change time of the
    /// first address still pending after these.
    fn updates<'a>(
        &mut self,
        updates: impl ExactSizeIterator<Item = Update<'a>> + Clone,
        now: u32,
        oldest_left: Option<u32>,
    ) {
        // Each message's base-time: capped at the next update's time (the
        // oldest still unsent once this one is out), but not before its own
        // change (published after `now` was read, it is later than `now`).
        let mut next = updates.clone().skip(1).map(|u| Some(u.changed));
        let out = &mut self.out;
        for u in updates {
            let after = next.next().flatten().or(oldest_left);
            let base = cap(now, after).max(u.changed);
            // Only the first message carries server-id (RFC 6926 §8.3): never shared.
            let shared = u.shared.filter(|_| !self.first);
            if !shared.is_some_and(|slot| copy_shared(slot, &self.key, base, self.xid, out)) {
                let m = build_bulk_reply(
                    self.xid,
                    u.binding,
                    base,
                    self.first,
                    self.cfg.server_id,
                    &self.prl,
                    &self.cfg.denied,
                );
                let at = out.len();
                push(out, &m);
                if let Some(slot) = shared {
                    offer_shared(slot, &self.key, base, &out[at..]);
                }
            }
            self.first = false;
            if let Some(set) = self.catchup.as_mut() {
                set.remove(&u.binding.ip);
            }
        }
        self.catch_up_check(now, oldest_left);
    }

    /// QueryTerminated with base-time is the last message (RFC 7724 §7.4).
    fn terminate(&mut self, now: u32, oldest_unsent: Option<u32>, end: ActiveEnd) {
        let text = match end {
            ActiveEnd::Shutdown => "server shutting down",
            ActiveEnd::Revoked => "requestor no longer allowed",
            _ => "too far behind: changes left the history",
        };
        self.status(StatusCode::QueryTerminated, text, cap(now, oldest_unsent));
        self.close(end, LINGER);
    }

    fn status(&mut self, code: StatusCode, text: &str, base: u32) {
        push(&mut self.out, &build_status(self.xid, code, text, base));
    }

    /// Catch-up is complete once every address it named has been sent (RFC 7724 §7.4.1).
    fn catch_up_check(&mut self, now: u32, oldest_left: Option<u32>) {
        if self.catchup.as_ref().is_some_and(HashSet::is_empty) {
            self.catchup = None;
            self.status(StatusCode::CatchUpComplete, "", cap(now, oldest_left));
        }
    }

    fn close(&mut self, end: ActiveEnd, linger: Duration) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.events
            .push_back(ActiveEvent::Close(Close { end, linger }));
    }
}

/// The base-time for a message: now, but never past an unsent change.
fn cap(now: u32, oldest_unsent: Option<u32>) -> u32 {
    oldest_unsent.map_or(now, |t| t.min(now))
}

fn min_time(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
