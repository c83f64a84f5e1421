#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Kill -9 of an instance during churn (issue 17): two `leaseline serve`
//! instances A and B on one PostgreSQL database, each churned by a
//! closed-loop relay (test-support's `Fleet`) that sends to its own
//! instance and, when it does not answer, to the other, as a relay
//! configured with both does; a `leaseline watch --server A --server B
//! --resume FILE` follows the changes. Five rounds, killing A, B, A, B, A
//! with SIGKILL after a seeded random number of its ACKs (the seed is
//! printed; `LEASELINE_TEST_SEED=N` replays the kill moments, counted in
//! ACKs, and the relays' choices; not the machine's timing). Each round
//! checks what a user would notice:
//!
//! 1. right after the kill, every lease the dead instance ACKed (and its
//!    client has not released since) is in the database, for that client,
//!    and no client holds two addresses;
//! 2. the watcher, connected to the dead instance, moves to the survivor,
//!    resumes there from its saved base-time and, the churn stopped at
//!    the kill, ends equal to the database: what the dead one committed
//!    last and never sent it came with the catch-up (nothing lost);
//! 3. churned again, the dead one's clients are served by the survivor
//!    (their relay tries the dead one first each time), and the survivor
//!    takes the dead one's share of the pool over;
//! 4. the churn stopped, every client holding a lease renews it and the
//!    survivor ACKs each with the *same* address (the dead one's clients
//!    after getting no answer from it: RENEWING, then REBINDING);
//! 5. the dead one restarts and the two share the pool again; in the next
//!    round the restarted instance renews its clients' leases (which the
//!    survivor renewed meanwhile) with the same addresses, and after the
//!    last round it renews them once more.
//!
//! At the end both stop, and the whole capture of the run (every DHCP
//! message to either instance) is checked against the database as in the
//! SQLite crash test: no address ACKed to two clients, and every client's
//! last word on the wire (its last ACK, or a RELEASE after it) is in the
//! database.

use crate::active_support;
use crate::crash_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use active_support::{spawn_watch, wait_equal_to, Config};
use crash_support::assert_wire_matches_store;
use leaseline_store::LeaseStore;
use leaseline_test_support::{
    assert_no_double_allocation, mac_string, open_pg_store, pg_database, read_dhcp_capture,
    require_root, require_tool, Binding, Capture, DhcpState, Fleet, FleetConfig, Held, Netns,
    Renewed, TestClient, XorShift,
};

const SECOND: Duration = Duration::from_secs(1);
const ROUNDS: usize = 5;
/// Clients per instance's relay.
const CLIENTS: u32 = 120;
const SEED_ENV: &str = "LEASELINE_TEST_SEED";

/// Instance `i`'s DHCP port on 127.0.0.1 in the namespace (its leasequery
/// listener is on this + 9000), and its relay's address.
fn port(i: usize) -> u16 {
    1067 + i as u16
}

fn relay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 87 + i as u8)
}

