//! Bulk Leasequery's store reads (RFC 6926 §8.2): what a
//! `leaseline_proto::BulkConnection` asks for, read from the store off the
//! async workers.

use std::net::Ipv4Addr;
use std::sync::Arc;

use leaseline_proto::{Binding, BulkPrimary, StoreFailed, StoreRead};
use leaseline_store::{LeaseStore, StoreError};

/// What the listener's connections serve from the server.
pub struct BulkContext {
    pub store: Arc<dyn LeaseStore>,
    pub server_id: Ipv4Addr,
    /// Never sent even when requested (RFC 7724 §8.2), plus 92 (RFC 6926 §8.3).
    pub denied: Vec<u8>,
    /// Every configured address (pools, reservations) as sorted, disjoint ranges.
    pub configured: Vec<(u32, u32)>,
}

/// One read for query `xid`. SQLite reads block: they run on the blocking
/// pool. A failure is logged here; the query ends with UnspecFail.
pub async fn read(
    store: Arc<dyn LeaseStore>,
    what: StoreRead,
    xid: u32,
) -> Result<Vec<Binding>, StoreFailed> {
    let result = match tokio::task::spawn_blocking(move || read_now(store.as_ref(), &what)).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Open {
            path: "store".into(),
            reason: e.to_string(),
        }),
    };
    result.map_err(|e| {
        tracing::error!(error = %e, xid, event = "bulk_store_read_failed", "bulk query: store read failed");
        StoreFailed
    })
}

fn read_now(store: &dyn LeaseStore, what: &StoreRead) -> Result<Vec<Binding>, StoreError> {
    match what {
        StoreRead::Key(BulkPrimary::ByMac { htype, chaddr }) => store.by_chaddr(*htype, chaddr),
        StoreRead::Key(BulkPrimary::ByClientId(id)) => store.by_client_id(id),
        StoreRead::Key(BulkPrimary::ByRemoteId(id)) => store.by_remote_id(id),
        StoreRead::Key(BulkPrimary::ByRelayId(id)) => store.by_relay_id(id),
        StoreRead::Key(BulkPrimary::All) => Ok(Vec::new()),
        StoreRead::Range { from, limit } => store.range(*from, Ipv4Addr::BROADCAST, *limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;
    use std::time::Instant;

    use leaseline_proto::{
        merge_ranges, BulkConfig, BulkConnection, BulkEvent, BulkQuery, DhcpState, Now,
    };
    use leaseline_store::{HistoryLimits, SqliteOptions, SqliteStore};
    use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType};

    const BASE: u32 = 0x0a00_0000; // 10.0.0.0
    const T0: u32 = 1_700_000_000;

    /// 3,000 stored rows (three store pages and a bit), one every 2
    /// addresses from 10.0.0.0: below, inside, between and beyond the
    /// configured ranges. Every 4th address ACTIVE, the others RELEASED;
    /// row i changed at T0 + i.
    async fn fixture() -> (tempfile::TempDir, BulkContext) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            SqliteOptions {
                path: dir.path().join("t.db"),
                history: HistoryLimits {
                    max_age: 60,
                    max_count: 10_000,
                },
                max_batch: 4096,
                lease_log: None,
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
        (dir, ctx)
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

    /// The query as a requestor sends it.
    fn message(q: &BulkQuery) -> Vec<u8> {
        let mut m = Message {
            xid: q.xid,
            htype: 0,
            hlen: 0,
            ..Message::default()
        };
        m.options
            .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
        m.options
            .push(DhcpOption::ParameterRequestList(q.prl.clone()));
        match &q.primary {
            BulkPrimary::ByMac { htype, chaddr } => {
                m.htype = *htype;
                m.hlen = chaddr.len() as u8;
                m.chaddr[..chaddr.len()].copy_from_slice(chaddr);
            }
            BulkPrimary::All => {}
            other => panic!("not used here: {other:?}"),
        }
        if let Some(t) = q.start {
            m.options.push(DhcpOption::QueryStartTime(t));
        }
        if let Some(t) = q.end {
            m.options.push(DhcpOption::QueryEndTime(t));
        }
        let mut out = Vec::new();
        leaseline_wire::encode_frame(&m.to_bytes().unwrap(), &mut out).unwrap();
        out
    }

    /// Every message of one query, DONE last: the connection's rules
    /// against the real store, its reads run here.
    async fn answer(ctx: &BulkContext, q: BulkQuery) -> Vec<Message> {
        let cfg = BulkConfig {
            data_timeout: std::time::Duration::from_secs(300),
            max_queries: 4,
            max_message: 4096,
            server_id: ctx.server_id,
            denied: ctx.denied.clone(),
            configured: ctx.configured.clone(),
            active: false,
            plaintext: true,
            tls: false,
        };
        let now = Now {
            mono: Instant::now(),
            unix: T0,
        };
        let mut c = BulkConnection::new(Arc::new(cfg), now.mono);
        c.handle_bytes(&message(&q), now);
        let mut d = FrameDecoder::new(65535);
        let mut out = Vec::new();
        let mut done = false;
        while !done {
            while let Some(ev) = c.poll_event() {
                match ev {
                    BulkEvent::Claim(_) => c.handle_claim(Ok(()), now),
                    BulkEvent::Read { xid, read: what } => {
                        let rows = read(Arc::clone(&ctx.store), what, xid).await;
                        c.handle_store(xid, rows, T0);
                    }
                    BulkEvent::Done { .. } => done = true,
                    _ => {}
                }
            }
            let mut chunk = Vec::new();
            c.poll_transmit(now, &mut chunk);
            assert!(chunk.len() <= leaseline_proto::bulk_connection::CHUNK + 2048);
            c.handle_written(now.mono, 0);
            d.extend(&chunk);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(Message::decode(f).unwrap());
            }
        }
        assert_eq!(d.buffered(), 0, "whole frames");
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
