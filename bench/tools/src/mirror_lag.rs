//! `mirror-lag`: replica lag of a running `leaseline mirror --events FILE`.
//! Drives DORA as a relay at a fixed rate (like `active-latency`) and
//! follows the events file; for each event line of an address this run
//! leased it measures
//! - ack: the line's appearance minus the DHCPACK's arrival at the relay
//!   (one clock, microseconds), and
//! - base: the line's appearance minus its base-time (the server's clock,
//!   whole seconds: includes up to 1 s of truncation).

use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::dora::{self, AckTimes};
use crate::stats;

/// One event line as seen: when, which address, its base-time.
struct Seen {
    at: Instant,
    unix_ms: u64,
    ip: Ipv4Addr,
    base_time: u64,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}

/// Follows `path` from its current end until `stop`, timestamping lines.
fn follow(path: &Path, stop: &AtomicBool, out: &Mutex<Vec<Seen>>) -> anyhow::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::End(0))?;
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = f.read(&mut buf)?;
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let at = Instant::now();
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        pending.extend_from_slice(&buf[..n]);
        let mut seen = Vec::new();
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            lines += 1;
            let ip = field(&line, "ip").and_then(|v| v.parse().ok());
            let base = field(&line, "base_time").and_then(|v| v.parse().ok());
            if let (Some(ip), Some(base_time)) = (ip, base) {
                seen.push(Seen {
                    at,
                    unix_ms,
                    ip,
                    base_time,
                });
            }
        }
        out.lock().extend(seen);
    }
    Ok(lines)
}

pub fn run(
    dhcp: SocketAddr,
    giaddr: Ipv4Addr,
    rate: u32,
    seconds: u64,
    first_client: u32,
    events: &Path,
) -> anyhow::Result<()> {
    let acks: AckTimes = Arc::new(Mutex::new(Default::default()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (events, stop, seen) = (events.to_owned(), stop.clone(), seen.clone());
        std::thread::spawn(move || follow(&events, &stop, &seen))
    };
    let acked = dora::drive(
        dhcp,
        giaddr,
        rate,
        Duration::from_secs(seconds),
        first_client,
        &acks,
    )?;
    // The last ACKs' events: give them the time a slow replica would need.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let lines = follower
        .join()
        .map_err(|_| anyhow::anyhow!("follower panicked"))??;
    let acks = acks.lock();
    let seen = seen.lock();
    let mut ack_us = Vec::new();
    let mut base_us = Vec::new();
    for s in seen.iter().filter(|s| acks.contains_key(&s.ip)) {
        // An event can beat the ACK to the relay (commit, publish, then
        // the ACK leaves): zero.
        ack_us.push(s.at.saturating_duration_since(acks[&s.ip].app).as_micros() as u32);
        base_us.push((s.unix_ms.saturating_sub(s.base_time * 1000) * 1000) as u32);
    }
    let missing = acks.len() - {
        let mut ips: Vec<_> = seen.iter().map(|s| s.ip).collect();
        ips.sort_unstable();
        ips.dedup();
        ips.iter().filter(|ip| acks.contains_key(ip)).count()
    };
    let (p50, p99) = stats::percentiles(&ack_us);
    let (b50, b99) = stats::percentiles(&base_us);
    println!(
        "mirror-lag rate={rate}/s acks={acked} event_lines={lines} samples={} not_seen={missing} \
         ack_p50_us={p50} ack_p99_us={p99} base_p50_us={b50} base_p99_us={b99}",
        ack_us.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_of_an_event_line() {
        let l = r#"{"base_time":1795438424,"client_id":null,"ip":"10.0.1.52","state":"ACTIVE"}"#;
        assert_eq!(field(l, "ip"), Some("10.0.1.52"));
        assert_eq!(field(l, "base_time"), Some("1795438424"));
        assert_eq!(field(l, "state"), Some("ACTIVE"));
        assert_eq!(field(l, "nope"), None);
    }
}
