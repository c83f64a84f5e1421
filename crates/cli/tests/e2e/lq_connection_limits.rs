#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The leasequery listener's limits, each meaning what its name says
//! (issue 16, item 4): `[leasequery.bulk] max_connections`
//! (BULK_LQ_MAX_CONNS, RFC 6926 §8.1) counts bulk connections only,
//! `[leasequery.active] max_connections` (RFC 7724 §8.3, §8.4) counts
//! active queries only, so a fleet of watchers cannot lock bulk queries
//! (nor a mirror's initial bulk query) out.
//!
//! Real TCP against a spawned `leaseline serve` with the default limits.
//! Addresses: the relay is `loopback_relay`'s (it binds :67), the watchers
//! connect from 127.0.70.10 - 127.0.70.34 (four each: the per-requestor
//! default; their ports are the kernel's).

use crate::active_support;
use crate::bulk_support;
use crate::mirror_support;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use active_support::{active_query, classify, prl, ActiveEvent, Config, Conn};
use bulk_support::{bulk_query, run_bulk, RawConn};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    require_root, wait_until, DhcpState, RelayClient, ServerProcess, TestClient,
};
use leaseline_wire::{MessageType, StatusCode};
use mirror_support::{differences, load_both, Mirror};

const SECOND: Duration = Duration::from_secs(1);
/// `[leasequery.bulk] max_connections` default (BULK_LQ_MAX_CONNS).
const BULK_LIMIT: usize = 10;
/// `[leasequery.active] max_connections` default.
const ACTIVE_LIMIT: usize = 100;
/// `[leasequery.active] max_connections_per_requestor` default.
const PER_REQUESTOR: usize = 4;
/// A small pool: a query for all addresses answers each of them once.
const POOL: &str = "10.0.0.10-10.0.0.109";
const POOL_SIZE: usize = 100;

/// A blocking TCP connection to `dst` from `src` (any 127/8 address is
/// local on Linux's loopback).
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((src, 0)))?;
            sock.connect(dst).await?.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.set_nonblocking(false).expect("blocking");
    s
}

/// A server with the default limits, serving relay `relay`, with `n`
/// bindings made by DORA exchanges through it.
fn server_with_bindings(relay: Ipv4Addr, n: u32) -> (ServerProcess, Config) {
    require_root(); // the relay binds :67
    let mut cfg = Config::new(relay);
    cfg.pool = POOL.into();
    let server = cfg.spawn();
    let mut rc = RelayClient::bind(relay, cfg.dhcp)
        .unwrap_or_else(|e| panic!("bind {relay}:67 for the relay client: {e}"));
    for i in 0..n {
        rc.dora(&TestClient::new(0x70_0000 + i))
            .unwrap_or_else(|e| panic!("DORA {i}: {e}"));
    }
    (server, cfg)
}

/// Waits until the `n` bindings are in the server's store.
fn wait_stored(server: &ServerProcess, n: usize) {
    wait_until("every binding in the server's store", 10 * SECOND, || {
        let rows = leaseline_test_support::load_bindings(&server.db_path());
        (rows.len() >= n).then_some(())
    })
}

