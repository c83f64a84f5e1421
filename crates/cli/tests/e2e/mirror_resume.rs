#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The mirror's resume rules and pacing, against a scripted leasequery
//! server in this process (exact control over base-times and when catch-up
//! completes):
//! - the base-time saved for the next query-start-time is the bulk's first
//!   base-time until catch-up completes, never one received during catch-up,
//!   and a connection lost during catch-up resumes from it (RFC 7724 §7.4.1);
//! - after CatchUpComplete the highest base-time is saved and used;
//! - one JSON event line per change applied, none for duplicates;
//! - reconnects come no more often than `--retry-interval` (RFC 7724 §7.1).

use crate::mirror_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leaseline_proto::{build_bulk_reply, build_done, build_status, Binding, DhcpState};
use leaseline_test_support::unix_now;
use leaseline_wire::{encode_frame, DhcpOption, Message, MessageType, StatusCode};
use mirror_support::Mirror;

/// One message from the mirror, as the scripted server saw it.
#[derive(Debug, Clone)]
struct Query {
    kind: MessageType,
    xid: u32,
    start: Option<u32>,
    end: Option<u32>,
}

fn read_query(s: &mut TcpStream) -> Option<Query> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).ok()?;
    let m = Message::decode(&body).expect("the mirror sends valid messages");
    let opt = |want: u8| {
        m.options.iter().find_map(|o| match (o, want) {
            (DhcpOption::QueryStartTime(t), 0) => Some(*t),
            (DhcpOption::QueryEndTime(t), 1) => Some(*t),
            _ => None,
        })
    };
    Some(Query {
        kind: m.message_type().expect("message type"),
        xid: m.xid,
        start: opt(0),
        end: opt(1),
    })
}

