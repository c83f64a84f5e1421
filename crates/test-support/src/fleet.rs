//! [`Fleet`]: a closed-loop DHCP relay agent for many clients and several
//! servers sharing one lease database, sending to the first server and, when
//! it does not answer, to the next, as a relay configured with all of them
//! does once its first server is gone.
//!
//! Each client does one exchange at a time; `window` exchanges are in
//! flight at once (the next starts when one ends, so the load follows what
//! the machine gives). A client without a lease does DISCOVER, OFFER,
//! REQUEST, ACK; a client with a lease renews it (REQUEST with ciaddr,
//! RFC 2131 §4.3.2 RENEWING/REBINDING), or one turn in three releases it. A
//! message unanswered within `timeout` goes to the next server with the
//! same xid (a client's REQUEST after an OFFER goes to the server that
//! offered first); after two passes over the servers the exchange is given
//! up. A renewal NAKed or answered with another address is a *problem*:
//! a client's lease was lost.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, Message, MessageType, BOOTREPLY, BOOTREQUEST};

use crate::{mac_string, Netns, TestClient, XorShift};

/// What a [`Fleet`] is.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The relay's address (giaddr); the fleet binds `giaddr:67`.
    pub giaddr: Ipv4Addr,
    /// The servers, in the order tried: the clients' home server first.
    pub servers: Vec<SocketAddr>,
    /// The clients are `TestClient::new(first_client + i)`, `i < clients`.
    pub first_client: u32,
    pub clients: u32,
    /// Exchanges in flight at once.
    pub window: usize,
    /// How long a server has to answer before the next one is tried.
    pub timeout: Duration,
    pub seed: u64,
}

/// What a client holds, as it was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// No lease (never had one, or released it).
    Unbound,
    /// ACKed `ip`; the last ACK came from server `by` (an index into
    /// [`FleetConfig::servers`]).
    Bound { ip: Ipv4Addr, by: usize },
}

/// How a renewal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewed {
    /// ACKed with the client's address by server `by`; `after_silence`:
    /// a server tried before it did not answer.
    Acked {
        by: usize,
        after_silence: bool,
    },
    Naked {
        by: usize,
    },
    /// ACKed, but for another address.
    Moved {
        by: usize,
        to: Ipv4Addr,
    },
    /// No server answered.
    Unanswered,
}

/// One renewal of [`Fleet::renew_all`].
#[derive(Debug, Clone)]
pub struct Renewal {
    pub client: TestClient,
    pub ip: Ipv4Addr,
    pub outcome: Renewed,
}

/// Counters.
#[derive(Debug, Default, Clone)]
pub struct FleetStats {
    /// ACKs received (DORAs and renewals).
    pub acks: u64,
    pub renewals: u64,
    pub releases: u64,
    /// REQUESTs after an OFFER answered with DHCPNAK (another server bound
    /// the address first): the client starts over.
    pub naks: u64,
    /// Messages a server did not answer within the timeout.
    pub timeouts: u64,
    /// Exchanges answered by another server than the first one tried.
    pub moved: u64,
    /// Exchanges no server answered.
    pub failed: u64,
    /// Replies for an exchange already over (answered by another server).
    pub late: u64,
    /// Lost leases and wrong answers, one line each.
    pub problems: Vec<String>,
}

/// ACKs received per server, readable while the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetProgress {
    acks: Arc<Vec<AtomicU64>>,
    held: Arc<Mutex<Vec<Held>>>,
}

impl FleetProgress {
    /// ACKs received from server `server` so far.
    pub fn acks_from(&self, server: usize) -> u64 {
        self.acks[server].load(Ordering::Relaxed)
    }

