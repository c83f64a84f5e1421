//! Bulk Leasequery execution (RFC 6926 §8): one query's replies, streamed
//! from a cursor over the store with backpressure, then DHCPLEASEQUERYDONE.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use leaseline_proto::{build_bulk_reply, build_done, Binding, BulkPrimary, BulkQuery};
use leaseline_store::{LeaseStore, StoreError};
use leaseline_wire::{Message, StatusCode};
use tokio::sync::mpsc;

use crate::run::unix_now;

/// Rows read from the store per page.
const PAGE: usize = 1024;
/// Bytes of framed replies handed to the writer at a time.
const CHUNK: usize = 64 * 1024;

pub struct BulkContext {
    pub store: Arc<dyn LeaseStore>,
    pub server_id: Ipv4Addr,
    /// Never sent even when requested (RFC 7724 §8.2), plus 92 (RFC 6926 §8.3).
    pub denied: Vec<u8>,
    /// Every configured address (pools, reservations) as sorted, disjoint ranges.
    pub configured: Vec<(u32, u32)>,
}

/// Framed replies batched into chunks for the connection's writer.
struct Replies<'a> {
    buf: Vec<u8>,
    out: &'a mpsc::Sender<Vec<u8>>,
    first: bool,
    sent: u64,
    /// base-time of the replies being built: the time they are built
    /// (RFC 6926 §6.2.3), refreshed with every chunk.
    now: u32,
    store: &'a dyn LeaseStore,
}

impl Replies<'_> {
    fn push(&mut self, m: &Message) {
        frame_into(&mut self.buf, m);
    }

    async fn binding(
        &mut self,
        ctx: &BulkContext,
        q: &BulkQuery,
        b: &Binding,
    ) -> Result<(), Closed> {
        // RFC 6926 §8.3: server-id in the first reply of each query only.
        let m = build_bulk_reply(
            q.xid,
            b,
            self.now,
            self.first,
            ctx.server_id,
            &q.prl,
            &ctx.denied,
        );
        self.first = false;
        self.sent += 1;
        self.push(&m);
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 1024));
        self.out.send(chunk).await.map_err(|_| Closed)?;
        self.now = self.store.feed().now(unix_now());
        Ok(())
    }
}

/// The connection's writer is gone (closed or timed out).
#[derive(Debug)]
pub struct Closed;

pub use leaseline_proto::frame_into;

/// Run one query to its DONE. Returns the number of bindings sent.
pub async fn run(
    ctx: Arc<BulkContext>,
    q: BulkQuery,
    out: mpsc::Sender<Vec<u8>>,
) -> Result<u64, Closed> {
    let mut r = Replies {
        buf: Vec::with_capacity(CHUNK + 1024),
        out: &out,
        first: true,
        sent: 0,
        // Taken before any binding is read, from the feed's clock: a change
        // this query does not see is recorded at or after it, so a requestor
        // that follows with an active query from this base-time gets it
        // (RFC 7724 §7.4.1, the mirror's bulk-then-active start).
        now: ctx.store.feed().now(unix_now()),
        store: ctx.store.as_ref(),
    };
    let result = match &q.primary {
        BulkPrimary::All => all(&ctx, &q, &mut r).await,
        other => by_key(&ctx, &q, other, &mut r).await,
    };
    let status = match &result {
        Ok(()) => None,
        Err(Failure::Closed) => return Err(Closed),
        Err(Failure::Store(e)) => {
            tracing::error!(error = %e, xid = q.xid, "bulk query: store read failed");
            Some((StatusCode::UnspecFail, "store read failed"))
        }
    };
    // RFC 6926 §8.3: every query ends with DONE; server-id if it is the first message.
    let sid = r.first.then_some(ctx.server_id);
    r.push(&build_done(q.xid, status, unix_now(), sid));
    r.flush().await?;
    Ok(r.sent)
}

enum Failure {
    Closed,
    Store(StoreError),
}

