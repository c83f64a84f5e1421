#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Active Leasequery (RFC 7724) on the wire, against `leaseline serve`:
//! keepalives, refused queries (query-end-time, a second active query, a
//! message type not allowed on TCP, Active Leasequery disabled), DHCPTLS in
//! insecure mode, and QueryTerminated at shutdown.
//!
//! Relay addresses (giaddr): `loopback_relay_for` (test-support).

use crate::active_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use active_support::*;
use leaseline_test_support::{unix_now, RelayClient, TestClient};
use leaseline_wire::{DhcpOption, Message, MessageType, StatusCode};

const SECOND: Duration = Duration::from_secs(1);

/// This module's relay number `n` (an address no other test of the binary has).
fn relay(n: u8) -> Ipv4Addr {
    leaseline_test_support::loopback_relay_for(module_path!(), n.into())
}

/// `t` is the server's clock "now" (give or take a second or two).
fn assert_now(t: u32, what: &str) {
    let now = unix_now();
    assert!(
        t + 2 >= now && t <= now + 1,
        "{what}: base-time {t} is not the server's current time ({now})"
    );
}

/// The WARN the server logs when it refuses or closes a connection: it
/// names the peer and a reason.
fn assert_refusal_logged(
    server: &leaseline_test_support::ServerProcess,
    mark: usize,
    conn: &Conn,
    reason: &str,
) {
    let peer = format!("peer={}", conn.stream.local_addr().expect("local_addr"));
    let line = server
        .try_wait_for_line(mark, 5 * SECOND, |l| {
            l.contains("WARN") && l.contains(&peer) && l.contains("reason=") && l.contains(reason)
        })
        .unwrap_or_else(|| {
            panic!(
                "no WARN with {peer} and reason=...{reason}...\n{}",
                server.log_tail(30)
            )
        });
    eprintln!("logged: {line}");
}

/// ACTIVE_LQ_IDLE_TIMEOUT: LEASEQUERYSTATUS/ConnectionActive with a
/// base-time after each idle period, none while updates flow (RFC 7724 §7.4).
#[test]
fn keepalive_after_idle_timeout_only_when_idle() {
    let cfg = Config::new(relay(50)).active("idle_timeout = 1");
    let server = cfg.spawn();
    server.wait_for_log("below the RFC 7724 defaults", 5 * SECOND);
    let mut c = Conn::connect(cfg.tcp);
    let t0 = Instant::now();
    c.send(&active_query(0x0a11_0001, None, prl::BINDINGS));

    let (m, t1) = c.expect_status(StatusCode::ConnectionActive, 5 * SECOND);
    let first_after = t0.elapsed();
    assert_eq!(m.xid, 0x0a11_0001, "keepalive carries the query's xid");
    assert!(
        first_after >= Duration::from_millis(900),
        "keepalive after {first_after:?}, before the 1 s idle timeout"
    );
    assert_now(t1, "ConnectionActive");
    let t_mid = Instant::now();
    let (_, t2) = c.expect_status(StatusCode::ConnectionActive, 5 * SECOND);
    let gap = t_mid.elapsed();
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(3),
        "second keepalive {gap:?} after the first (idle timeout 1 s)"
    );
    assert!(t2 >= t1, "base-times go forward: {t1} then {t2}");

    // Updates at least every few milliseconds for 2.5 s: never idle, so
    // no keepalive in between.
    let mut relay_client = RelayClient::bind(relay(50), cfg.dhcp).expect("bind the relay");
    let busy = Instant::now();
    let mut n = 0u32;
    while busy.elapsed() < Duration::from_millis(2500) {
        let lease = relay_client
            .dora(&TestClient::new(0x5000 + n))
            .expect("DORA");
        n += 1;
        match c.recv_event(5 * SECOND) {
            Ok((_, ActiveEvent::Update(r))) => assert_eq!(r.ip, lease.ip),
            other => panic!("expected the update of {}, got {other:?}", lease.ip),
        }
    }
    assert!(n > 10, "only {n} DORAs in 2.5 s");
    // Idle again: keepalives resume.
    c.expect_status(StatusCode::ConnectionActive, 5 * SECOND);
}

