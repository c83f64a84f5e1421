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
        self.now = unix_now();
        Ok(())
    }
}

/// The connection's writer is gone (closed or timed out).
#[derive(Debug)]
pub struct Closed;

/// Append `m` with its 2-byte length (RFC 6926 §6.3), encoded in place.
pub fn frame_into(out: &mut Vec<u8>, m: &Message) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    match m.encode(out) {
        Ok(()) => match u16::try_from(out.len() - at - 2) {
            Ok(len) => out[at..at + 2].copy_from_slice(&len.to_be_bytes()),
            Err(_) => out.truncate(at),
        },
        Err(_) => out.truncate(at),
    }
}

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
        now: unix_now(),
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
}