    /// Waits until `acks_from(server) >= n`; false after `timeout`.
    pub fn try_wait_acks_from(&self, server: usize, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.acks_from(server) < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Waits until `acks_from(server) >= n`; panics after `timeout`.
    pub fn wait_acks_from(&self, server: usize, n: u64, timeout: Duration) {
        assert!(
            self.try_wait_acks_from(server, n, timeout),
            "{n} ACKs from server {server} not received within {timeout:?} (have {})",
            self.acks_from(server)
        );
    }

    /// What each client holds now (index i: client `first_client + i`).
    pub fn held(&self) -> Vec<Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Discover,
    Select { ip: Ipv4Addr, sid: Ipv4Addr },
    Renew { ip: Ipv4Addr },
}

/// Given the fleet and which clients are in flight, the client whose
/// exchange starts next (None: none now).
type NextExchange<'a> = dyn FnMut(&mut Fleet, &[bool]) -> Option<(usize, Stage)> + 'a;

struct Exchange {
    client: usize,
    stage: Stage,
    /// The server the current message went to.
    at: usize,
    /// Servers tried for the current message.
    tries: usize,
    /// A server tried in this exchange did not answer.
    silence: bool,
    sent: Instant,
}

/// The relay agent and its clients; see the module documentation.
pub struct Fleet {
    cfg: FleetConfig,
    sock: UdpSocket,
    rng: XorShift,
    next_xid: u32,
    clients: Vec<TestClient>,
    progress: FleetProgress,
    pub stats: FleetStats,
    /// Renewals recorded by `renew_all`.
    renewals: Vec<Renewal>,
    recording: bool,
}

impl Fleet {
    /// Binds `giaddr:67` (inside `ns` when given).
    pub fn new(cfg: FleetConfig, ns: Option<&Netns>) -> Fleet {
        assert!(!cfg.servers.is_empty() && cfg.window > 0 && cfg.clients > 0);
        let addr = SocketAddrV4::new(cfg.giaddr, 67);
        let bind = move || UdpSocket::bind(addr);
        let sock = match ns {
            Some(ns) => ns.run_inside(bind),
            None => bind(),
        }
        .unwrap_or_else(|e| panic!("bind the fleet's relay socket {addr}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("read timeout");
        let progress = FleetProgress {
            acks: Arc::new(cfg.servers.iter().map(|_| AtomicU64::new(0)).collect()),
            held: Arc::new(Mutex::new(vec![Held::Unbound; cfg.clients as usize])),
        };
        Fleet {
            rng: XorShift::new(cfg.seed),
            next_xid: (cfg.seed as u32) | 1,
            clients: (0..cfg.clients)
                .map(|i| TestClient::new(cfg.first_client + i))
                .collect(),
            cfg,
            sock,
            progress,
            stats: FleetStats::default(),
            renewals: Vec::new(),
            recording: false,
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.cfg
    }

    pub fn progress(&self) -> FleetProgress {
        self.progress.clone()
    }

    /// Client `i`'s identity.
    pub fn client(&self, i: usize) -> &TestClient {
        &self.clients[i]
    }

    /// Churns until `stop` is set, then finishes the exchanges in flight.
    pub fn churn(&mut self, stop: &AtomicBool) {
        let mut cursor = 0usize;
        let n = self.clients.len();
        self.run(stop, &mut |f: &mut Fleet, busy: &[bool]| {
            // The next client not in flight; one that releases ends its
            // turn at once (a RELEASE has no reply) and the next is taken.
            for _ in 0..n {
                let c = cursor;
                cursor = (cursor + 1) % n;
                if busy[c] {
                    continue;
                }
                match f.held(c) {
                    Held::Unbound => return Some((c, Stage::Discover)),
                    Held::Bound { ip, .. } => {
                        if f.rng.range(0, 2) == 0 {
                            f.release(c, ip);
                            continue;
                        }
                        return Some((c, Stage::Renew { ip }));
                    }
                }
            }
            None
        });
    }

    /// Every client holding a lease renews it once (no other exchange
    /// runs meanwhile); returns each renewal's outcome.
    pub fn renew_all(&mut self) -> Vec<Renewal> {
        let mut todo: Vec<(usize, Ipv4Addr)> = (0..self.clients.len())
            .filter_map(|c| match self.held(c) {
                Held::Bound { ip, .. } => Some((c, ip)),
                Held::Unbound => None,
            })
            .collect();
        todo.reverse();
        self.recording = true;
        self.renewals.clear();
        self.run(&AtomicBool::new(false), &mut |_, _| {
            todo.pop().map(|(c, ip)| (c, Stage::Renew { ip }))
        });
        self.recording = false;
        std::mem::take(&mut self.renewals)
    }

    /// Runs [`Self::churn`] on a thread of its own until [`Churning::stop`].
    pub fn churn_in_background(mut self) -> Churning {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = self.progress();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || {
                self.churn(&flag);
                self
            })
            .expect("spawn the fleet's thread");
        Churning {
            stop,
            progress,
            thread,
        }
    }

    fn held(&self, c: usize) -> Held {
        self.progress.held.lock().unwrap_or_else(|e| e.into_inner())[c]
    }

    fn set_held(&self, c: usize, h: Held) {
        self.progress.held.lock().unwrap_or_else(|e| e.into_inner())[c] = h;
    }

    fn release(&mut self, c: usize, ip: Ipv4Addr) {
        let xid = self.xid();
        let mut m = self.message(c, xid, MessageType::Release);
        m.ciaddr = ip;
        m.options.push(DhcpOption::ServerId(self.server_id()));
        self.send(&m, 0);
        self.stats.releases += 1;
        self.set_held(c, Held::Unbound);
    }

    /// Every server of the test has server id 127.0.0.1 (the servers'
    /// `[server] server_id`); a RELEASE names it.
    fn server_id(&self) -> Ipv4Addr {
        Ipv4Addr::LOCALHOST
    }

    fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(0x9e37_79b9);
        self.next_xid
    }

    fn message(&self, c: usize, xid: u32, ty: MessageType) -> Message {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.clients[c].chaddr);
        Message {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid,
            giaddr: self.cfg.giaddr,
            chaddr,
            options: vec![DhcpOption::MessageType(ty)],
            ..Message::default()
        }
    }

