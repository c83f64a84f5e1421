#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Two and three `leaseline serve` instances on one PostgreSQL database
//! (issue 17), all churned at once, each by a perfdhcp (DORAs, renewals,
//! releases) and by a closed-loop relay of the project's own (test-support's
//! `Fleet`: DORAs, renewals, releases, as fast as the servers answer), over
//! one pool smaller than their clients, so that they compete for addresses:
//!
//! 1. no address is bound to two clients, on the wire (every DHCP message
//!    to any instance is captured) or in the database, and each client's
//!    last word on the wire (its last ACK, or a RELEASE after it) is in the
//!    database; no closed-loop client's renewal was refused (a lost lease);
//! 2. a `leaseline watch` on instance A ends equal to the database: it saw
//!    every change made through the others too, and each binding last
//!    changed through another instance carries data-source REMOTE
//!    (RFC 6926 §6.2.8), those changed through A do not;
//! 3. a Bulk Leasequery to A returns the others' bindings.
//!
//! The servers reach PostgreSQL over its unix socket from the test's
//! network namespace (perfdhcp's `-l` address lives there).

use crate::active_support;
use crate::crash_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use active_support::{
    diff_with_store, last_seen, show_diff, spawn_watch, wait_equal_to, Config, WatchProcess, BIN,
};
use crash_support::assert_wire_matches_store;
use leaseline_store::LeaseStore;
use leaseline_test_support::{
    open_pg_store, pg_database, read_dhcp_capture, require_root, require_tool, Capture, Fleet,
    FleetConfig, Netns, Perfdhcp,
};

const SECOND: Duration = Duration::from_secs(1);
/// perfdhcp's clients per instance, and the closed-loop relay's.
const PERF_CLIENTS: u32 = 250;
const FLEET_CLIENTS: u32 = 40;

/// Instance `i`'s DHCP port (on 127.0.0.1 in the namespace); its
/// leasequery listener is on this + 9000.
fn port(i: usize) -> u16 {
    1067 + i as u16
}

/// The relay addresses of instance `i`'s perfdhcp and closed-loop relay.
fn perf_relay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 84 + i as u8)
}

fn fleet_relay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 94 + i as u8)
}

/// The watcher's last update per address, as JSON.
fn last_updates(watch: &WatchProcess) -> HashMap<Ipv4Addr, serde_json::Value> {
    let mut last = HashMap::new();
    for v in watch.events() {
        if v["event"] != "update" {
            continue;
        }
        if let Some(ip) = v["ip"].as_str().and_then(|s| s.parse().ok()) {
            last.insert(ip, v);
        }
    }
    last
}

#[test]
fn two_instances_share_one_database_without_double_allocation() {
    instances_share_one_database(2, "ll-inst2");
}

#[test]
fn three_instances_share_one_database_without_double_allocation() {
    instances_share_one_database(3, "ll-inst3");
}

