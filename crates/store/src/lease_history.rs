//! Lease history (issue 20): who held an address when, and which addresses a
//! client held. Every committed change is logged; a history *entry* is one
//! state of one address: the run of changes with the same address, state,
//! hardware address and start-time-of-state (`Binding::state_since`, which
//! a renewal keeps). It starts at that start-time and ends where the
//! address's next entry starts (None: it is the address's current state).
//!
//! This file holds what both backends share: the query, the entry, the
//! page and its cursor, and the retention. The SQL is the backend's.

use std::net::Ipv4Addr;

use crate::DhcpState;

/// How long and how much lease history is kept (`[history]`,
/// docs/configuration.md). Independent of the Active Leasequery catch-up
/// window ([`crate::HistoryLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLogLimits {
    /// Entries first logged longer ago than this (seconds) are pruned.
    pub keep_secs: u32,
    /// At most this many entries are kept (the oldest go first).
    pub max_rows: u64,
}

impl LeaseLogLimits {
    /// `keep_days` = 90, `max_rows` = 20,000,000 (docs/configuration.md).
    pub const DEFAULT: LeaseLogLimits = LeaseLogLimits {
        keep_secs: 90 * 86_400,
        max_rows: 20_000_000,
    };
}

/// What a history query selects on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryKey {
    Ip(Ipv4Addr),
    /// The hardware address (chaddr), whatever its htype.
    Mac(Vec<u8>),
    ClientId(Vec<u8>),
    /// The relay agent's remote-id (RFC 3046 sub-option 2).
    RemoteId(Vec<u8>),
}

/// A page of a history query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub key: HistoryKey,
    /// Entries overlapping `from..=to` (Unix seconds).
    pub from: u32,
    pub to: u32,
    /// At most this many entries (clamped to 1..=[`HistoryQuery::MAX_LIMIT`]).
    pub limit: usize,
    /// Where the previous page stopped (its [`HistoryPage::next`]).
    pub after: Option<HistoryCursor>,
}

impl HistoryQuery {
    pub const MAX_LIMIT: usize = 10_000;

    /// Every retained entry of `key`, first page of `limit`.
    pub fn all(key: HistoryKey, limit: usize) -> Self {
        HistoryQuery {
            key,
            from: 0,
            to: u32::MAX,
            limit,
            after: None,
        }
    }

    /// The entry that held the address at second `at` (its page has at
    /// most one entry).
    pub fn at(ip: Ipv4Addr, at: u32) -> Self {
        HistoryQuery {
            key: HistoryKey::Ip(ip),
            from: at,
            to: at,
            limit: 1,
            after: None,
        }
    }

    pub(crate) fn clamped_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

/// One state of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub ip: Ipv4Addr,
    pub state: DhcpState,
    pub htype: u8,
    pub chaddr: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    /// Unix seconds the state started (`state_since`).
    pub start: u32,
    /// Unix seconds the address's next state started; None while current.
    pub end: Option<u32>,
    /// The log row that opened this entry (commit order).
    pub id: i64,
}

impl HistoryEntry {
    /// Does this entry overlap `from..=to`?
    pub(crate) fn overlaps(&self, from: u32, to: u32) -> bool {
        self.start <= to && self.end.is_none_or(|end| end > from)
    }
}

/// Entries in ascending order of (start, id), and where to go on from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Set when more entries may follow.
    pub next: Option<HistoryCursor>,
}

/// Position after an entry: its (start, id). Printed as `start.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryCursor {
    pub start: u32,
    pub id: i64,
}

impl HistoryCursor {
    pub fn after(e: &HistoryEntry) -> Self {
        HistoryCursor {
            start: e.start,
            id: e.id,
        }
    }