    fn request(&self, c: usize, xid: u32, stage: Stage) -> Message {
        match stage {
            Stage::Discover => self.message(c, xid, MessageType::Discover),
            Stage::Select { ip, sid } => {
                let mut m = self.message(c, xid, MessageType::Request);
                m.options.push(DhcpOption::RequestedIp(ip));
                m.options.push(DhcpOption::ServerId(sid));
                m
            }
            Stage::Renew { ip } => {
                let mut m = self.message(c, xid, MessageType::Request);
                m.ciaddr = ip;
                m
            }
        }
    }

    fn send(&self, m: &Message, server: usize) {
        let bytes = m.to_bytes().expect("encode a request");
        // A server that is gone may answer with ICMP; that is a timeout here.
        let _ = self.sock.send_to(&bytes, self.cfg.servers[server]);
    }

    /// The loop: `next` names the next exchange to start (None: nothing
    /// now). Returns once `stop` is set or `next` has nothing, and no
    /// exchange is in flight.
    fn run(&mut self, stop: &AtomicBool, next: &mut NextExchange<'_>) {
        let n = self.cfg.servers.len();
        let mut inflight: HashMap<u32, Exchange> = HashMap::new();
        let mut busy = vec![false; self.clients.len()];
        let mut exhausted = false;
        let mut buf = vec![0u8; 2048];
        loop {
            while !exhausted && inflight.len() < self.cfg.window && !stop.load(Ordering::Relaxed) {
                let Some((c, stage)) = next(self, &busy) else {
                    exhausted = true;
                    break;
                };
                let xid = self.xid();
                self.send(&self.request(c, xid, stage), 0);
                busy[c] = true;
                inflight.insert(
                    xid,
                    Exchange {
                        client: c,
                        stage,
                        at: 0,
                        tries: 1,
                        silence: false,
                        sent: Instant::now(),
                    },
                );
            }
            if inflight.is_empty() && (exhausted || stop.load(Ordering::Relaxed)) {
                return;
            }
            // `exhausted` is retried once something ends (a churn always
            // has a client; renew_all's list is then empty for good).
            match self.sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    if let Some(done) = self.reply(&buf[..len], from, &mut inflight) {
                        busy[done] = false;
                        exhausted = false;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => panic!("the fleet's socket: {e}"),
            }
            // Messages unanswered in time go to the next server.
            let now = Instant::now();
            let late: Vec<u32> = inflight
                .iter()
                .filter(|(_, x)| now.duration_since(x.sent) >= self.cfg.timeout)
                .map(|(&xid, _)| xid)
                .collect();
            for xid in late {
                self.stats.timeouts += 1;
                let x = inflight.get_mut(&xid).expect("in flight");
                x.silence = true;
                if x.tries >= 2 * n {
                    let x = inflight.remove(&xid).expect("in flight");
                    self.stats.failed += 1;
                    if let Stage::Renew { ip } = x.stage {
                        self.record(x.client, ip, Renewed::Unanswered);
                    }
                    busy[x.client] = false;
                    exhausted = false;
                    continue;
                }
                x.at = (x.at + 1) % n;
                x.tries += 1;
                x.sent = now;
                let (c, stage, at) = (x.client, x.stage, x.at);
                self.send(&self.request(c, xid, stage), at);
            }
        }
    }

