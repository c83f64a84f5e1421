#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline mirror` with several servers on one PostgreSQL database
//! (issue 17): it connects to the first server that answers, and when its
//! server dies (kill -9) it fails over to another instance on the same
//! database by itself, resumes there from its saved base-time, and ends
//! equal to the database with nothing missing.
//!
//! 1. `--server DEAD --server A`: nothing listens on DEAD; the mirror moves
//!    on to A, logs the move once, and follows churn through A.
//! 2. `--server A --server B`: churn through A, A killed (-9) mid-churn, B
//!    started on the same database (after A died: B loads every binding and
//!    rebuilds its history from the database); the mirror moves to B, more
//!    churn goes through B, and the replica equals B's Bulk Leasequery answer
//!    (the database), every ACKed lease in it.

use crate::mirror_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leaseline_test_support::{
    free_udp_port, mac_string, pg_database, RelayClient, ServerConfig, ServerProcess, Subnet,
    TestClient,
};
use mirror_support::{free_tcp_port, leaseline, Mirror, BIN};

const SECOND: Duration = Duration::from_secs(1);

fn config(dhcp: SocketAddr, rport: u16, relay: Ipv4Addr, lq: SocketAddr, url: &str) -> String {
    ServerConfig::new(dhcp)
        .relay_port(rport)
        .holds()
        .subnet(Subnet::new(
            "10.0.0.0/16",
            "10.0.0.10-10.0.255.250",
            &[relay],
        ))
        .allow(&["127.0.0.0/8"])
        .bulk(lq, "")
        .active(true, "idle_timeout = 1")
        .extra(&format!(
            "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nhistory_max_age = 3600\n"
        ))
        .build()
}

/// ip -> (state, mac, expiry) from JSON lines of `bulk --json` or
/// `mirror query --json`.
type View = BTreeMap<String, (String, Option<String>, Option<u64>)>;

fn view(json_lines: &str) -> View {
    json_lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["ip"].as_str().expect("ip").to_string(),
                (
                    v["state"].as_str().expect("state").to_string(),
                    v["mac"].as_str().map(str::to_string),
                    v["expiry"].as_u64(),
                ),
            )
        })
        // Never-leased addresses (AVAILABLE, no MAC) are not bindings.
        .filter(|(_, (state, mac, _))| state != "AVAILABLE" || mac.is_some())
        .collect()
}

/// What the server answers to `bulk --all` (the database's bindings).
fn server_view(lq: SocketAddr) -> View {
    let (code, out, err) =
        leaseline(&["bulk", "--server", &lq.to_string(), "--all", "--json", "-q"]);
    assert_eq!(code, 0, "bulk --all to {lq}: {err}");
    view(&out)
}

fn replica_view(m: &Mirror) -> View {
    let db = m.db.display().to_string();
    let (code, out, err) = leaseline(&["mirror", "query", "--db", &db, "--all", "--json"]);
    assert_eq!(code, 0, "mirror query --all: {err}");
    view(&out)
}

fn differences(server: &View, replica: &View) -> Vec<String> {
    let mut out = Vec::new();
    for (ip, s) in server {
        match replica.get(ip) {
            None => out.push(format!("{ip}: missing from the replica (server: {s:?})")),
            Some(r) if r != s => out.push(format!("{ip}: server {s:?}, replica {r:?}")),
            Some(_) => {}
        }
    }
    for ip in replica.keys().filter(|ip| !server.contains_key(*ip)) {
        out.push(format!("{ip}: in the replica only"));
    }
    out
}

