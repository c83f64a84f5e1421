#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Crash durability (issue 8): the server is killed with SIGKILL at random
//! moments while perfdhcp churns it, five times, and restarted each time on
//! the same store. Afterwards:
//!
//! 1. every address perfdhcp saw ACKed is bound to that client: dumpcap
//!    records every DHCP message, and each client's last word on the wire
//!    (its last ACK, or a RELEASE of that address after it) must be in the
//!    store: ACTIVE for the client, or (released) ACTIVE or RELEASED for it;
//! 2. no address is bound to two clients: on the wire, no address is ACKed
//!    to a client while another holds it (ACKed, not released), and no
//!    client is ACKed a second address while it holds one (an ACK the
//!    server forgot, or a client given an old row of its own back); in the
//!    store, no client holds two ACTIVE addresses;
//! 3. a `leaseline watch --resume FILE` that runs throughout reconnects
//!    after each restart from its saved base-time and catches up (the server
//!    rebuilds its Active Leasequery history from the store at start-up:
//!    CatchUpComplete, never DataMissing); once the churn is over, the last
//!    state it printed for every address is the store's.
//!
//! Each kill comes a random time (seeded; the seed is printed, set
//! LEASELINE_CRASH_SEED to replay the schedule) after the server is serving
//! again and the watcher has caught up; the server then stays down a random
//! while, and at least until the clock has passed every base-time the
//! watcher saw (so its catch-up needs the history of the previous run).
//! perfdhcp runs DORAs for 600 clients over a 400-address pool, renews
//! (-f) and releases (-F), so released addresses pass to other clients too.
//! It runs until the fifth restart is serving, then is interrupted.
//!
//! perfdhcp's `-l` must be an address configured on an interface: the
//! server, perfdhcp, dumpcap and the watcher share the loopback of a
//! namespace of this test's own, which also carries the relay address
//! (giaddr) of this file, 127.0.0.81.

use crate::active_support;
use crate::crash_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use active_support::{
    diff_with_store, last_seen, next_second_after, show_diff, spawn_watch, wait_converged, Config,
    WatchProcess,
};
use crash_support::{first_lines, Ledger};
use leaseline_test_support::{
    assert_no_double_allocation, load_bindings, read_dhcp_capture, require_root, require_tool,
    Capture, DhcpState, Netns, Perfdhcp, XorShift,
};

const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 81);
const DHCP_PORT: u16 = 1067;
const LQ_PORT: u16 = 10_681;
const KILLS: usize = 5;
const SECOND: Duration = Duration::from_secs(1);