    /// Handles one datagram; returns the client whose exchange ended.
    fn reply(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        inflight: &mut HashMap<u32, Exchange>,
    ) -> Option<usize> {
        let m = Message::decode(bytes).ok()?;
        if m.op != BOOTREPLY {
            return None;
        }
        let by = self.cfg.servers.iter().position(|s| *s == from)?;
        let Some(x) = inflight.get(&m.xid) else {
            self.stats.late += 1;
            return None;
        };
        let (c, stage, silence) = (x.client, x.stage, x.silence);
        let sid = m.options.iter().find_map(|o| match o {
            DhcpOption::ServerId(a) => Some(*a),
            _ => None,
        });
        let mac = mac_string(&self.clients[c].chaddr);
        match (stage, m.message_type()) {
            (Stage::Discover, Some(MessageType::Offer)) => {
                let sid = sid.unwrap_or(Ipv4Addr::UNSPECIFIED);
                let stage = Stage::Select { ip: m.yiaddr, sid };
                let x = inflight.get_mut(&m.xid).expect("in flight");
                x.stage = stage;
                x.at = by;
                x.tries = 1;
                x.sent = Instant::now();
                self.send(&self.request(c, m.xid, stage), by);
                None
            }
            (Stage::Select { ip, .. }, Some(MessageType::Ack)) => {
                inflight.remove(&m.xid);
                if m.yiaddr != ip {
                    self.stats.problems.push(format!(
                        "{mac}: REQUEST for {ip} ACKed by server {by} with {}",
                        m.yiaddr
                    ));
                }
                self.acked(c, m.yiaddr, by, silence);
                Some(c)
            }
            (Stage::Select { .. }, Some(MessageType::Nak)) => {
                inflight.remove(&m.xid);
                self.stats.naks += 1;
                self.set_held(c, Held::Unbound);
                Some(c)
            }
            (Stage::Renew { ip }, Some(MessageType::Ack)) => {
                inflight.remove(&m.xid);
                self.stats.renewals += 1;
                if m.yiaddr == ip {
                    self.record(
                        c,
                        ip,
                        Renewed::Acked {
                            by,
                            after_silence: silence,
                        },
                    );
                } else {
                    self.stats.problems.push(format!(
                        "{mac}: renewal of {ip} ACKed by server {by} with {}",
                        m.yiaddr
                    ));
                    self.record(c, ip, Renewed::Moved { by, to: m.yiaddr });
                }
                self.acked(c, m.yiaddr, by, silence);
                Some(c)
            }
            (Stage::Renew { ip }, Some(MessageType::Nak)) => {
                inflight.remove(&m.xid);
                self.stats.problems.push(format!(
                    "{mac}: renewal of {ip} NAKed by server {by} (its lease was lost)"
                ));
                self.record(c, ip, Renewed::Naked { by });
                self.set_held(c, Held::Unbound);
                Some(c)
            }
            // A late OFFER, a second server's answer to a resent message.
            _ => None,
        }
    }

    fn acked(&mut self, c: usize, ip: Ipv4Addr, by: usize, silence: bool) {
        self.stats.acks += 1;
        if silence {
            self.stats.moved += 1;
        }
        self.progress.acks[by].fetch_add(1, Ordering::Relaxed);
        self.set_held(c, Held::Bound { ip, by });
    }

    fn record(&mut self, c: usize, ip: Ipv4Addr, outcome: Renewed) {
        if self.recording {
            self.renewals.push(Renewal {
                client: self.clients[c].clone(),
                ip,
                outcome,
            });
        }
    }
}

/// A [`Fleet`] churning on its own thread.
pub struct Churning {
    stop: Arc<AtomicBool>,
    progress: FleetProgress,
    thread: JoinHandle<Fleet>,
}

impl Churning {
    pub fn progress(&self) -> &FleetProgress {
        &self.progress
    }

    /// Stops starting exchanges (those in flight go on until they end).
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops starting exchanges, waits for those in flight, and gives the
    /// fleet back.
    pub fn stop(self) -> Fleet {
        self.halt();
        self.thread
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}
