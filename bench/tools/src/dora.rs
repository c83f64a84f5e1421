//! A relay-mode DORA load at a fixed rate, recording when each ACK arrives.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, Message, MessageType};

use parking_lot::Mutex;

/// When an address's DHCPACK came back (and its REQUEST left).
#[derive(Debug, Clone, Copy)]
pub struct AckTime {
    /// When the relay read the ACK.
    pub app: Instant,
    /// The ACK's kernel receive time at the relay's socket.
    pub kernel: Option<std::time::SystemTime>,
    pub request_sent: Option<Instant>,
}

pub type AckTimes = std::sync::Arc<Mutex<HashMap<Ipv4Addr, AckTime>>>;

fn request(
    giaddr: Ipv4Addr,
    client: u32,
    kind: MessageType,
    ip: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    message(giaddr, client, client, kind, ip)
}

/// A relayed client message: `client` names the hardware address.
fn message(
    giaddr: Ipv4Addr,
    client: u32,
    xid: u32,
    kind: MessageType,
    ip: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let chaddr = chaddr_of(client);
    let mut m = Message {
        xid,
        giaddr,
        chaddr,
        ..Message::default()
    };
    m.options.push(DhcpOption::MessageType(kind));
    if let Some((yiaddr, sid)) = ip {
        m.options.push(DhcpOption::ServerId(sid));
        m.options.push(DhcpOption::RequestedIp(yiaddr));
    }
    m.to_bytes().unwrap_or_default()
}

/// Client `client`'s DISCOVER, relayed from `giaddr`.
pub fn discover(giaddr: Ipv4Addr, client: u32, xid: u32) -> Vec<u8> {
    message(giaddr, client, xid, MessageType::Discover, None)
}

/// Client `client`'s REQUEST for an OFFER of `yiaddr` from `server_id`.
pub fn request_for(
    giaddr: Ipv4Addr,
    client: u32,
    xid: u32,
    yiaddr: Ipv4Addr,
    server_id: Ipv4Addr,
) -> Vec<u8> {
    message(
        giaddr,
        client,
        xid,
        MessageType::Request,
        Some((yiaddr, server_id)),
    )
}

/// Client `client`'s RELEASE of `ip` held from `server_id` (RFC 2131
/// §4.4.6: ciaddr and the server identifier), through relay `giaddr`.
pub fn release(
    giaddr: Ipv4Addr,
    client: u32,
    xid: u32,
    ip: Ipv4Addr,
    server_id: Ipv4Addr,
) -> Vec<u8> {
    from_holder(
        giaddr,
        client,
        xid,
        ip,
        MessageType::Release,
        Some(server_id),
    )
}

/// The hardware address of client `client` (02:42 and its number).
pub fn chaddr_of(client: u32) -> [u8; 16] {
    let b = client.to_be_bytes();
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[0x02, 0x42, b[0], b[1], b[2], b[3]]);
    chaddr
}

/// A message of client `client` about the `ip` it holds (ciaddr set),
/// through relay `giaddr`, with the server identifier when given.
pub fn from_holder(
    giaddr: Ipv4Addr,
    client: u32,
    xid: u32,
    ip: Ipv4Addr,
    kind: MessageType,
    server_id: Option<Ipv4Addr>,
) -> Vec<u8> {
    let mut m = Message {
        xid,
        giaddr,
        ciaddr: ip,
        chaddr: chaddr_of(client),
        ..Message::default()
    };
    m.options.push(DhcpOption::MessageType(kind));
    if let Some(sid) = server_id {
        m.options.push(DhcpOption::ServerId(sid));
    }
    m.to_bytes().unwrap_or_default()
}

/// A server reply, as much of it as the closed-loop driver needs.
pub enum Reply {
    Offer {
        xid: u32,
        yiaddr: Ipv4Addr,
        server_id: Ipv4Addr,
    },
    Ack {
        xid: u32,
        yiaddr: Ipv4Addr,
        server_id: Option<Ipv4Addr>,
    },
    Nak {
        xid: u32,
    },
}