/// RFC 7724 §8.2: query-end-time → LEASEQUERYSTATUS/MalformedQuery, close.
#[test]
fn query_end_time_is_malformed() {
    let cfg = Config::new(relay(51));
    let server = cfg.spawn();
    for with_start in [false, true] {
        let mark = server.log_mark();
        let mut c = Conn::connect(cfg.tcp);
        let now = unix_now();
        let mut q = active_query(0x0e0d_0001, with_start.then_some(now - 10), prl::BINDINGS);
        q.options.push(DhcpOption::QueryEndTime(now));
        c.send(&q);
        let got = c.expect_closed(5 * SECOND);
        assert_eq!(got.len(), 1, "one status, then close: {got:?}");
        assert_eq!(got[0].xid, 0x0e0d_0001);
        match classify(&got[0]) {
            ActiveEvent::Status {
                code: StatusCode::MalformedQuery,
                base_time: Some(t),
                ..
            } => assert_now(t, "MalformedQuery"),
            other => panic!("expected MalformedQuery, got {other:?}"),
        }
        assert_refusal_logged(&server, mark, &c, "query_end_time");
    }
}

/// RFC 7724 §8.3: one active query per connection. A second one, sent
/// once the first runs or in the same write, is refused (NotAllowed) and
/// the connection closed.
#[test]
fn second_active_query_on_one_connection() {
    let cfg = Config::new(relay(52)).active("idle_timeout = 1");
    let server = cfg.spawn();

    // After the first query is running (its keepalive came).
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x5ec0_0001, None, prl::BINDINGS));
    c.expect_status(StatusCode::ConnectionActive, 5 * SECOND);
    c.send(&active_query(0x5ec0_0002, None, prl::BINDINGS));
    let got = c.expect_closed(5 * SECOND);
    let refusal = got
        .iter()
        .find(|m| m.message_type() == Some(MessageType::LeaseQueryStatus))
        .map(classify);
    assert!(
        matches!(
            refusal,
            Some(ActiveEvent::Status {
                code: StatusCode::NotAllowed,
                base_time: Some(_),
                ..
            })
        ),
        "expected NotAllowed before the close, got {got:?}"
    );
    assert!(
        got.iter().all(|m| classify(m) != ActiveEvent::Unexpected(0)
            && [0x5ec0_0001, 0x5ec0_0002].contains(&m.xid)),
        "{got:?}"
    );
    assert_refusal_logged(&server, mark, &c, "second active query");

    // Both queries in one write: the second is already buffered when the
    // first starts; it must be seen all the same, not left unread until
    // more bytes come (then the first message would be the 1 s keepalive).
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    let mut bytes = Vec::new();
    for xid in [0x5ec0_0003u32, 0x5ec0_0004] {
        let body = active_query(xid, None, prl::BINDINGS).to_bytes().unwrap();
        leaseline_wire::encode_frame(&body, &mut bytes).unwrap();
    }
    c.send_raw(&bytes);
    let first = c
        .recv(5 * SECOND)
        .unwrap_or_else(|e| panic!("no answer to two active queries in one write: {e:?}"));
    assert!(
        matches!(
            classify(&first),
            ActiveEvent::Status {
                code: StatusCode::NotAllowed,
                ..
            }
        ),
        "expected NotAllowed, got {first:?}"
    );
    c.expect_closed(5 * SECOND);
    assert_refusal_logged(&server, mark, &c, "second active query");
}

