#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! systemd integration (issue 19): started with `NOTIFY_SOCKET` as
//! systemd's `Type=notify-reload` starts it, the server says READY=1 once
//! it answers DHCP, pings the watchdog (`WATCHDOG_USEC`) while it runs,
//! says RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload,
//! and STOPPING=1 at SIGTERM. The test plays systemd's part: a unix
//! datagram socket receiving the notifications.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_udp_port, RelayClient, ServerConfig, ServerProcess, Subnet, TestClient,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

/// Notifications until one contains `want`, or panics after `timeout`.
fn wait_for(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {want} within {timeout:?}; got {seen:?}"
        );
        sock.set_read_timeout(Some(left)).expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as sd_notify's MONOTONIC_USEC.
fn monotonic_usec() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    assert_eq!(r, 0, "clock_gettime");
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

#[test]
fn ready_watchdog_reload_and_stopping_reach_systemd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let cfg = ServerConfig::new(dhcp)
        .relay_port(rport)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.200",
            &[*RELAY],
        ))
        .build();
    let mut server = ServerProcess::builder(BIN, &cfg)
        .env("NOTIFY_SOCKET", &path.display().to_string())
        // A 2 s watchdog: pinged every second.
        .env("WATCHDOG_USEC", "2000000")
        .spawn();
    let ready = wait_for(&sock, "READY=1", Duration::from_secs(30));
    assert!(
        ready.iter().any(|m| m.contains("STATUS=serving on udp")),
        "{ready:?}"
    );
    // Ready means serving: a DORA right away succeeds.
    let mut relay = RelayClient::bind_port(*RELAY, rport, dhcp).expect("bind relay");
    relay.dora(&TestClient::new(1)).expect("DORA once READY=1");
    // Two watchdog pings: it keeps pinging while it runs.
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(10));
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(10));
    // Type=notify-reload: SIGHUP, then RELOADING=1 with the time of the
    // reload (CLOCK_MONOTONIC, as systemd compares it), then READY=1.
    let before = monotonic_usec();
    server.signal(libc::SIGHUP);
    let seen = wait_for(&sock, "RELOADING=1", Duration::from_secs(10));
    let reloading = seen.last().expect("the RELOADING=1 message");
    let at: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC with RELOADING=1: {reloading:?}"));
    assert!(
        (before..=monotonic_usec()).contains(&at),
        "MONOTONIC_USEC={at} not between the SIGHUP ({before}) and now"
    );
    wait_for(&sock, "READY=1", Duration::from_secs(10));
    server.signal(libc::SIGTERM);
    wait_for(&sock, "STOPPING=1", Duration::from_secs(10));
    assert!(server.terminate().success());
}
