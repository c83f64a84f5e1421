#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Issue 16 item 0: under sustained DORA churn the SQLite WAL grew without
//! bound (0.5 GB after 30 s at 3,000 DORA/s; tens of GB in minutes) and was
//! only removed at shutdown. `bench/soak.sh` is the 30-minute version; this
//! is the short one: perfdhcp relaying DORAs into `leaseline serve` for 30 s,
//! the WAL's size read at every one of perfdhcp's per-second reports, never
//! above the store's documented bound, while the server writes several
//! times that much.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use leaseline_test_support::{
    loopback_config, require_root, require_tool, Netns, Perfdhcp, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const PORT: u16 = 1067;
const SECONDS: u32 = 30;

/// Bytes the process has handed to write(2) and friends so far.
fn bytes_written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/PID/io")
}

#[test]
fn the_wal_stays_bounded_under_sustained_dora_churn() {
    require_root();
    require_tool("perfdhcp");
    require_tool("ip");

    let ns = Netns::new("ll-walbound");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let config = loopback_config(listen, &[Ipv4Addr::LOCALHOST]);
    let mut server = ServerProcess::builder(BIN, &config).netns(&ns).spawn();
    let pid = server.pid().expect("server pid");
    let wal = std::path::PathBuf::from(format!("{}-wal", server.db_path().display()));
    let written_at_start = bytes_written(pid);

    let mut run = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(PORT)
        .local(Ipv4Addr::LOCALHOST)
        .rate(3000)
        .clients(50_000)
        .period(f64::from(SECONDS))
        .report_interval(1)
        .spawn();
    let mut largest = 0u64;
    let mut samples = 0u32;
    let mut acks = 0u64;
    for _ in 0..SECONDS - 1 {
        let p = run.wait_progress("the next per-second report", Duration::from_secs(10), |p| {
            p.acks_received > acks
        });
        acks = p.acks_received;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        samples += 1;
    }
    let written = bytes_written(pid) - written_at_start;
    let report = run.interrupt(Duration::from_secs(30));
    server.assert_running();
    eprintln!(
        "{samples} samples, {acks} ACKs, {written} bytes written by the server, largest WAL {largest}"
    );

    let bound = leaseline_store::WAL_SIZE_BOUND;
    assert!(
        written > 3 * bound,
        "the churn must write several times the WAL's bound for this test to mean anything: \
         {written} bytes written\n{report}"
    );
    assert!(
        largest <= bound,
        "the WAL reached {largest} bytes ({samples} samples, {acks} ACKs, {written} bytes \
         written); its documented bound is {bound}"
    );
}
