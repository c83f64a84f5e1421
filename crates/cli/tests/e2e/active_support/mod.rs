//! Shared helpers for the Active Leasequery acceptance tests (`active_*.rs`):
//! a server config with the leasequery TCP listener, a blocking framed
//! connection for raw protocol checks, `leaseline watch --json` as a child
//! process, and the comparison of what a watcher saw with the store.
//!
//! Every test takes its own relay address (giaddr, test-support's
//! `loopback_relay`) and its own ports, so the tests run in parallel.

#![allow(dead_code, unused_imports)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub use leaseline_requestor::active::{active_query, classify, tls_request, ActiveEvent};
pub use leaseline_requestor::prl;
use leaseline_test_support::{
    mac_string, Binding, DhcpState, Netns, ServerConfig, ServerProcess, Subnet,
};
use leaseline_wire::{encode_frame, DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use serde_json::Value;

pub use leaseline_test_support::WatchProcess;

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// A TCP port on 127.0.0.1 no other caller in this process was given.
#[allow(unused_imports)] // not every test of this module uses it
pub use leaseline_test_support::free_tcp_port;

/// What goes into the server's config.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address of the DHCP service.
    pub dhcp: SocketAddr,
    /// TCP address of the leasequery listener (bulk and active).
    pub tcp: SocketAddr,
    /// Relay addresses (giaddr) served by the subnet.
    pub relays: Vec<Ipv4Addr>,
    pub pool: String,
    pub history_max_age: u32,
    pub history_max_count: usize,
    /// `Some(lines)`: `[leasequery.active] enabled = true, insecure = true`
    /// plus these lines; `None`: no active section (Active Leasequery off).
    pub active: Option<String>,
    /// Extra lines for `[leasequery.bulk]`.
    pub bulk: String,
    /// More `[store]` lines (e.g. `backend = "postgres"` and its `url`).
    pub store: String,
    /// UDP Leasequery on (RFC 4388), not rate limited.
    pub udp_leasequery: bool,
}

impl Config {
    /// DHCP on a free UDP port and the listener on a free TCP port of
    /// 127.0.0.1, the whole 10.0.0.0/16 pool, an hour of history, Active
    /// Leasequery on in insecure mode with the RFC's timers.
    pub fn new(relay: Ipv4Addr) -> Config {
        Config {
            dhcp: SocketAddr::from((Ipv4Addr::LOCALHOST, leaseline_test_support::free_udp_port())),
            tcp: SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port())),
            relays: vec![relay],
            pool: "10.0.0.10-10.0.255.250".into(),
            history_max_age: 3600,
            history_max_count: 1_000_000,
            active: Some(String::new()),
            bulk: String::new(),
            store: String::new(),
            udp_leasequery: false,
        }
    }

    /// `[leasequery.active]` lines, e.g. `"idle_timeout = 1"`.
    pub fn active(mut self, lines: &str) -> Self {
        self.active = Some(lines.to_owned());
        self
    }

    pub fn render(&self) -> String {
        let config = ServerConfig::new(self.dhcp)
            .holds()
            .history(self.history_max_age, self.history_max_count)
            .subnet(
                Subnet::new("10.0.0.0/16", &self.pool, &self.relays)
                    .lab_options(&[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]),
            )
            .allow(&["127.0.0.0/8"])
            .bulk(self.tcp, &self.bulk)
            .store(&self.store);
        let config = if self.udp_leasequery {
            config.udp(1_000_000, 1_000_000)
        } else {
            config
        };
        match &self.active {
            Some(lines) => config.active(true, lines).build(),
            None => config.build(),
        }
    }

    pub fn spawn(&self) -> ServerProcess {
        ServerProcess::spawn(BIN, &self.render())
    }

    pub fn spawn_in(&self, ns: &Netns) -> ServerProcess {
        ServerProcess::builder(BIN, &self.render())
            .netns(ns)
            .spawn()
    }
}

/// Why no message came.
#[derive(Debug)]
pub enum RecvError {
    Timeout,
    /// Orderly EOF from the server.
    Closed,
    /// Connection reset (the server closed with unread data) or another error.
    Io(io::Error),
    Bad(String),
}

