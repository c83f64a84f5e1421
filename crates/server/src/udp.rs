//! UDP front end: receives datagrams, decodes them strictly, runs the engine,
//! commits binding changes durably and only then sends the reply.
//!
//! A plain blocking loop per socket: one thread receives, decides and sends
//! OFFERs; ACKs leave from the store's writer thread the moment their batch
//! is durable. No task hand-offs on the hot path.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leaseline_store::StoreError;
use leaseline_wire::{Message, MessageType};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, warn};

use crate::clock::unix_now;
use crate::engine::{Ingress, Outcome};
use crate::shared::Shared;

/// Receive buffer: larger than any UDP datagram, so an oversized one is
/// seen whole (and refused) rather than silently cut and read as shorter.
const MAX_DATAGRAM: usize = 65_536;
/// The largest DHCP message accepted: room for jumbo frames and RFC 3396
/// long options, the same bound as a leasequery TCP message's default.
const MAX_DHCP_MESSAGE: usize = 16_384;
const SOCKET_BUFFER: usize = 4 << 20;
/// BOOTP relay agents and old clients expect at least 300 bytes (RFC 1542 §2.1).
const BOOTP_MIN_LEN: usize = 300;

fn udp_socket() -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Best effort: the kernel caps them at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    // Wake up now and then to notice shutdown.
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(s)
}

/// The socket for relayed (and unicast) traffic.
pub fn bind_listen(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = udp_socket()?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A socket for a directly attached interface: 0.0.0.0:port bound to the device,
/// so broadcasts from clients arrive and our broadcasts leave through it.
pub fn bind_interface(name: &str, port: u16) -> io::Result<UdpSocket> {
    let s = udp_socket()?;
    s.bind_device(Some(name.as_bytes()))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s.into())
}

/// Serve one socket on the calling thread until `stop` is set. `slot`: its
/// place in [`crate::overload::DhcpLoad`].
pub fn serve(
    sock: UdpSocket,
    slot: usize,
    ingress: Ingress,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut meter = shared.load.meter(slot);
    while !stop.load(Ordering::Relaxed) {
        let received = sock.recv_from(&mut buf);
        meter.tick(&shared.load);
        let (len, peer) = match received {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                shared.refusals.flush();
                continue;
            }
            Err(e) => {
                // ICMP errors surface here on Linux; they are not fatal.
                debug!(error = %e, event = "udp_receive_error", "udp receive error");
                continue;
            }
        };
        let Some(datagram) = buf.get(..len) else {
            continue;
        };
        handle_datagram(&sock, ingress, &shared, datagram, peer);
        shared.refusals.flush();
    }
}

fn refuse(shared: &Shared, peer: SocketAddr, reason: &'static str, detail: &dyn std::fmt::Display) {
    shared.stats.dropped(reason);
    if shared.refusals.admit(peer.ip(), reason) {
        warn!(peer = %peer, reason = %detail, event = "dhcp_datagram_dropped", "dropped datagram");
    }
}