const NAME: [&str; 2] = ["A", "B"];

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) if !s.trim().is_empty() => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={s:?}: {e}")),
        _ => {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64;
            t ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Relay `i`'s first client (`TestClient::new(first_client(i) + n)`).
fn first_client(i: usize) -> u32 {
    0x8700_0000 + 0x1_0000 * i as u32
}

#[test]
fn kill9_of_an_instance_under_churn_loses_nothing_and_its_clients_and_watcher_move_on() {
    require_root();
    require_tool("dumpcap");
    require_tool("tshark");
    let seed = seed();
    eprintln!("instances_kill9: seed {seed} (replay: {SEED_ENV}={seed})");
    let mut rng = XorShift::new(seed);
    let started = Instant::now();

    let db = pg_database();
    let ns = Netns::new("ll-kill9pg");
    let store_lines = format!("backend = \"postgres\"\nurl = \"{}\"\n", db.socket_url);
    // 220 addresses for 240 clients: released addresses change hands, and
    // the instances compete for them.
    let configs: Vec<Config> = (0..2)
        .map(|i| {
            let mut c = Config::new(relay(i));
            c.relays = vec![relay(0), relay(1)];
            c.dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port(i)));
            c.tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, port(i) + 9000));
            c.pool = "10.0.0.10-10.0.0.229".into();
            c.store = store_lines.clone();
            c
        })
        .collect();
    let mut servers: Vec<_> = configs.iter().map(|c| c.spawn_in(&ns)).collect();
    for s in &servers {
        s.wait_for_log("of=2", 20 * SECOND);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("dhcp.pcapng");
    let filter = format!("udp port {} or udp port {}", port(0), port(1));
    let capture = Capture::start("lo", &filter, &pcap, Some(&ns));
    let resume = dir.path().join("watch.resume");
    let (tcp_b, resume_arg) = (configs[1].tcp.to_string(), resume.display().to_string());
    let watch = spawn_watch(
        configs[0].tcp,
        &[
            "--server",
            &tcp_b,
            "--resume",
            &resume_arg,
            "--retry-interval",
            "1",
        ],
        Some(&ns),
    );
    watch.wait_event(0, "connected", 10 * SECOND);
    let store = open_pg_store(&db.url, "instances-kill9-test");
    let load = || store.load_all().expect("load the database's bindings");

    // Relay i sends to instance i first, then to the other.
    let mut fleets: Vec<Fleet> = (0..2)
        .map(|i| {
            Fleet::new(
                FleetConfig {
                    giaddr: relay(i),
                    servers: vec![configs[i].dhcp, configs[1 - i].dhcp],
                    first_client: first_client(i),
                    clients: CLIENTS,
                    window: 12,
                    // An ACK waits for its durable commit: with the
                    // machine loaded (a build beside the tests) the
                    // survivor once left a dozen renewals in a row
                    // unanswered through 4 tries of 400 ms. Real clients
                    // wait 4 s before retransmitting (RFC 2131 §4.1).
                    timeout: Duration::from_secs(1),
                    seed: rng.next_u64(),
                },
                Some(&ns),
            )
        })
        .collect();

    for round in 0..ROUNDS {
        let (dead, survivor) = (round % 2, 1 - round % 2);
        let (d, s) = (NAME[dead], NAME[survivor]);
        let k = rng.range(10, 150) as u64;
        let running: Vec<_> = fleets.into_iter().map(Fleet::churn_in_background).collect();
        let dead_relay = running[dead].progress().clone();
        let before = dead_relay.acks_from(0);
        dead_relay.wait_acks_from(0, before + k, 30 * SECOND);

        // 1. Kill, and stop starting exchanges at the same moment (those in
        // flight end, on the survivor for the dead one's clients): what
        // changed last before the kill stays the latest state, for the
        // watcher's check below. At once (before the dead one's clients
        // time out and go to the survivor): every lease it ACKed is stored.
        let watch_mark = watch.mark();
        let survivor_mark = servers[survivor].log_mark();
        let from_survivor = dead_relay.acks_from(1);
        let killed_at = Instant::now();
        servers[dead].kill9();
        for r in &running {
            r.halt();
        }
        let rows = load();
        let held = [running[0].progress().held(), running[1].progress().held()];
        assert_no_double_allocation(&rows);
        let by_ip: HashMap<Ipv4Addr, &Binding> = rows.iter().map(|b| (b.ip, b)).collect();
        let mut lost = Vec::new();
        let mut checked = 0;
        for (i, relay_held) in held.iter().enumerate() {
            let dead_index = usize::from(i != dead);
            for (c, h) in relay_held.iter().enumerate() {
                let Held::Bound { ip, by } = *h else { continue };
                if by != dead_index {
                    continue;
                }
                checked += 1;
                let mac = mac_string(&TestClient::new(first_client(i) + c as u32).chaddr);
                let ok = by_ip
                    .get(&ip)
                    .is_some_and(|b| b.state == DhcpState::Active && mac_string(&b.chaddr) == mac);
                if !ok {
                    lost.push(format!(
                        "{ip} ACKed to {mac} by {d}: stored {:?}",
                        by_ip.get(&ip).map(|b| (b.state, mac_string(&b.chaddr)))
                    ));
                }
            }
        }
        assert!(
            lost.is_empty(),
            "round {round}: leases {d} ACKed are not in the database after its kill -9: {lost:#?}"
        );

        // 2. The watcher, connected to the dead one, moves to the survivor
        // and catches up there; meanwhile the dead one's clients that were
        // in the middle of an exchange get their answer from the survivor.
        let survivor_lq = configs[survivor].tcp.to_string();
        let (first_ack, (moved, caught_up)) = std::thread::scope(|sc| {
            let watcher = sc.spawn(|| {
                let what = format!("a connection to {s}");
                watch.wait_for(watch_mark, &what, 20 * SECOND, |e| {
                    e["event"] == "connected" && e["server"] == survivor_lq.as_str()
                });
                let moved = killed_at.elapsed();
                watch.wait_event(watch_mark, "catch-up-complete", 20 * SECOND);
                (moved, killed_at.elapsed())
            });
            let first_ack = dead_relay
                .try_wait_acks_from(1, from_survivor + 1, 5 * SECOND)
                .then(|| killed_at.elapsed());
            let watcher = watcher
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (first_ack, watcher)
        });
        let back: Vec<Fleet> = running.into_iter().map(|r| r.stop()).collect();

        // ... and is equal to the database, nothing lost (what the dead
        // one committed last and never sent it came with the catch-up).
        wait_equal_to(load, &watch, 30 * SECOND);

        // 3. Under load again: the dead one's clients are served by the
        // survivor (their relay tries the dead one first every time), and
        // the survivor takes the dead one's share over (3 s after its last
        // heartbeat).
        let running: Vec<_> = back.into_iter().map(Fleet::churn_in_background).collect();
        let dead_relay = running[dead].progress().clone();
        let from_survivor = dead_relay.acks_from(1);
        dead_relay.wait_acks_from(1, from_survivor + 50, 30 * SECOND);
        servers[survivor].wait_for_log_since(survivor_mark, "of=1", 20 * SECOND);
        let mut back: Vec<Fleet> = running.into_iter().map(|r| r.stop()).collect();

        // 4. Every client holding a lease renews it: the survivor ACKs the
        // same address (the dead one's clients get no answer from it first).
        let renewals: Vec<_> = std::thread::scope(|sc| {
            let hs: Vec<_> = back
                .iter_mut()
                .map(|f| sc.spawn(move || f.renew_all()))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("renew_all"))
                .collect()
        });
        for (i, list) in renewals.iter().enumerate() {
            let survivor_index = usize::from(i != survivor);
            let wrong: Vec<_> = list
                .iter()
                .filter(|r| !matches!(r.outcome, Renewed::Acked { by, .. } if by == survivor_index))
                .map(|r| format!("{} {}: {:?}", mac_string(&r.client.chaddr), r.ip, r.outcome))
                .collect();
            assert!(
                wrong.is_empty(),
                "round {round}: renewals of relay {} after {d} died, not ACKed by {s} with \
                 the client's address ({} of {}): {wrong:#?}",
                NAME[i],
                wrong.len(),
                list.len()
            );
        }
        for (i, f) in back.iter().enumerate() {
            assert!(
                f.stats.problems.is_empty(),
                "round {round}: relay {}: {:#?}",
                NAME[i],
                f.stats.problems
            );
        }

        // 5. The dead one restarts and the two share the pool again.
        let mark = servers[survivor].log_mark();
        servers[dead].restart();
        let id = servers[dead].instance_id();
        servers[dead].wait_for_log("of=2", 20 * SECOND);
        servers[survivor]
            .try_wait_for_line(mark, 20 * SECOND, |l| l.contains("of=2") && l.contains(&id))
            .unwrap_or_else(|| panic!("round {round}: {s} never saw {d} ({id}) back"));
        eprintln!(
            "round {round}: {d} killed after {k} ACKs this round ({checked} of its leases \
             checked in the database); first ACK by {s} for {d}'s clients after {}; \
             watcher on {s} after {:.0} ms, caught up after {:.0} ms; {} + {} renewals ACKed \
             by {s} with the same address",
            first_ack.map_or("(none in flight)".to_owned(), |t| format!(
                "{:.0} ms",
                t.as_secs_f64() * 1e3
            )),
            moved.as_secs_f64() * 1e3,
            caught_up.as_secs_f64() * 1e3,
            renewals[0].len(),
            renewals[1].len()
        );
        fleets = back;
    }

    // The last restarted instance renews what the other renewed meanwhile.
    let last_dead = (ROUNDS - 1) % 2;
    let renewals = fleets[last_dead].renew_all();
    let wrong: Vec<_> = renewals
        .iter()
        .filter(|r| !matches!(r.outcome, Renewed::Acked { .. }))
        .map(|r| format!("{} {}: {:?}", mac_string(&r.client.chaddr), r.ip, r.outcome))
        .collect();
    assert!(wrong.is_empty(), "after the last restart: {wrong:#?}");
    assert!(
        renewals
            .iter()
            .any(|r| matches!(r.outcome, Renewed::Acked { by: 0, .. })),
        "the restarted {} answered none of {} renewals",
        NAME[last_dead],
        renewals.len()
    );

    // The end: both stop (every commit done, every reply sent), then the
    // capture; the wire against the database.
    for (i, s) in servers.iter_mut().enumerate() {
        let status = s.terminate();
        assert!(
            status.success(),
            "instance {} exit status {status:?}",
            NAME[i]
        );
    }
    let rows = wait_equal_to(load, &watch, 30 * SECOND);
    assert_eq!(
        watch.count("data-missing"),
        0,
        "the watcher was told data is missing"
    );
    let read_at = Instant::now();
    let wire = read_dhcp_capture(&capture.stop());
    eprintln!(
        "{} DHCP messages captured, read in {:.1} s",
        wire.len(),
        read_at.elapsed().as_secs_f64()
    );
    let acked: u64 = fleets.iter().map(|f| f.stats.acks).sum();
    let ledger = assert_wire_matches_store(&wire, acked, &rows);
    let stats: Vec<String> = fleets
        .iter()
        .enumerate()
        .map(|(i, f)| format!("relay {}: {:?}", NAME[i], f.stats))
        .collect();
    eprintln!(
        "instances_kill9 (seed {seed}): {ROUNDS} kills in {:.1} s; {} ACKs on the wire ({} NAKs, \
         {} addresses passed on after a release), {} rows, the watcher connected {} times\n{}",
        started.elapsed().as_secs_f64(),
        ledger.acks,
        ledger.naks,
        ledger.handovers,
        rows.len(),
        watch.count("connected"),
        stats.join("\n")
    );
}
