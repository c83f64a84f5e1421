//! The active session against a real SQLite store and an in-memory pipe.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::{ActiveQuery, Binding, DhcpState};
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore};
use leaseline_wire::{code, DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::{run, ActiveContext, End};
use crate::clock::unix_now;
use crate::config::ActiveLeasequery;
use crate::overload::DhcpLoad;

const PEER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_000));
const PRL: &[u8] = &[
    code::LEASE_TIME,
    code::CLIENT_LAST_TRANSACTION_TIME,
    code::DHCP_STATE,
    code::BASE_TIME,
];

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn LeaseStore>,
}

/// A history that keeps everything these tests change.
const HOUR: HistoryLimits = HistoryLimits {
    max_age: 3600,
    max_count: 1000,
};

fn fixture(history: HistoryLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        SqliteOptions {
            path: dir.path().join("t.db"),
            history,
            max_batch: 64,
            lease_log: None,
        },
        unix_now().saturating_sub(100),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        store: Arc::new(store),
    }
}

fn ctx(store: &Arc<dyn LeaseStore>, idle: u64, send: u64) -> ActiveContext {
    ActiveContext::new(
        Arc::clone(store),
        ActiveLeasequery {
            insecure: true,
            idle_timeout: Duration::from_secs(idle),
            send_timeout: Duration::from_secs(send),
            max_connections: 10,
            max_connections_per_requestor: 10,
            denied_options: vec![],
        },
        Ipv4Addr::LOCALHOST,
        Duration::from_secs(300),
    )
}

fn active(ip: Ipv4Addr, mac: u8) -> Binding {
    let now = unix_now();
    let mut b = Binding::available(ip);
    b.state = DhcpState::Active;
    b.htype = 1;
    b.chaddr = vec![2, 0, 0, 0, 0, mac];
    b.cltt = now;
    b.state_since = now;
    b.expiry = now + 600;
    b.lease_time = 600;
    b
}

/// Until the session has subscribed to the feed (what is committed from
/// then on reaches it).
async fn subscribed(store: &Arc<dyn LeaseStore>) {
    while store.feed().subscribers() == 0 {
        tokio::task::yield_now().await;
    }
}

async fn commit(store: &Arc<dyn LeaseStore>, b: Vec<Binding>) {
    store.submit(b, unix_now()).await.unwrap().unwrap();
}

/// The requestor's end: reads framed messages.
struct Requestor {
    io: DuplexStream,
    dec: FrameDecoder,
}

impl Requestor {
    async fn next(&mut self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                return Some(Message::decode(f).unwrap());
            }
            let n = tokio::time::timeout(Duration::from_secs(30), self.io.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.dec.extend(&buf[..n]);
        }
    }
}

fn status(m: &Message) -> Option<StatusCode> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, _) => Some(*c),
        _ => None,
    })
}

fn has_base_time(m: &Message) -> bool {
    m.options
        .iter()
        .any(|o| matches!(o, DhcpOption::BaseTime(_)))
}

fn start(
    ctx: ActiveContext,
    since: Option<u32>,
    buffer: usize,
) -> (Requestor, watch::Sender<bool>, tokio::task::JoinHandle<End>) {
    let (server_side, client_side) = tokio::io::duplex(buffer);
    let (r, w) = tokio::io::split(server_side);
    let (stop_tx, stop_rx) = watch::channel(false);
    let q = ActiveQuery {
        xid: 77,
        start: since,
        prl: PRL.to_vec(),
    };
    let task = tokio::spawn(async move {
        run(
            &ctx,
            q,
            PEER,
            r,
            FrameDecoder::new(16_384),
            w,
            stop_rx,
            std::future::pending(),
        )
        .await
    });
    (
        Requestor {
            io: client_side,
            dec: FrameDecoder::new(65_535),
        },
        stop_tx,
        task,
    )
}