fn instances_share_one_database(n: usize, netns: &str) {
    require_root();
    require_tool("perfdhcp");
    require_tool("dumpcap");
    require_tool("tshark");
    let db = pg_database();
    let ns = Netns::new(netns);
    let relays: Vec<Ipv4Addr> = (0..n)
        .flat_map(|i| [perf_relay(i), fleet_relay(i)])
        .collect();
    for relay in &relays {
        ns.ip(&["addr", "add", &format!("{relay}/8"), "dev", "lo"]);
    }
    let store = format!("backend = \"postgres\"\nurl = \"{}\"\n", db.socket_url);
    // 150 addresses per instance for its 250 + 40 clients: the instances'
    // shares run out and they compete for the rest, and released addresses
    // change hands.
    let last = u32::from(Ipv4Addr::new(10, 0, 0, 10)) + 150 * n as u32 - 1;
    let configs: Vec<Config> = (0..n)
        .map(|i| {
            let mut c = Config::new(perf_relay(i));
            c.relays = relays.clone();
            c.dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port(i)));
            c.tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port(i) + 9000));
            c.pool = format!("10.0.0.10-{}", Ipv4Addr::from(last));
            c.store = store.clone();
            c.udp_leasequery = true;
            c
        })
        .collect();
    let mut servers: Vec<_> = configs.iter().map(|c| c.spawn_in(&ns)).collect();
    // Each sees the others live and takes its share of the pool.
    for s in &servers {
        s.wait_for_log(&format!("of={n}"), 20 * SECOND);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("dhcp.pcapng");
    let filter = (0..n)
        .map(|i| format!("udp port {}", port(i)))
        .collect::<Vec<_>>()
        .join(" or ");
    let capture = Capture::start("lo", &filter, &pcap, Some(&ns));
    let watch = spawn_watch(configs[0].tcp, &[], Some(&ns));
    watch.wait_event(0, "connected", 10 * SECOND);

    let mut perfs: Vec<_> = (0..n)
        .map(|i| {
            Perfdhcp::new(Ipv4Addr::LOCALHOST)
                .netns(&ns)
                .remote_port(port(i))
                .local(perf_relay(i))
                .rate(100)
                .extra(&["-f", "10", "-F", "20"])
                .clients(PERF_CLIENTS)
                .drop_time(2.0)
                .report_interval(1)
                .base_mac(&format!("02:00:{:02x}:00:00:00", 0x84 + i))
                .seed(84 + i as u32)
                .spawn()
        })
        .collect();
    // Each relay sends to its own instance first, to the others when it
    // does not answer (a full share: no OFFER).
    let fleets: Vec<_> = (0..n)
        .map(|i| {
            let mut order: Vec<usize> = (0..n).collect();
            order.rotate_left(i);
            Fleet::new(
                FleetConfig {
                    giaddr: fleet_relay(i),
                    servers: order.iter().map(|&j| configs[j].dhcp).collect(),
                    first_client: 0x9400_0000 + 0x1_0000 * i as u32,
                    clients: FLEET_CLIENTS,
                    window: 4,
                    timeout: SECOND,
                    seed: 94 + i as u64,
                },
                Some(&ns),
            )
            .churn_in_background()
        })
        .collect();
    let acks = |p: &leaseline_test_support::PerfProgress| p.acks_received;
    for (i, perf) in perfs.iter_mut().enumerate() {
        perf.wait_progress(
            &format!("600 ACKs through instance {i}"),
            60 * SECOND,
            |p| acks(p) >= 600,
        );
    }
    for f in &fleets {
        f.progress().wait_acks_from(0, 300, 60 * SECOND);
    }
    let fleets: Vec<Fleet> = fleets.into_iter().map(|f| f.stop()).collect();
    let reports: Vec<_> = perfs
        .into_iter()
        .map(|p| p.interrupt(30 * SECOND))
        .collect();
    let perf_acked: u64 = reports.iter().map(|r| r.ra_stats().received).sum();
    let fleet_acked: u64 = fleets.iter().map(|f| f.stats.acks).sum();
    for (i, f) in fleets.iter().enumerate() {
        assert!(
            f.stats.problems.is_empty(),
            "closed-loop relay of instance {i}: {:#?}",
            f.stats
        );
    }
    // Each server handles its socket's datagrams in order: once it answers
    // a leasequery sent now, it has handled (and submitted the commits of)
    // everything the drivers sent before they stopped.
    for cfg in &configs {
        let out = ns
            .command(BIN)
            .args([
                "query",
                "--server",
                &cfg.dhcp.to_string(),
                "--ip",
                "10.0.0.10",
            ])
            .output()
            .expect("run leaseline query");
        assert!(
            !String::from_utf8_lossy(&out.stdout).is_empty(),
            "leaseline query to {}: {}",
            cfg.dhcp,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // 2. The watcher on A ends equal to the database.
    let store = open_pg_store(&db.url, &servers[0].instance_id());
    let rows = wait_equal_to(|| store.load_all().expect("load_all"), &watch, 30 * SECOND);
    let last = last_updates(&watch);
    let mut through = [0usize; 2];
    for r in &rows {
        let remote = r.data_source & 1 == 1;
        through[usize::from(remote)] += 1;
        let seen = last[&r.ip]["data_source"].as_u64().unwrap_or(0) & 1 == 1;
        assert_eq!(
            seen,
            remote,
            "{}: last changed through {}, the watcher on A saw data-source {:?}",
            r.ip,
            if remote { "another instance" } else { "A" },
            last[&r.ip]["data_source"]
        );
    }
    assert!(
        through[0] > 0 && through[1] > 0,
        "bindings last changed through A and through the others: {through:?}"
    );

    // 3. A Bulk Leasequery to A returns the others' bindings (every stored one).
    let out = ns
        .command(BIN)
        .args([
            "bulk",
            "--server",
            &configs[0].tcp.to_string(),
            "--all",
            "--json",
            "-q",
        ])
        .output()
        .expect("run leaseline bulk");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bulk: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .map(|v| {
            (
                v["ip"].as_str().unwrap_or("").to_owned(),
                v["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for r in &rows {
        assert_eq!(
            bulk.get(&r.ip.to_string()).map(String::as_str),
            Some(r.state.name()),
            "bulk to A for {}",
            r.ip
        );
    }

    // 1. The wire and the database: one client per address, every ACK
    // kept. The servers stop first (every commit done, every reply sent),
    // then the capture.
    for (i, s) in servers.iter_mut().enumerate() {
        let status = s.terminate();
        assert!(status.success(), "instance {i} exit status {status:?}");
    }
    let rows = store.load_all().expect("load_all");
    let diff = diff_with_store(&rows, &last_seen(&watch));
    assert!(diff.is_empty(), "after shutdown: {}", show_diff(&diff));
    let wire = read_dhcp_capture(&capture.stop());
    let ledger = assert_wire_matches_store(&wire, perf_acked + fleet_acked, &rows);
    for (i, f) in fleets.iter().enumerate() {
        eprintln!("closed-loop relay of instance {i}: {:?}", f.stats);
    }
    eprintln!(
        "{n} instances: {} ACKs on the wire ({} from perfdhcp, {} from the closed-loop relays; \
         {} NAKs, {} addresses passed on after a release), \
         {} rows: {} last changed through A, {} through the others",
        ledger.acks,
        perf_acked,
        fleet_acked,
        ledger.naks,
        ledger.handovers,
        rows.len(),
        through[0],
        through[1]
    );
}
