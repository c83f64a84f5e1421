//! A minimal DHCP relay agent on loopback, built on leaseline-wire: it sends
//! requests with giaddr = its own address, bound on giaddr:67 where the
//! server's replies arrive.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, BOOTREPLY, BOOTREQUEST};

/// A simulated client behind the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestClient {
    pub chaddr: [u8; 6],
    /// Option 61, sent when set.
    pub client_id: Option<Vec<u8>>,
}

impl TestClient {
    /// A client with a locally administered MAC derived from `n`.
    pub fn new(n: u32) -> TestClient {
        let b = n.to_be_bytes();
        TestClient {
            chaddr: [0x02, 0x11, b[0], b[1], b[2], b[3]],
            client_id: None,
        }
    }
    pub fn with_client_id(mut self, id: &[u8]) -> Self {
        self.client_id = Some(id.to_vec());
        self
    }
}

/// The outcome of a successful DORA.
#[derive(Debug, Clone)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub server_id: Ipv4Addr,
    pub lease_time: Option<u32>,
    pub offer: Message,
    pub ack: Message,
}

/// A relay agent bound on `giaddr:67` that talks to one server.
pub struct RelayClient {
    sock: UdpSocket,
    giaddr: Ipv4Addr,
    server: SocketAddr,
    next_xid: u32,
    /// Per-exchange reply timeout.
    pub timeout: Duration,
}

impl RelayClient {
    /// Binds `giaddr:67` (`giaddr` of its own per test: [`crate::loopback_relay`]).
    pub fn bind(giaddr: Ipv4Addr, server: SocketAddr) -> io::Result<RelayClient> {
        Self::bind_port(giaddr, 67, server)
    }

    /// As [`Self::bind`], on another port (for servers whose relay_port differs).
    pub fn bind_port(giaddr: Ipv4Addr, port: u16, server: SocketAddr) -> io::Result<RelayClient> {
        let sock = UdpSocket::bind(SocketAddrV4::new(giaddr, port))?;
        let seed = u32::from(giaddr) ^ std::process::id().rotate_left(16);
        Ok(RelayClient {
            sock,
            giaddr,
            server,
            next_xid: seed | 1,
            timeout: Duration::from_secs(3),
        })
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        self.giaddr
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    pub fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(0x9e37_79b9);
        self.next_xid
    }

