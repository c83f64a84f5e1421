//! `history-prefill` and `history-query` (bench/history.sh): a year of
//! churn of N clients written into a store's lease history through the
//! server's own writer (`SqliteStore`, group commit and all), then history
//! queries timed against it.
//!
//! The churn: `rounds` rounds spread over `days`; in each, every client
//! leases an address of the pool (a different one each round: a
//! permutation), and half a round later releases it. Each address so gets
//! two entries a round, each from another client: clients x rounds x 2
//! entries in all.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use leaseline_proto::{Binding, DhcpState};
use leaseline_store::{
    HistoryKey, HistoryLimits, HistoryQuery, LeaseLogLimits, LeaseStore, SqliteOptions, SqliteStore,
};

const BATCH: usize = 4096;
const FIRST: u32 = 0x0a40_0000; // 10.64.0.0

fn open(db: &Path, now: u32) -> anyhow::Result<SqliteStore> {
    Ok(SqliteStore::open(
        SqliteOptions {
            path: db.to_owned(),
            history: HistoryLimits {
                max_age: 1,
                max_count: 1,
            },
            max_batch: BATCH,
            lease_log: Some(LeaseLogLimits {
                keep_secs: 400 * 86_400,
                max_rows: 1_000_000_000,
            }),
        },
        now,
    )?)
}

/// The address client `c` holds in round `r` (a permutation of the pool
/// per round: the stride is odd and the pool a power of two).
fn address(c: u32, r: u32, pool: u32) -> Ipv4Addr {
    let stride = 2 * (r * 7919 % (pool / 2)) + 1;
    Ipv4Addr::from(FIRST + (c.wrapping_mul(stride).wrapping_add(r * 104_729)) % pool)
}

fn mac(c: u32) -> Vec<u8> {
    let b = c.to_be_bytes();
    vec![0x02, 0x60, b[0], b[1], b[2], b[3]]
}

/// Round `r` starts this many seconds after `start`.
fn round_start(start: u32, r: u32, rounds: u32, days: u32) -> u32 {
    start + (u64::from(days) * 86_400 * u64::from(r) / u64::from(rounds)) as u32
}

pub fn prefill(db: &Path, clients: u32, rounds: u32, days: u32) -> anyhow::Result<()> {
    let pool = clients.next_power_of_two();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as u32;
    let start = now - days * 86_400;
    let store = open(db, start)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let t0 = Instant::now();
    let mut entries = 0u64;
    for r in 0..rounds {
        let t = round_start(start, r, rounds, days);
        let half = (round_start(start, r + 1, rounds, days) - t) / 2;
        for (state, at) in [(DhcpState::Active, t), (DhcpState::Released, t + half)] {
            let mut tickets = Vec::new();
            let mut batch = Vec::with_capacity(BATCH);
            for c in 0..clients {
                let since = at + c % 3600;
                let b = mac(c);
                batch.push(Binding {
                    state,
                    htype: 1,
                    client_id: Some([&[1u8][..], &b].concat()),
                    chaddr: b,
                    expiry: since + 86_400,
                    cltt: since,
                    state_since: since,
                    lease_time: 86_400,
                    circuit_id: Some(vec![0, (c % 48) as u8]),
                    remote_id: Some(format!("sw-{}", c / 48).into_bytes()),
                    ..Binding::available(address(c, r, pool))
                });
                if batch.len() == BATCH {
                    tickets.push(store.submit(std::mem::take(&mut batch), at + 3600));
                }
            }
            if !batch.is_empty() {
                tickets.push(store.submit(batch, at + 3600));
            }
            for t in tickets {
                rt.block_on(t)??;
            }
            entries += u64::from(clients);
        }
        eprint!(
            "\r  round {}/{rounds}, {entries} entries, {:.0} s",
            r + 1,
            t0.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    println!(
        "prefill clients={clients} rounds={rounds} days={days} entries={entries} seconds={:.1} entries_per_s={:.0}",
        t0.elapsed().as_secs_f64(),
        entries as f64 / t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes one query of a kind.
type MakeQuery<'a> = dyn Fn(&mut Rng) -> HistoryQuery + 'a;

/// Times `queries` of each kind, answered by the store (reads on the
/// caller's thread, as the control API's are on its blocking pool).
pub fn query(db: &Path, clients: u32, rounds: u32, days: u32, queries: u32) -> anyhow::Result<()> {
    let pool = clients.next_power_of_two();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as u32;
    let start = now - days * 86_400;
    let store = open(db, now)?;
    let mut rng = Rng::new(0x5eed);
    let kinds: [(&str, &MakeQuery<'_>); 3] = [
        ("ip-at", &|rng: &mut Rng| {
            let c = rng.below(clients);
            let r = rng.below(rounds);
            let at = round_start(start, r, rounds, days) + rng.below(86_400);
            HistoryQuery::at(address(c, r, pool), at)
        }),
        ("ip-month", &|rng: &mut Rng| {
            let mut q = HistoryQuery::all(
                HistoryKey::Ip(Ipv4Addr::from(FIRST + rng.below(pool))),
                1000,
            );
            q.from = start + rng.below(days.saturating_sub(30).max(1)) * 86_400;
            q.to = q.from + 30 * 86_400;
            q
        }),
        ("mac-month", &|rng: &mut Rng| {
            let mut q = HistoryQuery::all(HistoryKey::Mac(mac(rng.below(clients))), 1000);
            q.from = start + rng.below(days.saturating_sub(30).max(1)) * 86_400;
            q.to = q.from + 30 * 86_400;
            q
        }),
    ];
    for (name, make) in kinds {
        let mut times = Vec::with_capacity(queries as usize);
        let mut found = 0u64;
        for _ in 0..queries {
            let q = make(&mut rng);
            let t = Instant::now();
            let page = store.history(&q)?;
            times.push(t.elapsed());
            found += page.entries.len() as u64;
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "query kind={name} n={queries} entries_per_answer={:.1} p50_us={} p99_us={} max_us={}",
            found as f64 / f64::from(queries),
            pct(0.50).as_micros(),
            pct(0.99).as_micros(),
            times.last().map_or(0, |d| d.as_micros()),
        );
    }
    Ok(())
}

/// xorshift64: reproducible picks, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n.max(1))) as u32
    }
}
