//! Test support for Leaseline's integration and interop tests.
//!
//! - [`ServerProcess`]: runs `leaseline serve` on a config whose `state_dir`
//!   is a fresh temporary directory, waits for `leaseline ready`, keeps every
//!   stderr line for [`ServerProcess::wait_for_log`], and can be killed with
//!   SIGKILL, stopped with SIGTERM and restarted on the same state.
//! - [`ServerConfig`]: the server TOML of a test, from a builder.
//! - [`WatchProcess`]: runs `leaseline watch`, collects its stdout lines
//!   (and JSON events) and stderr, waits for a line, an event or its exit.
//! - [`Perfdhcp`]: builds a perfdhcp command line and parses its report.
//! - [`Netns`] / [`NetnsPair`]: RAII network namespaces joined by a veth pair.
//! - [`RelayClient`]: a minimal DHCP relay agent built on leaseline-wire, for
//!   tests that need exact control over each message.
//! - [`Fleet`]: a closed-loop relay agent churning many clients against
//!   several servers on one database, failing over when one stops answering.
//! - [`Capture`]: a dumpcap capture, read back with tshark.
//! - [`pg_database`]: a fresh database on a throwaway PostgreSQL cluster
//!   shared by the test binary (or on `LEASELINE_TEST_PG_URL`).
//!   [`pg_restartable_database`] / [`pg_restart_cluster`]: one on a second
//!   cluster a test may stop and start again.
//! - [`pg_tls_cluster`]: another throwaway cluster with `ssl = on`, a
//!   certificate from a test CA, and client-certificate authentication.
//! - [`loopback_relay`], [`free_udp_port`], [`free_tcp_port`]: a relay
//!   address and ports no other test of the binary has, since the tests of
//!   one binary run at the same time.
//! - [`require_tool`] / [`require_root`]: interop tests never skip; a missing
//!   tool fails the test with the command that installs it.
//!
//! - A test watchdog: a test that runs past its deadline (it hangs) ends
//!   the binary with a report of what every thread, process and database
//!   session waits for (`watchdog`, [`DEADLINE_ENV`]).
//!
//! Synchronisation is always "wait for a condition with a deadline", never a
//! bare sleep.

mod capture;
mod chromedriver;
mod config;
mod fleet;
mod loopback;
mod netns;
mod packets;
mod perfdhcp;
mod pg_cluster;
pub mod pki;
mod postgres;
mod postgres_tls;
mod relay;
mod server;
mod store;
mod watch;
mod watchdog;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use capture::{read_dhcp_capture, Capture, CapturedDhcp};
pub use chromedriver::ChromeDriver;
pub use config::{ServerConfig, Subnet};
pub use fleet::{Churning, Fleet, FleetConfig, FleetProgress, FleetStats, Held, Renewal, Renewed};
pub use loopback::{loopback_relay, loopback_relay_for};
pub use netns::{Netns, NetnsPair};
pub use packets::{malformed, RawRequest, XorShift};
pub use perfdhcp::{ExchangeStats, PerfProgress, PerfReport, PerfRun, Perfdhcp};
pub use postgres::{
    pg_admin_sql, pg_cluster_url, pg_database, pg_restart_cluster, pg_restartable_database,
    PgDatabase, TEST_PG_URL_ENV,
};
pub use postgres_tls::{pg_tls_cluster, pg_tls_database, PgTlsCluster};
pub use relay::{server_id_of, Lease, RelayClient, TestClient};
pub use server::{ServerBuilder, ServerProcess};
pub use store::{assert_no_double_allocation, load_bindings, open_pg_store, wait_for_binding};
pub use watch::{WatchBuilder, WatchExit, WatchProcess};
pub use watchdog::DEADLINE_ENV;

pub use leaseline_proto::{Binding, DhcpState};

/// Where Debian puts the tools we use, in case PATH (e.g. of a non-login
/// shell) lacks the sbin directories.
const EXTRA_PATH: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The Debian package that provides each external tool.
fn package_for(tool: &str) -> &'static str {
    match tool {
        "perfdhcp" => "kea-admin",
        "kea-dhcp4" => "kea-dhcp4-server",
        "dhclient" | "dhclient-script" => "isc-dhcp-client",
        "dhcpd" => "isc-dhcp-server",
        "tshark" => "tshark",
        "dumpcap" => "wireshark-common (comes with tshark)",
        "ip" => "iproute2",
        "chromium" => "chromium",
        "chromedriver" => "chromium-driver",
        _ => "(see .ci/run)",
    }
}