/// 100 watchers connected and subscribed (the active limit reached, which
/// the old shared limit of 10 made impossible), then `leaseline bulk --all`
/// is served; a 101st active query is answered NotAllowed (the active
/// limit holds); with one watcher gone, `leaseline mirror` (default retry
/// interval, 60 s) fills its replica from its initial bulk query and
/// catches up on its active query, without a reconnect.
#[test]
fn a_hundred_watchers_leave_bulk_queries_and_a_mirror_served() {
    const BINDINGS: u32 = 20;
    let relay = loopback_relay();
    let (server, cfg) = server_with_bindings(relay, BINDINGS);
    wait_stored(&server, BINDINGS as usize);
    let held = POOL_SIZE;

    // 100 watchers: active queries from 25 addresses, 4 each.
    let mark = server.log_mark();
    let mut watchers: Vec<Conn> = (0..ACTIVE_LIMIT)
        .map(|i| {
            let src = Ipv4Addr::new(127, 0, 70, 10 + (i / PER_REQUESTOR) as u8);
            let mut c = Conn::from_stream(connect_from(src, cfg.tcp));
            c.send(&active_query(0x7000_0000 + i as u32, None, prl::BINDINGS));
            c
        })
        .collect();
    let started = server.wait_for_log_count(
        mark,
        &["active query started", "peer=127.0.70."],
        ACTIVE_LIMIT,
        30 * SECOND,
    );
    eprintln!("{started} watchers subscribed");

    // `leaseline bulk --all` is served meanwhile.
    let out = run_bulk(&["--server", &cfg.tcp.to_string(), "--all", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "leaseline bulk --all with {ACTIVE_LIMIT} watchers: {:?}\n{stderr}\n--- server log ---\n{}",
        out.status,
        server.log_tail(40)
    );
    let records = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(records, held, "one record per address: {stderr}");
    eprintln!("leaseline bulk --all: {records} records");

    // The active limit means what it says: the 101st is refused.
    let mut extra = Conn::connect(cfg.tcp);
    extra.send(&active_query(0x7000_0fff, None, prl::BINDINGS));
    let got = extra.expect_closed(10 * SECOND);
    assert!(
        matches!(got.as_slice(), [m] if matches!(classify(m), ActiveEvent::Status { code: StatusCode::NotAllowed, .. })),
        "the 101st active query: NotAllowed, then the close: {got:?}"
    );

    // One watcher leaves; a mirror (bulk, then active) takes its place.
    let mark = server.log_mark();
    let gone = watchers.pop().expect("a watcher");
    let gone_peer = gone.stream.local_addr().expect("local_addr");
    drop(gone);
    server.wait_for_log_count(
        mark,
        &["active query ended", &format!("peer={gone_peer}")],
        1,
        10 * SECOND,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Default timers: a refused connection would cost a 60 s retry interval.
    let mut mirror = Mirror::new(dir.path(), cfg.tcp, &[], None);
    mirror.start();
    // Live well within the retry interval: the bulk query and the active
    // query that follows (with its catch-up or gap fill) were served.
    mirror.wait_for_log("initial bulk query complete", 20 * SECOND);
    mirror.wait_for_log("active query sent", 20 * SECOND);
    mirror.wait_for_log(r#"mirror phase phase="live""#, 20 * SECOND);
    let leased = wait_until("the replica to equal the server", 10 * SECOND, || {
        let (s, r) = load_both(&server.db_path(), &mirror.db);
        let leased = r.iter().filter(|b| b.state == DhcpState::Active).count();
        differences(&s, &r).is_empty().then_some(leased)
    });
    assert_eq!(leased, BINDINGS as usize, "the replica holds every lease");
    let log = mirror.log(mirror.run);
    assert!(
        !log.contains("will reconnect") && !log.contains("refused"),
        "the mirror was refused somewhere:\n{log}"
    );

    // The watchers still follow: a new lease reaches one of them.
    let mut rc = RelayClient::bind(relay, cfg.dhcp).expect("relay");
    let lease = rc
        .dora(&TestClient::new(0x70_ffff))
        .expect("DORA while watched");
    let w = &mut watchers[0];
    loop {
        let (m, ev) = w
            .recv_event(10 * SECOND)
            .expect("an update for the watcher");
        if matches!(ev, ActiveEvent::Update(_)) && m.ciaddr == lease.ip {
            break;
        }
    }
    mirror.assert_running();
}

/// 11 bulk connections held open at once: the 10 are served, the 11th is
/// closed as before (RFC 6926 §8.1), without an answer, and logged. An
/// active query is still served meanwhile; a bulk connection that turns
/// into an active one (RFC 7724 §8.3: its bulk queries done) gives its
/// bulk slot back, so the next bulk connection is served.
#[test]
fn the_eleventh_bulk_connection_is_refused_and_active_ones_are_not() {
    const BINDINGS: u32 = 5;
    let (server, cfg) = server_with_bindings(loopback_relay(), BINDINGS);
    wait_stored(&server, BINDINGS as usize);
    let held = POOL_SIZE;

    let mut bulks: Vec<RawConn> = (0..BULK_LIMIT)
        .map(|i| {
            let mut c = RawConn::connect(cfg.tcp);
            c.send(&bulk_query(0x70b0 + i as u32));
            c
        })
        .collect();
    for (i, c) in bulks.iter_mut().enumerate() {
        let a = c.until_done(0x70b0 + i as u32);
        assert_eq!(a.replies.len(), held, "bulk connection {i}");
    }

    // The 11th: its query is not answered, the connection is closed.
    let mark = server.log_mark();
    let mut eleventh = RawConn::connect(cfg.tcp);
    let local = eleventh.stream.local_addr().expect("local_addr");
    let _ = eleventh.send_bytes(&framed(&bulk_query(0x70bb)));
    match eleventh.recv(10 * SECOND) {
        Err(bulk_support::RecvError::Timeout) => panic!("the 11th bulk connection stayed open"),
        Err(_) => {}
        Ok(m) => panic!("the 11th bulk connection was answered: {m:?}"),
    }
    let l = server.wait_for_log_since(mark, "connection limit", 5 * SECOND);
    assert!(l.contains(&format!("peer={local}")), "{l}");
    assert!(l.contains("leasequery connection refused"), "{l}");

    // The ten still work.
    for (i, c) in bulks.iter_mut().enumerate() {
        let xid = 0x71b0 + i as u32;
        c.send(&bulk_query(xid));
        assert_eq!(
            c.until_done(xid).replies.len(),
            held,
            "bulk connection {i} again"
        );
    }

    // An active query is served with every bulk slot taken.
    let mark = server.log_mark();
    let mut watcher = Conn::connect(cfg.tcp);
    let wlocal = watcher.stream.local_addr().expect("local_addr");
    watcher.send(&active_query(0x70a0, None, prl::BINDINGS));
    server.wait_for_log_count(
        mark,
        &["active query started", &format!("peer={wlocal}")],
        1,
        5 * SECOND,
    );

    // A bulk connection, its queries done, asks an active query: it
    // moves to an active slot and frees its bulk slot.
    let mark = server.log_mark();
    let mover = &mut bulks[0];
    let mlocal = mover.stream.local_addr().expect("local_addr");
    mover.send(&active_query(0x70a1, None, prl::BINDINGS));
    server.wait_for_log_since(
        mark,
        &format!("active query started peer={mlocal}"),
        5 * SECOND,
    );
    let mut next = RawConn::connect(cfg.tcp);
    next.send(&bulk_query(0x70bc));
    let a = next.until_done(0x70bc);
    assert_eq!(a.replies.len(), held, "the bulk slot given back is used");
    assert_eq!(a.done().message_type(), Some(MessageType::LeaseQueryDone));
}

fn framed(m: &leaseline_wire::Message) -> Vec<u8> {
    let mut out = Vec::new();
    leaseline_wire::encode_frame(&m.to_bytes().expect("encode"), &mut out).expect("frame");
    out
}