impl From<Closed> for Failure {
    fn from(_: Closed) -> Self {
        Failure::Closed
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Failure::Store),
        Err(e) => Err(Failure::Store(StoreError::Open {
            path: "store".into(),
            reason: e.to_string(),
        })),
    }
}

/// MAC, client-id, remote-id, relay-id: every address whose *current*
/// binding matches, in DHCPLEASEACTIVE (RFC 6926 §8.2), ascending. Bindings
/// the client no longer holds (RELEASED, EXPIRED, ...) are not answered:
/// they only appear in a query for all addresses.
async fn by_key(
    ctx: &BulkContext,
    q: &BulkQuery,
    key: &BulkPrimary,
    r: &mut Replies<'_>,
) -> Result<(), Failure> {
    let store = Arc::clone(&ctx.store);
    let key = key.clone();
    let mut rows = blocking(move || match key {
        BulkPrimary::ByMac { htype, chaddr } => store.by_chaddr(htype, &chaddr),
        BulkPrimary::ByClientId(id) => store.by_client_id(&id),
        BulkPrimary::ByRemoteId(id) => store.by_remote_id(&id),
        BulkPrimary::ByRelayId(id) => store.by_relay_id(&id),
        BulkPrimary::All => Ok(Vec::new()),
    })
    .await?;
    rows.retain(|b| b.state.is_leased() && q.matches_window(b));
    rows.sort_unstable_by_key(|b| b.ip);
    rows.dedup_by_key(|b| b.ip);
    for b in &rows {
        r.binding(ctx, q, b).await?;
    }
    Ok(())
}

/// Every configured address once, in order, merged with the stored rows
/// (which also covers stored addresses no longer configured: the server
/// still holds those bindings). With a time window only stored rows can
/// match: an address never leased has no times (RFC 6926 §7.2).
async fn all(ctx: &BulkContext, q: &BulkQuery, r: &mut Replies<'_>) -> Result<(), Failure> {
    let windowed = q.start.is_some() || q.end.is_some();
    let mut configured = Addresses::new(if windowed { &[] } else { &ctx.configured });
    let mut next_conf = configured.next();
    let mut rows: VecDeque<Binding> = VecDeque::new();
    let mut cursor: Option<u32> = Some(0);
    loop {
        if rows.is_empty() {
            if let Some(from) = cursor {
                let store = Arc::clone(&ctx.store);
                let page =
                    blocking(move || store.range(Ipv4Addr::from(from), Ipv4Addr::BROADCAST, PAGE))
                        .await?;
                cursor = match page.last() {
                    Some(last) if page.len() == PAGE => u32::from(last.ip).checked_add(1),
                    _ => None,
                };
                rows.extend(page);
            }
        }
        let row_ip = rows.front().map(|b| u32::from(b.ip));
        match (next_conf, row_ip) {
            (None, None) => return Ok(()),
            (Some(c), Some(ip)) if ip <= c => {
                let b = rows.pop_front().expect("front checked");
                if q.matches_window(&b) {
                    r.binding(ctx, q, &b).await?;
                }
                if ip == c {
                    next_conf = configured.next();
                }
            }
            (None, Some(_)) => {
                let b = rows.pop_front().expect("front checked");
                if q.matches_window(&b) {
                    r.binding(ctx, q, &b).await?;
                }
            }
            (Some(c), _) => {
                // Configured, never stored: AVAILABLE (RFC 6926 §8.3: DHCPLEASEUNASSIGNED).
                r.binding(ctx, q, &Binding::available(Ipv4Addr::from(c)))
                    .await?;
                next_conf = configured.next();
            }
        }
    }
}

/// Walks sorted, disjoint inclusive ranges address by address.
struct Addresses<'a> {
    ranges: &'a [(u32, u32)],
    next: Option<u32>,
    idx: usize,
}