/// RFC 7724 §8.1.1: a message type not supported over TCP closes the
/// connection, before or during an active query, with no answer.
#[test]
fn unsupported_message_type_closes() {
    let cfg = Config::new(relay(53));
    let server = cfg.spawn();
    let discover = |xid| {
        let mut m = Message {
            xid,
            ..Message::default()
        };
        m.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0x53, 1]);
        m.options
            .push(DhcpOption::MessageType(MessageType::Discover));
        m
    };
    let leasequery = |xid| {
        let mut m = Message {
            xid,
            ciaddr: Ipv4Addr::new(10, 0, 0, 10),
            giaddr: relay(53),
            ..Message::default()
        };
        m.options
            .push(DhcpOption::MessageType(MessageType::LeaseQuery));
        m
    };
    // As the first message.
    for m in [discover(0x0bad_0001), leasequery(0x0bad_0002)] {
        let mark = server.log_mark();
        let mut c = Conn::connect(cfg.tcp);
        c.send(&m);
        let got = c.expect_closed(5 * SECOND);
        assert!(got.is_empty(), "no answer expected, got {got:?}");
        assert_refusal_logged(&server, mark, &c, "not allowed");
    }
    // On a running active query.
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x0bad_0003, None, prl::BINDINGS));
    server.wait_for_log_since(mark, "active query started", 5 * SECOND);
    c.send(&discover(0x0bad_0004));
    let got = c.expect_closed(5 * SECOND);
    assert!(got.is_empty(), "no answer expected, got {got:?}");
    assert_refusal_logged(&server, mark, &c, "message type not allowed");
}

/// RFC 7724 §8.1: Active Leasequery is off unless enabled. With only Bulk
/// Leasequery on, DHCPACTIVELEASEQUERY is a type the TCP service does not
/// support: closed without an answer (§8.1.1). Bulk still works.
#[test]
fn active_query_when_disabled() {
    let mut cfg = Config::new(relay(53));
    cfg.active = None;
    let mut server = cfg.spawn();
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0xd15a_0001, None, prl::BINDINGS));
    let got = c.expect_closed(5 * SECOND);
    assert!(got.is_empty(), "no answer expected, got {got:?}");
    assert_refusal_logged(&server, mark, &c, "DHCPACTIVELEASEQUERY");

    let mut c = Conn::connect(cfg.tcp);
    c.send(&bulk_all_query(0xd15a_0002, None, None));
    let deadline = Instant::now() + 30 * SECOND;
    loop {
        let m = c
            .recv(deadline.saturating_duration_since(Instant::now()))
            .expect("bulk replies");
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            assert!(
                leaseline_requestor::active::status_of(&m).is_none(),
                "bulk DONE without error: {m:?}"
            );
            break;
        }
    }
    server.assert_running();
}

/// RFC 7724 §8.1: in insecure mode DHCPTLS is answered with DHCPTLS +
/// TLSConnectionRefused, and the connection is closed.
#[test]
fn dhcptls_in_insecure_mode_is_refused() {
    let cfg = Config::new(relay(53));
    let server = cfg.spawn();
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    c.send(&tls_request(0x7150_0001));
    let got = c.expect_closed(5 * SECOND);
    assert_eq!(got.len(), 1, "one DHCPTLS answer, then close: {got:?}");
    let m = &got[0];
    assert_eq!(m.message_type(), Some(MessageType::Tls), "{m:?}");
    assert_eq!(m.xid, 0x7150_0001);
    assert_eq!(classify(m), ActiveEvent::TlsRefused, "{m:?}");
    assert_refusal_logged(&server, mark, &c, "TLSConnectionRefused");

    // `leaseline watch --tls` reports the refusal (exit 2) and never
    // falls back to plaintext: no active query reaches the server.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["certs", "init"])
        .arg(dir.path())
        .output()
        .expect("leaseline certs init");
    assert!(out.status.success(), "certs init: {out:?}");
    let mark = server.log_mark();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (ca, cert, key) = (p("ca.pem"), p("requestor.pem"), p("requestor-key.pem"));
    let mut watch = spawn_watch(
        cfg.tcp,
        &[
            "--tls",
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "--no-reconnect",
        ],
        None,
    );
    let ev = watch.wait_event(0, "refused", 10 * SECOND);
    assert_eq!(ev["status"], "TLSConnectionRefused", "{ev}");
    let st = watch.wait_exit(10 * SECOND);
    assert_eq!(st.code(), Some(3), "watch exit status on a refusal");
    server.wait_for_log_since(mark, "TLSConnectionRefused", 5 * SECOND);
    assert!(
        server.logs()[mark..]
            .iter()
            .all(|l| !l.contains("active query started")),
        "a plaintext active query followed the refused DHCPTLS"
    );
}

