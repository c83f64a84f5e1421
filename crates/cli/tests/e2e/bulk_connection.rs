#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The Bulk Leasequery TCP connection (RFC 6926 §6.3, §8.1, §8.4, §8.5;
//! RFC 7724 §8.1.1) against the real server: several interleaved queries on
//! one connection, a requestor that reads slowly, one that stops reading,
//! the connection limit, the allowlist, the idle and per-message data
//! timeout, message types not allowed over TCP, and random bytes.
//!
//! Each test's relay address is its own (`Setup::new`; only the
//! interleaving test makes bindings).

use crate::bulk_support;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use bulk_support::*;
use leaseline_test_support::{require_root, TestClient, XorShift};
use leaseline_wire::{encode_frame, DhcpOption, Message, MessageType, StatusCode};

/// A pool of 300 addresses so query-for-all answers stay small.
const SMALL: &str = r#"[[subnet]]
prefix = "10.9.0.0/16"
pools = ["10.9.0.1-10.9.1.44"]
relay_addresses = ["@RELAY@"]
lease_time = 3600
"#;

#[test]
fn interleaved_queries_on_one_connection_are_told_apart_by_xid() {
    require_root();
    let s = Setup::new();
    // At most two queries at once: the server stops reading the others
    // until one is done (RFC 6926 §8.4), yet all of them get answered.
    let server = s.spawn(&s.config(None, "max_queries_per_connection = 2"));
    let mut relay = s.relay_client();
    let clients: Vec<TestClient> = (0..4)
        .map(|i| TestClient::new(0xC000 + i).with_client_id(&[1, 0xC0, i as u8]))
        .collect();
    let ips: Vec<Ipv4Addr> = clients.iter().map(|c| dora(&mut relay, c, None)).collect();

    let mut conn = RawConn::connect(s.tcp);
    // Two queries for all (65,521 replies each) and three keyed ones, sent
    // back to back in one write.
    let mut batch = Vec::new();
    let mut push = |m: &Message| encode_frame(&m.to_bytes().unwrap(), &mut batch).unwrap();
    push(&bulk_query(0x1001));
    push(&bulk_query(0x1002));
    for (i, c) in clients.iter().enumerate().take(3) {
        let mut q = bulk_query(0x2000 + i as u32);
        q.options
            .push(DhcpOption::ClientId(c.client_id.clone().unwrap()));
        push(&q);
    }
    conn.send_bytes(&batch).unwrap();

    let mut replies: HashMap<u32, Vec<Message>> = HashMap::new();
    let mut done: HashMap<u32, Message> = HashMap::new();
    let mut order = Vec::new();
    while done.len() < 5 {
        let m = conn.recv(Duration::from_secs(30)).expect("a message");
        order.push(m.xid);
        assert!(
            !done.contains_key(&m.xid),
            "a message after the DONE of {:#x}",
            m.xid
        );
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            assert_eq!(status_of(&m), None);
            done.insert(m.xid, m);
        } else {
            replies.entry(m.xid).or_default().push(m);
        }
    }
    for xid in [0x1001, 0x1002] {
        let r = &replies[&xid];
        assert_eq!(r.len(), 65_521, "xid {xid:#x}");
        let distinct: BTreeSet<Ipv4Addr> = r.iter().map(|m| m.ciaddr).collect();
        assert_eq!(distinct.len(), 65_521);
        // Server-id in the first reply of each query only.
        assert!(r[0].has_option(54));
        assert!(r[1..].iter().all(|m| !m.has_option(54)));
    }
    for i in 0..3u32 {
        let r = &replies[&(0x2000 + i)];
        assert_eq!(
            r.iter().map(|m| m.ciaddr).collect::<Vec<_>>(),
            vec![ips[i as usize]]
        );
    }
    // The two big answers really were interleaved.
    let first_done = order
        .iter()
        .position(|&x| x == 0x1001 || x == 0x1002)
        .unwrap();
    let switches = order[first_done..]
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    assert!(
        switches > 2,
        "replies of the two queries interleave ({switches} switches)"
    );

    // A duplicate xid (one still in flight) is refused.
    conn.send(&bulk_query(0x3001));
    conn.send(&bulk_query(0x3001));
    let mut dup_refused = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match conn.recv(Duration::from_secs(10)) {
            Ok(m) => {
                if m.message_type() == Some(MessageType::LeaseQueryDone)
                    && status_of(&m).is_some_and(|(c, _)| c == StatusCode::NotAllowed)
                {
                    dup_refused = true;
                    break;
                }
            }
            Err(_) => {
                dup_refused = true; // refused by closing the connection
                break;
            }
        }
    }
    assert!(dup_refused, "a duplicate xid is refused");
    server.wait_for_log("duplicate xid", Duration::from_secs(5));
}