impl<'a> Addresses<'a> {
    fn new(ranges: &'a [(u32, u32)]) -> Self {
        Addresses {
            ranges,
            next: ranges.first().map(|r| r.0),
            idx: 0,
        }
    }
}

impl Iterator for Addresses<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let cur = self.next?;
        let (_, hi) = self.ranges[self.idx];
        self.next = if cur < hi {
            Some(cur + 1)
        } else {
            self.idx += 1;
            self.ranges.get(self.idx).map(|r| r.0)
        };
        Some(cur)
    }
}

/// Merge ranges (and single addresses) into sorted, disjoint ranges.
pub fn merge_ranges(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_walk_each_address_once() {
        let m = merge_ranges(vec![(10, 12), (5, 5), (11, 14), (16, 16), (15, 15)]);
        assert_eq!(m, vec![(5, 5), (10, 16)]);
        let all: Vec<u32> = Addresses::new(&m).collect();
        assert_eq!(all, vec![5, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(Addresses::new(&[(u32::MAX, u32::MAX)]).count(), 1);
    }

    use std::collections::BTreeSet;

    use leaseline_proto::DhcpState;
    use leaseline_store::{HistoryLimits, SqliteOptions, SqliteStore};
    use leaseline_wire::{DhcpOption, FrameDecoder, MessageType};

    const BASE: u32 = 0x0a00_0000; // 10.0.0.0
    const T0: u32 = 1_700_000_000;

    /// 3,000 stored rows (three store pages and a bit), one every 2
    /// addresses from 10.0.0.0: below, inside, between and beyond the
    /// configured ranges. Every 4th address ACTIVE, the others RELEASED;
    /// row i changed at T0 + i.
    async fn fixture() -> (tempfile::TempDir, Arc<BulkContext>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            SqliteOptions {
                path: dir.path().join("t.db"),
                history: HistoryLimits {
                    max_age: 60,
                    max_count: 10_000,
                },
                max_batch: 4096,
            },
            T0,
        )
        .unwrap();
        let rows: Vec<Binding> = (0..3000u32)
            .map(|i| {
                let mut b = Binding::available(Ipv4Addr::from(BASE + 2 * i));
                b.state = if i.is_multiple_of(2) {
                    DhcpState::Active
                } else {
                    DhcpState::Released
                };
                b.htype = 1;
                b.chaddr = vec![2, 0, 0, 0, (i >> 8) as u8, i as u8];
                b.cltt = T0 + i;
                b.state_since = T0 + i;
                b.expiry = u32::MAX - 1;
                b.lease_time = 3600;
                b
            })
            .collect();
        store.submit(rows, T0).await.unwrap().unwrap();
        let ctx = BulkContext {
            store: Arc::new(store),
            server_id: Ipv4Addr::LOCALHOST,
            denied: vec![leaseline_wire::code::ASSOCIATED_IP],
            // 2,500 addresses from .100, and one reservation far above.
            configured: merge_ranges(vec![(BASE + 100, BASE + 2599), (BASE + 5000, BASE + 5000)]),
        };
        (dir, Arc::new(ctx))
    }

    fn query(primary: BulkPrimary, start: Option<u32>, end: Option<u32>) -> BulkQuery {
        BulkQuery {
            xid: 7,
            primary,
            start,
            end,
            prl: vec![51, 91, 152, 153, 156],
        }
    }

    /// Every message of one query, DONE last.
    async fn answer(ctx: &Arc<BulkContext>, q: BulkQuery) -> Vec<Message> {
        let (tx, mut rx) = mpsc::channel(2);
        let task = tokio::spawn(run(Arc::clone(ctx), q, tx));
        let mut d = FrameDecoder::new(65535);
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            assert!(chunk.len() <= CHUNK + 2048, "chunks stay bounded");
            d.extend(&chunk);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(Message::decode(f).unwrap());
            }
        }
        assert_eq!(d.buffered(), 0, "chunks hold whole frames");
        task.await.unwrap().unwrap();
        let done = out.last().expect("DONE");
        assert_eq!(done.message_type(), Some(MessageType::LeaseQueryDone));
        assert!(!done
            .options
            .iter()
            .any(|o| matches!(o, DhcpOption::StatusCode(..))));
        out
    }

    fn state_of(m: &Message) -> u8 {
        m.options
            .iter()
            .find_map(|o| match o {
                DhcpOption::DhcpState(s) => Some(*s),
                _ => None,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn all_addresses_merge_configured_ranges_with_store_pages_once_each() {
        let (_dir, ctx) = fixture().await;
        let msgs = answer(&ctx, query(BulkPrimary::All, None, None)).await;
        let replies = &msgs[..msgs.len() - 1];
        let ips: Vec<u32> = replies.iter().map(|m| u32::from(m.ciaddr)).collect();
        assert!(ips.windows(2).all(|w| w[0] < w[1]), "ascending, each once");
        let stored: BTreeSet<u32> = (0..3000).map(|i| BASE + 2 * i).collect();
        let mut want: BTreeSet<u32> = (BASE + 100..=BASE + 2599).collect();
        want.insert(BASE + 5000);
        want.extend(&stored);
        assert_eq!(ips.iter().copied().collect::<BTreeSet<_>>(), want);
        for m in replies {
            let ip = u32::from(m.ciaddr);
            let (t, s) = (m.message_type().unwrap(), state_of(m));
            if stored.contains(&ip) {
                let i = (ip - BASE) / 2;
                if i.is_multiple_of(2) {
                    assert_eq!((t, s), (MessageType::LeaseActive, 2), "{}", m.ciaddr);
                } else {
                    assert_eq!((t, s), (MessageType::LeaseUnassigned, 4), "{}", m.ciaddr);
                }
            } else {
                assert_eq!((t, s), (MessageType::LeaseUnassigned, 1), "{}", m.ciaddr);
            }
        }
        // Server-id in the first message only.
        assert!(msgs[0].has_option(54));
        assert!(msgs[1..].iter().all(|m| !m.has_option(54)));
    }

    #[tokio::test]
    async fn a_window_selects_stored_rows_only() {
        let (_dir, ctx) = fixture().await;
        let msgs = answer(
            &ctx,
            query(BulkPrimary::All, Some(T0 + 1000), Some(T0 + 1999)),
        )
        .await;
        let ips: Vec<u32> = msgs[..msgs.len() - 1]
            .iter()
            .map(|m| u32::from(m.ciaddr))
            .collect();
        let want: Vec<u32> = (1000..2000).map(|i| BASE + 2 * i).collect();
        assert_eq!(ips, want);
        // Only an end: rows changed on or before it, never the addresses
        // without a row (they have no times).
        let msgs = answer(&ctx, query(BulkPrimary::All, None, Some(T0 + 9))).await;
        assert_eq!(msgs.len() - 1, 10);
        // Nothing in the window: DONE alone, carrying the server-id.
        let msgs = answer(&ctx, query(BulkPrimary::All, Some(T0 + 5000), None)).await;
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].has_option(54));
    }

    #[tokio::test]
    async fn keyed_queries_answer_current_bindings_only() {
        let (_dir, ctx) = fixture().await;
        let mac = |i: u32| vec![2, 0, 0, 0, (i >> 8) as u8, i as u8];
        let active = answer(
            &ctx,
            query(
                BulkPrimary::ByMac {
                    htype: 1,
                    chaddr: mac(10),
                },
                None,
                None,
            ),
        )
        .await;
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].ciaddr, Ipv4Addr::from(BASE + 20));
        assert_eq!(active[0].message_type(), Some(MessageType::LeaseActive));
        let released = answer(
            &ctx,
            query(
                BulkPrimary::ByMac {
                    htype: 1,
                    chaddr: mac(11),
                },
                None,
                None,
            ),
        )
        .await;
        assert_eq!(released.len(), 1, "RELEASED is no current binding");
    }
}
