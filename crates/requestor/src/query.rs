//! Leasequery over UDP, the requestor side (RFC 4388 §6.2, §6.5, §6.6;
//! RFC 6148 §4.1).
//!
//! [`build_query`] makes one DHCPLEASEQUERY for a [`QueryKey`];
//! [`Answer::from_reply`] reads a DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED or
//! DHCPLEASEUNKNOWN; [`query`] does the exchange: it binds a local UDP port,
//! puts its own address in giaddr (the reply goes there, RFC 4388 §6.4.3),
//! retransmits with exponential backoff under one overall deadline and takes
//! the first reply whose xid matches, ignoring everything else.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_proto::text::{format_hex, format_mac, TimeFormat};
use leaseline_wire::{
    pad_to_bootp_minimum, DhcpOption, Message, MessageType, RelayAgentInfo, SubOption, BOOTREPLY,
    BOOTREQUEST,
};
use serde::Serialize;
use thiserror::Error;

use crate::prl;
use crate::random::random_u32;

/// What a DHCPLEASEQUERY asks about: exactly one key (RFC 4388 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKey {
    /// ciaddr = the address; htype, hlen, chaddr zero; no option 61.
    Ip(Ipv4Addr),
    /// htype/hlen/chaddr = the hardware address (1 to 16 octets).
    Mac { htype: u8, chaddr: Vec<u8> },
    /// Option 61.
    ClientId(Vec<u8>),
    /// Option 82 holding only a remote-id sub-option (RFC 6148 §4.1).
    RemoteId(Vec<u8>),
}

