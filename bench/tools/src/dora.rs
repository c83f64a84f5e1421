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
    let b = client.to_be_bytes();
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[0x02, 0x42, b[0], b[1], b[2], b[3]]);
    let mut m = Message {
        xid: client,
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

/// DISCOVERs at `rate` for `duration`; each OFFER is answered with a
/// REQUEST at once; each ACK's arrival time goes into `acks`. Returns ACKs seen.
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
        // Block in recv until the next DISCOVER is due: a reply's arrival
        // time is read as soon as it comes (no polling loop).
        let due = if now < end { next } else { drain_until };
        wait_readable(&sock, due.saturating_duration_since(Instant::now()))?;
        match crate::rx_time::recv(sock.as_raw_fd(), &mut buf) {
            Ok((n, kernel)) => {
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
                                &request(
                                    giaddr,
                                    m.xid,
                                    MessageType::Request,
                                    Some((m.yiaddr, sid)),
                                ),
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
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(acked)
}

/// Wait until `sock` is readable or `wait` has passed (ppoll: nanosecond
/// timeouts, where SO_RCVTIMEO and poll round to the tick or millisecond).
fn wait_readable(sock: &UdpSocket, wait: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let r = unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
