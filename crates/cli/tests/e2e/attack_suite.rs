#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The attack suite (issue 8, "Hostile input and faults"): every hostile
//! requestor and peer of docs/security.md, in one place, against the real
//! `leaseline` binary. Each case asserts what the server does, then
//! [`Fixture::recheck`]: a new DHCP client still gets a lease by DORA, and
//! the `leaseline watch` connected since before the case is still on its
//! first connection and reports that lease.
//!
//! Every test has its own server (free ports) and relay addresses
//! (`loopback_relay_for`), so the tests run in parallel with each other
//! and with the rest of the suite. Requestor sources: 127.0.0.1 (the
//! watcher and the TCP cases), 127.0.0.2 (UDP leasequery, allowed),
//! 127.0.0.3 (not allowed), 127.0.0.4 (the connection flood).

use crate::active_support;
use crate::attack_support;
use crate::tls_common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use active_support::{
    active_query, bulk_all_query, classify, connect_small, prl, rss_kib, send_query, ActiveEvent,
    Conn,
};
use attack_support::http;
use attack_support::*;
use leaseline_requestor::query::{encode_query, QueryKey};
use leaseline_test_support::{malformed, unix_now, wait_until, XorShift};
use leaseline_wire::{encode_frame, DhcpOption, Message, MessageType, StatusCode};

/// This module's relay number `n` (an address no other test of the binary has).
fn relay(n: u8) -> Ipv4Addr {
    leaseline_test_support::loopback_relay_for(module_path!(), n.into())
}

fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&m.to_bytes().expect("encode"), &mut out).expect("frame");
    out
}

/// A connection from 127.0.0.1 and the mark of the log before it.
fn open(fx: &Fixture) -> (Conn, SocketAddr, usize) {
    let mark = fx.server.log_mark();
    let c = Conn::connect(fx.tcp);
    let local = c.stream.local_addr().expect("local_addr");
    (c, local, mark)
}

/// The case closes the connection through the data timeout: not before
/// (most of) it, not long after; the logged reason names it.
fn assert_closed_by_data_timeout(
    fx: &Fixture,
    case: &str,
    took: Duration,
    mark: usize,
    local: SocketAddr,
) {
    let t = Duration::from_secs(DATA_TIMEOUT_S);
    assert!(
        took >= t - Duration::from_millis(300) && took < t + Duration::from_secs(4),
        "[{case}] closed after {took:?}; BULK_LQ_DATA_TIMEOUT is {t:?}"
    );
    let line = close_reason(&fx.server, mark, local, case);
    assert!(line.contains("BULK_LQ_DATA_TIMEOUT"), "[{case}] {line}");
    eprintln!("[{case}] closed after {took:.1?}: {line}");
}

/// The case closes the connection at once, for `reason` (not the timeout).
fn assert_closed_for(fx: &Fixture, case: &str, c: &mut Conn, mark: usize, reason: &str) -> Vec<u8> {
    let local = c.stream.local_addr().expect("local_addr");
    let (got, took) = read_until_closed(&mut c.stream, 10 * SECOND, case);
    let line = close_reason(&fx.server, mark, local, case);
    assert!(
        line.contains(reason) && !line.contains("DATA_TIMEOUT"),
        "[{case}] expected a close for `{reason}`, got: {line}"
    );
    eprintln!(
        "[{case}] closed after {took:.1?} ({} bytes sent to us): {line}",
        got.len()
    );
    got
}

// ---------------------------------------------------------------------------
// TCP: stalls