impl QueryKey {
    /// Short name: "ip", "mac", "client_id", "remote_id".
    pub fn name(&self) -> &'static str {
        match self {
            QueryKey::Ip(_) => "ip",
            QueryKey::Mac { .. } => "mac",
            QueryKey::ClientId(_) => "client_id",
            QueryKey::RemoteId(_) => "remote_id",
        }
    }

    /// Checks what the wire format can carry.
    pub fn validate(&self) -> Result<(), QueryError> {
        match self {
            QueryKey::Ip(ip) if ip.is_unspecified() => {
                Err(QueryError::BadKey("the address to query is 0.0.0.0".into()))
            }
            QueryKey::Mac { chaddr, .. } if chaddr.is_empty() || chaddr.len() > 16 => {
                Err(QueryError::BadKey(format!(
                    "a hardware address has 1 to 16 octets, not {}",
                    chaddr.len()
                )))
            }
            QueryKey::Mac { chaddr, .. } if chaddr.iter().all(|&b| b == 0) => {
                Err(QueryError::BadKey(
                    "an all-zero hardware address is no query key (RFC 4388 §6.3)".into(),
                ))
            }
            // RFC 2132 §9.14: a client-id is a type octet plus at least one more.
            QueryKey::ClientId(v) if v.len() < 2 || v.len() > 255 => Err(QueryError::BadKey(
                "a client-id has 2 to 255 octets (RFC 2132 §9.14)".into(),
            )),
            QueryKey::RemoteId(v) if v.is_empty() || v.len() > 253 => Err(QueryError::BadKey(
                "a remote-id has 1 to 253 octets (it must fit in option 82)".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A DHCPLEASEQUERY (RFC 4388 §6.2, RFC 6148 §4.1): BOOTREQUEST, the key,
/// giaddr = where the reply must go, option 53, then option 55 when `prl`
/// is not empty. Fields the key does not use are zero.
pub fn build_query(key: &QueryKey, xid: u32, giaddr: Ipv4Addr, prl: &[u8]) -> Message {
    let mut m = Message {
        op: BOOTREQUEST,
        htype: 0,
        hlen: 0,
        xid,
        giaddr,
        options: vec![DhcpOption::MessageType(MessageType::LeaseQuery)],
        ..Message::default()
    };
    match key {
        QueryKey::Ip(ip) => m.ciaddr = *ip,
        QueryKey::Mac { htype, chaddr } => {
            let n = chaddr.len().min(16);
            m.htype = *htype;
            m.hlen = n as u8;
            m.chaddr[..n].copy_from_slice(&chaddr[..n]);
        }
        QueryKey::ClientId(id) => m.options.push(DhcpOption::ClientId(id.clone())),
        QueryKey::RemoteId(id) => m.options.push(DhcpOption::RelayAgentInfo(RelayAgentInfo {
            sub_options: vec![SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: id.clone(),
            }],
        })),
    }
    if !prl.is_empty() {
        m.options
            .push(DhcpOption::ParameterRequestList(prl.to_vec()));
    }
    m
}

/// [`build_query`] encoded and padded to the BOOTP minimum of 300 octets.
pub fn encode_query(
    key: &QueryKey,
    xid: u32,
    giaddr: Ipv4Addr,
    prl: &[u8],
) -> Result<Vec<u8>, QueryError> {
    let mut out = build_query(key, xid, giaddr, prl)
        .to_bytes()
        .map_err(|e| QueryError::BadKey(e.to_string()))?;
    pad_to_bootp_minimum(&mut out);
    Ok(out)
}

/// The three answers to a DHCPLEASEQUERY (RFC 4388 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ReplyKind {
    #[serde(rename = "DHCPLEASEACTIVE")]
    Active,
    #[serde(rename = "DHCPLEASEUNASSIGNED")]
    Unassigned,
    #[serde(rename = "DHCPLEASEUNKNOWN")]
    Unknown,
}

impl ReplyKind {
    pub fn from_message_type(t: MessageType) -> Option<ReplyKind> {
        match t {
            MessageType::LeaseActive => Some(ReplyKind::Active),
            MessageType::LeaseUnassigned => Some(ReplyKind::Unassigned),
            MessageType::LeaseUnknown => Some(ReplyKind::Unknown),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::Active => "DHCPLEASEACTIVE",
            ReplyKind::Unassigned => "DHCPLEASEUNASSIGNED",
            ReplyKind::Unknown => "DHCPLEASEUNKNOWN",
        }
    }
}

/// Option 82 of a reply, sub-options as hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayInfo {
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    /// Sub-option 12 (RFC 6925).
    pub relay_id: Option<String>,
    /// Every other sub-option, in wire order.
    pub other: Vec<RawOption>,
}

impl RelayInfo {
    fn from_wire(r: &RelayAgentInfo) -> RelayInfo {
        RelayInfo {
            circuit_id: r.circuit_id().map(format_hex),
            remote_id: r.remote_id().map(format_hex),
            relay_id: r.relay_id().map(format_hex),
            other: r
                .sub_options
                .iter()
                .filter(|s| {
                    ![
                        RelayAgentInfo::CIRCUIT_ID,
                        RelayAgentInfo::REMOTE_ID,
                        RelayAgentInfo::RELAY_ID,
                    ]
                    .contains(&s.code)
                })
                .map(|s| RawOption {
                    code: s.code,
                    data: format_hex(&s.data),
                })
                .collect(),
        }
    }
}

/// An option (or sub-option) shown as its code and hex value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawOption {
    pub code: u8,
    pub data: String,
}

/// What a reply says. Times are as on the wire: remaining seconds (51, 58,
/// 59) and seconds ago (91), relative to when the server sent the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    #[serde(rename = "type")]
    pub kind: ReplyKind,
    /// ciaddr: the address the answer is about; None when zero.
    pub ip: Option<Ipv4Addr>,
    /// htype; None when hlen is 0.
    pub htype: Option<u8>,
    /// htype/hlen/chaddr as `aa:bb:..`; None when hlen is 0.
    pub mac: Option<String>,
    /// Option 61 as hex.
    pub client_id: Option<String>,
    /// Option 51: seconds until the lease expires.
    pub lease_time_remaining: Option<u32>,
    /// Option 58: seconds until T1.
    pub renewal_time_remaining: Option<u32>,
    /// Option 59: seconds until T2.
    pub rebinding_time_remaining: Option<u32>,
    /// Option 91: seconds since the client's last transaction.
    pub cltt_age: Option<u32>,
    /// Option 92: the client's other addresses.
    pub associated_ips: Vec<Ipv4Addr>,
    /// Option 82.
    pub relay_agent_info: Option<RelayInfo>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Every other option except 53 and 55, in wire order.
    pub other_options: Vec<RawOption>,
    pub xid: u32,
    /// giaddr as the server sent it back.
    pub giaddr: Ipv4Addr,
}