/// Read a reply in place (RFC 2131 §2 layout, RFC 2132 §9.6, §9.7):
/// message type and server identifier, without decoding the rest.
pub fn peek_reply(m: &[u8]) -> Option<Reply> {
    const COOKIE: [u8; 4] = [99, 130, 83, 99];
    if m.len() < 240 || m[0] != 2 || m[236..240] != COOKIE {
        return None;
    }
    let xid = u32::from_be_bytes(m[4..8].try_into().ok()?);
    let yiaddr = Ipv4Addr::new(m[16], m[17], m[18], m[19]);
    let (mut kind, mut server_id) = (None, None);
    let mut at = 240;
    while at < m.len() {
        match m[at] {
            0 => at += 1,
            255 => break,
            code => {
                let len = usize::from(*m.get(at + 1)?);
                let v = m.get(at + 2..at + 2 + len)?;
                match (code, len) {
                    (53, 1) => kind = Some(v[0]),
                    (54, 4) => server_id = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
                    _ => {}
                }
                at += 2 + len;
            }
        }
    }
    match MessageType::from_u8(kind?)? {
        MessageType::Offer => Some(Reply::Offer {
            xid,
            yiaddr,
            server_id: server_id?,
        }),
        MessageType::Ack => Some(Reply::Ack {
            xid,
            yiaddr,
            server_id,
        }),
        MessageType::Nak => Some(Reply::Nak { xid }),
        _ => None,
    }
}

/// How often the driver wakes: DISCOVERs due go out together, replies that
/// came in are read together. One wake-up per reply (and per DISCOVER) cost
/// this probe ~0.8 CPU at 5,600 DORA/s on a 2-CPU VM, CPU the server under
/// test then did not have; the ACK times are the kernel's, so they do not
/// depend on when the probe reads them.
const TICK: Duration = Duration::from_millis(1);

/// DISCOVERs at `rate` for `duration` (paced per TICK); each OFFER is
/// answered with a REQUEST when read; each ACK's arrival time goes into
/// `acks`. Returns ACKs seen.
pub fn drive(
    server: SocketAddr,
    giaddr: Ipv4Addr,
    rate: u32,
    duration: Duration,
    first_client: u32,
    acks: &AckTimes,
) -> anyhow::Result<u64> {
    let sock = UdpSocket::bind(SocketAddrV4::new(giaddr, 67))?;
    sock.set_nonblocking(true)?;
    crate::rx_time::enable(sock.as_raw_fd())?;
    let mut requests: HashMap<Ipv4Addr, Instant> = HashMap::new();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = start;
    let mut client = first_client;
    let mut acked = 0u64;
    let mut buf = [0u8; 1500];
    let end = start + duration;
    let drain_until = end + Duration::from_secs(1);
    let mut wake = start;
    while Instant::now() < drain_until {
        let now = Instant::now();
        while now < end && next <= now {
            sock.send_to(
                &request(giaddr, client, MessageType::Discover, None),
                server,
            )?;
            client += 1;
            next += interval;
        }
        // Every reply that came in since the last tick.
        loop {
            let (n, kernel) = match crate::rx_time::recv(sock.as_raw_fd(), &mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            let Ok(m) = Message::decode(&buf[..n]) else {
                continue;
            };
            match m.message_type() {
                Some(MessageType::Offer) => {
                    let sid = m.options.iter().find_map(|o| match o {
                        DhcpOption::ServerId(s) => Some(*s),
                        _ => None,
                    });
                    if let Some(sid) = sid {
                        sock.send_to(
                            &request(giaddr, m.xid, MessageType::Request, Some((m.yiaddr, sid))),
                            server,
                        )?;
                        requests.insert(m.yiaddr, Instant::now());
                    }
                }
                Some(MessageType::Ack) => {
                    let t = AckTime {
                        app: Instant::now(),
                        kernel,
                        request_sent: requests.remove(&m.yiaddr),
                    };
                    acks.lock().insert(m.yiaddr, t);
                    acked += 1;
                }
                _ => {}
            }
        }
        wake += TICK;
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    Ok(acked)
}
