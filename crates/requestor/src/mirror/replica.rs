//! The replica: the server's bindings as learned, in a SQLite store with the
//! server's own schema (so the same look-ups work), plus the mirror's state
//! (saved base-time, phase, lag) in a `mirror_meta` table of the same file.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use leaseline_proto::{Binding, DhcpState};
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use super::convert::Learned;
use super::reconcile::Freshness;

pub struct Replica {
    store: SqliteStore,
    meta: Connection,
    /// What the replica knows of each address, for RFC 6926 §7.6 decisions
    /// without a read per record.
    fresh: HashMap<Ipv4Addr, Freshness>,
    applied: u64,
}

fn freshness(b: &Binding, base_time: u32, has_cltt: bool) -> Freshness {
    Freshness {
        cltt: has_cltt.then_some(b.cltt),
        state_since: b.state_since,
        data_source: b.data_source,
        base_time,
    }
}

pub fn meta_connection(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS mirror_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    Ok(c)
}

pub fn read_meta(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT value FROM mirror_meta WHERE key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()?)
}

impl Replica {
    pub fn open(path: &Path) -> Result<Replica, StoreError> {
        let store = SqliteStore::open(
            SqliteOptions {
                path: PathBuf::from(path),
                // The replica's own feed is not served to anyone.
                history: HistoryLimits {
                    max_age: 1,
                    max_count: 1,
                },
                max_batch: 4096,
            },
            0,
        )?;
        let meta = meta_connection(path)?;
        let mut fresh = HashMap::new();
        for b in store.load_all()? {
            fresh.insert(b.ip, freshness(&b, 0, b.cltt != 0));
        }
        Ok(Replica {
            store,
            meta,
            fresh,
            applied: 0,
        })
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Apply a record unless the replica already holds something newer
    /// (RFC 6926 §7.6). Returns the binding when it changed the replica.
    pub fn apply(&mut self, l: Learned) -> Option<Binding> {
        let incoming = freshness(&l.binding, l.base_time, l.has_cltt);
        if let Some(known) = self.fresh.get(&l.binding.ip) {
            if !known.superseded_by(&incoming) {
                return None;
            }
        } else if l.binding.state == DhcpState::Available && l.binding.chaddr.is_empty() {
            // Never leased: absence already means AVAILABLE; keep the replica small.
            self.fresh.insert(l.binding.ip, incoming);
            return None;
        }
        self.fresh.insert(l.binding.ip, incoming);
        self.applied += 1;
        // Durability is awaited in `sync` before any base-time is saved.
        drop(self.store.submit(vec![l.binding.clone()], l.base_time));
        Some(l.binding)
    }

    /// Resolves once everything applied so far is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self.store.submit(Vec::new(), 0).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn saved_base_time(&self) -> Result<Option<u32>, StoreError> {
        Ok(read_meta(&self.meta, "saved_base_time")?.and_then(|v| v.parse().ok()))
    }

    /// RFC 7724 §7.3: the highest base-time after catch-up, saved only once
    /// every record it covers is durable in the replica (call `sync` first).
    pub fn save_base_time(&self, t: u32) -> Result<(), StoreError> {
        self.set_meta("saved_base_time", &t.to_string())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.meta.execute(
            "INSERT INTO mirror_meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}