#[tokio::test]
async fn live_change_arrives_with_base_time_and_state() {
    let f = fixture(HOUR);
    let (mut req, _stop, _task) = start(ctx(&f.store, 60, 120), None, 64 * 1024);
    subscribed(&f.store).await;
    let ip = Ipv4Addr::new(10, 0, 0, 5);
    commit(&f.store, vec![active(ip, 5)]).await;
    let m = req.next().await.expect("an update");
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, ip);
    assert_eq!(m.xid, 77);
    assert!(has_base_time(&m));
    assert!(
        m.option(code::SERVER_ID).is_some(),
        "server-id in the first reply"
    );
    assert!(m.option(code::ASSOCIATED_IP).is_none());

    let mut released = active(ip, 5);
    released.state = DhcpState::Released;
    commit(&f.store, vec![released]).await;
    let m = req.next().await.expect("an update");
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    assert_eq!(
        m.option(code::DHCP_STATE),
        Some(&DhcpOption::DhcpState(DhcpState::Released as u8))
    );
    assert!(
        m.option(code::SERVER_ID).is_none(),
        "server-id only in the first reply"
    );
}

#[tokio::test]
async fn catch_up_sends_every_changed_address_then_catch_up_complete() {
    let f = fixture(HOUR);
    let since = unix_now();
    let ips: Vec<Ipv4Addr> = (1..=20).map(|n| Ipv4Addr::new(10, 0, 1, n)).collect();
    commit(&f.store, ips.iter().map(|&ip| active(ip, 9)).collect()).await;
    let (mut req, _stop, _task) = start(ctx(&f.store, 60, 120), Some(since), 64 * 1024);
    let mut seen = std::collections::HashSet::new();
    loop {
        let m = req.next().await.expect("catch-up message");
        match m.message_type() {
            Some(MessageType::LeaseActive) => {
                seen.insert(m.ciaddr);
            }
            Some(MessageType::LeaseQueryStatus) => {
                assert_eq!(status(&m), Some(StatusCode::CatchUpComplete));
                assert!(has_base_time(&m));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ips.into_iter().collect());
}

#[tokio::test]
async fn catch_up_outside_history_is_data_missing_at_once() {
    let f = fixture(HOUR);
    let before_horizon = f.store.feed().horizon() - 10;
    let (mut req, _stop, _task) = start(ctx(&f.store, 60, 120), Some(before_horizon), 64 * 1024);
    let m = req.next().await.expect("a status");
    assert_eq!(status(&m), Some(StatusCode::DataMissing));
    let now = unix_now();
    let base = m.options.iter().find_map(|o| match o {
        DhcpOption::BaseTime(t) => Some(*t),
        _ => None,
    });
    assert!(
        base.is_some_and(|b| b + 2 >= now && b <= now),
        "base-time is now: {base:?} vs {now}"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_after_idle_timeout() {
    let f = fixture(HOUR);
    let (mut req, _stop, _task) = start(ctx(&f.store, 5, 120), None, 64 * 1024);
    let t0 = tokio::time::Instant::now();
    let m = req.next().await.expect("a keepalive");
    assert_eq!(status(&m), Some(StatusCode::ConnectionActive));
    assert!(t0.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn requestor_that_never_reads_is_closed_after_send_timeout() {
    let f = fixture(HistoryLimits {
        max_age: 3600,
        max_count: 10_000,
    });
    let since = unix_now();
    let ips: Vec<Binding> = (0..2000u32)
        .map(|n| active(Ipv4Addr::from(0x0a02_0000 + n), 1))
        .collect();
    commit(&f.store, ips).await;
    // A 1 KiB pipe the requestor never reads.
    let (_req, _stop, task) = start(ctx(&f.store, 60, 120), Some(since), 1024);
    assert_eq!(task.await.unwrap(), End::SendTimeout);
}

#[tokio::test]
async fn second_active_query_is_refused_and_closed() {
    let f = fixture(HOUR);
    let (mut req, _stop, task) = start(ctx(&f.store, 60, 120), None, 64 * 1024);
    let mut q = Message {
        hlen: 0,
        ..Message::default()
    };
    q.options
        .push(DhcpOption::MessageType(MessageType::ActiveLeaseQuery));
    let body = q.to_bytes().unwrap();
    let mut framed = Vec::new();
    leaseline_wire::encode_frame(&body, &mut framed).unwrap();
    req.io.write_all(&framed).await.unwrap();
    let m = req.next().await.expect("a refusal");
    assert_eq!(status(&m), Some(StatusCode::NotAllowed));
    assert_eq!(task.await.unwrap(), End::Refused("second active query"));
}

#[tokio::test]
async fn shutdown_sends_query_terminated_last() {
    let f = fixture(HOUR);
    let (mut req, stop, task) = start(ctx(&f.store, 60, 120), None, 64 * 1024);
    subscribed(&f.store).await;
    stop.send(true).unwrap();
    let m = req.next().await.expect("QueryTerminated");
    assert_eq!(status(&m), Some(StatusCode::QueryTerminated));
    assert!(has_base_time(&m));
    assert!(req.next().await.is_none(), "then the connection closes");
    assert_eq!(task.await.unwrap(), End::Shutdown);
}

#[tokio::test]
async fn requestor_behind_the_history_gets_query_terminated_with_base_time_before_the_gap() {
    // History of 1,000 changes; the requestor reads nothing while 12,000
    // happen, so its session skips past the shared log and the history
    // drops what it skipped: when the requestor reads again it gets what
    // was already written, then QueryTerminated with a base-time no later
    // than the first change it missed (it resumes from there: DataMissing,
    // then bulk), then the close (RFC 7724 §7.4, §8.4).
    let f = fixture(HOUR);
    let (mut req, _stop, task) = start(ctx(&f.store, 60, 120), None, 16 * 1024);
    subscribed(&f.store).await;
    let first_change = unix_now();
    for round in 0..24u32 {
        let batch = (0..500u32)
            .map(|n| active(Ipv4Addr::from(0x0a03_0000 + round * 500 + n), 1))
            .collect();
        commit(&f.store, batch).await;
    }
    let mut updates = 0;
    let last = loop {
        let m = req.next().await.expect("QueryTerminated before the close");
        match m.message_type() {
            Some(MessageType::LeaseActive) => updates += 1,
            _ => break m,
        }
    };
    assert_eq!(status(&last), Some(StatusCode::QueryTerminated), "{last:?}");
    let base = last.options.iter().find_map(|o| match o {
        DhcpOption::BaseTime(t) => Some(*t),
        _ => None,
    });
    // Resuming from it is outside the history: DataMissing, not a gap.
    let base = base.expect("base-time");
    assert!(base >= first_change.saturating_sub(1), "{base}");
    let horizon = f.store.feed().horizon();
    assert!(
        base < horizon,
        "base-time {base} is inside the history (horizon {horizon}): a resume would miss changes"
    );
    assert!(updates < 12_000, "{updates} updates: nothing was missed?");
    assert!(req.next().await.is_none(), "then the connection closes");
    assert_eq!(task.await.unwrap(), End::FellBehind);
}

fn base_time(m: &Message) -> Option<u32> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::BaseTime(t) => Some(*t),
        _ => None,
    })
}

/// While DHCP is overloaded a change is held, not lost: the keepalive that
/// goes out meanwhile comes first, with a base-time no later than the held
/// change (a requestor resuming from it would get it), and the change
/// follows when the overload ends.
#[tokio::test]
async fn updates_are_held_while_dhcp_is_overloaded_and_sent_after() {
    let f = fixture(HOUR);
    let load = Arc::new(DhcpLoad::new(1));
    let (mut req, _stop, _task) = start(
        ctx(&f.store, 1, 120).yielding_to(Arc::clone(&load)),
        None,
        64 * 1024,
    );
    subscribed(&f.store).await;
    let windows = |busy, over, under| crate::overload::Windows { busy, over, under };
    load.set(0, windows(1000, crate::overload::ON_WINDOWS, 0));
    let ip = Ipv4Addr::new(10, 0, 2, 7);
    let committed_at = f.store.feed().now(unix_now());
    commit(&f.store, vec![active(ip, 7)]).await;

    let m = req.next().await.expect("a keepalive");
    assert_eq!(
        status(&m),
        Some(StatusCode::ConnectionActive),
        "the update was held"
    );
    assert!(base_time(&m).expect("base-time") <= committed_at);

    load.set(0, windows(0, 0, crate::overload::OFF_WINDOWS));
    let m = req.next().await.expect("the held update");
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.ciaddr, ip);
}
