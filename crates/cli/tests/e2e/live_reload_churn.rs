#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Live reload under churn (issue 19): a closed-loop relay keeps DORAs and
//! releases going while ten Active Leasequery requestors, each from its own
//! loopback address, follow the server, and the configuration changes
//! three times:
//!
//! 1. a pool is added (SIGHUP): a client that found the subnet full gets an
//!    address from the new pool;
//! 2. the lease times change (`config-reload`): the next ACK carries the
//!    new one, and a renewing client keeps its address;
//! 3. a broken file (a syntax error, then a bad value) is refused with the
//!    key and line, and the running configuration still serves;
//! 4. one requestor's allowlist entry is removed: it gets QueryTerminated
//!    and is closed, and may not connect again.
//!
//! At the end no exchange was abandoned, every client's last ACK is in the
//! store, and the nine requestors still allowed, connected throughout, saw
//! every change: their last state of each address is the store's.

use crate::active_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::LazyLock;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use active_support::*;
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, load_bindings, mac_string, DhcpState, RelayClient, ServerConfig, ServerProcess,
    Subnet, TestClient,
};
use leaseline_wire::StatusCode;
use serde_json::Value;

static CHURN_RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
static PROBE_RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const WATCHERS: u8 = 10;
const SECOND: Duration = Duration::from_secs(1);

/// Watcher `i`'s source address: 127.0.0.101 to 127.0.0.110.
fn watcher_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 101 + i)
}

fn ctl(url: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(["ctl", "--server", url, "--json"])
        .args(args)
        .output()
        .expect("run leaseline ctl");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ctl {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit status"), v)
}

/// A TCP connection to `to` from `from` (bound before connecting).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((from, 0)))?;
            let s = sock.connect(to).await?;
            s.into_std()
        })
        .unwrap_or_else(|e| panic!("connect {from} to {to}: {e}"));
    s.set_nonblocking(false).expect("blocking");
    s
}

/// How a requestor's query ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    QueryTerminated(String),
    Closed,
}

#[derive(Default)]
struct Watched {
    view: HashMap<Ipv4Addr, Seen>,
    updates: usize,
    ended: Option<Ended>,
}

/// An Active Leasequery requestor on a thread: a live query (no catch-up)
/// from `from`; it keeps the last state seen of each address.
struct Requestor {
    state: Arc<(Mutex<Watched>, Condvar)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Requestor {
    fn start(from: Ipv4Addr, server: SocketAddr) -> Requestor {
        let mut stream = connect_from(from, server);
        send_query(&mut stream, 0x7000 + u32::from(from.octets()[3]), None);
        let state: Arc<(Mutex<Watched>, Condvar)> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (st, halt) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut conn = Conn::from_stream(stream);
            loop {
                let ev = conn.recv_event(Duration::from_millis(200));
                let mut s = st.0.lock().unwrap();
                match ev {
                    Ok((_, ActiveEvent::Update(r))) => {
                        s.updates += 1;
                        s.view.insert(r.ip, Seen::from_record(&r));
                    }
                    Ok((
                        _,
                        ActiveEvent::Status {
                            code: StatusCode::QueryTerminated,
                            text,
                            ..
                        },
                    )) => {
                        s.ended = Some(Ended::QueryTerminated(text));
                    }
                    Ok(_) => {}
                    Err(RecvError::Timeout) => {
                        if halt.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                    }
                    Err(e) => {
                        assert!(e.is_close(), "requestor {from}: {e:?}");
                        s.ended.get_or_insert(Ended::Closed);
                        st.1.notify_all();
                        return;
                    }
                }
                st.1.notify_all();
            }
        });
        Requestor {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn ended(&self) -> Option<Ended> {
        self.state.0.lock().unwrap().ended.clone()
    }

    fn view(&self) -> HashMap<Ipv4Addr, Seen> {
        self.state.0.lock().unwrap().view.clone()
    }

    /// Waits until the connection is closed; how the query ended.
    fn wait_closed(&self, timeout: Duration) -> (Option<Ended>, usize) {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.0.lock().unwrap();
        while s.ended != Some(Ended::Closed) && !matches!(s.ended, Some(Ended::QueryTerminated(_)))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not closed within {timeout:?}");
            s = self.state.1.wait_timeout(s, left).unwrap().0;
        }
        (s.ended.clone(), s.updates)
    }
}

