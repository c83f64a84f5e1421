//! `saturate`: the server's DORA capacity, closed loop. WINDOW exchanges are
//! kept in flight (each ACK or NAK starts the next client's DISCOVER; an
//! exchange unanswered for a second is given up and replaced), from CLIENTS
//! clients in turn, for SECONDS; prints the DORAs completed per second.
//!
//! Why not perfdhcp here: offered far above what the box serves, perfdhcp
//! spins on its sockets and takes a whole CPU of the two this VM has, so
//! the figure it gives is how much CPU perfdhcp wins against the server.
//! This probe blocks in receive and does a few microseconds of work per
//! packet; with WINDOW in flight the server is never idle for want of load.
//! It takes every reply queued in one system call and sends what they
//! start in one more (`mmsg`): on two CPUs shared with the servers it
//! measures, the probe's own share counts.
//!
//! `--rate R` makes it an open-loop load instead (bench/soak.sh and
//! bench/failover.sh on PostgreSQL): R exchanges start per second, paced
//! every millisecond, at most WINDOW in flight (a start that finds the
//! window full is skipped and counted); answers no longer start the next.
//! `--release-percent P` sends, for P of every 100 ACKs, the client's
//! RELEASE of the address at once (so bindings also go ACTIVE -> RELEASED,
//! and back at the client's next turn). Both cost the probe a few
//! microseconds per packet, where perfdhcp spins on its sockets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::dora;
use crate::mmsg::{self, RecvBatch};

/// Datagrams taken per receive call.
const RECV_BATCH: usize = 64;

pub struct Params {
    pub dhcp: SocketAddr,
    pub giaddr: Ipv4Addr,
    pub window: usize,
    pub clients: u32,
    /// Client numbers start here (two drivers at once use distinct clients;
    /// below 2^20 with `clients`).
    pub first_client: u32,
    pub seconds: u64,
    /// Exchanges started per second; 0: closed loop.
    pub rate: u32,
    /// RELEASEs per 100 ACKs.
    pub release_percent: u32,
}

/// How long an exchange may go unanswered before it is given up.
const GIVE_UP: Duration = Duration::from_secs(1);

/// The probe's receive buffer. A group commit answers a whole batch at
/// once (and the other instance's, and the OFFERs, in the same instant):
/// with the kernel's default (208 KiB, some 200 datagrams) a burst that
/// arrives while this thread waits for a CPU overflows it, and each reply
/// lost holds a window slot for GIVE_UP. Capped by net.core.rmem_max.
const RECEIVE_BUFFER: usize = 4 << 20;

pub fn run(p: &Params) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(SocketAddrV4::new(p.giaddr, 67))?;
    if let Err(e) = socket2::SockRef::from(&sock).set_recv_buffer_size(RECEIVE_BUFFER) {
        eprintln!("saturate: SO_RCVBUF: {e}");
    }
    let paced = p.rate > 0;
    // Paced: wake every millisecond to start what is due.
    sock.set_read_timeout(Some(Duration::from_millis(if paced { 1 } else { 100 })))?;
    let clients = p.clients.max(1);
    // xid -> when its DISCOVER (or REQUEST) left.
    let mut inflight: HashMap<u32, Instant> = HashMap::with_capacity(p.window * 2);
    let mut next_client = 0u32;
    let mut xid_base = 0u32;
    // Datagrams to send, sent together once a received batch is handled.
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(RECV_BATCH * 2);
    let mut start_one = |inflight: &mut HashMap<u32, Instant>, out: &mut Vec<Vec<u8>>| {
        // The xid names the client (and a round, so a late reply to a
        // given-up exchange is not taken for the new one).
        let turn = next_client % clients;
        let client = p.first_client.wrapping_add(turn) & 0xf_ffff;
        next_client = next_client.wrapping_add(1);
        if turn == 0 {
            xid_base = xid_base.wrapping_add(1 << 20);
        }
        let xid = xid_base.wrapping_add(client);
        out.push(dora::discover(p.giaddr, client, xid));
        inflight.insert(xid, Instant::now());
    };
    if !paced {
        for _ in 0..p.window {
            start_one(&mut inflight, &mut out);
        }
        mmsg::send_all(&sock, p.dhcp, &mut out)?;
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(p.seconds);
    let mut sweep = start + GIVE_UP;
    let (mut acks, mut naks, mut given_up) = (0u64, 0u64, 0u64);
    let (mut started, mut skipped, mut releases, mut release_due) = (0u64, 0u64, 0u64, 0u32);
    let mut batch = RecvBatch::new(RECV_BATCH);
    while Instant::now() < end {
        if paced {
            let due = (start.elapsed().as_secs_f64() * f64::from(p.rate)) as u64;
            while started < due {
                started += 1;
                if inflight.len() < p.window {
                    start_one(&mut inflight, &mut out);
                } else {
                    skipped += 1;
                }
            }
        }
        // What the last batch (and the pacing) started leaves at once.
        mmsg::send_all(&sock, p.dhcp, &mut out)?;
        // A failed receive (its timeout) leaves no datagrams to go through.
        match batch.recv(&sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.into()),
        }
        for datagram in batch.datagrams() {
            match dora::peek_reply(datagram) {
                Some(dora::Reply::Offer {
                    xid,
                    yiaddr,
                    server_id,
                }) if inflight.contains_key(&xid) => {
                    let client = xid & 0xf_ffff;
                    out.push(dora::request_for(p.giaddr, client, xid, yiaddr, server_id));
                }
                Some(dora::Reply::Ack {
                    xid,
                    yiaddr,
                    server_id,
                }) if inflight.remove(&xid).is_some() => {
                    acks += 1;
                    release_due += p.release_percent;
                    if release_due >= 100 {
                        release_due -= 100;
                        if let Some(sid) = server_id {
                            out.push(dora::release(p.giaddr, xid & 0xf_ffff, xid, yiaddr, sid));
                            releases += 1;
                        }
                    }
                    if !paced {
                        start_one(&mut inflight, &mut out);
                    }
                }
                Some(dora::Reply::Nak { xid }) if inflight.remove(&xid).is_some() => {
                    naks += 1;
                    if !paced {
                        start_one(&mut inflight, &mut out);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= sweep {
            sweep = now + GIVE_UP / 4;
            let before = inflight.len();
            inflight.retain(|_, sent| now.duration_since(*sent) < GIVE_UP);
            let lost = before - inflight.len();
            given_up += lost as u64;
            for _ in 0..if paced { 0 } else { lost } {
                start_one(&mut inflight, &mut out);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Paced: the offered rate and what became of it after `rate=`, which
    // the scripts read.
    let mut extra = String::new();
    if paced {
        extra += &format!(" offered={} started={started} skipped={skipped}", p.rate);
    }
    if p.release_percent > 0 {
        extra += &format!(" releases={releases}");
    }
    println!(
        "saturate window={} seconds={secs:.1} acks={acks} naks={naks} given_up={given_up} rate={:.0}{extra}",
        p.window,
        acks as f64 / secs
    );
    Ok(())
}
