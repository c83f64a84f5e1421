#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Active Leasequery catch-up (RFC 7724 §7.4.1) against `leaseline serve`:
//! a query-start-time inside the history brings every address changed at
//! or after it, then CatchUpComplete, with live changes interleaved; one
//! outside the history gets DataMissing at once, and live updates follow.
//!
//! Relay addresses (giaddr): `loopback_relay_for` (test-support).

use crate::active_support;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use active_support::*;
use leaseline_test_support::{
    load_bindings, unix_now, wait_for_binding, DhcpState, Lease, RelayClient, TestClient,
};
use leaseline_wire::StatusCode;

const SECOND: Duration = Duration::from_secs(1);

/// This module's relay number `n` (an address no other test of the binary has).
fn relay(n: u8) -> Ipv4Addr {
    leaseline_test_support::loopback_relay_for(module_path!(), n.into())
}

#[test]
fn catch_up_inside_history_covers_every_change_since() {
    let cfg = Config::new(relay(54));
    let server = cfg.spawn();
    let mut rc = RelayClient::bind(relay(54), cfg.dhcp).expect("bind the relay");
    let dora = |rc: &mut RelayClient, n: u32| -> (TestClient, Lease) {
        let c = TestClient::new(n);
        let l = rc
            .dora(&c)
            .unwrap_or_else(|e| panic!("DORA of client {n:#x}: {e}"));
        (c, l)
    };

    // Phase A: every change ACKed (so committed and published) before `since`.
    let a: Vec<(TestClient, Lease)> = (0..20).map(|i| dora(&mut rc, 0x54_0000 + i)).collect();
    let since = next_second_after(unix_now());

    // Phase B, at or after `since`: new leases, releases, a decline and
    // renewals of phase-A leases.
    let b: Vec<(TestClient, Lease)> = (0..20).map(|i| dora(&mut rc, 0x54_1000 + i)).collect();
    for (c, l) in &a[0..5] {
        rc.release(c, l.ip, l.server_id).expect("release");
    }
    let (dc, dl) = &a[5];
    rc.decline(dc, dl.ip, dl.server_id).expect("decline");
    for (c, l) in &a[6..9] {
        let again = rc.dora(c).expect("renewing DORA");
        assert_eq!(again.ip, l.ip, "a client keeps its address");
    }
    // Releases and declines have no reply: wait until they are stored.
    let db = server.db_path();
    for (_, l) in &a[0..5] {
        wait_for_binding(&db, l.ip, 10 * SECOND, |b| b.state == DhcpState::Released);
    }
    wait_for_binding(&db, dl.ip, 10 * SECOND, |b| b.state == DhcpState::Abandoned);

    let changed: HashSet<Ipv4Addr> = b.iter().chain(&a[0..9]).map(|(_, l)| l.ip).collect();
    let unchanged: HashSet<Ipv4Addr> = a[9..].iter().map(|(_, l)| l.ip).collect();

    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0xca7c_0001, Some(since), prl::BINDINGS));
    // A live change while catching up.
    let (_, live) = dora(&mut rc, 0x54_2000);

    let mut before: HashMap<Ipv4Addr, Seen> = HashMap::new();
    let mut first = true;
    let complete_at = loop {
        let (m, ev) = c.recv_event(10 * SECOND).expect("catch-up message");
        assert_eq!(m.xid, 0xca7c_0001);
        match ev {
            ActiveEvent::Update(r) => {
                assert!(
                    r.base_time.is_some(),
                    "every update carries base-time: {r:?}"
                );
                if first {
                    assert!(r.server_id.is_some(), "server-id in the first reply: {r:?}");
                    first = false;
                }
                before.insert(r.ip, Seen::from_record(&r));
            }
            ActiveEvent::Status {
                code: StatusCode::CatchUpComplete,
                base_time,
                ..
            } => break base_time.expect("CatchUpComplete carries base-time"),
            other => panic!("unexpected during catch-up: {other:?}"),
        }
    };
    assert!(
        complete_at >= since,
        "CatchUpComplete base-time {complete_at} < {since}"
    );

    let missing: Vec<_> = changed
        .iter()
        .filter(|ip| !before.contains_key(ip))
        .collect();
    assert!(
        missing.is_empty(),
        "addresses changed since {since} not sent before CatchUpComplete: {missing:?}"
    );
    let extra: Vec<_> = unchanged
        .iter()
        .filter(|ip| before.contains_key(ip))
        .collect();
    assert!(
        extra.is_empty(),
        "addresses last changed before {since} sent in the catch-up: {extra:?}"
    );

    // The live change: before CatchUpComplete or after it.
    let mut seen = before.clone();
    if !seen.contains_key(&live.ip) {
        match c.recv_event(10 * SECOND) {
            Ok((_, ActiveEvent::Update(r))) => {
                assert_eq!(r.ip, live.ip);
                seen.insert(r.ip, Seen::from_record(&r));
            }
            other => panic!("expected the live update of {}, got {other:?}", live.ip),
        }
    }

    // What was sent is the state in the store.
    let store: Vec<_> = load_bindings(&db)
        .into_iter()
        .filter(|b| seen.contains_key(&b.ip))
        .collect();
    let diff = diff_with_store(&store, &seen);
    assert!(diff.is_empty(), "{}", show_diff(&diff));
    let states: HashMap<Ipv4Addr, &str> =
        seen.iter().map(|(ip, s)| (*ip, s.state.as_str())).collect();
    assert_eq!(states[&a[0].1.ip], "RELEASED");
    assert_eq!(states[&dl.ip], "ABANDONED");
    assert_eq!(states[&b[0].1.ip], "ACTIVE");

    // `leaseline watch --since` reports the same catch-up.
    let watch = spawn_watch(
        cfg.tcp,
        &["--since", &since.to_string(), "--no-reconnect"],
        None,
    );
    watch.wait_event(0, "catch-up-complete", 10 * SECOND);
    let view = last_seen(&watch);
    let missing: Vec<_> = changed.iter().filter(|ip| !view.contains_key(ip)).collect();
    assert!(missing.is_empty(), "watch --since missed {missing:?}");
    assert!(
        view.contains_key(&live.ip),
        "watch --since missed the live change"
    );
}