/// Connect and send nothing; one byte of a length prefix; a length and
/// then nothing; a valid query trickled one byte a second. Each is closed
/// after BULK_LQ_DATA_TIMEOUT: the timeout bounds the whole message, not
/// the gap between bytes.
#[test]
fn tcp_stalled_requestors_are_closed_after_the_data_timeout() {
    let mut fx = Fixture::start(relay(160), &[], None, &[]);

    let stalls: [(&str, Vec<u8>); 3] = [
        ("connect and send nothing", vec![]),
        ("one byte of the length prefix", vec![0x01]),
        ("a length, then nothing", vec![0x01, 0x2c]),
    ];
    for (case, bytes) in stalls {
        let (mut c, local, mark) = open(&fx);
        c.send_raw(&bytes);
        let (_, took) = read_until_closed(&mut c.stream, 15 * SECOND, case);
        assert_closed_by_data_timeout(&fx, case, took, mark, local);
        fx.recheck(case);
    }

    // A valid bulk query, one byte a second (each wait ends early when
    // the server closes).
    let case = "a query trickled one byte a second";
    let (mut c, local, mark) = open(&fx);
    let body = framed(&bulk_all_query(0x7711, None, None));
    assert!(body.len() > 2 * DATA_TIMEOUT_S as usize + 4);
    let started = Instant::now();
    let mut sent = 0;
    let took = loop {
        write_lenient(&mut c.stream, &body[sent..sent + 1]);
        sent += 1;
        assert!(sent < body.len(), "[{case}] the whole query went through");
        c.stream.set_read_timeout(Some(SECOND)).unwrap();
        let mut b = [0u8; 512];
        match std::io::Read::read(&mut c.stream, &mut b) {
            Ok(0) => break started.elapsed(),
            Ok(_) => panic!("[{case}] the server answered a partial query"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break started.elapsed(),
        }
    };
    eprintln!("[{case}] {sent} of {} bytes sent", body.len());
    assert_closed_by_data_timeout(&fx, case, took, mark, local);
    fx.recheck(case);
}

// ---------------------------------------------------------------------------
// TCP: framing and garbage

/// Length 0; length 65535 with a short body; a length past
/// max_message_size; 5,000 random bytes; a valid frame around garbage.
/// Each closes the connection at once, nothing is answered.
#[test]
fn tcp_bad_framing_and_garbage_close_the_connection() {
    let mut fx = Fixture::start(relay(161), &[], None, &[]);
    let mut rng = XorShift::new(0x00a7_7ac4);

    let mut too_long = vec![0u8; 2 + MAX_MESSAGE + 1];
    too_long[..2].copy_from_slice(&((MAX_MESSAGE + 1) as u16).to_be_bytes());
    too_long[2..].copy_from_slice(
        &bulk_all_query(1, None, None).to_bytes().unwrap().repeat(40)[..MAX_MESSAGE + 1],
    );

    let mut random = vec![0u8; 5000];
    rng.fill(&mut random);

    let mut garbage = vec![0u8; 300];
    rng.fill(&mut garbage);
    garbage[236..240].copy_from_slice(&[0, 0, 0, 0]); // never the DHCP cookie
    let mut around_garbage = Vec::new();
    encode_frame(&garbage, &mut around_garbage).unwrap();

    let mut short_65535 = vec![0xff, 0xff];
    short_65535.extend_from_slice(&bulk_all_query(2, None, None).to_bytes().unwrap());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("length 0", vec![0, 0], "bad framing"),
        ("length 65535 with a short body", short_65535, "bad framing"),
        ("a length past max_message_size", too_long, "bad framing"),
        ("5,000 random bytes", random, ""),
        (
            "valid framing around garbage",
            around_garbage,
            "undecodable message",
        ),
    ];
    for (case, bytes, reason) in cases {
        let (mut c, _local, mark) = open(&fx);
        write_lenient(&mut c.stream, &bytes);
        let got = assert_closed_for(&fx, case, &mut c, mark, reason);
        assert!(got.is_empty(), "[{case}] the server answered: {got:?}");
        fx.recheck(case);
    }
}

// ---------------------------------------------------------------------------
// TCP: protocol abuse

/// A message type not allowed over TCP; a second active query; an active
/// query with query-end-time; a duplicate xid on bulk; more queries than
/// max_queries_per_connection (the server stops reading, RFC 6926 §8.4).
#[test]
fn tcp_protocol_abuse_is_refused() {
    let mut fx = Fixture::start(relay(162), &[], None, &[]);

    let case = "DHCPDISCOVER over TCP";
    let (mut c, _, mark) = open(&fx);
    let mut d = Message {
        xid: 0xd15c,
        ..Message::default()
    };
    d.options
        .push(DhcpOption::MessageType(MessageType::Discover));
    c.send(&d);
    let got = assert_closed_for(
        &fx,
        case,
        &mut c,
        mark,
        "not allowed on a leasequery connection",
    );
    assert!(got.is_empty(), "[{case}] answered: {got:?}");
    fx.recheck(case);

    let case = "a second active query on one connection";
    let (mut c, local, mark) = open(&fx);
    c.send(&active_query(0x5ec0_0001, None, prl::BINDINGS));
    fx.server
        .try_wait_for_line(mark, 10 * SECOND, |l| {
            l.contains("active query started") && l.contains(&format!("peer={local}"))
        })
        .unwrap_or_else(|| panic!("[{case}] the first query did not start"));
    c.send(&active_query(0x5ec0_0002, None, prl::BINDINGS));
    let got = c.expect_closed(10 * SECOND);
    assert!(
        got.iter().any(|m| matches!(
            classify(m),
            ActiveEvent::Status {
                code: StatusCode::NotAllowed,
                ..
            }
        ) && [0x5ec0_0001, 0x5ec0_0002].contains(&m.xid)),
        "[{case}] NotAllowed before the close: {got:?}"
    );
    eprintln!("[{case}] NotAllowed, then closed");
    fx.recheck(case);

    let case = "query-end-time in an active query";
    let (mut c, _, _) = open(&fx);
    let mut q = active_query(0x0e0d_0001, None, prl::BINDINGS);
    q.options.push(DhcpOption::QueryEndTime(unix_now()));
    c.send(&q);
    let got = c.expect_closed(10 * SECOND);
    assert!(
        matches!(
            got.as_slice(),
            [m] if matches!(classify(m), ActiveEvent::Status { code: StatusCode::MalformedQuery, .. })
        ),
        "[{case}] one MalformedQuery, then the close: {got:?}"
    );
    eprintln!("[{case}] MalformedQuery, then closed");
    fx.recheck(case);

    let case = "a duplicate xid on bulk";
    let (mut c, _, mark) = open(&fx);
    let mut two = framed(&bulk_all_query(0xd0b1, None, None));
    two.extend(framed(&bulk_all_query(0xd0b1, None, None)));
    c.send_raw(&two);
    assert_closed_for(&fx, case, &mut c, mark, "duplicate xid");
    fx.recheck(case);

    // Two queries for all (POOL_SIZE replies each) and a keyed one in one
    // write: the third is not even read until one of the first two is
    // done, so its answer comes after a DONE of the first two.
    let case = "more queries than max_queries_per_connection";
    let (mut c, _, _) = open(&fx);
    let mut batch = framed(&bulk_all_query(0xb001, None, None));
    batch.extend(framed(&bulk_all_query(0xb002, None, None)));
    let mut keyed = bulk_all_query(0xb003, None, None);
    keyed
        .options
        .push(DhcpOption::ClientId(b"\x01nobody".to_vec()));
    batch.extend(framed(&keyed));
    c.send_raw(&batch);
    let mut order = Vec::new();
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    let mut done = HashSet::new();
    while done.len() < 3 {
        let m = c
            .recv(30 * SECOND)
            .unwrap_or_else(|e| panic!("[{case}] {e:?}"));
        *counts.entry(m.xid).or_default() += 1;
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            done.insert(m.xid);
            order.push(("done", m.xid));
        } else if order.last() != Some(&("reply", m.xid)) {
            order.push(("reply", m.xid));
        }
    }
    assert_eq!(counts[&0xb001], POOL_SIZE + 1, "[{case}]");
    assert_eq!(counts[&0xb002], POOL_SIZE + 1, "[{case}]");
    let first_done = order
        .iter()
        .position(|(k, x)| *k == "done" && *x != 0xb003)
        .unwrap();
    let third = order.iter().position(|(_, x)| *x == 0xb003).unwrap();
    assert!(
        third > first_done,
        "[{case}] the third query was answered before a slot freed: {order:?}"
    );
    eprintln!("[{case}] answered in this order: {order:?}");
    fx.recheck(case);
}