/// Waits until the replica equals what `lq` answers; panics with the
/// differences after `timeout`.
fn wait_equal(m: &mut Mirror, lq: SocketAddr, timeout: Duration) -> View {
    let deadline = Instant::now() + timeout;
    loop {
        let s = server_view(lq);
        let diff = differences(&s, &replica_view(m));
        if diff.is_empty() {
            return s;
        }
        if Instant::now() >= deadline {
            panic!(
                "the replica still differs from {lq} after {timeout:?} ({} addresses):\n{}\n{}",
                diff.len(),
                diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
                m.all_logs()
            );
        }
        m.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Leases `n` clients from `first` through `relay`, releasing every third.
/// Returns (client, ip, released).
fn churn(relay: &mut RelayClient, first: u32, n: u32) -> Vec<(TestClient, Ipv4Addr, bool)> {
    (first..first + n)
        .map(|k| {
            let c = TestClient::new(k);
            let lease = relay.dora(&c).expect("DORA");
            let release = k % 3 == 0;
            if release {
                relay
                    .release(&c, lease.ip, lease.server_id)
                    .expect("RELEASE");
            }
            (c, lease.ip, release)
        })
        .collect()
}

/// Every ACKed lease is in `v` with its client's MAC, ACTIVE or (when the
/// client let it go) RELEASED.
fn assert_every_lease_in(v: &View, leases: &[(TestClient, Ipv4Addr, bool)]) {
    for (c, ip, released) in leases {
        let (state, mac, _) = v
            .get(&ip.to_string())
            .unwrap_or_else(|| panic!("ACKed lease {ip} missing"));
        let want = if *released { "RELEASED" } else { "ACTIVE" };
        assert_eq!(state, want, "{ip}");
        assert_eq!(mac.as_deref(), Some(mac_string(&c.chaddr).as_str()), "{ip}");
    }
}

const MIRROR_ARGS: &[&str] = &[
    "--rcv-timeout",
    "5",
    "--retry-interval",
    "1",
    "--status-interval",
    "1",
];

#[test]
fn a_dead_first_server_is_skipped() {
    let db = pg_database();
    let relay_ip = Ipv4Addr::new(127, 0, 0, 94);
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let lq = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    // Nothing listens here: connections are refused.
    let dead = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let mut a = ServerProcess::spawn(BIN, &config(dhcp, rport, relay_ip, lq, &db.url));
    let mut relay = RelayClient::bind_port(relay_ip, rport, dhcp).expect("bind relay");
    let before = churn(&mut relay, 0x9400, 20);

    let dir = tempfile::tempdir().expect("tempdir");
    let a_arg = lq.to_string();
    let mut extra = vec!["--server", a_arg.as_str()];
    extra.extend_from_slice(MIRROR_ARGS);
    let mut mirror = Mirror::new(dir.path(), dead, &extra, None);
    mirror.start();
    let moved = mirror.wait_for_log(&format!("trying {lq} next"), 10 * SECOND);
    assert!(
        moved.contains(&format!("leaving {dead}")) && moved.contains("refused"),
        "the move names the server left and why: {moved}"
    );
    mirror.wait_live(20 * SECOND);
    let after = churn(&mut relay, 0x9500, 20);
    let v = wait_equal(&mut mirror, lq, 20 * SECOND);
    assert_every_lease_in(&v, &before);
    assert_every_lease_in(&v, &after);
    let log = mirror.log(mirror.run);
    assert_eq!(
        log.matches("trying").count(),
        1,
        "one move, logged once:\n{log}"
    );
    a.assert_running();
}

#[test]
fn the_mirror_fails_over_to_another_instance_and_ends_equal_to_the_database() {
    let db = pg_database();
    let relay_ip = Ipv4Addr::new(127, 0, 0, 95);
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let lq_a = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let lq_b = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let mut a = ServerProcess::spawn(BIN, &config(dhcp, rport, relay_ip, lq_a, &db.url));
    let mut relay = RelayClient::bind_port(relay_ip, rport, dhcp).expect("bind relay");
    let mut leases = churn(&mut relay, 0x9600, 30);

    let dir = tempfile::tempdir().expect("tempdir");
    let b_arg = lq_b.to_string();
    let mut extra = vec!["--server", b_arg.as_str()];
    extra.extend_from_slice(MIRROR_ARGS);
    let mut mirror = Mirror::new(dir.path(), lq_a, &extra, None);
    mirror.start();
    mirror.wait_live(20 * SECOND);
    wait_equal(&mut mirror, lq_a, 20 * SECOND);

    // Churn through A in the background; A is killed in the middle of it.
    let (tx, rx) = mpsc::channel();
    let driver = std::thread::spawn(move || {
        relay.timeout = Duration::from_millis(300);
        let mut done = Vec::new();
        for k in 0x9700u32.. {
            let c = TestClient::new(k);
            match relay.dora(&c) {
                Ok(lease) => {
                    let release = k % 3 == 0;
                    if release {
                        let _ = relay.release(&c, lease.ip, lease.server_id);
                    }
                    done.push((c, lease.ip, release));
                    let _ = tx.send(done.len());
                }
                // A is gone.
                Err(_) => break,
            }
        }
        (relay, done)
    });
    // Kill once the driver is well into its churn.
    while rx.recv_timeout(10 * SECOND).expect("churn through A") < 25 {}
    a.kill9();
    let (mut relay, during) = driver.join().expect("driver");
    assert!(
        during.len() >= 25,
        "{} leases during the churn",
        during.len()
    );
    leases.extend(during);
    relay.timeout = Duration::from_secs(3);

    // B on the same database, after A died.
    let mut b = ServerProcess::spawn(BIN, &config(dhcp, rport, relay_ip, lq_b, &db.url));
    let moved = mirror.wait_for_log(&format!("trying {lq_b} next"), 20 * SECOND);
    assert!(moved.contains(&format!("leaving {lq_a}")), "{moved}");
    mirror.wait_for_log(&format!("active query sent server={lq_b}"), 30 * SECOND);
    leases.extend(churn(&mut relay, 0x9800, 30));

    let v = wait_equal(&mut mirror, lq_b, 30 * SECOND);
    assert_every_lease_in(&v, &leases);
    let status = mirror.status();
    assert_eq!(status["phase"], "live", "{status}");
    b.assert_running();
    mirror.assert_running();
}
