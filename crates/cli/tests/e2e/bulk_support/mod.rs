//! Helpers shared by the Bulk Leasequery tests (tests/bulk_*.rs): a server
//! config with DHCP and the bulk TCP listener on free loopback ports,
//! bindings made by real DORA exchanges through a relay (option 82
//! included when asked), and a small synchronous framed TCP client that
//! keeps every message exactly as received.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use leaseline_test_support::{
    free_udp_port, RelayClient, ServerConfig, ServerProcess, Subnet, TestClient,
};
use leaseline_wire::{
    encode_frame, DhcpOption, FrameDecoder, Message, MessageType, RelayAgentInfo, StatusCode,
    SubOption,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// Options every test query asks for.
pub const PRL: &[u8] = &[51, 58, 59, 61, 82, 91, 92, 152, 153, 156, 157];

/// A TCP port on 127.0.0.1 no other caller in this process was given.
#[allow(unused_imports)] // not every test of this module uses it
pub use leaseline_test_support::free_tcp_port;

/// Ports and addresses of one test's server.
pub struct Setup {
    pub dhcp: SocketAddr,
    pub tcp: SocketAddr,
    pub relay: Ipv4Addr,
}

impl Setup {
    /// Free ports and a relay address of this test's own.
    pub fn new() -> Setup {
        Setup {
            dhcp: SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port())),
            tcp: SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port())),
            relay: leaseline_test_support::loopback_relay(),
        }
    }

    /// A config: subnet 10.0.0.0/16 with a ~65,000 address pool (or
    /// `subnets` when given) served to this test's relay, UDP leasequery
    /// off, bulk on with `bulk_extra` lines added to `[leasequery.bulk]`.
    pub fn config(&self, subnets: Option<&str>, bulk_extra: &str) -> String {
        let config = ServerConfig::new(self.dhcp);
        let config = match subnets {
            Some(s) => config.subnet_toml(&s.replace("@RELAY@", &self.relay.to_string())),
            None => config.subnet(Subnet::new(
                "10.0.0.0/16",
                "10.0.0.10-10.0.255.250",
                &[self.relay],
            )),
        };
        config
            .allow(&["127.0.0.0/8"])
            .bulk(self.tcp, bulk_extra)
            .build()
    }

    pub fn spawn(&self, config: &str) -> ServerProcess {
        ServerProcess::spawn(BIN, config)
    }

    pub fn relay_client(&self) -> RelayClient {
        RelayClient::bind(self.relay, self.dhcp)
            .unwrap_or_else(|e| panic!("bind {}:67 for the relay client (root?): {e}", self.relay))
    }
}

/// Option 82 with these sub-options.
pub fn rai(subs: &[(u8, &[u8])]) -> RelayAgentInfo {
    RelayAgentInfo {
        sub_options: subs
            .iter()
            .map(|(code, data)| SubOption {
                code: *code,
                data: data.to_vec(),
            })
            .collect(),
    }
}

/// DISCOVER, OFFER, REQUEST, ACK for `client`, with option 82 added by the
/// relay when `relay_info` is given. Returns the leased address.
pub fn dora(
    relay: &mut RelayClient,
    client: &TestClient,
    relay_info: Option<&RelayAgentInfo>,
) -> Ipv4Addr {
    relay
        .dora_with(client, &[], relay_info)
        .unwrap_or_else(|e| panic!("DORA: {e}"))
        .ip
}

/// A DHCPBULKLEASEQUERY with the test PRL.
pub fn bulk_query(xid: u32) -> Message {
    let mut m = Message {
        xid,
        htype: 0,
        hlen: 0,
        ..Message::default()
    };
    m.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    m.options
        .push(DhcpOption::ParameterRequestList(PRL.to_vec()));
    m
}

#[derive(Debug)]
pub enum RecvError {
    Closed,
    Timeout,
    Reset,
}

/// A blocking framed connection that keeps each message's raw bytes.
pub struct RawConn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        RawConn {
            stream,
            decoder: FrameDecoder::new(65535),
        }
    }

    pub fn send(&mut self, m: &Message) {
        let mut out = Vec::new();
        encode_frame(&m.to_bytes().expect("encode"), &mut out).expect("frame");
        self.stream.write_all(&out).expect("send a query");
    }

    /// Send without failing on a connection the server already closed.
    pub fn send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// The next message's body (unframed), or why there is none.
    pub fn recv_raw(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        loop {
            if let Some(f) = self.decoder.next_frame().expect("server framing") {
                return Ok(f.to_vec());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).ok();
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.decoder.extend(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(RecvError::Reset),
            }
        }
    }

    pub fn recv(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        self.recv_raw(timeout)
            .map(|b| Message::decode(&b).expect("the server's message decodes"))
    }

    /// Everything up to and including the DONE of `xid` (other xids' messages
    /// are an error here).
    pub fn until_done(&mut self, xid: u32) -> Answer {
        let mut a = Answer::default();
        loop {
            let raw = self
                .recv_raw(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("waiting for DONE of {xid:#x}: {e:?}"));
            let m = Message::decode(&raw).expect("decodes");
            assert_eq!(m.xid, xid, "a message of another query: {m:?}");
            a.raw.push(raw);
            if m.message_type() == Some(MessageType::LeaseQueryDone) {
                a.done = Some(m);
                return a;
            }
            a.replies.push(m);
        }
    }

    /// True once the server has closed the connection (EOF or reset) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_raw(deadline.saturating_duration_since(Instant::now())) {
                Ok(_) => continue,
                Err(RecvError::Closed | RecvError::Reset) => return true,
                Err(RecvError::Timeout) => return false,
            }
        }
    }
}