// ---------------------------------------------------------------------------
// TCP: 1,000 connections

/// 1,000 connections at once from one requestor, none sending a query: at
/// most the budget of connections without a query (bulk and active limits
/// together; the watcher, an active query, is not in it) stay open, the
/// rest are accepted and closed at once, the held ones go at the data
/// timeout; the
/// refusals are logged in full up to the throttle and then summarised;
/// the server's RSS stays flat. Then the per-requestor limit of active
/// queries holds for that requestor.
#[test]
fn a_thousand_connections_at_once() {
    const N: usize = 1000;
    let limit = raise_nofile(4096);
    assert!(
        limit as usize > N + 200,
        "RLIMIT_NOFILE {limit} too low for {N} connections"
    );
    let mut fx = Fixture::start(relay(163), &[], None, &[]);
    let pid = fx.server.pid().unwrap();
    let rss_before = rss_kib(pid);
    let rt = runtime();

    let case = "1,000 connections at once";
    let mark = fx.server.log_mark();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let fds_before = fds();
    let mut fds_peak = fds_before;
    let mut peak = rss_before;
    let mut conns = Vec::with_capacity(N);
    let flood_started = Instant::now();
    for i in 0..N {
        conns.push(connect_from(&rt, FLOOD_SOURCE, fx.tcp));
        if i % 50 == 0 {
            fds_peak = fds_peak.max(fds());
        }
    }
    let held = UNDECIDED_MAX; // the watcher's active query is not counted here
    let open_now = wait_until(
        &format!("[{case}] all but {held} closed"),
        20 * SECOND,
        || {
            peak = peak.max(rss_kib(pid));
            fds_peak = fds_peak.max(fds());
            let open = conns
                .iter_mut()
                .map(|c| !is_closed(c))
                .filter(|o| *o)
                .count();
            (open <= held).then_some(open)
        },
    );
    assert!(open_now >= 1, "[{case}] none held until the data timeout");
    // The held ones go at the data timeout.
    wait_until(
        &format!("[{case}] the held connections closed"),
        15 * SECOND,
        || {
            peak = peak.max(rss_kib(pid));
            fds_peak = fds_peak.max(fds());
            conns.iter_mut().all(is_closed).then_some(())
        },
    );
    // The server never held more connections without a query than their
    // budget (one more descriptor, briefly: the one it accepts to close).
    assert!(
        fds_peak <= fds_before + held + 1,
        "[{case}] the server held {} descriptors more than before; the budget of connections without a query is {UNDECIDED_MAX}",
        fds_peak - fds_before
    );
    assert!(
        peak < rss_before + 32 * 1024,
        "[{case}] server RSS grew from {rss_before} KiB to {peak} KiB"
    );
    // Every connection ends in one logged event, refused at once or closed
    // at the data timeout, in full or in a summary line. Under load (a
    // starved test, a slow accept loop) some held ones time out while the
    // flood is still arriving and the connections after them are held in
    // their place: how many are held is the server's to decide, the total
    // is not.
    let (logged_lines, reasons, summarised_n) = wait_until(
        &format!("[{case}] every connection's refusal or close logged or summarised"),
        10 * SECOND,
        || {
            let peer = format!("peer={FLOOD_SOURCE}:");
            let lines: Vec<String> = fx.server.logs()[mark..]
                .iter()
                .filter(|l| {
                    (l.contains("leasequery connection refused")
                        || l.contains("leasequery connection closed"))
                        && l.contains(&peer)
                })
                .cloned()
                .collect();
            let n = fx.server.suppressed_refusals(mark, FLOOD_SOURCE.into());
            (lines.len() as u64 + n >= N as u64).then(|| {
                // The throttle's keys: each refusal reason, and closes.
                let mut keys: HashSet<&str> = lines
                    .iter()
                    .filter(|l| l.contains("leasequery connection refused"))
                    .filter_map(|l| l.split("reason=").nth(1))
                    .map(|r| r.split(" event=").next().unwrap_or(r))
                    .collect();
                if lines
                    .iter()
                    .any(|l| l.contains("leasequery connection closed"))
                {
                    keys.insert("leasequery connection closed");
                }
                (lines.len(), keys.len(), n)
            })
        },
    );
    let flood_secs = flood_started.elapsed().as_secs();
    assert_eq!(
        logged_lines as u64 + summarised_n,
        N as u64,
        "[{case}] {logged_lines} lines + {summarised_n} summarised: not one per connection"
    );
    assert!(summarised_n > 0, "[{case}] nothing summarised");
    // At most REFUSALS_LOGGED_PER_SECOND (32) lines per throttle key in
    // each one-second window the flood spanned.
    let allowed = 32 * reasons * (flood_secs as usize + 2);
    assert!(
        logged_lines <= allowed,
        "[{case}] {logged_lines} lines in {flood_secs} s for {reasons} throttle keys: not throttled"
    );
    eprintln!(
        "[{case}] {open_now} still open once the rest were closed, all gone at the data timeout; \
         at most {} more descriptors in the server; {logged_lines} lines + {summarised_n} summarised; \
         RSS {rss_before} -> at most {peak} KiB",
        fds_peak - fds_before
    );
    drop(conns);
    fx.recheck(case);

    let case = "active queries over the per-requestor limit";
    let mark = fx.server.log_mark();
    let mut actives: Vec<Conn> = (0..=PER_REQUESTOR)
        .map(|_| Conn::from_stream(connect_from(&rt, FLOOD_SOURCE, fx.tcp)))
        .collect();
    for (i, c) in actives.iter_mut().enumerate().take(PER_REQUESTOR) {
        c.send(&active_query(0xac00 + i as u32, None, prl::BINDINGS));
    }
    fx.server.wait_for_log_count(
        mark,
        &["active query started", &format!("peer={FLOOD_SOURCE}:")],
        PER_REQUESTOR,
        10 * SECOND,
    );
    let last = actives.last_mut().unwrap();
    last.send(&active_query(0xacff, None, prl::BINDINGS));
    let got = last.expect_closed(10 * SECOND);
    assert!(
        matches!(got.as_slice(), [m] if matches!(classify(m), ActiveEvent::Status { code: StatusCode::NotAllowed, .. })),
        "[{case}] NotAllowed, then the close: {got:?}"
    );
    eprintln!("[{case}] the third from {FLOOD_SOURCE} refused with NotAllowed");
    fx.recheck(case);
    // The two admitted ones follow too.
    for c in actives.iter_mut().take(PER_REQUESTOR) {
        loop {
            let m = c
                .recv(10 * SECOND)
                .unwrap_or_else(|e| panic!("[{case}] admitted query: {e:?}"));
            if matches!(classify(&m), ActiveEvent::Update(_)) {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Active: a requestor that never reads

/// A requestor sends its active query and never reads (4 KiB receive
/// buffer) while binding changes pour in: closed after
/// ACTIVE_LQ_SEND_TIMEOUT with a pending set bounded by the pool, the
/// server's RSS stays flat, and DHCP serves every exchange meanwhile.
#[test]
fn an_active_requestor_that_never_reads_is_closed_after_the_send_timeout() {
    let churn_relay = relay(165);
    let mut fx = Fixture::start(relay(164), &[churn_relay], None, &[]);
    let pid = fx.server.pid().unwrap();
    let case = "an active requestor that never reads";
    let mark = fx.server.log_mark();
    let mut stalled = connect_small(fx.tcp, 4096);
    send_query(&mut stalled, 0x57a1, None);
    let peer = format!("peer={}", stalled.local_addr().unwrap());
    fx.server
        .try_wait_for_line(mark, 10 * SECOND, |l| {
            l.contains("active query started") && l.contains(&peer)
        })
        .unwrap_or_else(|| panic!("[{case}] the query did not start"));
    let rss_before = rss_kib(pid);

    let closed = Arc::new(AtomicBool::new(false));
    let sampler = {
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !closed.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        })
    };
    let dhcp = fx.dhcp;
    let churn = std::thread::spawn(move || {
        active_support::churn(churn_relay, dhcp, 500, 20_000, 32, Duration::from_secs(90))
    });
    let line = fx
        .server
        .try_wait_for_line(mark, 90 * SECOND, |l| {
            l.contains(&peer) && l.contains("ACTIVE_LQ_SEND_TIMEOUT")
        })
        .unwrap_or_else(|| {
            panic!(
                "[{case}] not closed for ACTIVE_LQ_SEND_TIMEOUT\n{}",
                fx.server.log_tail(30)
            )
        });
    let st = churn.join().expect("churn");
    closed.store(true, Ordering::Relaxed);
    let rss_max = sampler.join().unwrap();
    assert_eq!(st.failed, 0, "[{case}] DHCP exchanges abandoned: {st:?}");
    let pending: usize = line
        .split("pending=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("[{case}] no pending= in {line}"));
    assert!(
        pending <= POOL_SIZE,
        "[{case}] pending {pending} > {POOL_SIZE} addresses"
    );
    assert!(
        rss_max < rss_before + 32 * 1024,
        "[{case}] server RSS grew from {rss_before} KiB to {rss_max} KiB"
    );
    let mut conn = Conn::from_stream(stalled);
    conn.expect_closed(30 * SECOND);
    eprintln!(
        "[{case}] {} changes ({st:?}); {line}; RSS {rss_before} -> at most {rss_max} KiB",
        st.changes()
    );
    fx.recheck(case);
}

// ---------------------------------------------------------------------------
// TLS (secure mode)

/// Secure mode: garbage instead of a ClientHello after DHCPTLS; a
/// handshake that stops after the ClientHello (closed after the data
/// timeout); bytes sent right after DHCPTLS, before the handshake, are
/// never read as DHCP (STARTTLS injection).
#[test]
fn tls_handshake_attacks_are_closed() {
    let pki = tls_common::TestPki::new();
    let tls = pki.tls_section(&[&format!("san:{}", tls_common::REQUESTOR_NAME)]);
    let flags = tls_common::tls_flags(&pki.ca, &pki.requestor);
    let mut fx = Fixture::start(relay(166), &[], Some(&tls), &flags);
    let dhcptls = framed(&tls_common::dhcptls(0x7150_0001));

    // DHCPTLS, and the server's DHCPTLS answer (no status: go ahead).
    let start_tls = |c: &mut Conn, case: &str| {
        c.send_raw(&dhcptls);
        let a = c
            .recv(10 * SECOND)
            .unwrap_or_else(|e| panic!("[{case}] DHCPTLS answer: {e:?}"));
        assert_eq!(a.message_type(), Some(MessageType::Tls), "[{case}] {a:?}");
        assert_eq!(tls_common::status(&a), None, "[{case}] {a:?}");
    };

    let case = "garbage instead of a ClientHello";
    let (mut c, local, mark) = open(&fx);
    start_tls(&mut c, case);
    let mut garbage = vec![0u8; 600];
    XorShift::new(0x7150).fill(&mut garbage);
    write_lenient(&mut c.stream, &garbage);
    let (got, took) = read_until_closed(&mut c.stream, 10 * SECOND, case);
    let line = close_reason(&fx.server, mark, local, case);
    assert!(
        line.contains("TLS handshake refused") && !line.contains("no complete handshake"),
        "[{case}] {line}"
    );
    // At most a TLS alert record; never DHCP.
    assert!(got.is_empty() || got[0] == 0x15, "[{case}] {got:?}");
    assert_eq!(tls_common::binding_frames(&got), 0, "[{case}]");
    eprintln!("[{case}] closed after {took:.1?}: {line}");
    fx.recheck(case);

    let case = "a handshake that stops after the ClientHello";
    let (mut c, local, mark) = open(&fx);
    start_tls(&mut c, case);
    let cfg = tls_common::client_config(
        &pki.ca,
        Some(&pki.requestor),
        &rustls::version::TLS13,
        false,
    );
    let name = rustls::pki_types::ServerName::IpAddress(fx.tcp.ip().into());
    let mut client = rustls::ClientConnection::new(cfg, name).expect("client");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("ClientHello");
    assert!(
        hello.len() > 100 && hello[0] == 0x16,
        "a TLS handshake record"
    );
    c.send_raw(&hello);
    let (got, took) = read_until_closed(&mut c.stream, 15 * SECOND, case);
    let line = close_reason(&fx.server, mark, local, case);
    assert!(line.contains("no complete handshake"), "[{case}] {line}");
    let t = Duration::from_secs(DATA_TIMEOUT_S);
    assert!(
        took >= t - Duration::from_millis(300) && took < t + Duration::from_secs(4),
        "[{case}] {took:?}"
    );
    assert!(
        !got.is_empty() && got[0] == 0x16,
        "[{case}] the server's first flight"
    );
    eprintln!("[{case}] closed after {took:.1?}: {line}");
    fx.recheck(case);

    let case = "STARTTLS injection: a query right behind DHCPTLS";
    let (mut c, local, mark) = open(&fx);
    let mut bytes = dhcptls.clone();
    bytes.extend(framed(&bulk_all_query(0x1e7, None, None)));
    c.send_raw(&bytes);
    let (got, _) = read_until_closed(&mut c.stream, 10 * SECOND, case);
    tls_common::assert_no_lease_data(case, &got);
    let line = close_reason(&fx.server, mark, local, case);
    assert!(
        line.contains("arrived after DHCPTLS") || line.contains("TLS handshake refused"),
        "[{case}] {line}"
    );
    assert!(
        fx.server.logs()[mark..]
            .iter()
            .all(|l| !(l.contains("bulk query") && l.contains(&format!("peer={local}")))),
        "[{case}] the injected query was read"
    );
    eprintln!("[{case}] {} bytes sent to us; {line}", got.len());
    fx.recheck(case);
}

// ---------------------------------------------------------------------------
// UDP

/// Leasequery floods from an allowed (127.0.0.2) and a non-allowed
/// (127.0.0.3) source at once: the allowed one gets at most its rate
/// (burst + rate per second), the other nothing; DHCP clients get leases
/// during the flood; the refusal log is throttled to summaries.
#[test]
fn udp_leasequery_floods_are_rate_limited() {
    let mut fx = Fixture::start(relay(167), &[], None, &[]);
    let case = "UDP leasequery floods";
    let mark = fx.server.log_mark();
    const PER_SOURCE: usize = 4000;
    const FLOOD_TIME: Duration = Duration::from_secs(2);
    let dhcp = fx.dhcp;
    let flood = |src: Ipv4Addr| {
        std::thread::spawn(move || {
            let sock = UdpSocket::bind((src, 0)).expect("bind flood source");
            let rx = sock.try_clone().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let counter = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    rx.set_read_timeout(Some(Duration::from_millis(300)))
                        .unwrap();
                    let mut n = 0usize;
                    let mut buf = [0u8; 2048];
                    // Until the flood is over and no reply came for 300 ms.
                    loop {
                        match rx.recv_from(&mut buf) {
                            Ok((len, _)) => {
                                if Message::decode(&buf[..len]).is_ok() {
                                    n += 1;
                                }
                            }
                            Err(_) if stop.load(Ordering::Relaxed) => return n,
                            Err(_) => {}
                        }
                    }
                })
            };
            let started = Instant::now();
            for i in 0..PER_SOURCE {
                let q = encode_query(
                    &QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 10)),
                    0xf100_0000 + i as u32,
                    src,
                    prl::UDP,
                )
                .unwrap();
                let _ = sock.send_to(&q, dhcp);
                // Pacing the flood over FLOOD_TIME (not synchronisation).
                let due = FLOOD_TIME.mul_f64((i + 1) as f64 / PER_SOURCE as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let took = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            (counter.join().unwrap(), took)
        })
    };
    let allowed = flood(LQ_ALLOWED);
    let refused = flood(LQ_NOT_ALLOWED);
    // DHCP during the flood: DORAs every 10 ms (pacing), each must succeed.
    let mut during = 0;
    while !allowed.is_finished() {
        let lease = fx.dora(&format!("{case}: DORA {during} during the flood"));
        assert_eq!(lease.ip.octets()[0], 10);
        during += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let (answered, took) = allowed.join().unwrap();
    let (answered_refused, _) = refused.join().unwrap();
    let max = UDP_BURST as f64 + UDP_RATE as f64 * (took.as_secs_f64() + 1.0);
    assert!(
        answered as f64 <= max && answered >= UDP_BURST as usize / 2,
        "[{case}] {answered} of {PER_SOURCE} allowed queries answered in {took:.1?} (rate {UDP_RATE}/s, burst {UDP_BURST})"
    );
    assert_eq!(
        answered_refused, 0,
        "[{case}] the non-allowed source got answers"
    );
    assert!(during >= 1, "[{case}] no DHCP exchange during the flood");
    // Every refusal logged in full or summarised; the log stays small.
    let summaries = wait_until(
        &format!("[{case}] refusal summaries for both"),
        10 * SECOND,
        || {
            let a = fx.server.suppressed_refusals(mark, LQ_ALLOWED.into());
            let b = fx.server.suppressed_refusals(mark, LQ_NOT_ALLOWED.into());
            (a > 0 && b > 0).then_some((a, b))
        },
    );
    let full = |ip: Ipv4Addr| {
        fx.server.logs()[mark..]
            .iter()
            .filter(|l| l.contains("dropped datagram") && l.contains(&format!("peer={ip}:")))
            .count()
    };
    let (full_a, full_b) = (full(LQ_ALLOWED), full(LQ_NOT_ALLOWED));
    assert!(
        full_a + full_b < 400,
        "[{case}] {full_a} + {full_b} refusal lines: not throttled"
    );
    eprintln!(
        "[{case}] allowed: {answered} answered of {PER_SOURCE} in {took:.1?}, {full_a} refusals logged, {} summarised; \
         not allowed: none answered, {full_b} logged, {} summarised; {during} DORAs during the flood",
        summaries.0, summaries.1
    );
    fx.recheck(case);
}

/// Every malformed-datagram class of test-support's packets.rs, and 1,000
/// random datagrams: refused, nothing sent back, the server serving.
#[test]
fn malformed_datagrams_are_refused() {
    let mut fx = Fixture::start(relay(168), &[], None, &[]);
    let giaddr = fx.relay;
    let mut rng = XorShift::new(0xa77a_0d47);
    let classes: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("truncated", vec![malformed::truncated(giaddr)]),
        (
            "bad magic cookie",
            vec![malformed::bad_magic_cookie(giaddr)],
        ),
        (
            "option past the end",
            vec![malformed::option_overrun(giaddr)],
        ),
        (
            "option 52 overload",
            vec![malformed::option_overload(giaddr)],
        ),
        (
            "message type 99",
            vec![malformed::unknown_message_type(giaddr)],
        ),
        (
            "1,000 random datagrams",
            (0..1000)
                .map(|_| malformed::random(&mut rng, giaddr))
                .collect(),
        ),
    ];
    for (i, (case, datagrams)) in classes.iter().enumerate() {
        let sock = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 169), 0)).expect("bind sender");
        let peer = format!("peer={}", sock.local_addr().unwrap());
        let mark = fx.server.log_mark();
        for (k, d) in datagrams.iter().enumerate() {
            sock.send_to(d, fx.dhcp).expect("send");
            if k % 100 == 99 {
                // Let the server drain its socket (a DISCOVER answered
                // means every datagram before it was handled).
                fx.recheck_probe();
            }
        }
        let line = fx
            .server
            .try_wait_for_line(mark, 10 * SECOND, |l| {
                l.contains("dropped datagram") && l.contains(&peer)
            })
            .unwrap_or_else(|| {
                panic!(
                    "[{case}] no `dropped datagram` line for {peer}\n{}",
                    fx.server.log_tail(20)
                )
            });
        fx.recheck(case);
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        assert!(
            sock.recv_from(&mut buf).is_err(),
            "[{case}] the server answered"
        );
        eprintln!("[{case}] ({i}) refused: {line}");
    }
}