/// The absolute path of an external tool. Interop tests never skip: when the
/// tool is missing this panics (fails the test) with the install command.
pub fn require_tool(name: &str) -> PathBuf {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let dirs = path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .chain(EXTRA_PATH.iter().map(|s| s.to_string()));
    for dir in dirs {
        let candidate = PathBuf::from(dir).join(name);
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!(
        "required tool `{name}` not found (looked in PATH and {EXTRA_PATH:?}).\n\
         Install it: sudo apt-get install -y {pkg}\n\
         (.ci/run installs every tool the interop tests need.) Interop tests do not skip.",
        pkg = package_for(name)
    );
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails the test unless it runs as root (network namespaces, port 67, packet
/// capture). CI runs as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this interop test needs root (network namespaces, UDP port 67, packet capture); \
         run it as root, e.g. `sudo -E cargo test --workspace`. Interop tests do not skip."
    );
}

/// A UDP port on 127.0.0.1 that was free a moment ago and that no other
/// caller in this process has been given.
pub fn free_udp_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .expect("bind an ephemeral UDP port on 127.0.0.1");
        let port = sock.local_addr().expect("local_addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("could not find a free UDP port");
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that no other
/// caller in this process has been given.
pub fn free_tcp_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let l = std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .expect("bind an ephemeral TCP port on 127.0.0.1");
        let port = l.local_addr().expect("local_addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("could not find a free TCP port");
}

/// Polls `cond` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The loopback config of examples/loopback.toml: DHCP on `listen` for
/// relays whose giaddr is one of `relays`, subnet 10.0.0.0/16 (pool
/// 10.0.0.10-10.0.255.250, about 65,000 addresses). `state_dir` is filled
/// in by [`ServerProcess`].
pub fn loopback_config(listen: std::net::SocketAddr, relays: &[Ipv4Addr]) -> String {
    ServerConfig::loopback(listen, relays).build()
}

/// Runs `cmd` with stdout and stderr sent to `log` (a file, not a pipe, so a
/// program that leaves a daemon behind cannot hold the test up), waiting at
/// most `timeout`. Returns the exit status and the log's contents.
pub fn run_logged(
    cmd: &mut std::process::Command,
    log: &std::path::Path,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    match run_to_file(cmd, log, timeout) {
        Ok((Some(status), text)) => (status, text),
        Ok((None, text)) => panic!("{cmd:?} did not finish within {timeout:?}; output:\n{text}"),
        Err(e) => panic!("cannot start {cmd:?}: {e}"),
    }
}

/// [`run_logged`] without panicking: the exit status (None: killed at
/// `timeout`) and the log's contents, or why it could not start.
pub(crate) fn run_to_file(
    cmd: &mut std::process::Command,
    log: &std::path::Path,
    timeout: Duration,
) -> std::io::Result<(Option<std::process::ExitStatus>, String)> {
    // One open file description for both: one offset, nothing overwritten.
    let file = std::fs::File::create(log)?;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Ok((status, std::fs::read_to_string(log).unwrap_or_default()))
}

/// Seconds since the Unix epoch, the server's clock.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// `aa:bb:cc:dd:ee:ff` for a hardware address ([`leaseline_proto::text::format_mac`]).
/// A finished command's status, stdout and stderr, for an assertion message.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

pub fn mac_string(hw: &[u8]) -> String {
    leaseline_proto::text::format_mac(hw)
}

/// A hardware address as the configuration and the CLI read it
/// ([`leaseline_proto::text::parse_mac`]).
pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    leaseline_proto::text::parse_mac(s).ok()
}

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates up to a final byte 0x40..=0x7e.
                for c2 in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c2) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours() {
        let s = "\u{1b}[33m WARN\u{1b}[0m \u{1b}[3mpeer\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.9:67";
        assert_eq!(strip_ansi(s), " WARN peer=127.0.0.9:67");
    }

    #[test]
    fn mac_round_trip() {
        let m = [0x00, 0x0c, 0x01, 0x02, 0x03, 0xff];
        assert_eq!(mac_string(&m), "00:0c:01:02:03:ff");
        assert_eq!(parse_mac("00:0c:01:02:03:ff").unwrap(), m);
        assert!(parse_mac("zz:00").is_none());
    }

    #[test]
    fn free_ports_are_distinct() {
        let a = free_udp_port();
        let b = free_udp_port();
        assert_ne!(a, b);
    }

    #[test]
    fn missing_tool_fails_with_hint() {
        let err = std::panic::catch_unwind(|| require_tool("no-such-tool-leaseline")).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("apt-get install"), "{msg}");
    }
}
