//! The replica: the server's bindings as learned, in a SQLite store with the
//! server's own schema (so the same look-ups work), plus the mirror's state
//! (saved base-time, phase, lag) in a `mirror_meta` table of the same file.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use leaseline_proto::{Binding, DhcpState};
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use super::convert::Learned;
use super::reconcile::Freshness;

/// Where a record came from: decides what wins when RFC 6926 §7.6 cannot
/// tell two records apart (same CLTT, start-time-of-state and data-source,
/// e.g. a RELEASE and a new ACK of one address within one second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The initial bulk query, alone on the wire: everything it returns was
    /// read after anything already in the replica.
    Bulk,
    /// The active query. One server writes its messages in order, each with
    /// the binding's state when it was built, so a later message is never
    /// older than an earlier one.
    Active,
    /// A DataMissing gap fill, concurrent with the active query: on a tie
    /// it loses to what this session's active query already said (any
    /// later change reaches the active query too), and wins over the rest.
    Fill,
}

/// What the replica knows of one address.
#[derive(Debug, Clone, Copy)]
struct Known {
    fresh: Freshness,
    /// The record's content, to skip an exact duplicate without a write.
    digest: u64,
    /// The session whose active query applied it, if any.
    active_session: Option<u32>,
}

pub struct Replica {
    store: SqliteStore,
    meta: Connection,
    /// What the replica knows of each address, for RFC 6926 §7.6 decisions
    /// without a read per record.
    known: HashMap<Ipv4Addr, Known>,
    applied: u64,
    /// Numbers the mirror's sessions (connections), see [`Source::Fill`].
    session: u32,
    /// Set by the store's writer when a commit fails: the replica then lacks
    /// records it has reported as applied, and no base-time may be saved.
    failed: Arc<AtomicBool>,
    first_error: Arc<Mutex<Option<String>>>,
}

fn freshness(b: &Binding, base_time: u32, has_cltt: bool) -> Freshness {
    Freshness {
        cltt: has_cltt.then_some(b.cltt),
        state_since: b.state_since,
        data_source: b.data_source,
        base_time,
    }
}

