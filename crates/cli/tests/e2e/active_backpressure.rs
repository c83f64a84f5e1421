#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Slow and stalled Active Leasequery requestors (RFC 7724 §6, §8.2;
//! architecture: "memory per active connection is bounded by the number of
//! distinct addresses, whatever the requestor's read speed").
//!
//! While a relay drives at least 100,000 binding changes (DORAs and
//! releases cycling 1,000 clients over a pool of 1,009 addresses):
//! - requestor A sends its active query and never reads (4 KiB receive
//!   buffer): the server closes it ACTIVE_LQ_SEND_TIMEOUT (3 s here) after
//!   its writes block, with at most one pending entry per address although
//!   several times more changes than addresses happened meanwhile (beyond
//!   the window of the server's shared log of recent changes), and A
//!   reads EOF (or a reset) once it reads again;
//! - requestor B reads in bursts with pauses of 1.5 s (the server's writes
//!   block in each pause, for less than the send timeout) for the whole
//!   churn: it stays connected, and once it reads at full speed its last
//!   state of every address equals the store;
//! - `leaseline watch` follows at full speed and ends equal to the store;
//! - the server's RSS stays within a fixed bound of its starting value;
//! - DHCP keeps serving: every exchange of the relay completes.
//!
//! The load is closed-loop (a window of exchanges in flight, the next sent
//! when one completes) rather than perfdhcp's fixed rate: this machine's
//! CPU is shared, and a fixed rate turns other people's builds into drops.
//! It takes as long as the server needs for 100,000 changes.
//!
//! Relay address (giaddr): `loopback_relay` (test-support).

use crate::active_support;

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use active_support::*;
use leaseline_test_support::load_bindings;
use leaseline_test_support::loopback_relay;
use leaseline_wire::{FrameDecoder, Message};

const SECOND: Duration = Duration::from_secs(1);
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
/// 1,009 addresses.
const POOL: &str = "10.0.0.10-10.0.3.250";
const POOL_SIZE: usize = 1009;
const CLIENTS: u32 = 1000;
const CHANGES: u64 = 100_000;
const SEND_TIMEOUT_S: u64 = 3;
/// Allowed growth of the server's RSS over its value once all requestors
/// are connected, while 100,000 changes happen: a guard against leaks.
/// What does grow: the catch-up history (16 bytes a change, 1.6 MiB
/// here), the shared live log (the last 16,384 changes' bindings and their
/// one shared encoding, ~8 MiB at most; full while DHCP is overloaded and
/// updates are held, as the churn here makes it), SQLite's page caches,
/// and what mimalloc keeps of freed memory for reuse (measured growth:
/// 15-25 MiB with mimalloc, 7-11 MiB with glibc's malloc). Kept per
/// change, a framed reply (~290 bytes) would add over 27 MiB for 100,000
/// changes on top of that. The check that tells a per-address pending set
/// from a per-change queue is A's `pending=` at its close, not this bound.
const RSS_GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// Requestor B: while `slow` is set, reads in bursts (what is there for
/// `burst`) with a pause of `pause` in between, shorter than the send
/// timeout: the server's writes block in every pause, and it must coalesce
/// the changes meanwhile, not close B. Reads as fast as it can otherwise.
/// Keeps the last state of every address.
struct Follower {
    view: Arc<Mutex<HashMap<Ipv4Addr, Seen>>>,
    slow: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    messages: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<String>>,
}

