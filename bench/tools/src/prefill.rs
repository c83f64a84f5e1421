//! `prefill`: a server store with N ACTIVE bindings, written through
//! `leaseline_store::SqliteStore` (the server's own schema and writer), for
//! benchmarks that need a large store without running N DORAs.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use leaseline_proto::{Binding, DhcpState};
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore};

/// Bindings per submitted batch (one transaction each).
const BATCH: usize = 4096;

/// `a.b.c.d/len` → (network address, number of addresses).
pub fn parse_prefix(s: &str) -> anyhow::Result<(u32, u64)> {
    let (ip, len) = s.split_once('/').context("prefix is ADDR/LEN")?;
    let ip: Ipv4Addr = ip.parse().context("prefix address")?;
    let len: u32 = len.parse().context("prefix length")?;
    anyhow::ensure!(len <= 32, "prefix length {len} > 32");
    let size = 1u64 << (32 - len);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, size))
}

/// The addresses written: `count` consecutive ones from network + 10.
pub fn range(prefix: &str, count: u32) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let (net, size) = parse_prefix(prefix)?;
    anyhow::ensure!(
        u64::from(count) + 11 <= size,
        "{count} bindings do not fit in {prefix}"
    );
    let first = net + 10;
    Ok((Ipv4Addr::from(first), Ipv4Addr::from(first + count - 1)))
}

pub fn run(db: &Path, count: u32, prefix: &str) -> anyhow::Result<()> {
    let (first, last) = range(prefix, count)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as u32;
    let store = SqliteStore::open(
        SqliteOptions {
            path: db.to_owned(),
            history: HistoryLimits {
                max_age: 1,
                max_count: 1,
            },
            max_batch: BATCH,
            lease_log: None,
        },
        now,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let t0 = Instant::now();
    let mut tickets = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..count {
        let ip = Ipv4Addr::from(u32::from(first) + i);
        let b = i.to_be_bytes();
        // Clients seen over the last hour, leases of a day.
        let cltt = now - i % 3600;
        batch.push(Binding {
            state: DhcpState::Active,
            htype: 1,
            chaddr: vec![0x02, 0x50, b[0], b[1], b[2], b[3]],
            client_id: Some(vec![0x01, 0x02, 0x50, b[0], b[1], b[2], b[3]]),
            expiry: cltt + 86_400,
            cltt,
            state_since: cltt,
            lease_time: 86_400,
            // The server's defaults, as its ACK would have granted.
            renew_time: Some(43_200),
            rebind_time: Some(75_600),
            ..Binding::available(ip)
        });
        if batch.len() == BATCH {
            tickets.push(store.submit(std::mem::take(&mut batch), now));
        }
    }
    if !batch.is_empty() {
        tickets.push(store.submit(batch, now));
    }
    rt.block_on(async {
        for t in tickets {
            t.await.context("store writer stopped")??;
        }
        anyhow::Ok(())
    })?;
    drop(store);
    println!(
        "prefill count={count} first={first} last={last} seconds={:.1}",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            parse_prefix("10.64.0.0/10").unwrap(),
            (0x0a40_0000, 1 << 22)
        );
        let (a, b) = range("10.64.0.0/10", 250_000).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 64, 0, 10));
        assert_eq!(u32::from(b) - u32::from(a), 249_999);
        assert!(range("10.0.0.0/24", 250).is_err());
    }
}