/// A digest of everything the replica stores of a binding.
fn digest(b: &Binding) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        b.state.as_u8(),
        b.htype,
        &b.chaddr,
        &b.client_id,
        b.expiry,
        b.cltt,
        b.state_since,
        b.data_source,
    )
        .hash(&mut h);
    (
        &b.relay_info,
        &b.circuit_id,
        &b.remote_id,
        &b.relay_id,
        &b.vendor_class_id,
        &b.hostname,
        b.lease_time,
        b.renew_time,
        b.rebind_time,
    )
        .hash(&mut h);
    h.finish()
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
                lease_log: None,
            },
            0,
        )?;
        let meta = meta_connection(path)?;
        let mut known = HashMap::new();
        for b in store.load_all()? {
            known.insert(
                b.ip,
                Known {
                    fresh: freshness(&b, 0, b.cltt != 0),
                    digest: digest(&b),
                    active_session: None,
                },
            );
        }
        Ok(Replica {
            store,
            meta,
            known,
            applied: 0,
            session: 0,
            failed: Arc::new(AtomicBool::new(false)),
            first_error: Arc::new(Mutex::new(None)),
        })
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// A new connection to the server begins (see [`Source::Fill`]).
    pub fn new_session(&mut self) {
        self.session = self.session.wrapping_add(1);
    }

    /// Apply a record unless the replica already holds something newer
    /// (RFC 6926 §7.6; ties by [`Source`]). Returns the binding when it
    /// changed the replica.
    pub fn apply(&mut self, l: Learned, source: Source) -> Option<Binding> {
        let incoming = freshness(&l.binding, l.base_time, l.has_cltt);
        let digest = digest(&l.binding);
        let active_session = (source == Source::Active).then_some(self.session);
        match self.known.get_mut(&l.binding.ip) {
            Some(known) => {
                let newer = match known.fresh.compare(&incoming) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => match source {
                        Source::Bulk | Source::Active => true,
                        Source::Fill => known.active_session != Some(self.session),
                    },
                };
                if !newer {
                    return None;
                }
                let same = known.digest == digest;
                known.fresh = incoming;
                known.active_session = active_session.or(known.active_session.filter(|_| same));
                if same {
                    return None; // a duplicate: nothing to write or report
                }
                known.digest = digest;
            }
            None => {
                let never_leased =
                    l.binding.state == DhcpState::Available && l.binding.chaddr.is_empty();
                self.known.insert(
                    l.binding.ip,
                    Known {
                        fresh: incoming,
                        digest,
                        active_session,
                    },
                );
                if never_leased {
                    // Absence already means AVAILABLE; keep the replica small.
                    return None;
                }
            }
        }
        self.applied += 1;
        // Durability is awaited in `sync` before any base-time is saved.
        let (failed, first_error) = (Arc::clone(&self.failed), Arc::clone(&self.first_error));
        self.store.submit_then(
            vec![l.binding.clone()],
            l.base_time,
            Box::new(move |r| {
                if let Err(e) = r {
                    failed.store(true, Ordering::SeqCst);
                    let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert_with(|| e.to_string());
                }
            }),
        );
        Some(l.binding)
    }

    /// Resolves once everything applied so far is durable; an error if any
    /// of it failed to commit.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let r = match self.store.submit(Vec::new(), 0).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(StoreError::WriterGone),
        };
        if self.failed.load(Ordering::SeqCst) {
            let why = self
                .first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(StoreError::Open {
                path: "replica".into(),
                reason: format!("a replica write failed: {why}"),
            });
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(ip: [u8; 4], state: DhcpState, cltt: u32, since: u32, base: u32) -> Learned {
        let mut b = Binding::available(Ipv4Addr::from(ip));
        b.state = state;
        b.htype = 1;
        b.chaddr = vec![2, 0, 0, 0, 0, 1];
        b.cltt = cltt;
        b.state_since = since;
        b.expiry = if state == DhcpState::Active {
            base + 100
        } else {
            0
        };
        Learned {
            binding: b,
            base_time: base,
            has_cltt: true,
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "leaseline-replica-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn stored(r: &Replica, ip: [u8; 4]) -> Option<DhcpState> {
        r.store().get(Ipv4Addr::from(ip)).unwrap().map(|b| b.state)
    }

    #[tokio::test]
    async fn same_second_changes_follow_the_active_stream() {
        let dir = TempDir::new("ties");
        let mut r = Replica::open(&dir.path().join("r.db")).unwrap();
        r.new_session();
        let ip = [10, 0, 0, 5];
        // ACK, RELEASE and ACK again within one second: §7.6 ties throughout.
        assert!(r
            .apply(
                learned(ip, DhcpState::Active, 100, 100, 100),
                Source::Active
            )
            .is_some());
        assert!(r
            .apply(
                learned(ip, DhcpState::Released, 100, 100, 100),
                Source::Active
            )
            .is_some());
        r.sync().await.unwrap();
        assert_eq!(stored(&r, ip), Some(DhcpState::Released));
        // An exact duplicate is not written or reported again.
        assert!(r
            .apply(
                learned(ip, DhcpState::Released, 100, 100, 100),
                Source::Active
            )
            .is_none());
        // A gap fill's record loses a tie to this session's active query...
        assert!(r
            .apply(learned(ip, DhcpState::Active, 100, 100, 100), Source::Fill)
            .is_none());
        // ...but not to what an earlier session said.
        r.new_session();
        assert!(r
            .apply(learned(ip, DhcpState::Active, 100, 100, 100), Source::Fill)
            .is_some());
        // An older record never wins, whatever its source.
        assert!(r
            .apply(
                learned(ip, DhcpState::Released, 90, 90, 101),
                Source::Active
            )
            .is_none());
        r.sync().await.unwrap();
        assert_eq!(stored(&r, ip), Some(DhcpState::Active));
    }

    #[tokio::test]
    async fn never_leased_addresses_are_not_stored() {
        let dir = TempDir::new("avail");
        let mut r = Replica::open(&dir.path().join("r.db")).unwrap();
        let l = Learned {
            binding: Binding::available(Ipv4Addr::new(10, 0, 0, 9)),
            base_time: 50,
            has_cltt: false,
        };
        assert!(r.apply(l, Source::Bulk).is_none());
        r.sync().await.unwrap();
        assert_eq!(stored(&r, [10, 0, 0, 9]), None);
    }
}