impl RecvError {
    /// EOF or reset: the server closed the connection.
    pub fn is_close(&self) -> bool {
        match self {
            RecvError::Closed => true,
            RecvError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// A blocking leasequery TCP connection with the 2-byte framing. Every
/// frame sent and received is kept (for the tshark check).
pub struct Conn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    pub sent: Vec<Vec<u8>>,
    pub received: Vec<Vec<u8>>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Conn::from_stream(s)
    }

    pub fn from_stream(stream: TcpStream) -> Conn {
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            decoder: FrameDecoder::new(65_535),
            buf: vec![0; 64 * 1024],
            sent: Vec::new(),
            received: Vec::new(),
        }
    }

    pub fn send(&mut self, m: &Message) {
        let body = m.to_bytes().expect("encode");
        self.sent.push(body.clone());
        let mut out = Vec::new();
        encode_frame(&body, &mut out).expect("frame");
        self.stream.write_all(&out).expect("send");
    }

    /// Bytes as they are (no framing added, nothing recorded).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn recv(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => {
                    let f = f.to_vec();
                    let m = Message::decode(&f).map_err(|e| RecvError::Bad(e.to_string()));
                    self.received.push(f);
                    return m;
                }
                Ok(None) => {}
                Err(e) => return Err(RecvError::Bad(e.to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.decoder.extend(&self.buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(RecvError::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }

    pub fn recv_event(&mut self, timeout: Duration) -> Result<(Message, ActiveEvent), RecvError> {
        let m = self.recv(timeout)?;
        let e = classify(&m);
        Ok((m, e))
    }

    /// The next message, which must be a DHCPLEASEQUERYSTATUS with `code`
    /// and a base-time; returns (message, base-time).
    pub fn expect_status(&mut self, code: StatusCode, timeout: Duration) -> (Message, u32) {
        let m = self
            .recv(timeout)
            .unwrap_or_else(|e| panic!("waiting for LEASEQUERYSTATUS {code:?}: {e:?}"));
        assert_eq!(
            m.message_type(),
            Some(MessageType::LeaseQueryStatus),
            "expected LEASEQUERYSTATUS {code:?}, got {m:?}"
        );
        match classify(&m) {
            ActiveEvent::Status {
                code: c,
                base_time: Some(t),
                ..
            } if c == code => (m, t),
            other => panic!("expected status {code:?} with a base-time, got {other:?}"),
        }
    }

    /// Reads until the server closes the connection (EOF or reset) and
    /// returns what came before; panics if it stays open past `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(m) => got.push(m),
                Err(e) if e.is_close() => return got,
                Err(RecvError::Timeout) => panic!(
                    "the server did not close the connection within {timeout:?}; received {got:?}"
                ),
                Err(e) => panic!("reading until close: {e:?} (received {got:?})"),
            }
        }
    }
}

/// A DHCPBULKLEASEQUERY for all addresses (RFC 6926 §7.2), optionally
/// with a time window.
pub fn bulk_all_query(xid: u32, start: Option<u32>, end: Option<u32>) -> Message {
    use leaseline_wire::DhcpOption;
    let mut m = Message {
        xid,
        htype: 0,
        hlen: 0,
        ..Message::default()
    };
    m.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    m.options
        .push(DhcpOption::ParameterRequestList(prl::BINDINGS.to_vec()));
    if let Some(t) = start {
        m.options.push(DhcpOption::QueryStartTime(t));
    }
    if let Some(t) = end {
        m.options.push(DhcpOption::QueryEndTime(t));
    }
    m
}

/// A binding as an Active Leasequery requestor saw it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub state: String,
    pub mac: Option<String>,
    pub cltt: Option<u32>,
    pub state_since: Option<u32>,
    pub base_time: Option<u32>,
}

impl Seen {
    /// From a `leaseline watch --json` update line.
    pub fn from_json(v: &Value) -> Seen {
        let u = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as u32);
        Seen {
            state: v
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            mac: v.get("mac").and_then(Value::as_str).map(str::to_owned),
            cltt: u("cltt"),
            state_since: u("state_since"),
            base_time: u("base_time"),
        }
    }

    /// From a decoded update on a raw connection.
    pub fn from_record(r: &leaseline_requestor::record::Record) -> Seen {
        Seen {
            state: r.state.map(DhcpState::name).unwrap_or("?").to_owned(),
            mac: r.mac.clone(),
            cltt: r.cltt,
            state_since: r.state_since,
            base_time: r.base_time,
        }
    }
}

