#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! A browser that stops reading the web view's event stream (issue 20;
//! like the stalled Active Leasequery requestor, active_backpressure.rs).
//!
//! While a relay drives 40,000 binding changes (DORAs and releases cycling
//! 1,000 clients over a pool of 1,009 addresses):
//! - browser A opens `/ui/events` and never reads (4 KiB receive buffer):
//!   the server gives up on it `ui_stall_timeout` (2 s here) after its
//!   queue filled, with at most one pending entry per address although
//!   many times more changes than addresses happened meanwhile, and what A
//!   gets once it reads again is bounded (the queue and the socket
//!   buffers), then the end of the connection;
//! - browser B reads at full speed: its last state of every address
//!   equals the store's (coalescing loses no final state);
//! - the server's RSS stays within a fixed bound of its starting value;
//! - DHCP keeps serving: every exchange of the relay completes.
//!
//! Relay address (giaddr): `loopback_relay` (test-support).

use crate::active_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use active_support::{churn, connect_small, rss_kib, BIN};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, load_bindings, mac_string, wait_until, ServerConfig,
    ServerProcess, Subnet,
};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const TOKEN: &str = "web-view-backpressure-token-0123";
/// 1,009 addresses.
const POOL: &str = "10.0.0.10-10.0.3.250";
const POOL_SIZE: usize = 1009;
const CLIENTS: u32 = 1000;
const CHANGES: u64 = 40_000;
const STALL_S: u64 = 2;
/// What the server itself may hold for A beyond the kernel's socket
/// buffer: its queue (4 events of at most 64 changes, ~250 bytes each)
/// and the HTTP layer's write buffer (hyper: ~400 KiB at most). Queued
/// per change instead, 40,000 changes would be about 10 MB.
const A_SERVER_BUFFER_LIMIT: usize = 1024 * 1024;

/// The most a TCP socket's send buffer grows to (`net.ipv4.tcp_wmem`'s
/// maximum): kernel memory, not the server's.
fn kernel_send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .expect("read net.ipv4.tcp_wmem")
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("tcp_wmem's maximum")
}
/// Allowed growth of the server's RSS while 40,000 changes happen, as in
/// active_backpressure.rs (the feed's shared log and history, SQLite's
/// caches, what the allocator keeps).
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// `GET /ui/events` with the bearer token on `s`.
fn open_events(s: &mut TcpStream) {
    write!(
        s,
        "GET /ui/events HTTP/1.1\r\nHost: leaseline\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n"
    )
    .expect("ask for the event stream");
}

/// Each address's last (state, MAC) as a browser saw it.
type View = HashMap<Ipv4Addr, (String, Option<String>)>;