impl Answer {
    /// The answer a BOOTREPLY of type 11, 12 or 13 carries; None otherwise.
    pub fn from_reply(m: &Message) -> Option<Answer> {
        if m.op != BOOTREPLY {
            return None;
        }
        let kind = ReplyKind::from_message_type(m.message_type()?)?;
        let hw = m.hw_addr();
        let mut a = Answer {
            kind,
            ip: (!m.ciaddr.is_unspecified()).then_some(m.ciaddr),
            htype: (!hw.is_empty()).then_some(m.htype),
            mac: (!hw.is_empty()).then(|| format_mac(hw)),
            client_id: None,
            lease_time_remaining: None,
            renewal_time_remaining: None,
            rebinding_time_remaining: None,
            cltt_age: None,
            associated_ips: Vec::new(),
            relay_agent_info: None,
            server_id: None,
            other_options: Vec::new(),
            xid: m.xid,
            giaddr: m.giaddr,
        };
        for o in &m.options {
            match o {
                DhcpOption::MessageType(_) | DhcpOption::ParameterRequestList(_) => {}
                DhcpOption::ClientId(id) => a.client_id = Some(format_hex(id)),
                DhcpOption::LeaseTime(t) => a.lease_time_remaining = Some(*t),
                DhcpOption::RenewalTime(t) => a.renewal_time_remaining = Some(*t),
                DhcpOption::RebindingTime(t) => a.rebinding_time_remaining = Some(*t),
                DhcpOption::ClientLastTransactionTime(t) => a.cltt_age = Some(*t),
                DhcpOption::AssociatedIp(ips) => a.associated_ips.extend_from_slice(ips),
                DhcpOption::RelayAgentInfo(r) => a.relay_agent_info = Some(RelayInfo::from_wire(r)),
                DhcpOption::ServerId(s) => a.server_id = Some(*s),
                other => a.other_options.push(raw_option(other)),
            }
        }
        Some(a)
    }

    /// A readable multi-line rendering (no trailing newline); durations
    /// as `times` prints them (`16m30s`, or `990s` with `--epoch`).
    pub fn to_text(&self, times: TimeFormat) -> String {
        let mut s = String::from(self.kind.name());
        let mut line = |k: &str, v: String| {
            let _ = write!(s, "\n  {k:<17} {v}");
        };
        if let Some(ip) = self.ip {
            line("ip", ip.to_string());
        }
        if let (Some(mac), Some(ht)) = (&self.mac, self.htype) {
            line("mac", format!("{mac} (htype {ht})"));
        }
        if let Some(c) = &self.client_id {
            line("client-id", c.clone());
        }
        if let Some(t) = self.lease_time_remaining {
            line("lease remaining", times.duration(t));
        }
        if let Some(t) = self.renewal_time_remaining {
            line("renewal (T1) in", times.duration(t));
        }
        if let Some(t) = self.rebinding_time_remaining {
            line("rebinding (T2) in", times.duration(t));
        }
        if let Some(t) = self.cltt_age {
            line("last transaction", format!("{} ago", times.duration(t)));
        }
        if !self.associated_ips.is_empty() {
            let ips: Vec<String> = self
                .associated_ips
                .iter()
                .map(Ipv4Addr::to_string)
                .collect();
            line("associated ips", ips.join(", "));
        }
        if let Some(r) = &self.relay_agent_info {
            if let Some(v) = &r.circuit_id {
                line("circuit-id", v.clone());
            }
            if let Some(v) = &r.remote_id {
                line("remote-id", v.clone());
            }
            if let Some(v) = &r.relay_id {
                line("relay-id", v.clone());
            }
            for o in &r.other {
                line(&format!("relay sub-opt {}", o.code), o.data.clone());
            }
        }
        for o in &self.other_options {
            line(&format!("option {}", o.code), o.data.clone());
        }
        if let Some(sid) = self.server_id {
            line("server-id", sid.to_string());
        }
        s
    }
}

