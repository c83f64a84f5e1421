#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Invariant: an ACKed lease survives kill -9, and no address is given to
//! two clients. perfdhcp runs against the server; mid-run the server is
//! killed with SIGKILL and restarted on the same state dir. dumpcap records
//! every reply; afterwards each ACKed (yiaddr, chaddr) must be ACTIVE for
//! that chaddr in the store, and no address may have been ACKed to two
//! clients.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use leaseline_test_support::{
    assert_no_double_allocation, load_bindings, loopback_config, mac_string, read_dhcp_capture,
    require_root, require_tool, Capture, DhcpState, Netns, Perfdhcp, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const PORT: u16 = 1067;
const DHCPACK: u8 = 5;

#[test]
fn acked_leases_survive_kill9() {
    require_root();
    require_tool("perfdhcp");
    require_tool("dumpcap");
    require_tool("tshark");

    let ns = Netns::new("ll-kill9");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let config = loopback_config(listen, &[Ipv4Addr::LOCALHOST]);
    let mut server = ServerProcess::builder(BIN, &config).netns(&ns).spawn();

    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("replies.pcapng");
    let capture = Capture::start("lo", &format!("udp port {PORT}"), &pcap, Some(&ns));

    // 100 new clients a second for 20 s; each client does DORA once.
    let mut perf = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(PORT)
        .local(Ipv4Addr::LOCALHOST)
        .rate(100)
        .clients(1_000_000)
        .period(20.0)
        .drop_time(2.0)
        .report_interval(1)
        .exit_wait(Duration::from_secs(3))
        .base_mac("02:00:09:00:00:00")
        .spawn();

    let before = perf.wait_progress("300 ACKs before the kill", Duration::from_secs(30), |p| {
        p.acks_received >= 300
    });
    let status = server.kill9();
    assert!(
        !status.success(),
        "the server should have died of SIGKILL: {status:?}"
    );
    server.restart();
    perf.wait_progress(
        "300 more ACKs after the restart",
        Duration::from_secs(30),
        |p| p.acks_received >= before.acks_received + 300,
    );
    let report = perf.wait(Duration::from_secs(90));
    eprintln!("killed at {before:?}\n{report}");
    server.assert_running();
    let status = server.terminate();
    assert!(
        status.success(),
        "server exit status after SIGTERM: {status:?}"
    );
    let pcap = capture.stop();

    let acks: Vec<_> = read_dhcp_capture(&pcap)
        .into_iter()
        .filter(|m| m.msg_type == DHCPACK)
        .collect();
    let acked_by_perfdhcp = report.ra_stats().received;
    assert!(
        acks.len() as u64 >= acked_by_perfdhcp && acks.len() >= 600,
        "{} ACKs captured, perfdhcp counted {acked_by_perfdhcp}\n{report}",
        acks.len()
    );

    // The capture itself: an address is never ACKed to two clients.
    let mut clients_of: HashMap<Ipv4Addr, HashSet<&str>> = HashMap::new();
    for a in &acks {
        clients_of
            .entry(a.yiaddr)
            .or_default()
            .insert(a.chaddr.as_str());
    }
    for (ip, clients) in &clients_of {
        assert_eq!(
            clients.len(),
            1,
            "{ip} was ACKed to several clients: {clients:?}"
        );
    }

    // The store after the crash and restart: every ACK is there.
    let bindings = load_bindings(&server.db_path());
    let active = assert_no_double_allocation(&bindings);
    let by_ip: HashMap<Ipv4Addr, _> = bindings.iter().map(|b| (b.ip, b)).collect();
    let mut missing = Vec::new();
    for a in &acks {
        match by_ip.get(&a.yiaddr) {
            Some(b) if b.state == DhcpState::Active && mac_string(&b.chaddr) == a.chaddr => {}
            other => missing.push(format!(
                "ACK {} -> {}: store has {:?}",
                a.yiaddr,
                a.chaddr,
                other.map(|b| (b.state, mac_string(&b.chaddr)))
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} ACKed leases are not ACTIVE for their client after kill -9 \
         (first 20):\n{}",
        missing.len(),
        acks.len(),
        missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(active.len() >= clients_of.len());
    eprintln!(
        "{} ACKs captured for {} addresses; store: {} rows, {} ACTIVE",
        acks.len(),
        clients_of.len(),
        bindings.len(),
        active.len()
    );
}