fn seed() -> u64 {
    match std::env::var("LEASELINE_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("LEASELINE_CRASH_SEED={s:?}: {e}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// The highest base-time in anything the watcher printed so far.
fn highest_base_time(watch: &WatchProcess) -> u32 {
    watch
        .events()
        .iter()
        .filter_map(|v| v["base_time"].as_u64())
        .max()
        .unwrap_or(0) as u32
}

#[test]
fn acked_leases_and_a_resuming_watcher_survive_five_kill9s() {
    require_root();
    require_tool("perfdhcp");
    require_tool("dumpcap");
    require_tool("tshark");
    require_tool("ip");
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash schedule seed {seed} (replay: LEASELINE_CRASH_SEED={seed})");
    let mut rng = XorShift::new(seed);

    let ns = Netns::new("ll-crash");
    ns.ip(&["addr", "add", &format!("{RELAY}/8"), "dev", "lo"]);
    let mut cfg = Config::new(RELAY);
    cfg.dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, DHCP_PORT));
    cfg.tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, LQ_PORT));
    // 400 addresses for 600 clients: once the pool's fresh addresses are
    // gone, released ones go to other clients.
    cfg.pool = "10.0.0.10-10.0.1.153".into();
    let mut server = cfg.spawn_in(&ns);

    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("dhcp.pcapng");
    let capture = Capture::start("lo", &format!("udp port {DHCP_PORT}"), &pcap, Some(&ns));

    // The watcher runs throughout; it reconnects a second after each kill.
    let resume = dir.path().join("watch.resume");
    let mark = server.log_mark();
    let watch = spawn_watch(
        cfg.tcp,
        &[
            "--resume",
            resume.to_str().expect("utf-8 path"),
            "--rcv-timeout",
            "10",
            "--retry-interval",
            "1",
        ],
        Some(&ns),
    );
    watch.wait_event(0, "connected", 10 * SECOND);
    server.wait_for_log_since(mark, "active query started", 10 * SECOND);

    // DORAs at 100/s, 10 renewals and 20 releases a second; it runs until
    // interrupted after the last restart.
    let mut perf = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(DHCP_PORT)
        .local(RELAY)
        .rate(100)
        .extra(&["-f", "10", "-F", "20"])
        .clients(600)
        .drop_time(2.0)
        .report_interval(1)
        .base_mac("02:00:81:00:00:00")
        .seed((seed % (1 << 31)) as u32)
        .spawn();
    let acks = |p: &leaseline_test_support::PerfProgress| p.acks_received;
    perf.wait_progress("100 ACKs", 30 * SECOND, |p| acks(p) >= 100);

    for kill in 1..=KILLS {
        // The random moment: the server is serving and the watcher is live.
        let delay = Duration::from_micros(rng.range(300_000, 2_500_000) as u64);
        std::thread::sleep(delay);
        let acks_before = perf.progress().map_or(0, |p| acks(&p));
        let from = watch.mark();
        let status = server.kill9();
        let down = Instant::now();
        assert!(
            !status.success(),
            "kill {kill}: the server should have died of SIGKILL: {status:?}"
        );
        // The watcher notices; everything it printed before is read.
        watch.wait_event(from, "disconnected", 10 * SECOND);
        // Down for a random while, and at least until the clock has passed
        // every base-time the watcher saw: its catch-up then needs the
        // history from before the kill, which only the store still has.
        let seen = highest_base_time(&watch);
        std::thread::sleep(Duration::from_micros(rng.range(0, 1_500_000) as u64));
        let restart_time = next_second_after(seen);
        server.restart();
        let restarted = down.elapsed();

        // The watcher resumes from its saved base-time and catches up.
        let connected = watch.wait_event(from, "connected", 30 * SECOND);
        let since = connected["since"].as_u64().unwrap_or_else(|| {
            panic!("kill {kill}: the watcher reconnected without a base-time: {connected}")
        });
        assert!(
            since < u64::from(restart_time),
            "kill {kill}: the watcher resumed from {since}, not before the restart at {restart_time}"
        );
        let after = watch
            .events()
            .iter()
            .skip(from)
            .position(|v| v == &connected)
            .map_or(from, |i| from + i + 1);
        let end = watch.wait_for(after, "the end of catch-up", 30 * SECOND, |v| {
            v["event"] == "catch-up-complete" || v["event"] == "data-missing"
        });
        assert_eq!(
            end["event"],
            "catch-up-complete",
            "kill {kill}: resuming from base-time {since} after the restart: {end}\n{}",
            watch.stderr()
        );
        let caught_up = down.elapsed();

        // perfdhcp gets ACKs again.
        let acks =
            acks(&perf.wait_progress("50 more ACKs", 30 * SECOND, |p| acks(p) >= acks_before + 50));
        eprintln!(
            "kill {kill} after {delay:?} at {acks_before} ACKs: restarted after {restarted:?} \
             (at {restart_time}), watcher caught up from {since} {:?} after the kill; {acks} ACKs",
            caught_up
        );
    }
    let report = perf.interrupt(30 * SECOND);
    server.assert_running();
    let ra = report.ra_stats();
    eprintln!(
        "perfdhcp: {} ACKs, drops {:.2} % (exit code {:?})",
        ra.received,
        100.0 * report.drop_fraction(),
        report.exit_code
    );
    assert!(ra.received >= 500, "too little churn:\n{report}");

    // The churn is over (and nothing expires for an hour): the watcher must
    // reach the store's state of every address.
    let db = server.db_path();
    wait_converged(&db, &watch, 30 * SECOND);
    for bad in ["data-missing", "refused"] {
        assert_eq!(watch.count(bad), 0, "the watcher printed `{bad}`");
    }
    let reconnects = watch
        .events()
        .iter()
        .filter(|v| v["event"] == "connected" && v["since"].is_u64())
        .count();
    assert!(reconnects >= KILLS, "{reconnects} resumed connections");

    // Shutdown: QueryTerminated. The view must still equal the store
    // (checked below, after the wire).
    let status = server.terminate();
    assert!(status.success(), "server exit status {status:?}");
    watch.wait_event(0, "query-terminated", 10 * SECOND);
    let store = load_bindings(&db);
    // The resume file holds a base-time the watcher saw after its last
    // catch-up (what a restarted watcher would resume from).
    let after_catch_up = watch
        .events()
        .iter()
        .rev()
        .find(|v| v["event"] == "catch-up-complete")
        .and_then(|v| v["base_time"].as_u64())
        .expect("a catch-up-complete with a base-time") as u32;
    let saved = leaseline_test_support::wait_until(
        "the resume file to hold the latest base-time",
        10 * SECOND,
        || {
            let t: u32 = std::fs::read_to_string(&resume).ok()?.trim().parse().ok()?;
            (t >= after_catch_up && t <= highest_base_time(&watch)).then_some(t)
        },
    );

    // The wire against the store.
    let pcap = capture.stop();
    let wire = read_dhcp_capture(&pcap);
    let ledger = Ledger::replay(&wire);
    let missing = ledger.check_store(&store);
    if !ledger.violations.is_empty() || !missing.is_empty() {
        let kept = dir.keep();
        eprintln!(
            "capture kept for inspection: {}",
            kept.join("dhcp.pcapng").display()
        );
    }
    assert!(
        ledger.acks as u64 >= ra.received,
        "{} ACKs captured, perfdhcp counted {}",
        ledger.acks,
        ra.received
    );
    assert!(
        ledger.violations.is_empty(),
        "on the wire: {}",
        first_lines(&ledger.violations, 20)
    );
    let active = assert_no_double_allocation(&store);
    assert!(
        missing.is_empty(),
        "after {KILLS} kill -9s, ACKed leases are not bound to their client: {}",
        first_lines(&missing, 20)
    );
    let diff = diff_with_store(&store, &last_seen(&watch));
    assert!(diff.is_empty(), "after shutdown: {}", show_diff(&diff));
    let released = store
        .iter()
        .filter(|b| b.state == DhcpState::Released)
        .count();
    eprintln!(
        "wire: {} ACKs ({} distinct clients, {} holding an address), {} NAKs, {} RELEASEs \
         ({} of addresses not held), {} addresses passed on after a release; store: {} rows, \
         {} ACTIVE, {released} RELEASED; watcher: {} updates, {reconnects} resumed connections, \
         resume file at {saved}; {:?} in all",
        ledger.acks,
        ledger.clients.len(),
        ledger.bound(),
        ledger.naks,
        ledger.releases,
        ledger.stray_releases,
        ledger.handovers,
        store.len(),
        active.len(),
        watch.count("update"),
        started.elapsed()
    );
    assert!(
        ledger.releases > 0 && ledger.handovers > 0,
        "the churn released nothing, or no released address went to another client"
    );
}
