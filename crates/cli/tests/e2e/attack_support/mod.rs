//! Helpers of the attack suite (tests/attack_suite.rs): the server config
//! every case runs against, the [`Fixture`] whose [`Fixture::recheck`]
//! proves after each case that DHCP is still served and that the watcher
//! connected since before the case still follows, and raw TCP helpers for
//! hostile requestors (a source address of our choosing, "read until the
//! server closes", the close reason the server logged).

#![allow(dead_code)]

pub mod http;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use leaseline_test_support::{
    free_udp_port, Lease, RelayClient, ServerConfig, ServerProcess, Subnet, TestClient,
};

use crate::active_support::{free_tcp_port, spawn_watch, WatchProcess, BIN};

/// BULK_LQ_DATA_TIMEOUT of every case, in seconds.
pub const DATA_TIMEOUT_S: u64 = 2;
/// ACTIVE_LQ_SEND_TIMEOUT, in seconds.
pub const SEND_TIMEOUT_S: u64 = 2;
/// BULK_LQ_MAX_CONNS.
pub const MAX_CONNECTIONS: usize = 50;
/// Active queries at once, overall (the default).
pub const ACTIVE_MAX_CONNECTIONS: usize = 100;
/// Active queries at once from one requestor address.
pub const PER_REQUESTOR: usize = 2;
/// Connections accepted that have not sent a query yet: as many as the
/// bulk and active limits together.
pub const UNDECIDED_MAX: usize = MAX_CONNECTIONS + ACTIVE_MAX_CONNECTIONS;
/// Queries in flight on one connection (RFC 6926 §8.4).
pub const MAX_QUERIES: usize = 2;
/// `max_message_size`: the largest message the server accepts.
pub const MAX_MESSAGE: usize = 4096;
/// UDP leasequery: queries per second per requestor, and the bucket size.
pub const UDP_RATE: u32 = 50;
pub const UDP_BURST: u32 = 50;
/// 3,825 addresses: the rechecks' DORAs and the churn never exhaust it.
pub const POOL: &str = "10.0.0.10-10.0.14.250";
pub const POOL_SIZE: usize = 3825;

/// A UDP leasequery requestor on the allowlist.
pub const LQ_ALLOWED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A UDP leasequery requestor not on it.
pub const LQ_NOT_ALLOWED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The source of the 1,000-connection flood (on the allowlist).
pub const FLOOD_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

pub const SECOND: Duration = Duration::from_secs(1);

/// `[http]`: the bearer token, the request-head deadline and the cap on
/// open connections.
pub const HTTP_TOKEN: &str = "attack-suite-http-token-0123456789";
pub const HTTP_HEADER_TIMEOUT_S: u64 = 2;
pub const HTTP_MAX_CONNECTIONS: usize = 64;

/// The server config of the suite: DHCP for `relays`, UDP leasequery with
/// a low rate limit, the TCP listener with short timeouts and small limits,
/// Active Leasequery insecure (`tls` = None) or in secure mode (`tls` =
/// the `[leasequery.tls]` section), and the HTTP endpoint on `web`.
pub fn config(
    dhcp: SocketAddr,
    tcp: SocketAddr,
    web: SocketAddr,
    relays: &[Ipv4Addr],
    tls: Option<&str>,
) -> String {
    ServerConfig::new(dhcp)
        .history(3600, 1_000_000)
        .subnet(Subnet::new("10.0.0.0/16", POOL, relays))
        .allow(&[
            "127.0.0.1/32",
            &format!("{LQ_ALLOWED}/32"),
            &format!("{FLOOD_SOURCE}/32"),
        ])
        .udp(UDP_RATE, UDP_BURST)
        .bulk(
            tcp,
            &format!(
                "data_timeout = {DATA_TIMEOUT_S}\n\
                 max_connections = {MAX_CONNECTIONS}\n\
                 max_queries_per_connection = {MAX_QUERIES}\n\
                 max_message_size = {MAX_MESSAGE}"
            ),
        )
        .active(
            tls.is_none(),
            &format!(
                "send_timeout = {SEND_TIMEOUT_S}\n\
                 max_connections = {ACTIVE_MAX_CONNECTIONS}\n\
                 max_connections_per_requestor = {PER_REQUESTOR}"
            ),
        )
        .extra(tls.unwrap_or(""))
        .extra(&format!(
            "\n[http]\nlisten = \"{web}\"\ntoken = \"{HTTP_TOKEN}\"\n\
             header_timeout = {HTTP_HEADER_TIMEOUT_S}\nmax_connections = {HTTP_MAX_CONNECTIONS}\n"
        ))
        .build()
}

/// A server, a relay client for the DHCP re-check, and a watcher
/// (`leaseline watch --json --no-reconnect`) connected before any case.
pub struct Fixture {
    pub server: ServerProcess,
    pub dhcp: SocketAddr,
    pub tcp: SocketAddr,
    /// The HTTP endpoint (metrics, control API).
    pub web: SocketAddr,
    pub relay: Ipv4Addr,
    relay_client: RelayClient,
    pub watch: WatchProcess,
    next_client: u32,
}

