//! A relay-mode DORA load at a fixed rate, recording when each ACK arrives.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, Message, MessageType};

use crate::AckTimes;

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
    drive_timed(server, giaddr, rate, duration, first_client, acks, None)
}

/// [`drive`], also noting in `requests` when each address's REQUEST left.
pub fn drive_timed(
    server: SocketAddr,
    giaddr: Ipv4Addr,
    rate: u32,
    duration: Duration,
    first_client: u32,
    acks: &AckTimes,
    requests: Option<&AckTimes>,
) -> anyhow::Result<u64> {
    let sock = UdpSocket::bind(SocketAddrV4::new(giaddr, 67))?;
    sock.set_nonblocking(true)?;
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = start;
    let mut client = first_client;
    let mut acked = 0u64;
    let mut buf = [0u8; 1500];
    let mut pending: HashMap<u32, ()> = HashMap::new();
    let end = start + duration;
    let drain_until = end + Duration::from_secs(1);
    while Instant::now() < drain_until {
        let now = Instant::now();
        while now < end && next <= now {
            sock.send_to(
                &request(giaddr, client, MessageType::Discover, None),
                server,
            )?;
            pending.insert(client, ());
            client += 1;
            next += interval;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
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
                            if let Some(r) = requests {
                                r.lock().insert(m.yiaddr, Instant::now());
                            }
                        }
                    }
                    Some(MessageType::Ack) => {
                        acks.lock().insert(m.yiaddr, Instant::now());
                        pending.remove(&m.xid);
                        acked += 1;
                    }
                    _ => {}
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(acked)
}