/// The next connection within `timeout` (a mirror that never comes back
/// fails the test instead of hanging it).
fn accept_within(l: &TcpListener, timeout: Duration) -> TcpStream {
    l.set_nonblocking(true).expect("nonblocking listener");
    let deadline = Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking stream");
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection from the mirror within {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn send(s: &mut TcpStream, m: &Message) {
    let mut out = Vec::new();
    encode_frame(&m.to_bytes().expect("encode"), &mut out).expect("frame");
    // The mirror may have gone; the test notices elsewhere.
    let _ = s.write_all(&out);
}

const PRL: &[u8] = &[51, 61, 82, 91, 152, 153, 156, 157];

fn active_binding(last: u8, cltt: u32) -> Binding {
    let mut b = Binding::available(Ipv4Addr::new(10, 9, 0, last));
    b.state = DhcpState::Active;
    b.htype = 1;
    b.chaddr = vec![0x02, 0x00, 0x09, 0, 0, last];
    b.client_id = Some(vec![1, 0x02, 0x00, 0x09, 0, 0, last]);
    b.cltt = cltt;
    b.state_since = cltt;
    b.expiry = cltt + 3600;
    b.lease_time = 3600;
    b
}

fn update(xid: u32, b: &Binding, base: u32) -> Message {
    build_bulk_reply(xid, b, base, false, Ipv4Addr::LOCALHOST, PRL, &[])
}

fn saved_base_time(m: &Mirror) -> Option<u32> {
    m.status()["saved_base_time"].as_u64().map(|t| t as u32)
}

#[test]
fn saved_base_time_waits_for_catch_up_and_resume_uses_it() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A server clock of its own, well in the past: only its values matter.
    let b0 = unix_now() - 10_000;
    let (queries_tx, queries) = mpsc::channel::<Query>();
    let (go_tx, go) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let accept = || {
            let mut s = accept_within(&listener, Duration::from_secs(30));
            let q = read_query(&mut s).expect("a query");
            queries_tx.send(q.clone()).expect("report query");
            (s, q)
        };
        // 1. The initial bulk query: two bindings, then DONE, all at B0.
        let (mut s, q) = accept();
        let (a, b) = (active_binding(1, b0 - 50), active_binding(2, b0 - 40));
        send(
            &mut s,
            &build_bulk_reply(q.xid, &a, b0, true, Ipv4Addr::LOCALHOST, PRL, &[]),
        );
        send(&mut s, &update(q.xid, &b, b0));
        send(&mut s, &build_done(q.xid, None, b0, None));
        drop(s);
        // 2. Active query: catch-up replies with later base-times for 2.5 s
        //    (time for the mirror to save, were it going to), no
        //    CatchUpComplete, then the connection is lost.
        let (mut s, q) = accept();
        for i in 0..10u32 {
            let c = active_binding(3, b0 + 5);
            send(&mut s, &update(q.xid, &c, b0 + 10 + i));
            std::thread::sleep(Duration::from_millis(250));
        }
        go.recv().expect("test goes on");
        drop(s);
        // 3. Active query again: a duplicate, a new binding, CatchUpComplete,
        //    then live updates until the test has seen the saved base-time.
        let (mut s, q) = accept();
        send(&mut s, &update(q.xid, &active_binding(3, b0 + 5), b0 + 30));
        send(&mut s, &update(q.xid, &active_binding(4, b0 + 31), b0 + 31));
        send(
            &mut s,
            &build_status(q.xid, StatusCode::CatchUpComplete, "", b0 + 32),
        );
        for i in 0..40u32 {
            send(
                &mut s,
                &update(q.xid, &active_binding(5, b0 + 33), b0 + 33 + i),
            );
            if go.recv_timeout(Duration::from_millis(250)).is_ok() {
                break;
            }
        }
        drop(s);
        // 4. The resume after catch-up.
        let (s, _q) = accept();
        drop(s);
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = Mirror::new(
        dir.path(),
        addr,
        &[
            "--rcv-timeout",
            "5",
            "--retry-interval",
            "1",
            "--status-interval",
            "1",
        ],
        None,
    );
    mirror.start();
    let q = queries
        .recv_timeout(Duration::from_secs(30))
        .expect("bulk query");
    assert_eq!(
        q.kind,
        MessageType::BulkLeaseQuery,
        "an empty replica starts with bulk"
    );
    assert_eq!((q.start, q.end), (None, None), "{q:?}");
    let q = queries
        .recv_timeout(Duration::from_secs(30))
        .expect("active query");
    assert_eq!(q.kind, MessageType::ActiveLeaseQuery);
    // From the bulk's first base-time (less the mirror's one-second margin).
    assert_eq!(
        q.start,
        Some(b0 - 1),
        "active from the bulk's first base-time"
    );

    // During catch-up the saved base-time stays the bulk's, while replies
    // with later base-times arrive for 2.5 s.
    let until = Instant::now() + Duration::from_millis(2300);
    let mut polls = 0;
    while Instant::now() < until {
        assert_eq!(saved_base_time(&mirror), Some(b0), "saved during catch-up");
        assert_eq!(mirror.status()["phase"], "catch-up");
        polls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(polls >= 10);
    go_tx.send(()).expect("server thread");

    // Lost during catch-up: resume from the previous saved base-time.
    let q = queries
        .recv_timeout(Duration::from_secs(30))
        .expect("second active query");
    assert_eq!(q.kind, MessageType::ActiveLeaseQuery);
    assert_eq!(
        q.start,
        Some(b0 - 1),
        "a catch-up that did not complete is not resumed from"
    );

    // After CatchUpComplete the highest base-time is saved.
    let deadline = Instant::now() + Duration::from_secs(20);
    let saved = loop {
        if let Some(t) = saved_base_time(&mirror).filter(|t| *t >= b0 + 32) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no base-time saved after catch-up\n{}",
            mirror.all_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let live = mirror.wait_live(Duration::from_secs(10));
    assert!(live["lag_seconds"].as_u64().is_some(), "{live}");
    go_tx.send(()).expect("server thread");
    let q = queries
        .recv_timeout(Duration::from_secs(30))
        .expect("third active query");
    assert!(
        q.start.is_some_and(|t| t + 1 >= saved),
        "resume from the saved base-time {saved}: {q:?}"
    );
    server.join().expect("scripted server");

    // Events: bindings 1 and 2 (bulk), 3 (once: its repeats are duplicates),
    // 4, and 5 (once: same binding at each base-time).
    let events = mirror.events();
    let ips: Vec<&str> = events
        .iter()
        .map(|e| e["ip"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        ips,
        ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"],
        "{events:#?}"
    );
    let first = &events[0];
    assert_eq!(first["state"], "ACTIVE");
    assert_eq!(first["mac"], "02:00:09:00:00:01");
    assert_eq!(first["client_id"], "01020009000001");
    assert_eq!(first["base_time"], b0);
    assert_eq!(first["cltt"], b0 - 50);
    assert_eq!(first["expiry"], b0 - 50 + 3600);
}

#[test]
fn reconnects_no_more_often_than_the_retry_interval() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = Mirror::new(
        dir.path(),
        addr,
        &["--rcv-timeout", "5", "--retry-interval", "1"],
        None,
    );
    mirror.start();
    // Each connection is refused at once, as a server shutting down would:
    // QueryTerminated / DONE, then close.
    let mut accepted = Vec::new();
    for _ in 0..5 {
        let mut s = accept_within(&listener, Duration::from_secs(10));
        accepted.push(Instant::now());
        if let Some(q) = read_query(&mut s) {
            send(
                &mut s,
                &build_done(
                    q.xid,
                    Some((StatusCode::QueryTerminated, "bye")),
                    unix_now(),
                    Some(Ipv4Addr::LOCALHOST),
                ),
            );
        }
    }
    mirror.assert_running();
    let gaps: Vec<Duration> = accepted.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("gaps between connections: {gaps:?}");
    for g in &gaps {
        // 1 s plus up to 20 % jitter. The times are this thread's accepts:
        // one that returns late (a loaded machine: 130 ms was seen) makes
        // the next gap look that much shorter, so the lower bound leaves
        // room for it; a reconnect without the wait is a gap of a few ms.
        assert!(
            *g >= Duration::from_millis(750),
            "reconnected after {g:?}: {gaps:?}"
        );
        assert!(*g <= Duration::from_millis(1700), "waited {g:?}: {gaps:?}");
    }
    let log = mirror.log(1);
    assert!(log.contains("bulk query refused: QueryTerminated"), "{log}");
}

#[test]
fn a_silent_connection_is_dropped_after_the_receive_timeout() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    // Status reports every second must not keep the receive timeout from firing.
    let mut mirror = Mirror::new(
        dir.path(),
        addr,
        &[
            "--rcv-timeout",
            "3",
            "--retry-interval",
            "1",
            "--status-interval",
            "1",
        ],
        None,
    );
    mirror.start();
    let b0 = unix_now();
    let mut bulk = accept_within(&listener, Duration::from_secs(30));
    let q = read_query(&mut bulk).expect("bulk query");
    send(
        &mut bulk,
        &build_done(q.xid, None, b0, Some(Ipv4Addr::LOCALHOST)),
    );
    let mut active = accept_within(&listener, Duration::from_secs(30));
    let q = read_query(&mut active).expect("active query");
    assert_eq!(q.kind, MessageType::ActiveLeaseQuery);
    send(
        &mut active,
        &build_status(q.xid, StatusCode::CatchUpComplete, "", b0),
    );
    let silent_from = Instant::now();
    // The connection stays open and silent: no keepalive, no close.
    let mut again = accept_within(&listener, Duration::from_secs(10));
    let waited = silent_from.elapsed();
    let q = read_query(&mut again).expect("active query");
    assert_eq!(q.kind, MessageType::ActiveLeaseQuery, "{q:?}");
    assert!(
        waited >= Duration::from_millis(2900) && waited <= Duration::from_secs(6),
        "reconnected {waited:?} after the last message (receive timeout 3 s)"
    );
    let log = mirror.log(1);
    assert!(log.contains("ACTIVE_LQ_RCV_TIMEOUT"), "{log}");
    drop(active);
}
