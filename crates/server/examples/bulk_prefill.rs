//! Prefill a lease store for the Bulk Leasequery benchmark (bench/bulk.sh):
//! `COUNT` ACTIVE bindings, one every `STRIDE` addresses from `FIRST`,
//! written through `SqliteStore` (the server's own store, group commit).
//!
//!     cargo run --release -p leaseline-server --example bulk_prefill -- \
//!         DB FIRST COUNT STRIDE
//!
//! e.g. `state/leaseline.db 10.0.0.1 250000 4`. The bindings look like real
//! relayed leases: MAC, client-id, relay information with circuit-id and
//! remote-id, a one-hour lease that started a minute ago.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use leaseline_proto::{relay_info_to_raw, Binding, DhcpState};
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore};
use leaseline_wire::{RelayAgentInfo, SubOption};

const BATCH: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, first, count, stride] = args.as_slice() else {
        return Err("usage: bulk_prefill DB FIRST_IP COUNT STRIDE".into());
    };
    let db = PathBuf::from(db);
    let first = u32::from(first.parse::<Ipv4Addr>()?);
    let count: u32 = count.parse()?;
    let stride: u32 = stride.parse()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as u32;
    let store = SqliteStore::open(
        SqliteOptions {
            path: db.clone(),
            history: HistoryLimits {
                max_age: 3600,
                max_count: 1_000_000,
            },
            max_batch: BATCH,
            lease_log: None,
        },
        now,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    rt.block_on(async {
        let mut tickets = Vec::new();
        let mut batch = Vec::with_capacity(BATCH);
        for i in 0..count {
            batch.push(binding(first + i * stride, i, now));
            if batch.len() == BATCH || i + 1 == count {
                tickets.push(store.submit(std::mem::take(&mut batch), now));
                // Bounded: a handful of batches in flight.
                if tickets.len() >= 8 {
                    tickets.remove(0).await??;
                }
            }
        }
        for t in tickets {
            t.await??;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    println!(
        "{count} bindings written to {} in {:.1} s",
        db.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn binding(ip: u32, i: u32, now: u32) -> Binding {
    let n = i.to_be_bytes();
    let mac = vec![0x02, 0x42, n[0], n[1], n[2], n[3]];
    let mut client_id = vec![1];
    client_id.extend_from_slice(&mac);
    let rai = RelayAgentInfo {
        sub_options: vec![
            SubOption {
                code: RelayAgentInfo::CIRCUIT_ID,
                data: format!("eth{}", i % 48).into_bytes(),
            },
            SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: format!("cpe-{i:07}").into_bytes(),
            },
        ],
    };
    let mut b = Binding::available(Ipv4Addr::from(ip));
    b.state = DhcpState::Active;
    b.htype = 1;
    b.chaddr = mac;
    b.client_id = Some(client_id);
    b.cltt = now - 60;
    b.state_since = now - 60;
    b.lease_time = 3600;
    b.expiry = now - 60 + 3600;
    b.circuit_id = rai.circuit_id().map(<[u8]>::to_vec);
    b.remote_id = rai.remote_id().map(<[u8]>::to_vec);
    b.relay_info = relay_info_to_raw(&rai);
    b
}