/// Browser B: reads the stream at full speed and keeps the last
/// (state, MAC) of every address.
struct Reader {
    view: Arc<Mutex<View>>,
    usage_events: Arc<Mutex<usize>>,
    /// The server ended B's stream (it must not: B reads).
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn start(web: SocketAddr) -> Reader {
        let mut s = TcpStream::connect(web).expect("connect B");
        open_events(&mut s);
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let view: Arc<Mutex<View>> = Arc::default();
        let usage_events: Arc<Mutex<usize>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let (v, u, st, cl) = (
            view.clone(),
            usage_events.clone(),
            stop.clone(),
            closed.clone(),
        );
        std::thread::spawn(move || {
            let mut r = BufReader::new(s);
            let mut event = String::new();
            let mut line = String::new();
            while !st.load(Ordering::Relaxed) {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => {
                        cl.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(_) => {
                        cl.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                // Chunked transfer: the chunk sizes are lines of their own,
                // never starting with "event:" or "data:".
                let l = line.trim_end();
                if let Some(name) = l.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(data) = l.strip_prefix("data: ") {
                    match event.as_str() {
                        "usage" => *u.lock().unwrap() += 1,
                        "changes" => {
                            let rows: Value = serde_json::from_str(data)
                                .unwrap_or_else(|e| panic!("B: bad changes event ({e}): {data}"));
                            let mut v = v.lock().unwrap();
                            for row in rows.as_array().expect("an array of changes") {
                                let ip =
                                    row["ip-address"].as_str().expect("ip").parse().expect("ip");
                                let state = row["state"].as_str().expect("state").to_owned();
                                let mac = row["hw-address"].as_str().map(str::to_owned);
                                v.insert(ip, (state, mac));
                            }
                        }
                        other => panic!("B: unexpected event {other:?}"),
                    }
                }
            }
        });
        Reader {
            view,
            usage_events,
            closed,
            stop,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Differences between the store and B's last states (empty: equal).
fn diff(store: &[leaseline_test_support::Binding], view: &View) -> Vec<String> {
    let mut out = Vec::new();
    for b in store {
        let want = (
            format!("{:?}", b.state).to_ascii_lowercase(),
            (!b.chaddr.is_empty()).then(|| mac_string(&b.chaddr)),
        );
        match view.get(&b.ip) {
            Some(got) if *got == want => {}
            // A row the store holds for a never-leased address.
            None if b.state == leaseline_test_support::DhcpState::Available => {}
            got => out.push(format!("{}: store {want:?}, B saw {got:?}", b.ip)),
        }
    }
    out
}

#[test]
fn a_browser_that_stops_reading_costs_bounded_memory() {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let cfg = ServerConfig::new(dhcp)
        .subnet(Subnet::new("10.0.0.0/16", POOL, &[*RELAY]))
        .extra(&format!(
            "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\nui_stall_timeout = {STALL_S}\n"
        ))
        .build();
    let mut server = ServerProcess::spawn(BIN, &cfg);
    let pid = server.pid().expect("server pid");
    let mark = server.log_mark();

    // A asks and never reads; B reads.
    let mut a = connect_small(web, 4096);
    open_events(&mut a);
    let b = Reader::start(web);
    wait_until("B's first usage event", 10 * SECOND, || {
        (*b.usage_events.lock().unwrap() > 0).then_some(())
    });
    let rss_start = rss_kib(pid);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while sampling.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50)); // sampling period
            }
            max
        })
    };
    let t0 = Instant::now();
    let st = churn(*RELAY, dhcp, CLIENTS, CHANGES, 64, Duration::from_secs(240));
    let took = t0.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let rss_max = sampler.join().unwrap();
    server.assert_running();
    let changes = st.changes();
    eprintln!(
        "{changes} changes in {took:.1?} ({:.0}/s): {st:?}; server RSS {rss_start} KiB at the start, at most {rss_max} KiB",
        changes as f64 / took.as_secs_f64()
    );
    assert_eq!(st.failed, 0, "exchanges abandoned after 5 tries: {st:?}");

    // A: given up on, with no more pending than addresses.
    let line = server
        .try_wait_for_line(mark, 10 * SECOND, |l| {
            l.contains("stopped reading its event stream")
        })
        .unwrap_or_else(|| {
            panic!(
                "the server did not give up on the stalled browser\n{}",
                server.log_tail(30)
            )
        });
    eprintln!("A: {line}");
    let field = |name: &str| -> usize {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    let (own, unread_log, in_history) = (field("own"), field("unread_log"), field("in_history"));
    assert!(
        own <= POOL_SIZE,
        "A's pending set ({own}) is larger than the number of addresses ({POOL_SIZE})"
    );
    assert!(
        unread_log <= leaseline_store::LIVE_LOG_CAP,
        "A is {unread_log} changes behind in a log of {}",
        leaseline_store::LIVE_LOG_CAP
    );
    // The bound has teeth only if A fell behind by more changes than there
    // are addresses (queued per change, it would hold more than the pool).
    assert!(
        unread_log + in_history > 2 * POOL_SIZE,
        "A fell behind by too few changes to tell coalescing apart: {line}"
    );

    // A reads again: what was buffered for it, then the end.
    a.set_read_timeout(Some(10 * SECOND)).expect("timeout");
    let mut buffered = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match a.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => buffered += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("A: no end of the stream after {buffered} bytes: {e}"),
        }
    }
    eprintln!("A read {buffered} buffered bytes, then the end of the connection");
    let limit = kernel_send_buffer_max() + A_SERVER_BUFFER_LIMIT;
    assert!(
        buffered < limit,
        "{buffered} bytes were kept for a browser that did not read (the kernel's send \
         buffer and the server's own, {limit} bytes at most)"
    );

    // B: never closed (it read), and its last state of every address is the store's.
    assert!(
        !b.closed.load(Ordering::Relaxed),
        "the server closed the stream of a browser that reads"
    );
    let db = server.db_path();
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let store = load_bindings(&db);
        let d = diff(&store, &b.view.lock().unwrap());
        if d.is_empty() {
            eprintln!("B agrees with the store on {} addresses", store.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's last states differ from the store: {} differences, e.g. {:?}",
            d.len(),
            &d[..d.len().min(10)]
        );
        std::thread::sleep(Duration::from_millis(200)); // polling the store
    }

    let growth = rss_max.saturating_sub(rss_start);
    assert!(
        growth <= RSS_GROWTH_LIMIT_KIB,
        "the server's RSS grew by {growth} KiB (from {rss_start} KiB) during the churn"
    );
    server.assert_running();
}