impl Follower {
    fn start(mut s: TcpStream, burst: Duration, pause: Duration) -> Follower {
        let view: Arc<Mutex<HashMap<Ipv4Addr, Seen>>> = Arc::default();
        let slow = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let messages = Arc::new(AtomicU64::new(0));
        let (v, sl, st, n) = (view.clone(), slow.clone(), stop.clone(), messages.clone());
        let handle = std::thread::spawn(move || {
            let mut dec = FrameDecoder::new(65_535);
            let mut buf = vec![0u8; 256 * 1024];
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut burst_start = Instant::now();
            while !st.load(Ordering::Relaxed) {
                let slow = sl.load(Ordering::Relaxed);
                if slow && burst_start.elapsed() > burst {
                    // Pacing the slow reader (not synchronisation).
                    std::thread::sleep(pause);
                    burst_start = Instant::now();
                }
                match s.read(&mut buf) {
                    Ok(0) => return "closed by the server".to_owned(),
                    Ok(k) => dec.extend(&buf[..k]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return format!("read: {e}"),
                }
                loop {
                    match dec.next_frame() {
                        Ok(Some(f)) => {
                            n.fetch_add(1, Ordering::Relaxed);
                            let m = Message::decode(f).expect("decode");
                            if let ActiveEvent::Update(r) = classify(&m) {
                                v.lock().unwrap().insert(r.ip, Seen::from_record(&r));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return format!("framing: {e}"),
                    }
                }
            }
            "stopped".to_owned()
        });
        Follower {
            view,
            slow,
            stop,
            messages,
            handle: Some(handle),
        }
    }

    fn still_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    fn end(&mut self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

#[test]
fn stalled_and_slow_requestors_cost_bounded_memory() {
    let mut cfg = Config::new(*RELAY).active(&format!("send_timeout = {SEND_TIMEOUT_S}"));
    cfg.pool = POOL.into();
    let mut server = cfg.spawn();
    let pid = server.pid().expect("server pid");

    let mark = server.log_mark();
    let mut a = connect_small(cfg.tcp, 4096);
    send_query(&mut a, 0x0a00_0001, None);
    let a_peer = format!("peer={}", a.local_addr().unwrap());
    let mut b_stream = connect_small(cfg.tcp, 64 * 1024);
    send_query(&mut b_stream, 0x0b00_0001, None);
    let mut b = Follower::start(
        b_stream,
        Duration::from_millis(100),
        Duration::from_millis(1500),
    );
    let watch = spawn_watch(cfg.tcp, &["--no-reconnect"], None);
    leaseline_test_support::wait_until("three active queries", 10 * SECOND, || {
        (server.logs()[mark..]
            .iter()
            .filter(|l| l.contains("active query started"))
            .count()
            >= 3)
            .then_some(())
    });
    let rss_start = rss_kib(pid);

    // RSS sampled every 50 ms while the churn runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while sampling.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        })
    };
    let t0 = Instant::now();
    let st = churn(
        *RELAY,
        cfg.dhcp,
        CLIENTS,
        CHANGES,
        64,
        Duration::from_secs(240),
    );
    let took = t0.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let rss_max = sampler.join().unwrap();
    server.assert_running();
    let changes = st.changes();
    eprintln!(
        "{changes} changes in {took:.1?} ({:.0}/s): {st:?}; server RSS {rss_start} KiB at the start, at most {rss_max} KiB",
        changes as f64 / took.as_secs_f64()
    );
    // DHCP kept serving: every exchange completed, few needed a retry.
    assert_eq!(st.failed, 0, "exchanges abandoned after 5 tries: {st:?}");
    assert!(
        st.retries * 100 < st.acks,
        "more than 1 % of the exchanges needed a retry: {st:?}"
    );

    // A: closed after the send timeout, with a pending set no larger than
    // the pool.
    let line = server
        .try_wait_for_line(mark, 10 * SECOND, |l| {
            l.contains(&a_peer) && l.contains("ACTIVE_LQ_SEND_TIMEOUT")
        })
        .unwrap_or_else(|| {
            panic!(
                "A was not closed for ACTIVE_LQ_SEND_TIMEOUT\n{}",
                server.log_tail(30)
            )
        });
    eprintln!("A: {line}");
    let field = |name: &str| -> usize {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    let (pending, unread_log, in_history) =
        (field("pending"), field("unread_log"), field("in_history"));
    assert!(
        pending <= POOL_SIZE,
        "A's pending set ({pending}) is larger than the number of addresses ({POOL_SIZE})"
    );
    // The rest of what A had not read is the shared log's window, the same
    // memory for every requestor.
    assert!(
        unread_log <= leaseline_store::LIVE_LOG_CAP,
        "A is {unread_log} changes behind in a log of {}",
        leaseline_store::LIVE_LOG_CAP
    );
    // The check has teeth only if A fell out of the shared log's window and
    // then many more changes than addresses happened while it was blocked
    // (at least the send timeout).
    let rate = changes as f64 / took.as_secs_f64();
    assert!(
        rate * SEND_TIMEOUT_S as f64
            > (leaseline_store::LIVE_LOG_CAP + 2 * POOL_SIZE) as f64,
        "too few changes ({rate:.0}/s) during A's {SEND_TIMEOUT_S} s block to tell coalescing apart"
    );
    // So A fell out of the window and let go of the log: what it skipped
    // waits in the shared history, not in memory of its own.
    assert!(in_history > 0, "A never skipped: {line}");
    let mut a = Conn::from_stream(a);
    let buffered = a.expect_closed(10 * SECOND);
    eprintln!(
        "A read {} buffered messages, then the close",
        buffered.len()
    );

    // B stayed connected through the churn, and only A was closed.
    assert!(b.still_running(), "B was disconnected: {}", b.end());
    let closed: Vec<String> = server.logs()[mark..]
        .iter()
        .filter(|l| l.contains("ACTIVE_LQ_SEND_TIMEOUT"))
        .cloned()
        .collect();
    assert_eq!(
        closed.len(),
        1,
        "only A is closed for the send timeout: {closed:#?}"
    );
    let b_slow = b.messages.load(Ordering::Relaxed);

    // Memory stayed bounded.
    assert!(
        rss_max.saturating_sub(rss_start) < RSS_GROWTH_LIMIT_KIB,
        "server RSS grew from {rss_start} KiB to {rss_max} KiB (limit +{RSS_GROWTH_LIMIT_KIB} KiB)"
    );

    // B at full speed, and the watcher: both end with the store's states.
    b.slow.store(false, Ordering::Relaxed);
    let db = server.db_path();
    let deadline = Instant::now() + 30 * SECOND;
    loop {
        let store = load_bindings(&db);
        let b_diff = diff_with_store(&store, &b.view.lock().unwrap().clone());
        let w_diff = diff_with_store(&store, &last_seen(&watch));
        if b_diff.is_empty() && w_diff.is_empty() {
            eprintln!(
                "converged on {} bindings; B read {b_slow} messages while slow, {} in all; the watcher {} updates",
                store.len(),
                b.messages.load(Ordering::Relaxed),
                watch.count("update")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not converged 30 s after the churn.\nB: {}\nwatch: {}",
            show_diff(&b_diff),
            show_diff(&w_diff)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(b.still_running(), "B was disconnected: {}", b.end());
    b.end();
}