    /// The text form a client hands back (None: not a cursor).
    pub fn parse(s: &str) -> Option<Self> {
        let (start, id) = s.split_once('.')?;
        Some(HistoryCursor {
            start: start.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.start, self.id)
    }
}

/// A query for one second of one address: answered by the address's last
/// entry begun by then alone (zero-length entries at that second, states
/// that started and ended in it, are not what held it).
pub(crate) fn is_at(q: &HistoryQuery) -> bool {
    q.from == q.to && q.after.is_none() && matches!(q.key, HistoryKey::Ip(_))
}

/// The backend reads the latest entry that began before this (exclusive).
pub(crate) fn before_bound(q: &HistoryQuery) -> i64 {
    i64::from(q.from) + i64::from(is_at(q))
}

/// The entry of a key that began before `from` (the backend reads the
/// latest one, at most one per key), kept on a first page when it overlaps
/// the range.
pub(crate) fn kept_before(q: &HistoryQuery, before: Option<HistoryEntry>) -> Option<HistoryEntry> {
    before.filter(|e| q.after.is_none() && e.overlaps(q.from, q.to))
}

/// How many rows starting in `from..=to` after the cursor the backend
/// reads, ascending by (start, id): one more than the page has room for.
pub(crate) fn rows_to_read(q: &HistoryQuery, before: &Option<HistoryEntry>) -> usize {
    q.clamped_limit() - usize::from(before.is_some()) + 1
}

/// Where the rows of a page start: strictly after this (start, id), and
/// never before `from`.
pub(crate) fn lower_bound(q: &HistoryQuery) -> HistoryCursor {
    q.after.unwrap_or(HistoryCursor {
        start: q.from,
        id: i64::MIN,
    })
}

/// The page from what the backend read ([`kept_before`], then
/// [`rows_to_read`] rows).
pub(crate) fn page(
    q: &HistoryQuery,
    before: Option<HistoryEntry>,
    mut rows: Vec<HistoryEntry>,
) -> HistoryPage {
    let room = q.clamped_limit() - usize::from(before.is_some());
    let more = rows.len() > room;
    rows.truncate(room);
    let last = rows.last().or(before.as_ref()).map(HistoryCursor::after);
    let entries = before
        .into_iter()
        // A state that started and ended at `from` held nothing in the range.
        .chain(rows.into_iter().filter(|e| e.overlaps(q.from, q.to)))
        .collect();
    HistoryPage {
        entries,
        next: if more { last } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: u32, end: Option<u32>, id: i64) -> HistoryEntry {
        HistoryEntry {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            state: DhcpState::Active,
            htype: 1,
            chaddr: vec![1],
            client_id: None,
            circuit_id: None,
            remote_id: None,
            start,
            end,
            id,
        }
    }

    #[test]
    fn cursors_print_and_read_back() {
        let c = HistoryCursor { start: 17, id: 42 };
        assert_eq!(HistoryCursor::parse(&c.to_string()), Some(c));
        for bad in ["", "17", "x.1", "1.y", "-1.2", "1.2.3"] {
            assert_eq!(HistoryCursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_page_keeps_the_earlier_entry_only_when_it_overlaps() {
        let mut q = HistoryQuery::all(HistoryKey::Ip(Ipv4Addr::LOCALHOST), 10);
        q.from = 100;
        q.to = 200;
        let before = kept_before(&q, Some(entry(50, Some(100), 1)));
        let p = page(&q, before, vec![entry(100, None, 2)]);
        assert_eq!(p.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
        let before = kept_before(&q, Some(entry(50, Some(101), 1)));
        assert_eq!(rows_to_read(&q, &before), 10);
        let p = page(&q, before, vec![entry(101, None, 2)]);
        assert_eq!(p.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(p.next, None);
    }

    #[test]
    fn a_full_page_says_where_to_go_on() {
        let q = HistoryQuery::all(HistoryKey::Ip(Ipv4Addr::LOCALHOST), 2);
        let rows = vec![
            entry(1, Some(2), 1),
            entry(2, Some(3), 2),
            entry(3, None, 3),
        ];
        assert_eq!(rows_to_read(&q, &None), 3);
        let p = page(&q, None, rows);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.next, Some(HistoryCursor { start: 2, id: 2 }));
        // A page with no room after the earlier entry goes on after it.
        let before = Some(entry(0, Some(5), 7));
        let q1 = HistoryQuery { limit: 1, ..q };
        assert_eq!(rows_to_read(&q1, &before), 1);
        let p = page(&q1, before, vec![entry(1, None, 8)]);
        assert_eq!(p.entries.iter().map(|e| e.id).collect::<Vec<_>>(), [7]);
        assert_eq!(p.next, Some(HistoryCursor { start: 0, id: 7 }));
    }
}
