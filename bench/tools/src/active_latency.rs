//! `active-latency`: DORA as a relay at a fixed rate while N watchers hold
//! Active Leasequery connections; for every update, how long after the
//! DHCPACK of the same address it arrived.
//!
//! Two clocks per sample:
//! - kernel: the update's kernel receive time at the watcher's socket minus
//!   the DHCPACK's at the relay's (SO_TIMESTAMPNS, plain TCP only): from
//!   the ACK leaving the server to the update arriving at the requestor,
//!   with neither probe's scheduling inside. A read's timestamp is its last
//!   segment's, so a message that came in an earlier segment of the same
//!   read counts later than it arrived, never earlier.
//! - app: the same, as the probe's threads saw it (`Instant` when the read
//!   returned, when the ACK was read): includes the probe's own delays,
//!   100 watchers sharing one thread here.
//!
//! An update that beats its ACK (the commit publishes to the feed, then the
//! ACK leaves) counts as 0.
//!
//! spread: per change, from its first watcher's arrival to its last's
//! (kernel times): how long one change takes to reach every watcher, the
//! fan-out alone, without the ACK's timing.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use leaseline_requestor::active::active_query;
use leaseline_requestor::prl;
use leaseline_requestor::tls::TlsClient;
use leaseline_wire::{FrameDecoder, MessageType};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::dora::{self, AckTimes};
use crate::stats::Percentiles;

/// One update as a watcher got it.
pub struct Arrival {
    ip: Ipv4Addr,
    app: Instant,
    kernel: Option<SystemTime>,
}

pub type Arrivals = Arc<Mutex<Vec<Arrival>>>;

pub struct Params {
    pub dhcp: SocketAddr,
    pub tcp: SocketAddr,
    pub giaddr: Ipv4Addr,
    pub watchers: usize,
    pub rate: u32,
    pub seconds: u64,
    pub first_client: u32,
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    p: &Params,
    tls: Option<Arc<TlsClient>>,
) -> anyhow::Result<()> {
    let acks = AckTimes::default();
    let arrivals = Arrivals::default();
    let until = Instant::now() + Duration::from_secs(p.seconds + 2);
    let tasks: Vec<_> = (0..p.watchers)
        .map(|_| rt.spawn(watch(p.tcp, tls.clone(), Some(arrivals.clone()), until)))
        .collect();
    // Let the watchers subscribe before the load starts.
    std::thread::sleep(Duration::from_millis(500));
    let acked = dora::drive(
        p.dhcp,
        p.giaddr,
        p.rate,
        Duration::from_secs(p.seconds),
        p.first_client,
        &acks,
    )?;
    let mut updates = 0;
    for t in tasks {
        updates += rt.block_on(t)??;
    }
    let acks = acks.lock();
    let arrivals = arrivals.lock();
    let mut app = Vec::with_capacity(arrivals.len());
    let mut kernel = Vec::with_capacity(arrivals.len());
    let mut from_request = Vec::with_capacity(arrivals.len());
    // Per address: its first and last watcher's kernel arrival.
    let mut reach: HashMap<Ipv4Addr, (SystemTime, SystemTime)> = HashMap::with_capacity(acks.len());
    for a in arrivals.iter() {
        let Some(ack) = acks.get(&a.ip) else { continue };
        app.push(micros(a.app.saturating_duration_since(ack.app)));
        if let (Some(at), Some(ack_at)) = (a.kernel, ack.kernel) {
            kernel.push(micros(at.duration_since(ack_at).unwrap_or_default()));
            let r = reach.entry(a.ip).or_insert((at, at));
            r.0 = r.0.min(at);
            r.1 = r.1.max(at);
        }
        // From the REQUEST leaving to the update arriving: the commit, the
        // ACK and the update all inside; never clamped.
        if let Some(sent) = ack.request_sent {
            from_request.push(micros(a.app.saturating_duration_since(sent)));
        }
    }
    // From the first watcher's copy of a change to the last's: how long the
    // server takes to write one change to every watcher (0 with one).
    let spread = reach
        .values()
        .map(|(first, last)| micros(last.duration_since(*first).unwrap_or_default()))
        .collect();
    let (app, kernel, from_request, spread) = (
        Percentiles::of(app),
        Percentiles::of(kernel),
        Percentiles::of(from_request),
        Percentiles::of(spread),
    );
    println!(
        "active-latency mode={} watchers={} rate={}/s acks={acked} updates={updates} samples={} \
         p50_us={} p99_us={} p999_us={} max_us={} app_p50_us={} app_p99_us={} req_p50_us={} req_p99_us={} \
         spread_p50_us={} spread_p99_us={}",
        if tls.is_some() { "tls" } else { "plain" },
        p.watchers,
        p.rate,
        app.count,
        // Kernel timestamps where there are (plain TCP), else the app's.
        kernel.or(&app).p50,
        kernel.or(&app).p99,
        kernel.or(&app).p999,
        kernel.or(&app).max,
        app.p50,
        app.p99,
        from_request.p50,
        from_request.p99,
        spread.p50,
        spread.p99,
    );
    Ok(())
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One watcher until `until`: plain TCP, or secure mode with `tls`. Each
/// update's arrival goes into `arrivals` if given (else only counted).
/// Returns the updates received.
pub async fn watch(
    tcp: SocketAddr,
    tls: Option<Arc<TlsClient>>,
    arrivals: Option<Arrivals>,
    until: Instant,
) -> anyhow::Result<u64> {
    match tls {
        None => watch_plain(tcp, arrivals, until).await,
        Some(c) => watch_tls(tcp, &c, arrivals, until).await,
    }
}

/// A plain TCP watcher, every read kernel-timestamped.
async fn watch_plain(
    tcp: SocketAddr,
    arrivals: Option<Arrivals>,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut s = TcpStream::connect(tcp).await.context("connect")?;
    s.set_nodelay(true)?;
    crate::rx_time::enable(s.as_raw_fd())?;
    s.write_all(&framed_query()).await?;
    let mut w = Watcher::new(arrivals.is_some());
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < until {
        if tokio::time::timeout(Duration::from_secs(1), s.readable())
            .await
            .is_err()
        {
            continue;
        }
        let fd = s.as_raw_fd();
        let (n, kernel) = match s.try_io(Interest::READABLE, || crate::rx_time::recv(fd, &mut buf))
        {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e).context("read"),
        };
        w.read(&buf[..n], Instant::now(), kernel)?;
    }
    Ok(w.finish(arrivals.as_ref()))
}