fn raw_option(o: &DhcpOption) -> RawOption {
    // Encode the lone option through the codec to get its value bytes.
    let code = o.code();
    let probe = Message {
        options: vec![o.clone()],
        ..Message::default()
    };
    let data = probe
        .to_bytes()
        .ok()
        .and_then(|b| {
            // 240 octets of header and cookie, then code, length, value.
            let body = b.get(240..)?;
            let mut i = 0;
            let mut value = Vec::new();
            while i + 1 < body.len() && body[i] == code {
                let len = body[i + 1] as usize;
                value.extend_from_slice(body.get(i + 2..i + 2 + len)?);
                i += 2 + len;
            }
            Some(value)
        })
        .unwrap_or_default();
    RawOption {
        code,
        data: format_hex(&data),
    }
}

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("invalid query key: {0}")]
    BadKey(String),
    #[error("leasequery over UDP is IPv4 only; {0} is not an IPv4 address")]
    NotIpv4(SocketAddr),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("no route to {server}: {source}")]
    Route {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("cannot send to {server}: {source}")]
    Send {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("receive failed: {0}")]
    Recv(io::Error),
}

/// How to run one query.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The server's address and port.
    pub server: SocketAddr,
    /// Local address to bind; 0.0.0.0:0 when None.
    pub bind: Option<SocketAddr>,
    /// giaddr; when None: the bound address if specific, else the local
    /// address the kernel picks for the route to the server.
    pub giaddr: Option<Ipv4Addr>,
    /// Overall deadline from the first transmission.
    pub timeout: Duration,
    /// Wait before the first retransmission; doubled after each (RFC 4388
    /// §6.6 asks for an exponential backoff).
    pub first_retry: Duration,
    /// Option 55; empty sends none.
    pub prl: Vec<u8>,
    /// xid; random when None.
    pub xid: Option<u32>,
}

impl QueryOptions {
    pub fn new(server: SocketAddr) -> QueryOptions {
        QueryOptions {
            server,
            bind: None,
            giaddr: None,
            timeout: Duration::from_secs(5),
            first_retry: Duration::from_secs(1),
            prl: prl::UDP.to_vec(),
            xid: None,
        }
    }
}

/// The result of [`query`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Answered {
        answer: Box<Answer>,
        /// Where the reply came from.
        from: SocketAddr,
        /// Transmissions made (1 = no retransmission).
        attempts: u32,
        elapsed: Duration,
    },
    /// Nothing matching arrived before the deadline.
    NoAnswer {
        attempts: u32,
        /// Datagrams with our xid that were not a valid answer.
        rejected: Vec<String>,
    },
}

/// What [`query`] used, for the caller to report.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub local: SocketAddr,
    pub giaddr: Ipv4Addr,
    pub xid: u32,
}

/// The local IPv4 address the kernel uses to reach `server` (a connected
/// probe socket; nothing is sent).
pub fn local_addr_for(server: SocketAddr) -> Result<Ipv4Addr, QueryError> {
    let probe = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|source| QueryError::Route { server, source })?;
    probe
        .connect(server)
        .map_err(|source| QueryError::Route { server, source })?;
    match probe.local_addr() {
        Ok(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Ok(*a.ip()),
        Ok(other) => Err(QueryError::Route {
            server,
            source: io::Error::other(format!("the kernel picked {other}")),
        }),
        Err(source) => Err(QueryError::Route { server, source }),
    }
}