#[test]
fn a_slow_reader_gets_everything_and_does_not_block_others() {
    let s = Setup::new();
    let server = s.spawn(&s.config(None, ""));
    // Query for all (65,521 replies, about 18 MB), read in small sips.
    let mut slow = RawConn::connect(s.tcp);
    slow.send(&bulk_query(0x51));
    let mut first = Vec::new();
    for _ in 0..50 {
        first.push(slow.recv(Duration::from_secs(10)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile another requestor is served at once.
    let mut other = RawConn::connect(s.tcp);
    let mut q = bulk_query(0x52);
    q.options.push(DhcpOption::ClientId(b"\x01nobody".to_vec()));
    other.send(&q);
    assert_eq!(other.until_done(0x52).status(), None);
    // The server's memory stays put while the slow reader lags: the answer
    // waits in the socket buffers and one bounded queue, not in the heap.
    let rss = leaseline_test_support::rss_kib;
    let pid = server.pid().unwrap();
    let before = rss(pid);
    std::thread::sleep(Duration::from_millis(500));
    let mut n = first.len();
    let mut last_ip = first.last().unwrap().ciaddr;
    let mut peak = before;
    loop {
        let m = slow.recv(Duration::from_secs(30)).unwrap();
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            assert_eq!(status_of(&m), None);
            break;
        }
        assert!(m.ciaddr > last_ip, "ascending, each once");
        last_ip = m.ciaddr;
        n += 1;
        if n.is_multiple_of(4096) {
            peak = peak.max(rss(pid));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(n, 65_521);
    assert!(
        peak < before + 16 * 1024,
        "server RSS grew from {before} kB to {peak} kB while a requestor read slowly"
    );
}

#[test]
fn a_requestor_that_stops_reading_is_closed_after_the_data_timeout() {
    let s = Setup::new();
    let server = s.spawn(&s.config(None, "data_timeout = 2"));
    server.wait_for_log("BULK_LQ_DATA_TIMEOUT below", Duration::from_secs(5));
    let mut conn = RawConn::connect(s.tcp);
    conn.send(&bulk_query(0x61));
    // Never read: the server's writes block, then it gives up.
    let line = server.wait_for_log("not reading", Duration::from_secs(20));
    assert!(line.contains("127.0.0.1:"), "{line}");
    // And the connection is closed (after draining what was buffered).
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    conn.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(30)),
        }
    }
    // The server still answers.
    let mut c = RawConn::connect(s.tcp);
    let mut q = bulk_query(0x62);
    q.options.push(DhcpOption::ClientId(b"\x01x".to_vec()));
    c.send(&q);
    assert_eq!(c.until_done(0x62).status(), None);
}

#[test]
fn idle_and_trickling_connections_are_closed_after_the_data_timeout() {
    let s = Setup::new();
    let server = s.spawn(&s.config(Some(SMALL), "data_timeout = 2"));
    // RFC 6926 §6.3: values below 300 s are NOT RECOMMENDED: warned at start.
    server.wait_for_log("BULK_LQ_DATA_TIMEOUT below", Duration::from_secs(5));

    // Idle from the start.
    let mark = server.log_mark();
    let started = Instant::now();
    let mut idle = RawConn::connect(s.tcp);
    assert!(
        idle.closed_within(Duration::from_secs(10)),
        "idle connection closed"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let l = server.wait_for_log_since(mark, "BULK_LQ_DATA_TIMEOUT", Duration::from_secs(5));
    assert!(l.contains("WARN") && l.contains("127.0.0.1:"), "{l}");

    // Idle after a query: the timer restarts at its DONE.
    let mut c = RawConn::connect(s.tcp);
    c.send(&bulk_query(0x71));
    assert_eq!(c.until_done(0x71).replies.len(), 300);
    let after_done = Instant::now();
    assert!(c.closed_within(Duration::from_secs(10)));
    assert!(after_done.elapsed() >= Duration::from_millis(1500));

    // A requestor trickling one byte every 200 ms: the whole message takes
    // ~60 s, far over the timeout, yet every byte arrives well within it.
    let mark = server.log_mark();
    let mut body = Vec::new();
    encode_frame(&bulk_query(0x72).to_bytes().unwrap(), &mut body).unwrap();
    let mut t = TcpStream::connect(s.tcp).unwrap();
    t.set_nodelay(true).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in &body {
        if t.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    if !closed {
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        closed = matches!(t.read(&mut b), Ok(0) | Err(_));
    }
    assert!(closed, "a trickling requestor is closed");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log_since(mark, "BULK_LQ_DATA_TIMEOUT", Duration::from_secs(5));

    // The same after a first query, on a working connection.
    let mark = server.log_mark();
    let mut c = RawConn::connect(s.tcp);
    c.send(&bulk_query(0x73));
    assert_eq!(c.until_done(0x73).replies.len(), 300);
    let started = Instant::now();
    let mut closed = false;
    for b in &body {
        if c.send_bytes(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    assert!(
        closed || c.closed_within(Duration::from_secs(5)),
        "closed mid-message"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_log_since(mark, "BULK_LQ_DATA_TIMEOUT", Duration::from_secs(5));
}

#[test]
fn shutdown_ends_queries_in_flight_with_query_terminated() {
    let s = Setup::new();
    let mut server = s.spawn(&s.config(None, ""));
    let mut c = RawConn::connect(s.tcp);
    c.send(&bulk_query(0xE1));
    for _ in 0..100 {
        c.recv(Duration::from_secs(10)).unwrap();
    }
    // The answer (65,521 replies, more than the socket buffers hold) now
    // waits on us: stop the server, and read on only once it has seen the
    // signal, so the answer cannot be complete before the shutdown.
    let mark = server.log_mark();
    server.signal(libc::SIGTERM);
    server.wait_for_log_since(mark, "SIGTERM: shutting down", Duration::from_secs(10));
    let stopper = std::thread::spawn(move || {
        let st = server.terminate();
        (server, st)
    });
    let mut last = None;
    loop {
        match c.recv(Duration::from_secs(30)) {
            Ok(m) => last = Some(m),
            Err(RecvError::Timeout) => panic!("no close within 30 s"),
            Err(_) => break,
        }
    }
    let (_server, st) = stopper.join().unwrap();
    assert!(st.success(), "{st:?}");
    let last = last.expect("messages before the close");
    assert_eq!(last.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(last.xid, 0xE1);
    assert_eq!(
        status_of(&last).map(|(c, _)| c),
        Some(StatusCode::QueryTerminated)
    );
}

#[test]
fn connections_over_the_limit_are_accepted_then_closed() {
    let s = Setup::new();
    let server = s.spawn(&s.config(Some(SMALL), "max_connections = 2"));
    let mut a = RawConn::connect(s.tcp);
    let mut b = RawConn::connect(s.tcp);
    // Both are served.
    for (c, xid) in [(&mut a, 1u32), (&mut b, 2u32)] {
        c.send(&bulk_query(xid));
        assert_eq!(c.until_done(xid).replies.len(), 300);
    }
    // The third is accepted, then closed at once, and logged.
    let mark = server.log_mark();
    let mut third = RawConn::connect(s.tcp);
    assert!(
        third.closed_within(Duration::from_secs(5)),
        "over-limit connection closed"
    );
    let l = server.wait_for_log_since(mark, "connection limit", Duration::from_secs(5));
    assert!(l.contains("127.0.0.1:"), "{l}");
    // The CLI reports it as a connection failure (exit 4).
    let out = run_bulk(&["--server", &s.tcp.to_string(), "--all"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once one closes, a new connection is served again.
    drop(a);
    let mut d = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut c = RawConn::connect(s.tcp);
        c.send(&bulk_query(4));
        match c.recv(Duration::from_secs(5)) {
            Ok(_) => {
                d = Some(c);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    assert!(d.is_some(), "a slot frees when a connection closes");
}

#[test]
fn requestors_outside_the_allowlist_are_closed_at_once() {
    let s = Setup::new();
    let cfg = s
        .config(Some(SMALL), "")
        .replace(r#"allow = ["127.0.0.0/8"]"#, r#"allow = ["127.0.0.77/32"]"#);
    let server = s.spawn(&cfg);
    let mut c = RawConn::connect(s.tcp);
    let _ = c.send_bytes(&[0, 1]);
    assert!(c.closed_within(Duration::from_secs(5)));
    let l = server.wait_for_log("leasequery.allow", Duration::from_secs(5));
    assert!(l.contains("127.0.0.1:"), "{l}");
    let out = run_bulk(&["--server", &s.tcp.to_string(), "--all"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn message_types_not_allowed_over_tcp_close_the_connection() {
    let s = Setup::new();
    let server = s.spawn(&s.config(Some(SMALL), ""));
    let kinds = [
        MessageType::Discover,
        MessageType::Request,
        MessageType::LeaseQuery,
        MessageType::LeaseActive,
        MessageType::LeaseQueryDone,
    ];
    for t in kinds {
        let mark = server.log_mark();
        let mut c = RawConn::connect(s.tcp);
        // A good query first, so the connection is a working bulk connection.
        c.send(&bulk_query(0x81));
        assert_eq!(c.until_done(0x81).replies.len(), 300);
        let mut m = Message {
            xid: 0x82,
            ..Message::default()
        };
        m.options.push(DhcpOption::MessageType(t));
        c.send(&m);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "{t:?} closes the connection"
        );
        let l = server.wait_for_log_since(mark, "not allowed", Duration::from_secs(5));
        assert!(l.contains("127.0.0.1:"), "{l}");
    }
    // A message that is no DHCP message at all (and no message type).
    let mut c = RawConn::connect(s.tcp);
    let mut junk = Vec::new();
    encode_frame(&[0x55; 40], &mut junk).unwrap();
    c.send_bytes(&junk).unwrap();
    assert!(c.closed_within(Duration::from_secs(5)));
    // Over-long frame announced (max_message_size 16384 by default).
    let mut c = RawConn::connect(s.tcp);
    c.send_bytes(&[0xff, 0xff, 1, 2, 3]).unwrap();
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn random_bytes_over_several_connections_then_the_server_still_answers() {
    let s = Setup::new();
    let mut server = s.spawn(&s.config(Some(SMALL), ""));
    let mut rng = XorShift::new(0xB0B5);
    let mut sent = 0usize;
    let mut conns = 0usize;
    while sent < 5_000 {
        let n = rng.range(1, 900).min(5_000 - sent);
        let mut bytes = vec![0u8; n];
        rng.fill(&mut bytes);
        // Half of the connections start with a plausible length prefix.
        if conns.is_multiple_of(2) && n > 2 {
            let len = (n - 2) as u16;
            bytes[..2].copy_from_slice(&len.to_be_bytes());
        }
        let mut c = TcpStream::connect(s.tcp).unwrap();
        let _ = c.write_all(&bytes);
        let _ = c.shutdown(std::net::Shutdown::Write);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut sink = [0u8; 4096];
        // Whatever happens, the server must end the connection.
        loop {
            match c.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        sent += n;
        conns += 1;
    }
    assert!(conns >= 5);
    server.assert_running();
    let mut c = RawConn::connect(s.tcp);
    c.send(&bulk_query(0x91));
    let ans = c.until_done(0x91);
    assert_eq!(ans.replies.len(), 300);
    assert!(server.logs_containing(&["panicked"]).is_empty());
}

/// RFC 6926 §8.4: at `max_queries_per_connection` the server stops reading.
/// A query already sent waits, however long the running one takes; the
/// data timeout does not count that wait against the requestor.
#[test]
fn a_query_waiting_at_the_limit_is_not_timed_out() {
    let s = Setup::new();
    let _server = s.spawn(&s.config(None, "max_queries_per_connection = 1\ndata_timeout = 2"));
    let mut conn = RawConn::connect(s.tcp);
    let mut batch = Vec::new();
    encode_frame(&bulk_query(0xF1).to_bytes().unwrap(), &mut batch).unwrap();
    let mut q = bulk_query(0xF2);
    q.options.push(DhcpOption::ClientId(b"\x01nobody".to_vec()));
    encode_frame(&q.to_bytes().unwrap(), &mut batch).unwrap();
    conn.send_bytes(&batch).unwrap();
    // Read the first answer (65,521 replies) slowly: over 4 s.
    let started = Instant::now();
    let mut n = 0usize;
    loop {
        let m = conn
            .recv(Duration::from_secs(10))
            .expect("the connection stays open");
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            assert_eq!(m.xid, 0xF1);
            break;
        }
        n += 1;
        if n.is_multiple_of(8192) {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(n, 65_521);
    let done = conn.until_done(0xF2);
    assert_eq!(done.status(), None);
}