// ---------------------------------------------------------------------------
// The HTTP endpoint (issue 19): metrics and the control API

/// Without the token (none, a wrong one, another scheme) every endpoint
/// answers 401 and does nothing: `dhcp-disable` sent without it leaves
/// DHCP served (the recheck's DORA).
#[test]
fn http_unauthenticated_requests_are_refused_on_every_endpoint() {
    let mut fx = Fixture::start(relay(170), &[], None, &[]);
    let case = "http without the token";
    let wrong = [
        "",
        "Bearer wrong-token-wrong-token-wrong",
        "Basic YWRtaW46YWRtaW4=",
    ];
    for auth in wrong {
        let auth = (!auth.is_empty()).then_some(auth);
        let asks = [
            http::request("GET", "/metrics", auth, ""),
            http::request("POST", "/", auth, r#"{"command":"dhcp-disable"}"#),
            http::request(
                "POST",
                "/",
                auth,
                r#"{"command":"lease4-get-page","arguments":{"from":"start","limit":10}}"#,
            ),
            http::request("POST", "/", auth, r#"{"command":"config-get"}"#),
        ];
        for ask in asks {
            let (status, text) = http::exchange(fx.web, &ask);
            assert_eq!(status, 401, "[{case}] {auth:?}: {text}");
            assert!(
                !text.contains("\"result\"") && !text.contains("leaseline_"),
                "[{case}] nothing but the refusal: {text}"
            );
        }
    }
    http::assert_serving(fx.web, case);
    eprintln!("[{case}] 12 requests on /metrics and / refused with 401");
    fx.recheck(case);
}

/// Junk, a slowloris, an oversized body and more connections than the
/// cap: each is answered 400 / 413 or closed, the endpoint keeps serving
/// others meanwhile and afterwards, memory and descriptors stay bounded.
#[test]
fn the_http_endpoint_survives_junk_slow_oversized_and_many_connections() {
    let mut fx = Fixture::start(relay(171), &[], None, &[]);
    let pid = fx.server.pid().expect("pid");
    let rss_before = rss_kib(pid);
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let header_timeout = Duration::from_secs(HTTP_HEADER_TIMEOUT_S);

    // Junk: not HTTP at all. A 400 or a close, never a hang.
    let case = "http junk";
    let mut rng = XorShift::new(0x4774_9a11);
    let mut random = vec![0u8; 4096];
    rng.fill(&mut random);
    let junk: [(&str, Vec<u8>); 4] = [
        ("random bytes", random),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        ("a DHCP datagram", malformed::truncated(fx.relay)),
        (
            "a header line without a colon, 100 KiB long",
            [
                b"GET / HTTP/1.1\r\n".as_slice(),
                &[b'A'; 100 * 1024],
                b"\r\n\r\n",
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in &junk {
        let (status, text) = http::exchange(fx.web, bytes);
        assert!(
            status == 0 || (400..500).contains(&status),
            "[{case}] {what}: {text}"
        );
        eprintln!(
            "[{case}] {what}: {}",
            if status == 0 {
                "closed".to_string()
            } else {
                format!("{status}")
            }
        );
    }
    http::assert_serving(fx.web, case);
    fx.recheck(case);

    // Slowloris: 20 clients each dribble a header byte every 200 ms; each
    // is closed after the header timeout, and a normal scrape is served
    // while they dribble.
    let case = "http slowloris";
    let stop = Arc::new(AtomicBool::new(false));
    let mut lorises: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(fx.web).expect("connect"))
        .collect();
    let dribblers: Vec<_> = lorises
        .iter()
        .map(|s| {
            let mut s = s.try_clone().expect("clone");
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: leaseline\r\nX-Slow: ");
                while !stop.load(Ordering::Relaxed) && s.write_all(b"a").is_ok() {
                    // The attack's pace, not a wait for an event.
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    http::assert_serving(fx.web, case);
    let started = Instant::now();
    for s in &mut lorises {
        read_until_closed(s, header_timeout + 10 * SECOND, case);
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for d in dribblers {
        d.join().expect("dribbler");
    }
    eprintln!(
        "[{case}] 20 dribbling clients closed within {took:?} (header timeout {header_timeout:?})"
    );
    http::assert_serving(fx.web, case);
    fx.recheck(case);

    // Oversized bodies: declared (Content-Length) or chunked without end.
    let case = "http oversized body";
    let rss_mid = rss_kib(pid);
    let big = 8 * 1024 * 1024;
    let mut declared = format!(
        "POST / HTTP/1.1\r\nHost: leaseline\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n",
        http::bearer()
    )
    .into_bytes();
    declared.extend(std::iter::repeat_n(b' ', big));
    let (status, text) = http::exchange(fx.web, &declared);
    assert_eq!(status, 413, "[{case}] Content-Length {big}: {text}");
    let mut chunked = format!(
        "POST / HTTP/1.1\r\nHost: leaseline\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        http::bearer()
    )
    .into_bytes();
    for _ in 0..512 {
        chunked.extend_from_slice(b"4000\r\n");
        chunked.extend(std::iter::repeat_n(b' ', 0x4000));
        chunked.extend_from_slice(b"\r\n");
    }
    let (status, text) = http::exchange(fx.web, &chunked);
    assert_eq!(status, 413, "[{case}] 8 MiB chunked: {text}");
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_mid + 4 * 1024,
        "[{case}] server RSS grew from {rss_mid} KiB to {rss_after} KiB for 16 MiB refused"
    );
    eprintln!("[{case}] 8 MiB declared and 8 MiB chunked: 413; RSS {rss_mid} -> {rss_after} KiB");
    http::assert_serving(fx.web, case);
    fx.recheck(case);

    // More idle connections than the cap: those beyond it are closed at
    // once, the rest at the header timeout; descriptors stay within it.
    let case = "http connection flood";
    let n = HTTP_MAX_CONNECTIONS + 100;
    let fds_before = fds();
    let mut conns: Vec<std::net::TcpStream> = (0..n)
        .map(|_| std::net::TcpStream::connect(fx.web).expect("connect"))
        .collect();
    let mut fds_peak = fds();
    let open = wait_until(
        &format!("[{case}] those over the cap closed"),
        10 * SECOND,
        || {
            fds_peak = fds_peak.max(fds());
            let open = conns
                .iter_mut()
                .map(|c| !is_closed(c))
                .filter(|o| *o)
                .count();
            (open <= HTTP_MAX_CONNECTIONS).then_some(open)
        },
    );
    wait_until(
        &format!("[{case}] the rest closed at the header timeout"),
        header_timeout + 10 * SECOND,
        || {
            fds_peak = fds_peak.max(fds());
            conns.iter_mut().all(is_closed).then_some(())
        },
    );
    assert!(
        fds_peak <= fds_before + HTTP_MAX_CONNECTIONS + 1,
        "[{case}] {} descriptors more than before; the cap is {HTTP_MAX_CONNECTIONS}",
        fds_peak - fds_before
    );
    let rss_end = rss_kib(pid);
    assert!(
        rss_end < rss_before + 32 * 1024,
        "[{case}] server RSS grew from {rss_before} KiB to {rss_end} KiB"
    );
    eprintln!(
        "[{case}] {n} connections: {open} held, the rest closed at accept; all gone at the header timeout; \
         at most {} more descriptors; RSS {rss_before} -> {rss_end} KiB over every case",
        fds_peak - fds_before
    );
    drop(conns);
    http::assert_serving(fx.web, case);
    fx.recheck(case);
}