/// Binds the socket and works out giaddr per [`QueryOptions`].
pub fn open(opts: &QueryOptions) -> Result<(UdpSocket, Ipv4Addr), QueryError> {
    if !opts.server.is_ipv4() {
        return Err(QueryError::NotIpv4(opts.server));
    }
    let bind = opts
        .bind
        .unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));
    let bind_v4 = match bind {
        SocketAddr::V4(a) => a,
        other => return Err(QueryError::NotIpv4(other)),
    };
    let giaddr = match opts.giaddr {
        Some(g) => g,
        None if !bind_v4.ip().is_unspecified() => *bind_v4.ip(),
        None => local_addr_for(opts.server)?,
    };
    let sock = UdpSocket::bind(bind).map_err(|source| QueryError::Bind { addr: bind, source })?;
    Ok((sock, giaddr))
}

/// One leasequery exchange: send, retransmit with backoff (1 s, 2 s, 4 s …
/// by default) until `opts.timeout` has passed since the first send, return
/// the first DHCPLEASEACTIVE / UNASSIGNED / UNKNOWN whose xid matches.
pub fn query(opts: &QueryOptions, key: &QueryKey) -> Result<(Outcome, Endpoint), QueryError> {
    key.validate()?;
    let (sock, giaddr) = open(opts)?;
    let local = sock.local_addr().map_err(QueryError::Recv)?;
    let xid = opts.xid.unwrap_or_else(random_u32);
    let bytes = encode_query(key, xid, giaddr, &opts.prl)?;
    let endpoint = Endpoint { local, giaddr, xid };
    let outcome = exchange(&sock, opts, xid, &bytes)?;
    Ok((outcome, endpoint))
}