    /// A BOOTREQUEST from `client` as relayed by us.
    pub fn request_template(&mut self, client: &TestClient, ty: MessageType) -> Message {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&client.chaddr);
        let mut options = vec![DhcpOption::MessageType(ty)];
        if let Some(id) = &client.client_id {
            options.push(DhcpOption::ClientId(id.clone()));
        }
        Message {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 1,
            xid: self.xid(),
            giaddr: self.giaddr,
            chaddr,
            options,
            ..Message::default()
        }
    }

    pub fn send(&self, msg: &Message) -> io::Result<()> {
        let bytes = msg
            .to_bytes()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.send_raw(&bytes)
    }

    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.sock.send_to(bytes, self.server).map(|_| ())
    }

    /// The next datagram that decodes as a BOOTREPLY with this xid, or `None`
    /// after `timeout`. Other datagrams are skipped.
    pub fn recv_reply(&self, xid: u32, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).ok()?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, _from)) => {
                    if let Ok(m) = Message::decode(&buf[..n]) {
                        if m.op == BOOTREPLY && m.xid == xid {
                            return Some(m);
                        }
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // e.g. ECONNREFUSED from an earlier send: keep waiting.
                Err(_) => continue,
            }
        }
    }

    /// Any datagram (decoded or not) within `timeout`: for "the server must
    /// not answer" assertions.
    pub fn recv_any(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        self.sock.set_read_timeout(Some(timeout)).ok()?;
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends `msg` and waits for its reply, resending up to `tries` times.
    pub fn exchange(&self, msg: &Message, tries: u32) -> Option<Message> {
        for _ in 0..tries.max(1) {
            self.send(msg).ok()?;
            if let Some(r) = self.recv_reply(msg.xid, self.timeout) {
                return Some(r);
            }
        }
        None
    }

    /// DHCPDISCOVER; the reply (normally an OFFER).
    pub fn discover(&mut self, client: &TestClient) -> Option<Message> {
        let mut m = self.request_template(client, MessageType::Discover);
        m.options
            .push(DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 51, 54]));
        self.exchange(&m, 3)
    }

    /// DHCPREQUEST (SELECTING) for `ip` from `server_id`; the reply (ACK or NAK).
    pub fn request(
        &mut self,
        client: &TestClient,
        ip: Ipv4Addr,
        server_id: Ipv4Addr,
    ) -> Option<Message> {
        let mut m = self.request_template(client, MessageType::Request);
        m.options.push(DhcpOption::RequestedIp(ip));
        m.options.push(DhcpOption::ServerId(server_id));
        m.options
            .push(DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 51, 54]));
        self.exchange(&m, 3)
    }

    /// DISCOVER, OFFER, REQUEST, ACK. Err names the step that failed.
    pub fn dora(&mut self, client: &TestClient) -> Result<Lease, String> {
        let prl = DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 51, 54]);
        self.dora_with(client, &[prl], None)
    }

    /// [`Self::dora`] with the client's `options` (PRL, host name, …) in
    /// its DISCOVER and REQUEST, after 50 and 54, and option 82 appended by
    /// the relay when `relay_info` is given (RFC 3046: the last option).
    pub fn dora_with(
        &mut self,
        client: &TestClient,
        options: &[DhcpOption],
        relay_info: Option<&RelayAgentInfo>,
    ) -> Result<Lease, String> {
        let with_rai = |m: &mut Message| {
            if let Some(r) = relay_info {
                m.options.push(DhcpOption::RelayAgentInfo(r.clone()));
            }
        };
        let mut d = self.request_template(client, MessageType::Discover);
        d.options.extend(options.iter().cloned());
        with_rai(&mut d);
        let offer = self.exchange(&d, 3).ok_or_else(|| {
            format!(
                "no reply to DISCOVER from {}",
                crate::mac_string(&client.chaddr)
            )
        })?;
        if offer.message_type() != Some(MessageType::Offer) {
            return Err(format!(
                "DISCOVER answered with {:?}, not OFFER: {offer:?}",
                offer.message_type()
            ));
        }
        let server_id = server_id_of(&offer).ok_or("OFFER without server identifier (54)")?;
        let ip = offer.yiaddr;
        let mut r = self.request_template(client, MessageType::Request);
        r.options.push(DhcpOption::RequestedIp(ip));
        r.options.push(DhcpOption::ServerId(server_id));
        r.options.extend(options.iter().cloned());
        with_rai(&mut r);
        let ack = self
            .exchange(&r, 3)
            .ok_or_else(|| format!("no reply to REQUEST for {ip}"))?;
        match ack.message_type() {
            Some(MessageType::Ack) => {}
            other => {
                return Err(format!(
                    "REQUEST for {ip} answered with {other:?}, not ACK: {ack:?}"
                ))
            }
        }
        if ack.yiaddr != ip {
            return Err(format!("ACK yiaddr {} differs from OFFER {ip}", ack.yiaddr));
        }
        let lease_time = ack.options.iter().find_map(|o| match o {
            DhcpOption::LeaseTime(t) => Some(*t),
            _ => None,
        });
        Ok(Lease {
            ip,
            server_id,
            lease_time,
            offer,
            ack,
        })
    }

    /// DHCPRELEASE of `ip` (ciaddr = ip). No reply is expected.
    pub fn release(
        &mut self,
        client: &TestClient,
        ip: Ipv4Addr,
        server_id: Ipv4Addr,
    ) -> io::Result<()> {
        let mut m = self.request_template(client, MessageType::Release);
        m.ciaddr = ip;
        m.options.push(DhcpOption::ServerId(server_id));
        self.send(&m)
    }

    /// DHCPDECLINE of `ip`. No reply is expected.
    pub fn decline(
        &mut self,
        client: &TestClient,
        ip: Ipv4Addr,
        server_id: Ipv4Addr,
    ) -> io::Result<()> {
        let mut m = self.request_template(client, MessageType::Decline);
        m.options.push(DhcpOption::RequestedIp(ip));
        m.options.push(DhcpOption::ServerId(server_id));
        self.send(&m)
    }
}

/// Option 54 of a reply.
pub fn server_id_of(m: &Message) -> Option<Ipv4Addr> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::ServerId(a) => Some(*a),
        _ => None,
    })
}