/// Differences between the store and what a requestor saw last, one line
/// each (empty: they agree). Every stored binding must have been seen, with
/// the same state, hardware address, CLTT and start of state; nothing may
/// have been seen for an address the store does not hold, unless it was
/// seen as AVAILABLE.
pub fn diff_with_store(store: &[Binding], seen: &HashMap<Ipv4Addr, Seen>) -> Vec<String> {
    let mut out = Vec::new();
    let by_ip: BTreeMap<Ipv4Addr, &Binding> = store.iter().map(|b| (b.ip, b)).collect();
    for (ip, b) in &by_ip {
        let Some(s) = seen.get(ip) else {
            out.push(format!("{ip}: {} in the store, never seen", b.state.name()));
            continue;
        };
        let mac = (!b.chaddr.is_empty()).then(|| mac_string(&b.chaddr));
        let want = (
            b.state.name(),
            mac.as_deref(),
            (b.cltt != 0).then_some(b.cltt),
            b.state_since,
        );
        let got = (
            s.state.as_str(),
            s.mac.as_deref(),
            s.cltt,
            s.state_since.unwrap_or(0),
        );
        if want != got {
            out.push(format!(
                "{ip}: store (state, mac, cltt, state_since) = {want:?}, last seen {got:?}"
            ));
        }
    }
    for (ip, s) in seen {
        if !by_ip.contains_key(ip) && s.state != "AVAILABLE" {
            out.push(format!("{ip}: seen as {s:?}, not in the store"));
        }
    }
    out
}

/// Polls the store until the watcher's last state of every address equals
/// it; panics with the differences after `timeout`. Returns the store's rows.
pub fn wait_converged(db: &std::path::Path, watch: &WatchProcess, timeout: Duration) -> usize {
    wait_equal_to(|| leaseline_test_support::load_bindings(db), watch, timeout).len()
}

/// Polls `load` (the store's bindings, e.g. a shared database's) until the
/// watcher's last state of every address equals it; panics with the
/// differences after `timeout`. Returns the last rows loaded.
pub fn wait_equal_to(
    load: impl Fn() -> Vec<Binding>,
    watch: &WatchProcess,
    timeout: Duration,
) -> Vec<Binding> {
    let deadline = Instant::now() + timeout;
    loop {
        let store = load();
        let diff = diff_with_store(&store, &last_seen(watch));
        if diff.is_empty() {
            return store;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher's last states differ from the store {timeout:?} after the churn: {}",
            show_diff(&diff)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Summary of a diff for assertion messages.
pub fn show_diff(diff: &[String]) -> String {
    let mut s = format!("{} differences", diff.len());
    for d in diff.iter().take(20) {
        s.push_str("\n  ");
        s.push_str(d);
    }
    s
}

/// `leaseline watch --server ADDR --json` plus `args`; inside `ns` when given.
pub fn spawn_watch(server: SocketAddr, args: &[&str], ns: Option<&Netns>) -> WatchProcess {
    let builder = WatchProcess::builder(BIN)
        .args(["--server", &server.to_string(), "--json"])
        .args(args)
        .env("RUST_LOG", "warn");
    match ns {
        Some(ns) => builder.netns(ns).spawn(),
        None => builder.spawn(),
    }
}

/// The last update a watcher saw for each address.
pub fn last_seen(watch: &WatchProcess) -> HashMap<Ipv4Addr, Seen> {
    let mut m = HashMap::new();
    for v in watch.events().iter().filter(|v| v["event"] == "update") {
        let ip: Ipv4Addr = v["ip"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("update without ip: {v}"));
        m.insert(ip, Seen::from_json(v));
    }
    m
}

pub use leaseline_test_support::rss_kib;

/// Waits until the clock has moved to a later second than `t`; returns it.
pub fn next_second_after(t: u32) -> u32 {
    leaseline_test_support::wait_until("the next second", Duration::from_secs(3), || {
        let now = leaseline_test_support::unix_now();
        (now > t).then_some(now)
    })
}

/// A TCP connection with a receive buffer of `rcvbuf` bytes (set before
/// connecting, so the advertised window stays small).
pub fn connect_small(addr: SocketAddr, rcvbuf: u32) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.set_recv_buffer_size(rcvbuf)?;
            let s = sock.connect(addr).await?;
            s.set_nodelay(true)?;
            s.into_std()
        })
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_nonblocking(false).expect("blocking");
    s
}

