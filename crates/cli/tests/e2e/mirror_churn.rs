#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Acceptance: `leaseline mirror` keeps an exact replica through failures.
//!
//! perfdhcp (relay 127.0.0.70) churns the server for 36 s: new clients,
//! renewals of returning ones, and releases. Meanwhile:
//! 1. the mirror builds its replica (bulk, then active from the bulk's
//!    base-time) and goes live;
//! 2. it is killed with SIGKILL and restarted at once: it resumes from its
//!    saved base-time inside the history (catch-up, no DataMissing);
//! 3. the server is stopped (SIGTERM: QueryTerminated) and restarted: it
//!    rebuilds its history from the store, so the mirror's reconnect catches
//!    up (or, when the reconnect came after the 5-second history, gets
//!    DataMissing and fills the gap with a bulk query on a second connection);
//! 4. the mirror is killed again and kept down until its saved base-time is
//!    older than the server's 5-second history, then restarted: DataMissing
//!    and the bulk fill again.
//!
//! When the churn stops and the mirror is live, the replica must equal the
//! server's store for every address (state, MAC, client-id, expiry); every
//! difference is printed.
//!
//! perfdhcp's `-l` must be an address configured on an interface, so the
//! server, perfdhcp and the mirror run in a namespace of this test's own
//! whose loopback also carries 127.0.0.70.

use crate::mirror_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use leaseline_test_support::{
    require_root, require_tool, unix_now, Netns, Perfdhcp, ServerProcess,
};
use mirror_support::{differences, load_both, server_config, Mirror, BIN};

const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 70);
const DHCP_PORT: u16 = 1067;
const LQ_PORT: u16 = 10_670;
/// Seconds of history the server keeps for catch-up.
const HISTORY: u32 = 5;
/// Seconds of churn.
const CHURN: u32 = 36;