/// The messages of one query.
#[derive(Debug, Default)]
pub struct Answer {
    pub replies: Vec<Message>,
    pub done: Option<Message>,
    /// Every message's body as received, DONE last.
    pub raw: Vec<Vec<u8>>,
}

impl Answer {
    pub fn done(&self) -> &Message {
        self.done.as_ref().expect("DONE")
    }
    pub fn status(&self) -> Option<(StatusCode, String)> {
        status_of(self.done())
    }
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.replies.iter().map(|m| m.ciaddr).collect()
    }
    /// Address → (message type, dhcp-state).
    pub fn by_ip(&self) -> HashMap<Ipv4Addr, (MessageType, Option<u8>)> {
        let mut h = HashMap::new();
        for m in &self.replies {
            let prev = h.insert(m.ciaddr, (m.message_type().expect("type"), dhcp_state(m)));
            assert!(prev.is_none(), "{} answered twice", m.ciaddr);
        }
        h
    }
}

pub fn status_of(m: &Message) -> Option<(StatusCode, String)> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, t) => Some((*c, t.clone())),
        _ => None,
    })
}

pub fn dhcp_state(m: &Message) -> Option<u8> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::DhcpState(s) => Some(*s),
        _ => None,
    })
}

pub fn opt_u32(m: &Message, code: u8) -> Option<u32> {
    m.options.iter().find_map(|o| match (o, code) {
        (DhcpOption::BaseTime(t), 152)
        | (DhcpOption::StartTimeOfState(t), 153)
        | (DhcpOption::ClientLastTransactionTime(t), 91)
        | (DhcpOption::LeaseTime(t), 51) => Some(*t),
        _ => None,
    })
}

/// The RFC 6926 rules every answer keeps: server-id in the first message
/// only, base-time / start-time-of-state / dhcp-state in every reply,
/// ACTIVE ↔ DHCPLEASEACTIVE, never option 92 nor DHCPLEASEUNKNOWN, DONE
/// last (with a status only when the query failed).
pub fn check_answer_rules(a: &Answer) {
    let all: Vec<&Message> = a.replies.iter().chain(a.done.iter()).collect();
    for (i, m) in all.iter().enumerate() {
        let has_sid = m.has_option(54);
        assert_eq!(
            has_sid,
            i == 0,
            "server-id only in the first message (message {i}: {m:?})"
        );
        assert!(!m.has_option(92), "option 92 in a bulk reply: {m:?}");
        assert!(m.has_option(152), "base-time missing: {m:?}");
        assert_eq!(m.op, leaseline_wire::BOOTREPLY);
    }
    for m in &a.replies {
        let t = m.message_type().expect("type");
        assert!(
            matches!(t, MessageType::LeaseActive | MessageType::LeaseUnassigned),
            "bulk replies are LEASEACTIVE or LEASEUNASSIGNED, got {t:?}"
        );
        assert!(m.has_option(153), "start-time-of-state missing: {m:?}");
        let s = dhcp_state(m).expect("dhcp-state");
        assert_eq!(
            t == MessageType::LeaseActive,
            s == 2,
            "type and state agree: {m:?}"
        );
        assert!(!m.ciaddr.is_unspecified());
    }
}

/// Runs `leaseline bulk ARGS` with a timeout (stdout and stderr read as
/// they come, so a large answer cannot fill the pipe).
pub fn run_bulk(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("bulk")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run leaseline bulk");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("leaseline bulk {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `leaseline bulk --json` records of a successful run.
pub fn bulk_json(server: SocketAddr, args: &[&str]) -> Vec<serde_json::Value> {
    let s = server.to_string();
    let mut all = vec!["--server", s.as_str(), "--json"];
    all.extend_from_slice(args);
    let out = run_bulk(&all);
    assert!(
        out.status.success(),
        "leaseline bulk {all:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect()
}

pub fn mac_of(client: &TestClient) -> String {
    client
        .chaddr
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