/// RFC 7724 §7.4: at shutdown, LEASEQUERYSTATUS/QueryTerminated with a
/// base-time is the last message, then the connection is closed. `leaseline
/// watch` reports it and (with --no-reconnect) exits 3.
#[test]
fn sigterm_sends_query_terminated_then_closes() {
    let cfg = Config::new(relay(51));
    let mut server = cfg.spawn();
    let mark = server.log_mark();
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x7e70_0001, None, prl::BINDINGS));
    let mut watch = spawn_watch(cfg.tcp, &["--no-reconnect"], None);
    watch.wait_event(0, "connected", 10 * SECOND);
    leaseline_test_support::wait_until("two active queries", 10 * SECOND, || {
        (server.logs()[mark..]
            .iter()
            .filter(|l| l.contains("active query started"))
            .count()
            >= 2)
            .then_some(())
    });
    // One change, seen by both: the sessions are live.
    let mut relay_client = RelayClient::bind(relay(51), cfg.dhcp).expect("bind the relay");
    let lease = relay_client
        .dora(&TestClient::new(0x51_0001))
        .expect("DORA");
    match c.recv_event(5 * SECOND) {
        Ok((_, ActiveEvent::Update(r))) => assert_eq!(r.ip, lease.ip),
        other => panic!("expected the update of {}, got {other:?}", lease.ip),
    }
    watch.wait_for(0, "the update", 5 * SECOND, |v| {
        v["event"] == "update" && v["ip"] == lease.ip.to_string()
    });

    let status = server.terminate();
    assert!(status.success(), "server exit status {status:?}");
    let (m, t) = c.expect_status(StatusCode::QueryTerminated, 5 * SECOND);
    assert_eq!(m.xid, 0x7e70_0001);
    assert_now(t, "QueryTerminated");
    let after = c.expect_closed(5 * SECOND);
    assert!(
        after.is_empty(),
        "QueryTerminated must be the last message: {after:?}"
    );

    let ev = watch.wait_event(0, "query-terminated", 5 * SECOND);
    assert!(ev["base_time"].as_u64().is_some(), "{ev}");
    let st = watch.wait_exit(10 * SECOND);
    assert_eq!(st.code(), Some(4), "watch --no-reconnect exit status");
}

/// RFC 7724 §8.1, §8.3: over the per-requestor limit, the active query is
/// answered with NotAllowed and the connection closed; the first query
/// keeps running, and a slot freed is available again.
#[test]
fn active_queries_over_the_per_requestor_limit() {
    let cfg = Config::new(relay(52)).active("max_connections_per_requestor = 1\nidle_timeout = 1");
    let server = cfg.spawn();
    let mark = server.log_mark();
    let mut first = Conn::connect(cfg.tcp);
    first.send(&active_query(0x11_0001, None, prl::BINDINGS));
    server.wait_for_log_since(mark, "active query started", 5 * SECOND);

    let mut second = Conn::connect(cfg.tcp);
    second.send(&active_query(0x11_0002, None, prl::BINDINGS));
    let got = second.expect_closed(5 * SECOND);
    assert_eq!(got.len(), 1, "one status, then close: {got:?}");
    assert_eq!(got[0].xid, 0x11_0002);
    assert!(
        matches!(
            classify(&got[0]),
            ActiveEvent::Status {
                code: StatusCode::NotAllowed,
                base_time: Some(_),
                ..
            }
        ),
        "{got:?}"
    );
    assert_refusal_logged(&server, mark, &second, "over the connection limit");
    first.expect_status(StatusCode::ConnectionActive, 5 * SECOND);

    drop(first);
    let mut third = Conn::connect(cfg.tcp);
    leaseline_test_support::wait_until("the slot to be free again", 5 * SECOND, || {
        server
            .logs_containing(&["active query ended", "RequestorClosed"])
            .first()
            .cloned()
    });
    third.send(&active_query(0x11_0003, None, prl::BINDINGS));
    third.expect_status(StatusCode::ConnectionActive, 5 * SECOND);
}