#[test]
fn replica_equals_server_after_kills_restarts_and_data_missing() {
    require_root();
    require_tool("perfdhcp");
    require_tool("ip");

    let ns = Netns::new("ll-mirror");
    ns.ip(&["addr", "add", &format!("{GIADDR}/8"), "dev", "lo"]);
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, DHCP_PORT));
    let lq = SocketAddr::from((Ipv4Addr::LOCALHOST, LQ_PORT));
    let mut server = ServerProcess::builder(BIN, &server_config(dhcp, &[GIADDR], lq, HISTORY, 2))
        .netns(&ns)
        .spawn();

    // 100 DORA a second over 3,000 clients (so returning clients renew) and
    // 25 releases a second, for CHURN seconds.
    let perf = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(DHCP_PORT)
        .local(GIADDR)
        .rate(100)
        .extra(&["-F", "25"])
        .clients(3000)
        .period(f64::from(CHURN))
        .drop_time(2.0)
        .base_mac("02:00:70:00:00:00")
        .spawn();
    let churn_started = Instant::now();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = Mirror::new(
        dir.path(),
        lq,
        &[
            "--rcv-timeout",
            "5",
            "--retry-interval",
            "1",
            "--status-interval",
            "1",
        ],
        Some(&ns),
    );

    // 1. A fresh replica: bulk, then active from the bulk's base-time.
    mirror.start();
    mirror.wait_live(Duration::from_secs(60));
    let log = mirror.log(1);
    assert!(log.contains("initial bulk query complete"), "{log}");
    // Catch-up from the bulk's base-time; or, when that second is older
    // than the freshly started server's history, DataMissing and a fill.
    assert!(
        log.contains("catch-up complete") || log.contains("gap filled"),
        "{log}"
    );

    // 2. SIGKILL and an immediate restart: resume inside the history.
    wait_churn(&mirror, 300);
    wait_saved_base_time(&mirror, Duration::from_secs(20));
    mirror.kill9();
    mirror.start();
    mirror.wait_for_log("catch-up complete", Duration::from_secs(30));
    mirror.wait_live(Duration::from_secs(30));
    let log = mirror.log(2);
    assert!(
        !log.contains("initial bulk query") && !log.contains("data missing"),
        "a restart inside the history resumes with catch-up only:\n{log}"
    );

    // 3. The server stops (QueryTerminated) and comes back with its history
    //    rebuilt from the store: catch-up (or DataMissing and a fill, when
    //    the reconnect came after the short history).
    wait_churn(&mirror, 300);
    let count = |m: &Mirror, needle: &str| m.log(2).matches(needle).count();
    let (caught_up, filled) = (
        count(&mirror, "catch-up complete"),
        count(&mirror, "gap filled"),
    );
    let status = server.terminate();
    assert!(status.success(), "server exit after SIGTERM: {status:?}");
    mirror.wait_for_log("the server terminated the query", Duration::from_secs(30));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&mirror, "catch-up complete") == caught_up && count(&mirror, "gap filled") == filled
    {
        assert!(
            Instant::now() < deadline,
            "no catch-up or fill after the server's restart:\n{}",
            mirror.all_logs()
        );
        mirror.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "after the server's restart: {}",
        if count(&mirror, "gap filled") == filled {
            "caught up from the rebuilt history"
        } else {
            "DataMissing and a bulk fill"
        }
    );
    mirror.wait_live(Duration::from_secs(30));

    // 4. SIGKILL, and down until the saved base-time has left the history.
    wait_churn(&mirror, 300);
    let saved = wait_saved_base_time(&mirror, Duration::from_secs(20));
    mirror.kill9();
    // The scenario needs time to pass here: the churn goes on while the
    // mirror is down, until its saved base-time is older than the history.
    while unix_now() <= saved + HISTORY + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    mirror.start();
    mirror.wait_for_log("data missing", Duration::from_secs(30));
    mirror.wait_for_log("gap filled", Duration::from_secs(60));
    mirror.wait_live(Duration::from_secs(30));

    let report = perf.wait(Duration::from_secs(u64::from(CHURN) + 60));
    let churned = churn_started.elapsed();
    eprintln!("churn lasted {churned:?}\n{report}");
    assert!(
        churned >= Duration::from_secs(30),
        "the churn must last at least 30 s"
    );
    let ra = report.ra_stats();
    assert!(ra.received >= 1500, "too little churn:\n{report}");
    server.assert_running();
    mirror.assert_running();

    // The churn has stopped and nothing expires for an hour: the server's
    // store is final. The mirror must reach it without further help.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (server_rows, replica_rows, diffs) = loop {
        let (s, r) = load_both(&server.db_path(), &mirror.db);
        let d = differences(&s, &r);
        if d.is_empty() || Instant::now() >= deadline {
            break (s, r, d);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let status = mirror.status();
    eprintln!(
        "server store: {} rows; replica: {} rows; mirror status: {status}",
        server_rows.len(),
        replica_rows.len()
    );
    assert!(
        diffs.is_empty(),
        "{} addresses differ (server / replica):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert_eq!(status["phase"], "live", "{status}");
    let states =
        |rows: &[leaseline_test_support::Binding], s| rows.iter().filter(|b| b.state == s).count();
    use leaseline_test_support::DhcpState::{Active, Released};
    assert!(
        states(&server_rows, Active) >= 1000 && states(&server_rows, Released) >= 100,
        "the churn left ACTIVE and RELEASED bindings to compare"
    );
    eprintln!(
        "{} ACTIVE and {} RELEASED bindings identical in both stores",
        states(&server_rows, Active),
        states(&server_rows, Released)
    );

    // What the mirror went through, for the record.
    for run in 1..=mirror.run {
        for l in mirror.log(run).lines().filter(|l| {
            [
                "initial bulk query complete",
                "active query sent",
                "catch-up complete",
                "data missing",
                "gap filled",
                "connection lost",
            ]
            .iter()
            .any(|k| l.contains(k))
        }) {
            eprintln!("mirror run {run}: {l}");
        }
    }

    // Events: one JSON line per change applied, each with its base-time.
    let events = mirror.events();
    assert!(events.len() >= server_rows.len(), "{} events", events.len());
    for e in &events {
        assert!(e["ip"].is_string() && e["state"].is_string(), "{e}");
        assert!(e["base_time"].as_u64().is_some_and(|t| t > 0), "{e}");
    }
}

/// Waits until the mirror has written `n` more event lines (changes it
/// applied): the churn goes on and reaches the replica. (perfdhcp's
/// periodic report is no help: with -F its counters have a third field.)
fn wait_churn(mirror: &Mirror, n: usize) {
    let from = mirror.events().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mirror.events().len() < from + n {
        if Instant::now() >= deadline {
            panic!(
                "the mirror applied fewer than {n} changes in 60 s\n{}",
                mirror.all_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the replica has a saved base-time newer than a second ago
/// (the mirror saves it at most once a second), and returns it.
fn wait_saved_base_time(mirror: &Mirror, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        let s = mirror.status();
        if let Some(t) = s["saved_base_time"].as_u64() {
            if t as u32 + 1 >= unix_now() {
                return t as u32;
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "no recent saved base-time within {timeout:?}: {s}\n{}",
                mirror.all_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