/// A watcher in secure mode (DHCPTLS, then TLS): application times only.
async fn watch_tls(
    tcp: SocketAddr,
    tls: &TlsClient,
    arrivals: Option<Arrivals>,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut s = leaseline_requestor::tls::connect(tcp, tls)
        .await
        .context("secure connection")?;
    s.write_all(&framed_query()).await?;
    let mut w = Watcher::new(arrivals.is_some());
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < until {
        let n = match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(r) => r.context("read")?,
        };
        w.read(&buf[..n], Instant::now(), None)?;
    }
    Ok(w.finish(arrivals.as_ref()))
}

fn framed_query() -> Vec<u8> {
    let mut q = Vec::new();
    leaseline_proto::frame_into(&mut q, &active_query(1, None, prl::BINDINGS));
    q
}

/// What one watcher has seen.
struct Watcher {
    decoder: FrameDecoder,
    record: bool,
    seen: Vec<Arrival>,
    updates: u64,
}

impl Watcher {
    fn new(record: bool) -> Self {
        Watcher {
            decoder: FrameDecoder::new(usize::from(u16::MAX)),
            record,
            seen: Vec::with_capacity(if record { 100_000 } else { 0 }),
            updates: 0,
        }
    }

    /// Bytes from one read, which returned at `app` (kernel time `kernel`).
    fn read(
        &mut self,
        bytes: &[u8],
        app: Instant,
        kernel: Option<SystemTime>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(!bytes.is_empty(), "server closed the connection");
        self.decoder.extend(bytes);
        while let Some(frame) = self.decoder.next_frame().context("framing")? {
            let (kind, ip) = peek(frame).context("not a DHCP message")?;
            match MessageType::from_u8(kind) {
                Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
                    self.updates += 1;
                    if self.record {
                        self.seen.push(Arrival { ip, app, kernel });
                    }
                }
                Some(MessageType::LeaseQueryStatus) => {}
                other => anyhow::bail!("unexpected message {other:?}"),
            }
        }
        Ok(())
    }

    fn finish(self, arrivals: Option<&Arrivals>) -> u64 {
        if let Some(a) = arrivals {
            a.lock().extend(self.seen);
        }
        self.updates
    }
}

/// The message type (option 53) and ciaddr of a DHCP message, read in place
/// (RFC 2131 §2 layout, RFC 2132 §9.6): 100 watchers share one thread here,
/// where on a network each requestor has a host to decode on.
fn peek(m: &[u8]) -> Option<(u8, Ipv4Addr)> {
    const COOKIE: [u8; 4] = [99, 130, 83, 99];
    if m.len() < 240 || m[236..240] != COOKIE {
        return None;
    }
    let ciaddr = Ipv4Addr::new(m[12], m[13], m[14], m[15]);
    let mut at = 240;
    while at < m.len() {
        match m[at] {
            0 => at += 1,
            255 => return None,
            code => {
                let len = usize::from(*m.get(at + 1)?);
                if code == 53 && len == 1 {
                    return Some((*m.get(at + 2)?, ciaddr));
                }
                at += 2 + len;
            }
        }
    }
    None
}
