//! `failover`: how soon a surviving instance serves the clients of one that
//! was killed (bench/failover.sh, issue 17). Two instances share one
//! database; this probe, a relay of its own (`giaddr`):
//!
//! 1. gets a lease for each of CLIENTS clients from instance A (DISCOVER,
//!    OFFER, REQUEST, ACK through A's port), timing each REQUEST → ACK;
//! 2. sends SIGKILL to A's process (`kill`) and notes the moment
//!    (CLOCK_MONOTONIC, printed as `kill_mono_ns` so that a script can put
//!    other processes' events on the same clock);
//! 3. at once, and every POLL until each is answered, sends each client's
//!    REBINDING REQUEST (ciaddr = its address, no server identifier, no
//!    requested address: RFC 2131 §4.3.2, relayed) to instance B, and
//!    records when B's DHCPACK (or DHCPNAK) arrives and which address it
//!    carries.
//!
//! Prints one line: the first and last ACK after the kill (ms), how many
//! carried the SAME address the client held from A, NAKs, the server
//! identifier in B's ACKs, and A's REQUEST → ACK latency under the same
//! load before the kill (the normal answer time, for comparison). Exit
//! status 1 when a client was not answered, was NAKed or moved.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_wire::{DhcpOption, Message, MessageType};

use crate::dora;
use crate::stats::Percentiles;

pub struct Params {
    pub dhcp_a: SocketAddr,
    pub dhcp_b: SocketAddr,
    pub giaddr: Ipv4Addr,
    pub clients: u32,
    pub first_client: u32,
    /// A's process id.
    pub kill: i32,
    pub poll: Duration,
    pub timeout: Duration,
}

/// A client's lease from A.
struct Held {
    client: u32,
    ip: Ipv4Addr,
}

/// What happened to a client after the kill.
#[derive(Default, Clone, Copy)]
struct After {
    ack: Option<(Duration, Ipv4Addr, Option<Ipv4Addr>)>,
    nak: Option<Duration>,
}

fn mono_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn server_id(m: &Message) -> Option<Ipv4Addr> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::ServerId(s) => Some(*s),
        _ => None,
    })
}

/// The REBINDING REQUEST of `client` holding `ip` (RFC 2131 §4.3.2, table 4:
/// ciaddr set, no server identifier, no requested address).
fn rebinding(giaddr: Ipv4Addr, client: u32, xid: u32, ip: Ipv4Addr) -> Vec<u8> {
    dora::from_holder(giaddr, client, xid, ip, MessageType::Request, None)
}

/// Step 1: a lease from A for each client; REQUEST → ACK times in µs.
fn lease_from_a(sock: &UdpSocket, p: &Params) -> anyhow::Result<(Vec<Held>, Vec<u32>)> {
    let mut buf = [0u8; 1500];
    let mut held = Vec::new();
    let mut latencies = Vec::new();
    for client in p.first_client..p.first_client + p.clients {
        let mut done = false;
        for attempt in 0..5u32 {
            let xid = client ^ (attempt << 24);
            sock.send_to(&dora::discover(p.giaddr, client, xid), p.dhcp_a)?;
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut requested: Option<Instant> = None;
            while Instant::now() < deadline {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let Ok(m) = Message::decode(&buf[..n]) else {
                    continue;
                };
                if m.xid != xid {
                    continue;
                }
                match m.message_type() {
                    Some(MessageType::Offer) if requested.is_none() => {
                        let Some(sid) = server_id(&m) else { continue };
                        sock.send_to(
                            &dora::request_for(p.giaddr, client, xid, m.yiaddr, sid),
                            p.dhcp_a,
                        )?;
                        requested = Some(Instant::now());
                    }
                    Some(MessageType::Ack) => {
                        if let Some(t) = requested {
                            latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        held.push(Held {
                            client,
                            ip: m.yiaddr,
                        });
                        done = true;
                        break;
                    }
                    Some(MessageType::Nak) => break,
                    _ => {}
                }
            }
            if done {
                break;
            }
        }
        anyhow::ensure!(done, "client {client}: no lease from A after 5 attempts");
    }
    Ok((held, latencies))
}

pub fn run(p: &Params) -> anyhow::Result<bool> {
    let sock = UdpSocket::bind(SocketAddrV4::new(p.giaddr, 67))?;
    sock.set_read_timeout(Some(Duration::from_millis(1)))?;
    let (held, before) = lease_from_a(&sock, p)?;
    let before = Percentiles::of(before);

    // Step 2.
    let kill_ns = mono_ns();
    let killed = Instant::now();
    // SAFETY: kill(2) with a pid and a signal number.
    if unsafe { libc::kill(p.kill, libc::SIGKILL) } != 0 {
        anyhow::bail!("kill -9 {}: {}", p.kill, std::io::Error::last_os_error());
    }

    // Step 3. xid = round << 20 | index: a late answer to an earlier round
    // still names its client.
    let mut after = vec![After::default(); held.len()];
    let mut next_poll = killed;
    let mut round = 0u32;
    let mut buf = [0u8; 1500];
    let mut requests = 0u64;
    let open = |after: &[After]| after.iter().any(|a| a.ack.is_none() && a.nak.is_none());
    while open(&after) && killed.elapsed() < p.timeout {
        if Instant::now() >= next_poll {
            round = round.wrapping_add(1);
            for (i, h) in held.iter().enumerate() {
                if after[i].ack.is_none() && after[i].nak.is_none() {
                    let xid = (round << 20) | i as u32;
                    sock.send_to(&rebinding(p.giaddr, h.client, xid, h.ip), p.dhcp_b)?;
                    requests += 1;
                }
            }
            next_poll += p.poll;
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let at = killed.elapsed();
        let Ok(m) = Message::decode(&buf[..n]) else {
            continue;
        };
        let i = (m.xid & 0xf_ffff) as usize;
        if m.xid >> 20 == 0 || i >= after.len() {
            continue;
        }
        match m.message_type() {
            Some(MessageType::Ack) if after[i].ack.is_none() => {
                after[i].ack = Some((at, m.yiaddr, server_id(&m)));
            }
            Some(MessageType::Nak) if after[i].nak.is_none() => after[i].nak = Some(at),
            _ => {}
        }
    }

    let acks: Vec<_> = after.iter().filter_map(|a| a.ack).collect();
    let same = held
        .iter()
        .zip(&after)
        .filter(|(h, a)| a.ack.is_some_and(|(_, ip, _)| ip == h.ip))
        .count();
    let naks = after.iter().filter(|a| a.nak.is_some()).count();
    let unanswered = after
        .iter()
        .filter(|a| a.ack.is_none() && a.nak.is_none())
        .count();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let first = acks.iter().map(|a| a.0).min();
    let last = acks.iter().map(|a| a.0).max();
    let mut sids: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (_, _, sid) in &acks {
        *sids
            .entry(sid.unwrap_or(Ipv4Addr::UNSPECIFIED))
            .or_default() += 1;
    }
    let sids: Vec<String> = sids.iter().map(|(s, n)| format!("{s}x{n}")).collect();
    println!(
        "failover clients={} kill_mono_ns={kill_ns} first_ack_ms={} last_ack_ms={} same_address={same} naks={naks} unanswered={unanswered} requests={requests} b_server_id={} before_p50_ms={:.1} before_max_ms={:.1}",
        held.len(),
        first.map_or("-".into(), ms),
        last.map_or("-".into(), ms),
        sids.join(","),
        f64::from(before.p50) / 1000.0,
        f64::from(before.max) / 1000.0,
    );
    Ok(same == held.len())
}
