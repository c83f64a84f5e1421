#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Active Leasequery under churn: perfdhcp (Kea) runs DORAs and releases
//! as a relay while `leaseline watch --json` follows the server. When the
//! churn stops, the last state the watcher saw for every address must be
//! the state in the store (RFC 7724 §6: intermediate states may be missed,
//! the last one never), and it stays so through QueryTerminated at shutdown.
//!
//! perfdhcp's `-l` must name an address configured on an interface, so the
//! server, perfdhcp and the watcher share the loopback of a namespace of
//! this test's own (relay address 127.0.0.1 there).

use crate::active_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use active_support::*;
use leaseline_test_support::{
    load_bindings, require_root, require_tool, DhcpState, Netns, Perfdhcp,
};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn watcher_matches_store_after_perfdhcp_churn() {
    require_root();
    require_tool("perfdhcp");
    require_tool("ip");
    let ns = Netns::new("ll-act-churn");
    let mut cfg = Config::new(Ipv4Addr::LOCALHOST);
    cfg.dhcp = "127.0.0.1:1067".parse().unwrap();
    cfg.tcp = "127.0.0.1:67".parse().unwrap();
    // 2,000 addresses for 1,000 clients: renewals, releases and re-leases
    // of the same addresses.
    cfg.pool = "10.0.0.10-10.0.7.225".into();
    let mut server = cfg.spawn_in(&ns);

    let mark = server.log_mark();
    let watch = spawn_watch(cfg.tcp, &["--no-reconnect"], Some(&ns));
    watch.wait_event(0, "connected", 10 * SECOND);
    server.wait_for_log_since(mark, "active query started", 10 * SECOND);

    let report = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(1067)
        .local(Ipv4Addr::LOCALHOST)
        .rate(1500)
        .extra(&["-F", "500"])
        .clients(1000)
        .period(6.0)
        .drop_time(2.0)
        .exit_wait(Duration::from_secs(2))
        .base_mac("02:00:0c:50:00:00")
        .run(Duration::from_secs(60));
    server.assert_running();
    let acks = report.ra_stats().received;
    eprintln!(
        "perfdhcp: {acks} ACKs, drops {:.2} %",
        100.0 * report.drop_fraction()
    );
    assert!(acks >= 3000, "too little churn: {acks} ACKs\n{report}");

    let rows = wait_converged(&server.db_path(), &watch, 30 * SECOND);
    let store = load_bindings(&server.db_path());
    let released = store
        .iter()
        .filter(|b| b.state == DhcpState::Released)
        .count();
    let updates = watch.count("update");
    eprintln!(
        "converged: {rows} bindings ({released} RELEASED), {updates} updates seen, {} distinct",
        last_seen(&watch).len()
    );
    assert!(released > 0, "perfdhcp released nothing");
    assert!(updates >= rows, "{updates} updates for {rows} bindings");

    // Shutdown: QueryTerminated; nothing changed since, so the view still
    // equals the store.
    let status = server.terminate();
    assert!(status.success(), "server exit status {status:?}");
    let ev = watch.wait_event(0, "query-terminated", 10 * SECOND);
    assert!(ev["base_time"].as_u64().is_some(), "{ev}");
    let diff = diff_with_store(&load_bindings(&server.db_path()), &last_seen(&watch));
    assert!(diff.is_empty(), "after shutdown: {}", show_diff(&diff));
}
