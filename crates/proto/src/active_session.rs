//! The Active Leasequery session state machine (RFC 7724 §7.4, §8.2), sans
//! IO: the driver hands it the history lookup, batches of changed bindings,
//! idle ticks, shutdown and the requestor's bytes; it appends framed replies
//! to an output buffer and says when the connection must close.
//!
//! Base-time (RFC 7724 §6.3): a requestor keeps the highest base-time seen
//! after catch-up and resumes from it, and catch-up sends every address
//! changed at or after it. The driver hands over addresses in order of their
//! latest change, so a message's base-time is capped at the change time of
//! the next address not yet sent: resuming from it can repeat addresses but
//! never skip one. It is never earlier than the change the message carries,
//! and every time field is relative to it, so base-time + lease-time is
//! still the lease's expiry.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use leaseline_wire::{FrameDecoder, Message, MessageType, StatusCode};

use crate::shared_wire::{copy_shared, offer_shared, WireKey, WireSlot};
use crate::{build_bulk_reply, build_status, frame_into as push, ActiveQuery, Binding};

/// Why the session ended, or asks to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The requestor sent something that has no place on an active
    /// connection (RFC 7724 §8.1.1, §8.3); a status may have been queued.
    Refused(&'static str),
    /// QueryTerminated was queued: write it, then close (RFC 7724 §7.4).
    Terminated,
}

/// What the history holds for the query's query-start-time.
pub enum History {
    /// No query-start-time: live updates only.
    None,
    /// The addresses changed since query-start-time (catch-up).
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

pub struct ActiveSession {
    xid: u32,
    prl: Vec<u8>,
    server_id: Ipv4Addr,
    first: bool,
    /// Catch-up addresses not yet sent; None once CatchUpComplete (or
    /// DataMissing) is queued, or when there was no catch-up.
    catchup: Option<HashSet<Ipv4Addr>>,
    ended: Option<SessionEnd>,
}

impl ActiveSession {
    pub fn new(query: &ActiveQuery, server_id: Ipv4Addr) -> Self {
        ActiveSession {
            xid: query.xid,
            prl: query.prl.clone(),
            server_id,
            first: true,
            catchup: None,
            ended: None,
        }
    }

    /// Start with the history lookup at `now` (the feed's time). Returns the
    /// catch-up addresses the driver must add to the pending set.
    pub fn begin(&mut self, history: History, now: u32, out: &mut Vec<u8>) -> Vec<Ipv4Addr> {
        match history {
            History::None => Vec::new(),
            History::Missing => {
                // RFC 7724 §7.4.1: DataMissing with base-time = now, at once.
                push(
                    out,
                    &build_status(
                        self.xid,
                        StatusCode::DataMissing,
                        "history does not reach query-start-time",
                        now,
                    ),
                );
                Vec::new()
            }
            History::CatchUp(ips) => {
                self.catchup = Some(ips.iter().copied().collect());
                self.catch_up_check(now, None, out);
                ips
            }
        }
    }

    /// Whether catch-up addresses remain to be sent.
    pub fn catching_up(&self) -> bool {
        self.catchup.is_some()
    }

    /// Queue one message per update (in the order given, which is the
    /// pending set's: non-decreasing `changed`). `now` is the feed's time,
    /// read before the updates were taken, and `oldest_left` the change time
    /// of the first address still pending after these.
    pub fn updates<'a>(
        &mut self,
        updates: impl ExactSizeIterator<Item = Update<'a>> + Clone,
        denied: &[u8],
        now: u32,
        oldest_left: Option<u32>,
        out: &mut Vec<u8>,
    ) {
        if self.ended.is_some() {
            return;
        }
        // Each message's base-time: capped at the next update's time (the
        // oldest still unsent once this one is out), but not before its own
        // change (published after `now` was read, it is later than `now`).
        let mut next = updates.clone().skip(1).map(|u| Some(u.changed));
        let key = WireKey::new(self.server_id, denied, &self.prl);
        for u in updates {
            let after = next.next().flatten().or(oldest_left);
            let base = cap(now, after).max(u.changed);
            // Only the first message carries server-id (RFC 6926 §8.3): never shared.
            let shared = u.shared.filter(|_| !self.first);
            if !shared.is_some_and(|slot| copy_shared(slot, &key, base, self.xid, out)) {
                let m = build_bulk_reply(
                    self.xid,
                    u.binding,
                    base,
                    self.first,
                    self.server_id,
                    &self.prl,
                    denied,
                );
                let at = out.len();
                push(out, &m);
                if let Some(slot) = shared {
                    offer_shared(slot, &key, base, &out[at..]);
                }
            }
            self.first = false;
            if let Some(set) = self.catchup.as_mut() {
                set.remove(&u.binding.ip);
            }
        }
        self.catch_up_check(now, oldest_left, out);
    }

    /// The connection has been quiet for ACTIVE_LQ_IDLE_TIMEOUT: ConnectionActive (RFC 7724 §7.4).
    pub fn idle(&mut self, now: u32, oldest_left: Option<u32>, out: &mut Vec<u8>) {
        if self.ended.is_none() {
            let base = cap(now, oldest_left);
            push(
                out,
                &build_status(self.xid, StatusCode::ConnectionActive, "", base),
            );
        }
    }

    /// Server shutdown: QueryTerminated with base-time is the last message
    /// (RFC 7724 §7.4). Queue the pending updates first where possible.
    pub fn terminate(
        &mut self,
        now: u32,
        oldest_left: Option<u32>,
        out: &mut Vec<u8>,
    ) -> SessionEnd {
        if self.ended.is_none() {
            let base = cap(now, oldest_left);
            push(
                out,
                &build_status(
                    self.xid,
                    StatusCode::QueryTerminated,
                    "server shutting down",
                    base,
                ),
            );
            self.ended = Some(SessionEnd::Terminated);
        }
        SessionEnd::Terminated
    }

    /// Look at what the requestor sent. Only one active query per
    /// connection (RFC 7724 §8.3), and nothing else belongs here (§8.1.1):
    /// answer what warrants an answer, then close.
    pub fn requestor(
        &mut self,
        decoder: &mut FrameDecoder,
        now: impl FnOnce() -> u32,
        out: &mut Vec<u8>,
    ) -> Option<SessionEnd> {
        if let Some(end) = self.ended {
            return Some(end);
        }
        let frame = match decoder.next_frame() {
            Ok(None) => return None,
            Ok(Some(f)) => f,
            Err(_) => return self.end("bad framing"),
        };
        let kind = Message::decode(frame).ok().and_then(|m| m.message_type());
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
            push(out, &build_status(self.xid, code, text, now()));
        }
        self.end(reason)
    }

    fn end(&mut self, reason: &'static str) -> Option<SessionEnd> {
        let end = SessionEnd::Refused(reason);
        self.ended = Some(end);
        Some(end)
    }

    /// Catch-up is complete once every address it named has been sent (RFC 7724 §7.4.1).
    fn catch_up_check(&mut self, now: u32, oldest_left: Option<u32>, out: &mut Vec<u8>) {
        if self.catchup.as_ref().is_some_and(HashSet::is_empty) {
            self.catchup = None;
            push(
                out,
                &build_status(
                    self.xid,
                    StatusCode::CatchUpComplete,
                    "",
                    cap(now, oldest_left),
                ),
            );
        }
    }
}

/// The base-time for a message: now, but never past an unsent change.
fn cap(now: u32, oldest_unsent: Option<u32>) -> u32 {
    oldest_unsent.map_or(now, |t| t.min(now))
}

#[cfg(test)]
mod tests;