impl Fixture {
    /// `relay` is this test's giaddr (bound on :67 for the re-checks);
    /// `more_relays` are served too (e.g. for a churn driver). `watch_args`
    /// are added to the watcher's command line (TLS flags).
    pub fn start(
        relay: Ipv4Addr,
        more_relays: &[Ipv4Addr],
        tls: Option<&str>,
        watch_args: &[String],
    ) -> Fixture {
        leaseline_test_support::require_root();
        let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
        let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
        let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
        let mut relays = vec![relay];
        relays.extend_from_slice(more_relays);
        let server = ServerProcess::spawn(BIN, &config(dhcp, tcp, web, &relays, tls));
        let relay_client = RelayClient::bind(relay, dhcp)
            .unwrap_or_else(|e| panic!("bind {relay}:67 for the relay client (root?): {e}"));
        let mut args = vec!["--no-reconnect".to_string()];
        args.extend_from_slice(watch_args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mark = server.log_mark();
        let watch = spawn_watch(tcp, &args, None);
        watch.wait_event(0, "connected", 15 * SECOND);
        server.wait_for_log_since(mark, "active query started", 15 * SECOND);
        Fixture {
            server,
            dhcp,
            tcp,
            web,
            relay,
            relay_client,
            watch,
            next_client: 0,
        }
    }

    /// After a case: the server runs, a new client gets a lease by DORA,
    /// and the watcher (still on its first connection) reports that lease.
    pub fn recheck(&mut self, case: &str) {
        self.server.assert_running();
        let mark = self.watch.mark();
        let lease = self.dora(case);
        let ip = lease.ip.to_string();
        self.watch.wait_for(
            mark,
            &format!("[{case}] the update for {ip}"),
            15 * SECOND,
            |v| v["event"] == "update" && v["ip"] == ip.as_str(),
        );
        assert_eq!(
            (
                self.watch.count("connected"),
                self.watch.count("disconnected")
            ),
            (1, 0),
            "[{case}] the watcher is still on its first connection"
        );
        eprintln!("[{case}] afterwards: DORA leased {ip}; the watcher saw the update");
    }
}

impl Fixture {
    /// A DORA of a new client through the relay client; panics (naming
    /// `case`) if it fails.
    pub fn dora(&mut self, case: &str) -> Lease {
        let client = TestClient::new(
            0x0a77_0000 + (u32::from(self.relay.octets()[3]) << 16) + self.next_client,
        );
        self.next_client += 1;
        self.relay_client.dora(&client).unwrap_or_else(|e| {
            panic!(
                "[{case}] DHCP no longer served: {e}\n--- server log ---\n{}",
                self.server.log_tail(40)
            )
        })
    }

    /// A DISCOVER of one fixed client, answered: every datagram the server
    /// received before it has been handled (one socket, in order).
    pub fn recheck_probe(&mut self) {
        let probe = TestClient::new(0x0a77_ffff);
        self.relay_client
            .discover(&probe)
            .unwrap_or_else(|| panic!("no OFFER to the probe\n{}", self.server.log_tail(20)));
    }
}

/// A TCP connection to `dst` from `src` (port chosen by the kernel).
pub fn connect_from(rt: &tokio::runtime::Runtime, src: Ipv4Addr, dst: SocketAddr) -> TcpStream {
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((src, 0)))?;
            let s = sock.connect(dst).await?;
            s.set_nodelay(true)?;
            s.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.set_nonblocking(false).expect("blocking");
    s
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Reads (and keeps) everything until the server closes the connection
/// (EOF or reset). Returns the bytes and how long it took, or panics after
/// `limit`.
pub fn read_until_closed(s: &mut TcpStream, limit: Duration, what: &str) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "[{what}] the server did not close the connection within {limit:?} ({} bytes received)",
            got.len()
        );
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (got, started.elapsed()), // reset
        }
    }
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
pub fn is_closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    closed
}

/// The `leasequery connection closed` WARN the server logged for the
/// connection whose local address is `local`; its text.
pub fn close_reason(server: &ServerProcess, mark: usize, local: SocketAddr, what: &str) -> String {
    let peer = format!("peer={local} ");
    let peer_end = format!("peer={local}");
    server
        .try_wait_for_line(mark, 10 * SECOND, |l| {
            l.contains("WARN")
                && l.contains("leasequery connection closed")
                && (l.contains(&peer) || l.ends_with(&peer_end))
        })
        .unwrap_or_else(|| {
            panic!(
                "[{what}] no `leasequery connection closed` WARN for {local}\n--- server log ---\n{}",
                server.log_tail(40)
            )
        })
}

/// Writes `bytes`, tolerating a server that already closed.
pub fn write_lenient(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the
/// hard limit); returns the new soft limit. The server, a child, inherits it.
pub fn raise_nofile(want: u64) -> u64 {
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }
    extern "C" {
        fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    }
    const RLIMIT_NOFILE: i32 = 7; // Linux
    let mut r = RLimit { cur: 0, max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a struct rlimit
    // (two rlim_t, u64 on Linux x86_64 and aarch64).
    unsafe {
        assert_eq!(getrlimit(RLIMIT_NOFILE, &mut r), 0, "getrlimit");
        if r.cur < want {
            let n = RLimit {
                cur: want.min(r.max),
                max: r.max,
            };
            assert_eq!(setrlimit(RLIMIT_NOFILE, &n), 0, "setrlimit");
            r.cur = n.cur;
        }
    }
    r.cur
}
