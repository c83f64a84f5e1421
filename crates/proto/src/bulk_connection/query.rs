//! One bulk query's reply stream (RFC 6926 §8.2, §8.3): it asks the store
//! for rows a page at a time, builds one reply per binding when the driver
//! has room for output, and ends with DHCPLEASEQUERYDONE. Memory is
//! bounded by two pages, whatever the number of bindings (architecture:
//! "bulk replies stream").

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use leaseline_wire::StatusCode;

use super::BulkConfig;
use crate::ranges::Walk;
use crate::{build_bulk_reply, build_done, frame_into, Binding, BulkPrimary, BulkQuery};

/// Stored rows read per page by a query for all addresses.
pub const PAGE: usize = 1024;

/// What a bulk query asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRead {
    /// Every stored binding with this key (MAC, client-id, remote-id or
    /// relay-id; never [`BulkPrimary::All`]).
    Key(BulkPrimary),
    /// Stored bindings from `from` upward, in address order, at most `limit`.
    Range { from: Ipv4Addr, limit: usize },
}

/// The store could not answer a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFailed;

enum Source {
    /// One read by key: `Some` until it is asked for.
    Key(Option<BulkPrimary>),
    /// Every configured address merged with the stored rows, which also
    /// covers stored addresses no longer configured (the server still
    /// holds those bindings). `next_page`: where the next page starts
    /// (None: the store has no more).
    All {
        configured: Walk,
        next_page: Option<u32>,
    },
}

/// How far [`Query::fill`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// The output reached its limit.
    Full,
    /// Waiting for the store.
    Blocked,
    /// DHCPLEASEQUERYDONE is written: the query is over.
    Done,
}

pub(super) struct Query {
    q: BulkQuery,
    /// No message of this query was written yet (RFC 6926 §8.3: the first
    /// one carries server-id).
    first: bool,
    sent: u64,
    /// base-time of the replies built now: the feed's time read before the
    /// rows were (a change this query did not see is recorded at or after
    /// it, so an active query from it gets that change: RFC 7724 §7.4.1).
    at: u32,
    rows: VecDeque<Binding>,
    source: Source,
    /// A read is out.
    reading: bool,
    failed: bool,
}

impl Query {
    pub(super) fn new(q: BulkQuery, cfg: &BulkConfig, now: u32) -> Self {
        let source = match &q.primary {
            BulkPrimary::All => {
                // With a time window only stored rows can match: an address
                // never leased has no times (RFC 6926 §7.2).
                let windowed = q.start.is_some() || q.end.is_some();
                Source::All {
                    configured: Walk::new(if windowed { &[] } else { &cfg.configured }),
                    next_page: Some(0),
                }
            }
            key => Source::Key(Some(key.clone())),
        };
        Query {
            q,
            first: true,
            sent: 0,
            at: now,
            rows: VecDeque::new(),
            source,
            reading: false,
            failed: false,
        }
    }

    pub(super) fn xid(&self) -> u32 {
        self.q.xid
    }

    pub(super) fn sent(&self) -> u64 {
        self.sent
    }

