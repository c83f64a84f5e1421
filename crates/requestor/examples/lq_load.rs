//! Load generator for bench/lq_udp.sh: UDP Leasequery throughput.
//!
//! ```text
//! lq_load populate --server 127.0.0.1:PORT --relay 127.0.0.1:RPORT --count N
//!                  [--base-mac 02:10:00:00:00:00] [--window 64] --out FILE
//! lq_load query    --server 127.0.0.1:PORT --mode ip|mac --keys FILE
//!                  [--duration 10] [--warmup 1] [--window 64]
//! ```
//!
//! `populate` makes N bindings by relayed DORA (DISCOVER, OFFER, REQUEST,
//! ACK) as a relay agent bound on `--relay` (giaddr = its address; the
//! server must send relay replies to that port: `[dhcp] relay_port`), N
//! exchanges in flight at most `--window`, and writes `IP MAC` per binding.
//!
//! `query` keeps `--window` DHCPLEASEQUERYs in flight from one socket (giaddr
//! = 127.0.0.1, replies come back to its port), by IP or by MAC over the
//! keys in turn, for `--duration` seconds after `--warmup`, and prints one
//! line: answers per second, answers by type, losses (no answer within 1 s)
//! and latency percentiles.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_proto::text::{format_mac, parse_mac};
use leaseline_requestor::prl;
use leaseline_requestor::query::{encode_query, QueryKey};
use leaseline_wire::{
    pad_to_bootp_minimum, DhcpOption, Message, MessageType, BOOTREPLY, BOOTREQUEST,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("populate") => populate(&Flags::parse(&args[1..])),
        Some("query") => query(&Flags::parse(&args[1..])),
        _ => Err("usage: lq_load populate|query [flags] (see the source header)".into()),
    };
    if let Err(e) = result {
        eprintln!("lq_load: {e}");
        std::process::exit(1);
    }
}

struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Flags {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let v = it.next().cloned().unwrap_or_default();
            m.insert(k.trim_start_matches("--").to_string(), v);
        }
        Flags(m)
    }
    fn get(&self, k: &str) -> Result<&str, String> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("--{k} is required"))
    }
    fn or<'a>(&'a self, k: &str, d: &'a str) -> &'a str {
        self.0.get(k).map(String::as_str).unwrap_or(d)
    }
    fn num<T: std::str::FromStr>(&self, k: &str, d: &str) -> Result<T, String> {
        self.or(k, d)
            .parse()
            .map_err(|_| format!("--{k}: not a number"))
    }
    fn addr(&self, k: &str) -> Result<SocketAddr, String> {
        self.get(k)?
            .parse()
            .map_err(|_| format!("--{k}: not ADDR:PORT"))
    }
}

fn recv_timeout(sock: &UdpSocket, buf: &mut [u8], t: Duration) -> Option<usize> {
    sock.set_read_timeout(Some(t.max(Duration::from_micros(100))))
        .ok()?;
    match sock.recv_from(buf) {
        Ok((n, _)) => Some(n),
        Err(_) => None,
    }
}

// ---------------------------------------------------------------- populate

struct Dora {
    client: u32,
    /// false: DISCOVER sent; true: REQUEST sent.
    requesting: bool,
    msg: Vec<u8>,
    sent: Instant,
}

fn mac_of(base: &[u8], i: u32) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&base[..6]);
    let b = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]) + u64::from(i);
    m.copy_from_slice(&b.to_be_bytes()[2..]);
    m
}

fn relayed(
    ty: MessageType,
    xid: u32,
    giaddr: Ipv4Addr,
    mac: [u8; 6],
    extra: Vec<DhcpOption>,
) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let mut options = vec![DhcpOption::MessageType(ty)];
    options.extend(extra);
    let m = Message {
        op: BOOTREQUEST,
        htype: 1,
        hlen: 6,
        hops: 1,
        xid,
        giaddr,
        chaddr,
        options,
        ..Message::default()
    };
    // Built above from fixed fields and options that always encode.
    #[allow(clippy::expect_used)]
    let mut b = m.to_bytes().expect("a query of fixed fields encodes");
    pad_to_bootp_minimum(&mut b);
    b
}

