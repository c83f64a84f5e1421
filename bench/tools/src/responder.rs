//! `responder`: the DORA benchmark's physical limit. A stateless DHCP
//! "server" that decodes each datagram with leaseline-wire (as the real
//! server does), answers a DISCOVER with an OFFER and a REQUEST with an ACK
//! of an address derived from chaddr, and keeps nothing: no pool, no
//! binding, no store, no fsync. Driven by the same closed-loop `saturate`
//! in the same run, it is what this box's UDP stack, the driver and one
//! decode/encode per packet allow; leaseline and Kea are reported as
//! fractions of it (bench/dora.sh).
//!
//! Replies go to giaddr:`relay_port`, as the server's do to a relay.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use leaseline_wire::{DhcpOption, Message, MessageType, BOOTREPLY};

pub struct Params {
    pub listen: SocketAddr,
    pub server_id: Ipv4Addr,
    pub relay_port: u16,
}

pub fn run(p: &Params) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(p.listen)?;
    let mut buf = [0u8; 1500];
    let mut out = Vec::with_capacity(576);
    loop {
        let (n, _) = sock.recv_from(&mut buf)?;
        let Ok(req) = Message::decode(&buf[..n]) else {
            continue;
        };
        let kind = match req.message_type() {
            Some(MessageType::Discover) => MessageType::Offer,
            Some(MessageType::Request) => MessageType::Ack,
            _ => continue,
        };
        if req.giaddr.is_unspecified() {
            continue;
        }
        let reply = answer(&req, kind, p.server_id);
        out.clear();
        if reply.encode(&mut out).is_ok() {
            // A full socket buffer drops the reply, as the kernel would.
            let _ = sock.send_to(&out, SocketAddrV4::new(req.giaddr, p.relay_port));
        }
    }
}

/// The canned reply: 10.x.y.z from chaddr's last three bytes.
fn answer(req: &Message, kind: MessageType, server_id: Ipv4Addr) -> Message {
    let c = req.chaddr;
    Message {
        op: BOOTREPLY,
        htype: req.htype,
        hlen: req.hlen,
        xid: req.xid,
        flags: req.flags,
        giaddr: req.giaddr,
        chaddr: req.chaddr,
        yiaddr: Ipv4Addr::new(10, c[3], c[4], c[5]),
        options: vec![
            DhcpOption::MessageType(kind),
            DhcpOption::ServerId(server_id),
            DhcpOption::LeaseTime(3600),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 0, 0, 0)),
        ],
        ..Message::default()
    }
}