#[test]
fn catch_up_outside_history_is_data_missing_at_once() {
    let mut cfg = Config::new(relay(55));
    // Five changes of history: older ones are forgotten.
    cfg.history_max_count = 5;
    let _server = cfg.spawn();
    let mut rc = RelayClient::bind(relay(55), cfg.dhcp).expect("bind the relay");

    let before_start = unix_now() - 3600;
    let t0 = unix_now();
    for i in 0..10 {
        rc.dora(&TestClient::new(0x55_0000 + i)).expect("DORA");
    }

    // Before the server started, and before the oldest change kept.
    for (xid, since) in [(0xda7a_0001u32, before_start), (0xda7a_0002, t0)] {
        let mut c = Conn::connect(cfg.tcp);
        let asked = Instant::now();
        c.send(&active_query(xid, Some(since), prl::BINDINGS));
        let (m, base) = c.expect_status(StatusCode::DataMissing, 5 * SECOND);
        let took = asked.elapsed();
        assert!(
            took < SECOND,
            "DataMissing must come at once (RFC 7724 §7.4.1), took {took:?}"
        );
        assert_eq!(m.xid, xid);
        let now = unix_now();
        assert!(
            base + 2 >= now && base <= now,
            "DataMissing base-time {base} is not now ({now})"
        );
        // Live updates follow on the same connection.
        let l = rc
            .dora(&TestClient::new(0x55_1000 + xid % 16))
            .expect("DORA");
        match c.recv_event(5 * SECOND) {
            Ok((_, ActiveEvent::Update(r))) => assert_eq!(r.ip, l.ip),
            other => panic!("expected the live update of {}, got {other:?}", l.ip),
        }
    }

    // `leaseline watch --since` reports the gap with its bounds (for the
    // bulk query that fills it) and keeps running.
    let watch = spawn_watch(
        cfg.tcp,
        &["--since", &t0.to_string(), "--no-reconnect"],
        None,
    );
    let ev = watch.wait_event(0, "data-missing", 10 * SECOND);
    assert_eq!(ev["from"], t0, "{ev}");
    assert!(
        ev["until"].as_u64().is_some_and(|u| u >= u64::from(t0)),
        "{ev}"
    );
    let l = rc.dora(&TestClient::new(0x55_2000)).expect("DORA");
    watch.wait_for(0, "the live update", 5 * SECOND, |v| {
        v["event"] == "update" && v["ip"] == l.ip.to_string()
    });
}