fn handle_datagram(
    sock: &Arc<UdpSocket>,
    ingress: Ingress,
    shared: &Arc<Shared>,
    datagram: &[u8],
    peer: SocketAddr,
) {
    if datagram.len() > MAX_DHCP_MESSAGE {
        return refuse(
            shared,
            peer,
            "oversized datagram",
            &format_args!(
                "oversized datagram: {} bytes, over {MAX_DHCP_MESSAGE}",
                datagram.len()
            ),
        );
    }
    let msg = match Message::decode(datagram) {
        Ok(m) => m,
        Err(e) => return refuse(shared, peer, "malformed", &e),
    };
    let Some(kind) = msg.message_type() else {
        return refuse(
            shared,
            peer,
            "no message type",
            &"no message type option (BOOTP is not served)",
        );
    };
    shared.stats.received(kind as u8);
    let now = unix_now();
    if kind == MessageType::LeaseQuery {
        let lq = shared.leasequery.read().clone();
        let Some(lq) = lq else {
            shared.stats.leasequery.refused("leasequery disabled");
            return refuse(
                shared,
                peer,
                "leasequery disabled",
                &"DHCPLEASEQUERY: leasequery is not enabled",
            );
        };
        match lq.answer(shared.store.as_ref(), &msg, peer, now) {
            Ok((reply, dest)) => {
                shared.stats.leasequery.answered(reply.message_type());
                send(sock, shared, &reply, dest)
            }
            Err(r) => {
                shared.stats.leasequery.refused(r.reason);
                refuse(shared, peer, r.reason, &r.detail)
            }
        }
        return;
    }
    if shared.dhcp_switch.is_off(now) {
        shared.stats.dropped("dhcp disabled");
        return;
    }
    let mut engine = shared.engine.lock();
    let outcome = engine.handle(&msg, ingress, now);
    // The commit is queued before the engine's lock goes (the reaper does
    // the same): the store applies changes in the order the engine made
    // them. Queued after it, a reaper's older transition of the same
    // address could land after this one and leave the store (and, after a
    // crash, the server) with a lease it had ACKed shown free.
    let outcome = match outcome {
        Ok(Outcome {
            reply,
            commit: Some(b),
            if_refused,
            undo,
            network,
        }) => {
            let sock = Arc::clone(sock);
            let shared2 = Arc::clone(shared);
            // The reply leaves only once the binding is durable.
            let done: leaseline_store::OnDurable = Box::new(move |result| match result {
                Ok(_) => {
                    if let Some(r) = reply {
                        send(&sock, &shared2, &r.msg, r.dest);
                    }
                }
                // Another server bound the address first (a shared
                // store): never the DHCPACK (RFC 2131 §4.3.2).
                Err(StoreError::Refused { ip, reason, stored }) => {
                    shared2.stats.dropped("refused by the shared store");
                    debug!(peer = %peer, %ip, reason, event = "dhcp_commit_refused", "commit refused; DHCPNAK instead of DHCPACK");
                    // The engine's copy takes what the store holds.
                    shared2.engine.lock().follow_stored(&stored);
                    if let Some(r) = if_refused {
                        send(&sock, &shared2, &r.msg, r.dest);
                    }
                }
                Err(e) => {
                    shared2.stats.commit_failed();
                    if let Some(u) = undo {
                        shared2.engine.lock().undo(u);
                    }
                    debug!(peer = %peer, error = %e, event = "dhcp_commit_failed", "commit failed; no reply sent");
                }
            });
            match network {
                Some(network) => shared.store.submit_grant_then(b, network, now, done),
                None => shared.store.submit_decided_then(vec![b], now, done),
            }
            return;
        }
        other => other,
    };
    drop(engine);
    match outcome {
        Err(d) if d.quiet => {
            shared.stats.dropped(d.reason);
            debug!(peer = %peer, reason = d.reason, xid = msg.xid, event = "dhcp_no_reply", "no reply");
        }
        Err(d) => {
            shared.stats.dropped(d.reason);
            if shared.refusals.admit(peer.ip(), d.reason) {
                warn!(peer = %peer, reason = d.reason, xid = msg.xid, kind = kind.name(), event = "dhcp_datagram_dropped", "dropped datagram");
            }
        }
        Ok(Outcome { reply, .. }) => {
            if let Some(r) = reply {
                send(sock, shared, &r.msg, r.dest);
            }
        }
    }
}

fn send(sock: &UdpSocket, shared: &Shared, msg: &Message, dest: SocketAddrV4) {
    let mut out = Vec::with_capacity(BOOTP_MIN_LEN + 64);
    if let Err(e) = msg.encode(&mut out) {
        error!(error = %e, event = "dhcp_reply_encode_failed", "could not encode reply");
        return;
    }
    if out.len() < BOOTP_MIN_LEN {
        out.resize(BOOTP_MIN_LEN, 0);
    }
    // A full socket buffer drops this reply like the network would; the client retransmits.
    match sock.send_to(&out, SocketAddr::V4(dest)) {
        Ok(_) => {
            if let Some(t) = msg.message_type() {
                shared.stats.sent(t as u8);
            }
        }
        Err(e) => debug!(dest = %dest, error = %e, event = "dhcp_send_failed", "send failed"),
    }
}