fn populate(f: &Flags) -> Result<(), String> {
    let server = f.addr("server")?;
    let relay = f.addr("relay")?;
    let count: u32 = f.num("count", "100000")?;
    let window: usize = f.num("window", "64")?;
    let base = parse_mac(f.or("base-mac", "02:10:00:00:00:00")).map_err(|e| e.to_string())?;
    if base.len() != 6 {
        return Err("--base-mac: 6 octets".into());
    }
    let out_path = f.get("out")?;
    let giaddr = match relay {
        SocketAddr::V4(a) => *a.ip(),
        _ => return Err("--relay: IPv4".into()),
    };
    let sock = UdpSocket::bind(relay).map_err(|e| format!("bind {relay}: {e}"))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(out_path).map_err(|e| format!("{out_path}: {e}"))?,
    );
    // xid: the client index in the low 31 bits, the phase in the top bit.
    let xid_of = |client: u32, requesting: bool| client | if requesting { 1 << 31 } else { 0 };
    let mut inflight: HashMap<u32, Dora> = HashMap::new();
    let mut next = 0u32;
    let mut done = 0u32;
    let mut retries = 0u64;
    let mut naks = 0u64;
    let t0 = Instant::now();
    let mut last_report = t0;
    let mut buf = vec![0u8; 4096];
    while done < count {
        while inflight.len() < window && next < count {
            let mac = mac_of(&base, next);
            let msg = relayed(
                MessageType::Discover,
                xid_of(next, false),
                giaddr,
                mac,
                vec![DhcpOption::ParameterRequestList(vec![1, 3, 6, 51, 54])],
            );
            sock.send_to(&msg, server).map_err(|e| e.to_string())?;
            inflight.insert(
                next,
                Dora {
                    client: next,
                    requesting: false,
                    msg,
                    sent: Instant::now(),
                },
            );
            next += 1;
        }
        if let Some(n) = recv_timeout(&sock, &mut buf, Duration::from_millis(50)) {
            let Ok(m) = Message::decode(&buf[..n]) else {
                continue;
            };
            let client = m.xid & !(1 << 31);
            let Some(d) = inflight.get_mut(&client) else {
                continue;
            };
            if m.op != BOOTREPLY || m.xid != xid_of(d.client, d.requesting) {
                continue;
            }
            match m.message_type() {
                Some(MessageType::Offer) if !d.requesting => {
                    let sid = m.options.iter().find_map(|o| match o {
                        DhcpOption::ServerId(a) => Some(*a),
                        _ => None,
                    });
                    let Some(sid) = sid else { continue };
                    d.requesting = true;
                    d.msg = relayed(
                        MessageType::Request,
                        xid_of(d.client, true),
                        giaddr,
                        mac_of(&base, d.client),
                        vec![
                            DhcpOption::RequestedIp(m.yiaddr),
                            DhcpOption::ServerId(sid),
                            DhcpOption::ParameterRequestList(vec![1, 3, 6, 51, 54]),
                        ],
                    );
                    d.sent = Instant::now();
                    sock.send_to(&d.msg, server).map_err(|e| e.to_string())?;
                }
                Some(MessageType::Ack) if d.requesting => {
                    let mac = mac_of(&base, d.client);
                    writeln!(out, "{} {}", m.yiaddr, format_mac(&mac))
                        .map_err(|e| e.to_string())?;
                    inflight.remove(&client);
                    done += 1;
                }
                Some(MessageType::Nak) => {
                    // Start this client over.
                    naks += 1;
                    d.requesting = false;
                    d.msg = relayed(
                        MessageType::Discover,
                        xid_of(d.client, false),
                        giaddr,
                        mac_of(&base, d.client),
                        vec![DhcpOption::ParameterRequestList(vec![1, 3, 6, 51, 54])],
                    );
                    d.sent = Instant::now();
                    sock.send_to(&d.msg, server).map_err(|e| e.to_string())?;
                }
                _ => {}
            }
        }
        // Retransmit what has waited 2 s.
        let now = Instant::now();
        for d in inflight.values_mut() {
            if now.duration_since(d.sent) > Duration::from_secs(2) {
                sock.send_to(&d.msg, server).map_err(|e| e.to_string())?;
                d.sent = now;
                retries += 1;
            }
        }
        if now.duration_since(last_report) > Duration::from_secs(5) {
            eprintln!(
                "populate: {done}/{count} bindings, {:.0}/s",
                f64::from(done) / t0.elapsed().as_secs_f64()
            );
            last_report = now;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "populate: {count} bindings in {secs:.1} s ({:.0} DORA/s), {retries} retransmissions, {naks} NAKs",
        f64::from(count) / secs
    );
    Ok(())
}