fn exchange(
    sock: &UdpSocket,
    opts: &QueryOptions,
    xid: u32,
    bytes: &[u8],
) -> Result<Outcome, QueryError> {
    let server = opts.server;
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut wait = opts.first_retry.max(Duration::from_millis(1));
    let mut attempts = 0u32;
    let mut rejected = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::NoAnswer { attempts, rejected });
        }
        sock.send_to(bytes, server)
            .map_err(|source| QueryError::Send { server, source })?;
        attempts += 1;
        tracing::debug!(%server, xid, attempts, event = "leasequery_sent", "DHCPLEASEQUERY sent");
        let resend_at = (now + wait).min(deadline);
        wait = wait.saturating_mul(2);
        // Receive until it is time to resend.
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))
                .map_err(QueryError::Recv)?;
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier datagram: keep waiting.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(QueryError::Recv(e)),
            };
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            // Cheap filter first: op and xid (RFC 2131 §2 header layout).
            if datagram.len() < 8
                || u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) != xid
            {
                tracing::debug!(%from, len = n, event = "datagram_other_xid_ignored", "ignored a datagram with another xid");
                continue;
            }
            match Message::decode(datagram) {
                Ok(m) => match Answer::from_reply(&m) {
                    Some(answer) => {
                        return Ok(Outcome::Answered {
                            answer: Box::new(answer),
                            from,
                            attempts,
                            elapsed: start.elapsed(),
                        })
                    }
                    None => {
                        let what = format!(
                            "from {from}: op {} type {} is not a leasequery reply",
                            m.op,
                            m.message_type().map(|t| t.name()).unwrap_or("none")
                        );
                        tracing::debug!(event = "leasequery_reply_ignored", "{what}");
                        rejected.push(what);
                    }
                },
                Err(e) => {
                    let what = format!("from {from}: undecodable reply: {e}");
                    tracing::debug!(event = "leasequery_reply_ignored", "{what}");
                    rejected.push(what);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaseline_proto::{parse_leasequery, QueryKind};

    const G: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

    fn roundtrip(key: &QueryKey) -> Message {
        let bytes = encode_query(key, 0x1234_5678, G, prl::UDP).unwrap();
        assert!(bytes.len() >= 300);
        Message::decode(&bytes).unwrap()
    }

    #[test]
    fn queries_carry_exactly_one_key_the_server_accepts() {
        let ip = Ipv4Addr::new(10, 0, 0, 10);
        let m = roundtrip(&QueryKey::Ip(ip));
        assert_eq!((m.htype, m.hlen, m.chaddr), (0, 0, [0; 16]));
        assert!(!m.has_option(61));
        assert_eq!(parse_leasequery(&m).unwrap().kind, QueryKind::ByIp(ip));

        let mac = vec![0, 0x0c, 1, 2, 3, 4];
        let m = roundtrip(&QueryKey::Mac {
            htype: 1,
            chaddr: mac.clone(),
        });
        assert_eq!((m.htype, m.hlen, m.ciaddr), (1, 6, Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            parse_leasequery(&m).unwrap().kind,
            QueryKind::ByMac {
                htype: 1,
                chaddr: mac
            }
        );

        let m = roundtrip(&QueryKey::ClientId(vec![1, 2, 3]));
        assert_eq!((m.htype, m.hlen), (0, 0));
        assert_eq!(
            parse_leasequery(&m).unwrap().kind,
            QueryKind::ByClientId(vec![1, 2, 3])
        );

        let m = roundtrip(&QueryKey::RemoteId(vec![9, 8]));
        let q = parse_leasequery(&m).unwrap();
        assert_eq!(q.kind, QueryKind::ByRemoteId(vec![9, 8]));
        assert_eq!(q.giaddr, G);
        assert_eq!(q.xid, 0x1234_5678);
        assert_eq!(q.prl, prl::UDP.to_vec());
    }

    #[test]
    fn no_prl_means_no_option_55() {
        let m = build_query(&QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)), 1, G, &[]);
        assert!(!m.has_option(55));
    }

    #[test]
    fn invalid_keys_are_refused() {
        assert!(QueryKey::Ip(Ipv4Addr::UNSPECIFIED).validate().is_err());
        assert!(QueryKey::Mac {
            htype: 1,
            chaddr: vec![0; 6]
        }
        .validate()
        .is_err());
        assert!(QueryKey::Mac {
            htype: 1,
            chaddr: vec![1; 17]
        }
        .validate()
        .is_err());
        assert!(QueryKey::ClientId(vec![]).validate().is_err());
        assert!(QueryKey::ClientId(vec![1]).validate().is_err());
        assert!(QueryKey::RemoteId(vec![0; 254]).validate().is_err());
        assert!(QueryKey::RemoteId(vec![0; 253]).validate().is_ok());
    }

    #[test]
    fn answers_are_read_from_server_replies() {
        use leaseline_proto::{
            build_leaseactive, build_leaseunknown, Binding, DhcpState, ExtraOptions,
        };
        let q = parse_leasequery(&roundtrip(&QueryKey::Mac {
            htype: 1,
            chaddr: vec![0, 0x0c, 1, 2, 3, 4],
        }))
        .unwrap();
        let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, 7));
        b.state = DhcpState::Active;
        b.htype = 1;
        b.chaddr = vec![0, 0x0c, 1, 2, 3, 4];
        b.client_id = Some(vec![1, 0, 0x0c, 1, 2, 3, 4]);
        b.cltt = 1_000;
        b.state_since = 1_000;
        b.expiry = 4_600;
        b.lease_time = 3_600;
        let now = 1_100;
        let m = build_leaseactive(
            &q,
            &b,
            &[Ipv4Addr::new(10, 0, 0, 8)],
            now,
            G,
            &ExtraOptions::NONE,
        );
        let m = Message::decode(&m.to_bytes().unwrap()).unwrap();
        let a = Answer::from_reply(&m).unwrap();
        assert_eq!(a.kind, ReplyKind::Active);
        assert_eq!(a.ip, Some(b.ip));
        assert_eq!(a.mac.as_deref(), Some("00:0c:01:02:03:04"));
        assert_eq!(a.client_id.as_deref(), Some("01000c01020304"));
        assert_eq!(a.lease_time_remaining, Some(3_500));
        assert_eq!(a.cltt_age, Some(100));
        assert_eq!(a.associated_ips, vec![Ipv4Addr::new(10, 0, 0, 8)]);
        assert_eq!(a.server_id, Some(G));
        assert!(a.other_options.is_empty(), "{:?}", a.other_options);
        let text = a.to_text(TimeFormat::Rfc3339);
        assert!(text.starts_with("DHCPLEASEACTIVE"), "{text}");
        assert!(text.contains("10.0.0.8"), "{text}");
        assert!(text.contains("\n  lease remaining   58m20s\n"), "{text}");
        assert!(text.contains("\n  last transaction  1m40s ago"), "{text}");
        let text = a.to_text(TimeFormat::Epoch);
        assert!(text.contains("\n  lease remaining   3500s\n"), "{text}");
        assert!(text.contains("\n  last transaction  100s ago"), "{text}");
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["type"], "DHCPLEASEACTIVE");
        assert_eq!(json["associated_ips"][0], "10.0.0.8");

        let m = build_leaseunknown(&q, G);
        let a = Answer::from_reply(&m).unwrap();
        assert_eq!(a.kind, ReplyKind::Unknown);
        assert_eq!(a.ip, None);
    }

    #[test]
    fn other_options_keep_their_bytes() {
        let o = raw_option(&DhcpOption::Unknown {
            code: 200,
            data: vec![1, 2, 0xff],
        });
        assert_eq!(
            o,
            RawOption {
                code: 200,
                data: "0102ff".into()
            }
        );
        let o = raw_option(&DhcpOption::Hostname(b"ab".to_vec()));
        assert_eq!(
            o,
            RawOption {
                code: 12,
                data: "6162".into()
            }
        );
    }

    #[test]
    fn requests_are_not_answers() {
        let m = roundtrip(&QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(Answer::from_reply(&m).is_none());
    }

    #[test]
    fn exchange_retransmits_and_ignores_strangers() {
        // A fake server on loopback: drops the first query, answers the
        // second after a datagram with another xid.
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (_, _) = srv.recv_from(&mut buf).unwrap();
            let (n, peer) = srv.recv_from(&mut buf).unwrap();
            let q = parse_leasequery(&Message::decode(&buf[..n]).unwrap()).unwrap();
            let mut other = q.clone();
            other.xid ^= 1;
            srv.send_to(
                &leaseline_proto::build_leaseunknown(&other, G)
                    .to_bytes()
                    .unwrap(),
                peer,
            )
            .unwrap();
            srv.send_to(b"junk", peer).unwrap();
            let reply = leaseline_proto::build_leaseunassigned(&q, Ipv4Addr::new(10, 0, 0, 9), G);
            srv.send_to(&reply.to_bytes().unwrap(), peer).unwrap();
        });
        let mut opts = QueryOptions::new(server);
        opts.first_retry = Duration::from_millis(100);
        let (out, ep) = query(&opts, &QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 9))).unwrap();
        t.join().unwrap();
        assert_eq!(ep.giaddr, G);
        match out {
            Outcome::Answered {
                answer, attempts, ..
            } => {
                assert_eq!(answer.kind, ReplyKind::Unassigned);
                assert_eq!(answer.ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
                assert_eq!(answer.xid, ep.xid);
                assert_eq!(attempts, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn silence_is_no_answer_within_the_timeout() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut opts = QueryOptions::new(srv.local_addr().unwrap());
        opts.timeout = Duration::from_millis(700);
        opts.first_retry = Duration::from_millis(100);
        let t0 = Instant::now();
        let (out, _) = query(&opts, &QueryKey::ClientId(vec![1, 2])).unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(690) && took < Duration::from_secs(3),
            "{took:?}"
        );
        match out {
            // Sends at 0, 100, 300 ms; 700 ms is the deadline.
            Outcome::NoAnswer { attempts, .. } => assert_eq!(attempts, 3),
            other => panic!("{other:?}"),
        }
        let mut buf = [0u8; 1024];
        srv.set_nonblocking(true).unwrap();
        let mut n = 0;
        while srv.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