impl Drop for Requestor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the config"))
        + 1
}

#[test]
fn reload_under_churn_with_ten_requestors() {
    leaseline_test_support::require_root();
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, leaseline_test_support::free_udp_port()));
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let url = format!("http://{web}");
    let allow: Vec<String> = (0..WATCHERS)
        .map(|i| format!("{}/32", watcher_ip(i)))
        .collect();
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let text = ServerConfig::new(dhcp)
        .holds()
        .history(3600, 1_000_000)
        .subnet(Subnet::new("10.0.0.0/16", "10.0.0.10-10.0.255.250", &[*CHURN_RELAY]).router())
        // The probe subnet: a pool of two addresses.
        .subnet(Subnet::new("10.1.0.0/24", "10.1.0.10-10.1.0.11", &[*PROBE_RELAY]).router())
        .allow(&allow)
        .bulk(tcp, "")
        .active(true, "")
        .extra(&format!("\n[http]\nlisten = \"{web}\"\n"))
        .build();
    let server = ServerProcess::spawn(BIN, &text);
    let running = server.config_text().to_owned();

    // Ten requestors, connected before any binding exists.
    let mark = server.log_mark();
    let requestors: Vec<Requestor> = (0..WATCHERS)
        .map(|i| Requestor::start(watcher_ip(i), tcp))
        .collect();
    server.wait_for_log_count(
        mark,
        &["active query started"],
        usize::from(WATCHERS),
        10 * SECOND,
    );

    // The probe subnet is full.
    let mut probe = RelayClient::bind(*PROBE_RELAY, dhcp).expect("bind the probe relay");
    let p1 = probe.dora(&TestClient::new(9001)).expect("DORA p1");
    let p2 = probe.dora(&TestClient::new(9002)).expect("DORA p2");
    let p3 = TestClient::new(9003);
    // No answer is the answer: wait 3 x 1 s for it, not 3 x 3 s.
    let patience = std::mem::replace(&mut probe.timeout, SECOND);
    assert!(probe.discover(&p3).is_none(), "the pool of two is full");
    probe.timeout = patience;

    // The churn, until told to stop.
    let ctl_churn = Arc::new(ChurnControl::default());
    let c = Arc::clone(&ctl_churn);
    let churn =
        std::thread::spawn(move || churn_until(*CHURN_RELAY, dhcp, 300, 16, 180 * SECOND, &c));
    let acks = ctl_churn.wait_acks(0, 300, 60 * SECOND);

    // 1. A pool added, by SIGHUP.
    let added = running.replace(
        "pools = [\"10.1.0.10-10.1.0.11\"]",
        "pools = [\"10.1.0.10-10.1.0.11\", \"10.1.0.100-10.1.0.120\"]",
    );
    assert_ne!(added, running);
    std::fs::write(server.config_path(), &added).expect("rewrite the config");
    let mark = server.log_mark();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log_since(mark, "configuration reloaded", 10 * SECOND);
    assert!(!line.contains("next restart"), "{line}");
    let l3 = probe.dora(&p3).expect("DORA p3 after the pool was added");
    let new_pool = Ipv4Addr::new(10, 1, 0, 100)..=Ipv4Addr::new(10, 1, 0, 120);
    assert!(new_pool.contains(&l3.ip), "p3 got {} ", l3.ip);
    let acks = ctl_churn.wait_acks(acks, 200, 60 * SECOND);

    // 2. Lease times changed, by config-reload.
    let shorter = added.replace("lease_time = 3600", "lease_time = 1800");
    assert_ne!(shorter, added);
    std::fs::write(server.config_path(), &shorter).expect("rewrite the config");
    let (code, r) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["arguments"]["need-restart"], serde_json::json!([]), "{r}");
    let l4 = probe.dora(&TestClient::new(9004)).expect("DORA p4");
    assert_eq!(
        l4.lease_time,
        Some(1800),
        "the next ACK carries the new lease time"
    );
    let renewed = probe.dora(&TestClient::new(9001)).expect("renew p1");
    assert_eq!((renewed.ip, renewed.lease_time), (p1.ip, Some(1800)));
    let acks = ctl_churn.wait_acks(acks, 200, 60 * SECOND);

    // 3. Broken files: refused with the key and line; the running
    // configuration (1800 s) still serves.
    let syntax = shorter.replacen("lease_time = 1800", "lease_time = = 1800", 1);
    std::fs::write(server.config_path(), &syntax).expect("rewrite the config");
    let (code, r) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 1, "{r}");
    let at = format!("line {}", line_of(&syntax, "= = 1800"));
    let said = r["text"].as_str().expect("text");
    assert!(said.contains(&at), "`{at}` not in: {said}");
    let bad = shorter.replacen("lease_time = 1800", "lease_time = 5", 1);
    std::fs::write(server.config_path(), &bad).expect("rewrite the config");
    let (code, r) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 1, "{r}");
    let at = format!(":{}:", line_of(&bad, "lease_time = 5"));
    let said = r["text"].as_str().expect("text");
    assert!(
        said.contains(&at) && said.contains("lease_time`"),
        "key and {at} not in: {said}"
    );
    let l5 = probe
        .dora(&TestClient::new(9005))
        .expect("DORA p5 under the running config");
    assert_eq!(l5.lease_time, Some(1800));
    let acks = ctl_churn.wait_acks(acks, 100, 60 * SECOND);

    // 4. The last requestor's entry removed from the allowlist.
    let removed = format!("\"{}/32\"", watcher_ip(WATCHERS - 1));
    let fewer = shorter.replace(&format!(", {removed}"), "");
    assert_ne!(fewer, shorter);
    std::fs::write(server.config_path(), &fewer).expect("rewrite the config");
    let (code, r) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 0, "{r}");
    let gone = &requestors[usize::from(WATCHERS) - 1];
    let (ended, _) = gone.wait_closed(10 * SECOND);
    assert_eq!(
        ended,
        Some(Ended::QueryTerminated("requestor no longer allowed".into())),
        "the removed requestor's end"
    );
    // It may not come back.
    let mut again = Conn::from_stream(connect_from(watcher_ip(WATCHERS - 1), tcp));
    again.expect_closed(10 * SECOND);
    ctl_churn.wait_acks(acks, 200, 60 * SECOND);

    ctl_churn
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = churn.join().expect("the churn");
    eprintln!(
        "churn: {} ACKs, {} releases, {} retries, {} abandoned, slowest {:?}",
        stats.acks, stats.releases, stats.retries, stats.failed, stats.worst
    );
    assert_eq!(stats.failed, 0, "exchanges abandoned");

    // No ACK lost: every client's last ACK is in the store.
    let store = load_bindings(&server.db_path());
    let by_ip: HashMap<Ipv4Addr, _> = store.iter().map(|b| (b.ip, b)).collect();
    let mut lost = Vec::new();
    let probes = [&p2, &l3, &l4, &renewed, &l5];
    for l in probes {
        match by_ip.get(&l.ip) {
            Some(b) if b.state == DhcpState::Active => {}
            other => lost.push(format!("probe {}: {other:?}", l.ip)),
        }
    }
    for (client, last) in &stats.last {
        match by_ip.get(&last.ip) {
            Some(b) if b.state == DhcpState::Active && b.chaddr[..] == last.chaddr[..] => {}
            // The release after it (sent without waiting for an answer)
            // may or may not be in yet; the address may even have been
            // leased again by another client.
            Some(b) if last.released && b.chaddr[..] != last.chaddr[..] => {}
            Some(b) if last.released && b.state == DhcpState::Released => {}
            other => lost.push(format!(
                "client {client} ({}) ACKed {}: store has {other:?}",
                mac_string(&last.chaddr),
                last.ip
            )),
        }
    }
    assert!(lost.is_empty(), "ACKs not in the store: {lost:#?}");

    // The nine still allowed stayed connected and saw every change.
    for (i, r) in requestors[..usize::from(WATCHERS) - 1].iter().enumerate() {
        let deadline = Instant::now() + 30 * SECOND;
        loop {
            assert_eq!(
                r.ended(),
                None,
                "requestor {} was closed",
                watcher_ip(i as u8)
            );
            let diff = diff_with_store(&load_bindings(&server.db_path()), &r.view());
            if diff.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "requestor {}: {}",
                watcher_ip(i as u8),
                show_diff(&diff)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!(
        "{} bindings; {} ACKs during the reloads",
        store.len(),
        stats.acks
    );
}