// ------------------------------------------------------------------- query

fn query(f: &Flags) -> Result<(), String> {
    let server = f.addr("server")?;
    let mode = f.get("mode")?;
    let window: usize = f.num("window", "64")?;
    let duration = Duration::from_secs_f64(f.num("duration", "10")?);
    let warmup = Duration::from_secs_f64(f.num("warmup", "1")?);
    let keys_path = f.get("keys")?;
    let file = std::fs::File::open(keys_path).map_err(|e| format!("{keys_path}: {e}"))?;
    let mut keys: Vec<QueryKey> = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let mut it = line.split_whitespace();
        let (Some(ip), Some(mac)) = (it.next(), it.next()) else {
            continue;
        };
        keys.push(match mode {
            "ip" => QueryKey::Ip(ip.parse().map_err(|_| format!("bad IP {ip}"))?),
            "mac" => QueryKey::Mac {
                htype: 1,
                chaddr: parse_mac(mac).map_err(|e| e.to_string())?,
            },
            _ => return Err("--mode ip|mac".into()),
        });
    }
    if keys.is_empty() {
        return Err(format!("{keys_path}: no keys"));
    }
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let giaddr = Ipv4Addr::LOCALHOST;
    // Encoded queries, one per key; the xid is patched in per send.
    let encoded: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| encode_query(k, 0, giaddr, prl::UDP).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;

    let mut inflight: HashMap<u32, Instant> = HashMap::with_capacity(window * 2);
    let mut next_key = 0usize;
    let mut xid = 0x4c51_0000u32;
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let (mut active, mut unassigned, mut unknown, mut other, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut lat_us: Vec<u32> = Vec::new();
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while inflight.len() < window {
            xid = xid.wrapping_add(1);
            let mut d = encoded[next_key].clone();
            d[4..8].copy_from_slice(&xid.to_be_bytes());
            next_key = (next_key + 1) % encoded.len();
            sock.send_to(&d, server).map_err(|e| e.to_string())?;
            inflight.insert(xid, Instant::now());
        }
        if let Some(n) = recv_timeout(&sock, &mut buf, Duration::from_millis(20)) {
            if n < 8 {
                continue;
            }
            let rx = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let Some(sent) = inflight.remove(&rx) else {
                continue;
            };
            let at = Instant::now();
            if sent < measure_from {
                continue;
            }
            // The type is option 53; decode fully (a requestor would).
            match Message::decode(&buf[..n])
                .ok()
                .and_then(|m| m.message_type())
            {
                Some(MessageType::LeaseActive) => active += 1,
                Some(MessageType::LeaseUnassigned) => unassigned += 1,
                Some(MessageType::LeaseUnknown) => unknown += 1,
                _ => other += 1,
            }
            lat_us.push(
                at.duration_since(sent)
                    .as_micros()
                    .min(u128::from(u32::MAX)) as u32,
            );
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) > Duration::from_millis(100) {
            let before = inflight.len();
            inflight.retain(|_, sent| now.duration_since(*sent) < Duration::from_secs(1));
            if now > measure_from {
                lost += (before - inflight.len()) as u64;
            }
            last_sweep = now;
        }
    }
    let answered = active + unassigned + unknown + other;
    lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_us.is_empty() {
            return 0.0;
        }
        let i = ((lat_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat_us[i]) / 1000.0
    };
    println!(
        "by {mode}: {:.0} answers/s ({answered} in {:.1} s, window {window}, {} keys) \
         ACTIVE={active} UNASSIGNED={unassigned} UNKNOWN={unknown} other={other} lost={lost} \
         latency ms p50={:.3} p99={:.3} max={:.3}",
        answered as f64 / duration.as_secs_f64(),
        duration.as_secs_f64(),
        keys.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