/// Sends a DHCPACTIVELEASEQUERY (query-start-time `since`) on `s`.
pub fn send_query(s: &mut TcpStream, xid: u32, since: Option<u32>) {
    let mut out = Vec::new();
    encode_frame(
        &active_query(xid, since, prl::BINDINGS).to_bytes().unwrap(),
        &mut out,
    )
    .unwrap();
    s.write_all(&out).expect("send the active query");
}

/// What the relay did.
#[derive(Debug, Default)]
pub struct ChurnStats {
    pub acks: u64,
    pub releases: u64,
    /// Requests sent again after 1 s without a reply.
    pub retries: u64,
    /// Exchanges abandoned after 5 tries.
    pub failed: u64,
    /// Slowest completed exchange (DISCOVER sent to ACK received).
    pub worst: Duration,
    /// Each client's last ACK: its hardware address, the address ACKed,
    /// and whether the client released it since.
    pub last: HashMap<u32, LastAck>,
}

/// A client's last ACK in a churn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastAck {
    pub chaddr: [u8; 6],
    pub ip: Ipv4Addr,
    pub released: bool,
}

/// Runs a churn until told to stop ([`churn_until`]), and says how far it got.
#[derive(Debug, Default)]
pub struct ChurnControl {
    pub stop: std::sync::atomic::AtomicBool,
    /// ACKs so far.
    pub acks: std::sync::atomic::AtomicU64,
}

