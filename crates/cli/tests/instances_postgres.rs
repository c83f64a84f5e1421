//! Two `leaseline serve` instances on one PostgreSQL database (issue 17),
//! both churned at once by a perfdhcp each (DORAs, renewals, releases) over
//! one pool smaller than their clients, so that they compete for addresses:
//!
//! 1. no address is bound to two clients, on the wire (every DHCP message
//!    to either instance is captured) or in the database, and each client's
//!    last word on the wire (its last ACK, or a RELEASE after it) is in the
//!    database;
//! 2. a `leaseline watch` on instance A ends equal to the database: it saw
//!    every change made through B too, and each binding last changed
//!    through B carries data-source REMOTE (RFC 6926 §6.2.8), those changed
//!    through A do not;
//! 3. a Bulk Leasequery to A returns B's bindings.
//!
//! The servers reach PostgreSQL over its unix socket from the test's
//! network namespace (perfdhcp's `-l` address lives there).

mod active_support;
mod crash_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use active_support::{diff_with_store, show_diff, Config, Watch, BIN};
use crash_support::assert_wire_matches_store;
use leaseline_store::{HistoryLimits, LeaseStore, PostgresOptions, PostgresStore};
use leaseline_test_support::{
    pg_database, read_dhcp_capture, require_root, require_tool, Binding, Capture, Netns, Perfdhcp,
    ServerProcess,
};

const RELAY_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 84);
const RELAY_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 85);
const PORT_A: u16 = 1067;
const PORT_B: u16 = 1068;
const SECOND: Duration = Duration::from_secs(1);

/// The bindings as instance `me` reads them (REMOTE: changed by another).
fn bindings_seen_by(url: &str, me: &str) -> Vec<Binding> {
    let store = PostgresStore::open(
        PostgresOptions {
            url: url.to_owned(),
            history: HistoryLimits {
                max_age: 3600,
                max_count: 1_000_000,
            },
            max_batch: 64,
            instance_id: me.to_owned(),
            readers: 1,
        },
        0,
    )
    .expect("open the test database");
    store.load_all().expect("load_all")
}

fn instance_id(server: &ServerProcess) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    format!("{}:{}", host.trim(), server.pid().expect("running"))
}

/// The watcher's last update per address, as JSON.
fn last_updates(watch: &Watch) -> HashMap<Ipv4Addr, serde_json::Value> {
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
    require_root();
    require_tool("perfdhcp");
    require_tool("dumpcap");
    require_tool("tshark");
    let db = pg_database();
    let ns = Netns::new("ll-inst");
    for relay in [RELAY_A, RELAY_B] {
        ns.ip(&["addr", "add", &format!("{relay}/8"), "dev", "lo"]);
    }
    let store = format!("backend = \"postgres\"\nurl = \"{}\"\n", db.socket_url);
    // 300 addresses for 2 × 250 clients: the instances' shares run out and
    // they compete for the rest, and released addresses change hands.
    let config = |port: u16| {
        let mut c = Config::new(RELAY_A);
        c.relays = vec![RELAY_A, RELAY_B];
        c.dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        c.tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port + 9000));
        c.pool = "10.0.0.10-10.0.1.53".into();
        c.store = store.clone();
        c.udp_leasequery = true;
        c
    };
    let (cfg_a, cfg_b) = (config(PORT_A), config(PORT_B));
    let mut a = cfg_a.spawn_in(&ns);
    let mut b = cfg_b.spawn_in(&ns);
    // Each sees the other live and takes its share of the pool.
    a.wait_for_log("of=2", 20 * SECOND);
    b.wait_for_log("of=2", 20 * SECOND);

    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("dhcp.pcapng");
    let filter = format!("udp port {PORT_A} or udp port {PORT_B}");
    let capture = Capture::start("lo", &filter, &pcap, Some(&ns));
    let watch = Watch::spawn(cfg_a.tcp, &[], Some(&ns));
    watch.wait_event(0, "connected", 10 * SECOND);

    let churn = |port: u16, relay: Ipv4Addr, mac: &str, seed: u32| {
        Perfdhcp::new(Ipv4Addr::LOCALHOST)
            .netns(&ns)
            .remote_port(port)
            .local(relay)
            .rate(100)
            .extra(&["-f", "10", "-F", "20"])
            .clients(250)
            .drop_time(2.0)
            .report_interval(1)
            .base_mac(mac)
            .seed(seed)
            .spawn()
    };
    let mut perf_a = churn(PORT_A, RELAY_A, "02:00:84:00:00:00", 84);
    let mut perf_b = churn(PORT_B, RELAY_B, "02:00:85:00:00:00", 85);
    let acks = |p: &leaseline_test_support::PerfProgress| p.acks_received;
    perf_a.wait_progress("600 ACKs through A", 60 * SECOND, |p| acks(p) >= 600);
    perf_b.wait_progress("600 ACKs through B", 60 * SECOND, |p| acks(p) >= 600);
    let (report_a, report_b) = (perf_a.interrupt(30 * SECOND), perf_b.interrupt(30 * SECOND));
    let acked = report_a.ra_stats().received + report_b.ra_stats().received;
    // Each server handles its socket's datagrams in order: once it answers
    // a leasequery sent now, it has handled (and submitted the commits of)
    // everything perfdhcp sent before exiting.
    for cfg in [&cfg_a, &cfg_b] {
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
    let me_a = instance_id(&a);
    let deadline = std::time::Instant::now() + 30 * SECOND;
    let rows = loop {
        let rows = bindings_seen_by(&db.url, &me_a);
        let diff = diff_with_store(&rows, &watch.view());
        if diff.is_empty() {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher on A differs from the database: {}",
            show_diff(&diff)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
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
            if remote { "B" } else { "A" },
            last[&r.ip]["data_source"]
        );
    }
    assert!(
        through[0] > 0 && through[1] > 0,
        "bindings last changed through A and B: {through:?}"
    );

    // 3. A Bulk Leasequery to A returns B's bindings (every stored one).
    let out = ns
        .command(BIN)
        .args([
            "bulk",
            "--server",
            &cfg_a.tcp.to_string(),
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
    // kept. Both servers stop first (every commit done, every reply sent),
    // then the capture.
    for (name, s) in [("A", &mut a), ("B", &mut b)] {
        let status = s.terminate();
        assert!(status.success(), "instance {name} exit status {status:?}");
    }
    let rows = bindings_seen_by(&db.url, &me_a);
    let diff = diff_with_store(&rows, &watch.view());
    assert!(diff.is_empty(), "after shutdown: {}", show_diff(&diff));
    let wire = read_dhcp_capture(&capture.stop());
    let ledger = assert_wire_matches_store(&wire, acked, &rows);
    eprintln!(
        "two instances: {} ACKs on the wire ({} NAKs, {} addresses passed on after a release), \
         {} rows: {} last changed through A, {} through B",
        ledger.acks,
        ledger.naks,
        ledger.handovers,
        rows.len(),
        through[0],
        through[1]
    );
}