    pub(super) fn first(&self) -> bool {
        self.first
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// The read this query needs now, if any (one at a time; the next page
    /// is asked for while the current one is answered).
    pub(super) fn wants_read(&mut self) -> Option<StoreRead> {
        if self.reading || self.failed {
            return None;
        }
        let read = match &mut self.source {
            Source::Key(key) => StoreRead::Key(key.take()?),
            Source::All { next_page, .. } => {
                let from = (*next_page).filter(|_| self.rows.len() < PAGE)?;
                StoreRead::Range {
                    from: Ipv4Addr::from(from),
                    limit: PAGE,
                }
            }
        };
        self.reading = true;
        Some(read)
    }

    /// The store's answer to the read out, read at feed time `read_at`.
    pub(super) fn answer(&mut self, rows: Result<Vec<Binding>, StoreFailed>, read_at: u32) {
        if !self.reading {
            return;
        }
        self.reading = false;
        let mut rows = match rows {
            Ok(rows) => rows,
            Err(StoreFailed) => {
                self.failed = true;
                return;
            }
        };
        self.at = read_at;
        match &mut self.source {
            Source::Key(_) => {
                // RFC 6926 §8.2: by MAC, client-id, remote-id or relay-id,
                // every address whose *current* binding matches, ascending;
                // bindings the client no longer holds only appear in a
                // query for all addresses.
                rows.retain(|b| b.state.is_leased() && self.q.matches_window(b));
                rows.sort_unstable_by_key(|b| b.ip);
                rows.dedup_by_key(|b| b.ip);
                self.rows = rows.into();
            }
            Source::All { next_page, .. } => {
                let from = next_page.unwrap_or(0);
                *next_page = match rows.last() {
                    Some(last) if rows.len() >= PAGE => u32::from(last.ip).checked_add(1),
                    _ => None,
                };
                // Only rows at or after where the page began, in order.
                self.rows
                    .extend(rows.into_iter().filter(|b| u32::from(b.ip) >= from));
            }
        }
    }

    /// Append replies (then DHCPLEASEQUERYDONE) until `out` holds `limit`
    /// bytes, the store must be read, or the query is over. `now`: the
    /// base-time of DONE when replies preceded it.
    pub(super) fn fill(
        &mut self,
        cfg: &BulkConfig,
        out: &mut Vec<u8>,
        limit: usize,
        now: u32,
    ) -> Fill {
        loop {
            if out.len() >= limit {
                return Fill::Full;
            }
            if self.failed {
                self.done(
                    cfg,
                    out,
                    Some((StatusCode::UnspecFail, "store read failed")),
                    now,
                );
                return Fill::Done;
            }
            match self.next_binding(cfg) {
                Next::Reply(b) => self.reply(cfg, &b, out),
                Next::Skip => {}
                Next::Blocked => return Fill::Blocked,
                Next::End => {
                    self.done(cfg, out, None, now);
                    return Fill::Done;
                }
            }
        }
    }

    fn next_binding(&mut self, cfg: &BulkConfig) -> Next {
        match &mut self.source {
            Source::Key(key) => {
                if self.reading || key.is_some() {
                    return Next::Blocked;
                }
                self.rows.pop_front().map_or(Next::End, Next::Reply)
            }
            Source::All {
                configured,
                next_page,
            } => {
                if self.rows.is_empty() && next_page.is_some() {
                    return Next::Blocked;
                }
                let row = self.rows.front().map(|b| u32::from(b.ip));
                match (configured.peek(), row) {
                    (None, None) => Next::End,
                    (Some(c), Some(ip)) if ip <= c => {
                        if ip == c {
                            configured.advance(&cfg.configured);
                        }
                        self.stored_row()
                    }
                    (None, Some(_)) => self.stored_row(),
                    (Some(c), _) => {
                        // Configured, never stored: AVAILABLE (RFC 6926 §8.3:
                        // DHCPLEASEUNASSIGNED).
                        configured.advance(&cfg.configured);
                        Next::Reply(Binding::available(Ipv4Addr::from(c)))
                    }
                }
            }
        }
    }

    fn stored_row(&mut self) -> Next {
        match self.rows.pop_front() {
            Some(b) if self.q.matches_window(&b) => Next::Reply(b),
            _ => Next::Skip,
        }
    }

    fn reply(&mut self, cfg: &BulkConfig, b: &Binding, out: &mut Vec<u8>) {
        // RFC 6926 §8.3: server-id in the first message of each query only.
        let m = build_bulk_reply(
            self.q.xid,
            b,
            self.at,
            self.first,
            cfg.server_id,
            &self.q.prl,
            &cfg.denied,
        );
        frame_into(out, &m);
        self.first = false;
        self.sent += 1;
    }

    /// RFC 6926 §8.2: every query ends with DHCPLEASEQUERYDONE, with
    /// server-id when it is the query's first message (§8.3). As the first
    /// message its base-time is the read's, like a reply's would be.
    fn done(
        &mut self,
        cfg: &BulkConfig,
        out: &mut Vec<u8>,
        status: Option<(StatusCode, &str)>,
        now: u32,
    ) {
        let base = if self.first { self.at.min(now) } else { now };
        let sid = self.first.then_some(cfg.server_id);
        frame_into(out, &build_done(self.q.xid, status, base, sid));
        self.first = false;
    }
}

// A value returned and taken at once, never stored.
#[allow(clippy::large_enum_variant)]
enum Next {
    Reply(Binding),
    /// A stored row outside the query's time window.
    Skip,
    Blocked,
    End,
}