impl ChurnControl {
    pub fn acks(&self) -> u64 {
        self.acks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (up to `timeout`) until `more` ACKs came after `from`.
    pub fn wait_acks(&self, from: u64, more: u64, timeout: Duration) -> u64 {
        leaseline_test_support::wait_until("churn ACKs", timeout, || {
            let n = self.acks();
            (n >= from + more).then_some(n)
        })
    }
}

enum Budget<'a> {
    Changes(u64),
    Until(&'a ChurnControl),
}

impl ChurnStats {
    pub fn changes(&self) -> u64 {
        self.acks + self.releases
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Discover,
    Request(Ipv4Addr, Ipv4Addr),
}

/// A closed-loop relay on `relay`:67 running DORAs for `clients` clients,
/// `window` exchanges in flight (the next sent when one completes, so the
/// load adapts to the CPU this shared machine leaves us). After its ACK a
/// client releases its address every other time (its next DORA leases
/// again) and renews otherwise. Stops once `changes` binding changes (ACKs
/// and releases) are done. Requests unanswered for 1 s are sent again, up
/// to 5 times.
pub fn churn(
    relay: Ipv4Addr,
    server: SocketAddr,
    clients: u32,
    changes: u64,
    window: usize,
    deadline: Duration,
) -> ChurnStats {
    run_churn(
        relay,
        server,
        clients,
        window,
        deadline,
        Budget::Changes(changes),
    )
}

/// [`churn`] until `ctl.stop` is set (then the exchanges in flight
/// finish); ACKs are counted in `ctl.acks` as they come.
pub fn churn_until(
    relay: Ipv4Addr,
    server: SocketAddr,
    clients: u32,
    window: usize,
    deadline: Duration,
    ctl: &ChurnControl,
) -> ChurnStats {
    run_churn(relay, server, clients, window, deadline, Budget::Until(ctl))
}

fn run_churn(
    relay: Ipv4Addr,
    server: SocketAddr,
    clients: u32,
    window: usize,
    deadline: Duration,
    budget: Budget,
) -> ChurnStats {
    use std::sync::atomic::Ordering::Relaxed;
    // Whether to start another exchange, `inflight` being in flight.
    let more = |st: &ChurnStats, inflight: usize| match &budget {
        Budget::Changes(n) => st.changes() + (inflight as u64) < *n,
        Budget::Until(c) => !c.stop.load(Relaxed),
    };
    let sock = UdpSocket::bind((relay, 67)).unwrap_or_else(|e| panic!("bind {relay}:67: {e}"));
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let build = |client: u32, xid: u32, ty: MessageType| {
        let b = client.to_be_bytes();
        let mut m = Message {
            xid,
            hops: 1,
            giaddr: relay,
            ..Message::default()
        };
        m.chaddr[..6].copy_from_slice(&[0x02, relay.octets()[3], b[0], b[1], b[2], b[3]]);
        m.options.push(DhcpOption::MessageType(ty));
        m
    };
    let send = |m: &Message| {
        sock.send_to(&m.to_bytes().unwrap(), server)
            .expect("send to the server");
    };
    let start = Instant::now();
    let mut st = ChurnStats::default();
    // xid -> (client, stage, first sent, last sent, tries)
    let mut inflight: HashMap<u32, (u32, Stage, Instant, Instant, u32)> = HashMap::new();
    let mut cycles = vec![0u32; clients as usize];
    let mut next_client = 0u32;
    let mut next_xid = 1u32;
    let mut buf = vec![0u8; 2048];
    let request = |client: u32, xid: u32, stage: Stage| {
        let mut m = build(client, xid, MessageType::Discover);
        if let Stage::Request(ip, sid) = stage {
            m = build(client, xid, MessageType::Request);
            m.options.push(DhcpOption::RequestedIp(ip));
            m.options.push(DhcpOption::ServerId(sid));
        }
        m
    };
    while more(&st, 0) || !inflight.is_empty() {
        assert!(
            start.elapsed() < deadline,
            "churn not done within {deadline:?}: {st:?}"
        );
        // Keep the window full (one exchange per client at a time).
        while more(&st, inflight.len()) && inflight.len() < window {
            let client = next_client;
            next_client = (next_client + 1) % clients;
            if inflight.values().any(|e| e.0 == client) {
                break;
            }
            let xid = next_xid;
            next_xid = next_xid.wrapping_add(1);
            send(&request(client, xid, Stage::Discover));
            let now = Instant::now();
            inflight.insert(xid, (client, Stage::Discover, now, now, 1));
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let Ok(m) = Message::decode(&buf[..n]) else {
                    continue;
                };
                let Some((client, _, first, _, _)) = inflight.remove(&m.xid) else {
                    continue; // a late reply to a retried request
                };
                let sid = m.options.iter().find_map(|o| match o {
                    DhcpOption::ServerId(a) => Some(*a),
                    _ => None,
                });
                match (m.message_type(), sid) {
                    (Some(MessageType::Offer), Some(sid)) => {
                        let stage = Stage::Request(m.yiaddr, sid);
                        let now = Instant::now();
                        send(&request(client, m.xid, stage));
                        inflight.insert(m.xid, (client, stage, first, now, 1));
                    }
                    (Some(MessageType::Ack), Some(sid)) => {
                        st.acks += 1;
                        if let Budget::Until(c) = &budget {
                            c.acks.fetch_add(1, Relaxed);
                        }
                        st.worst = st.worst.max(first.elapsed());
                        let mut chaddr = [0u8; 6];
                        chaddr.copy_from_slice(&m.chaddr[..6]);
                        let released = cycles[client as usize] % 2 == 1;
                        st.last.insert(
                            client,
                            LastAck {
                                chaddr,
                                ip: m.yiaddr,
                                released,
                            },
                        );
                        let c = &mut cycles[client as usize];
                        *c += 1;
                        if (*c).is_multiple_of(2) {
                            let mut r = build(client, m.xid, MessageType::Release);
                            r.ciaddr = m.yiaddr;
                            r.options.push(DhcpOption::ServerId(sid));
                            send(&r);
                            st.releases += 1;
                        }
                    }
                    other => panic!("client {client}: unexpected reply {other:?}: {m:?}"),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("relay socket: {e}"),
        }
        // Retry what got no answer within a second; give up after 5 tries.
        let now = Instant::now();
        let late: Vec<u32> = inflight
            .iter()
            .filter(|(_, e)| now.duration_since(e.3) > Duration::from_secs(1))
            .map(|(x, _)| *x)
            .collect();
        for xid in late {
            let e = inflight.get_mut(&xid).unwrap();
            if e.4 >= 5 {
                st.failed += 1;
                inflight.remove(&xid);
                continue;
            }
            e.3 = now;
            e.4 += 1;
            st.retries += 1;
            let (client, stage) = (e.0, e.1);
            send(&request(client, xid, stage));
        }
    }
    st
}
