//! The writer's memory of each address's latest history entry (see
//! `lease_log`): a change that continues it (a renewal) is recognised
//! without running a statement, and one that opens an entry is inserted
//! without first probing the table. Most changes are renewals, and the
//! writer thread is the server's DORA limit (bench/README.md, "Lease
//! history").
//!
//! It mirrors the table, never leads it: an address is learned from the
//! table the first time the writer sees it, updated with each row the
//! writer inserts, forgotten when the prune deletes one of its rows, and
//! everything is forgotten when a group's transaction fails (its rows were
//! rolled back). One entry per address ever logged since the store opened:
//! bounded by the configured pools.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

/// An address's latest entry: the one with the greatest (start, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Latest {
    pub(super) start: i64,
    pub(super) state: u8,
    pub(super) chaddr: Vec<u8>,
}

/// The latest entry of each address known to the writer; `None`: the
/// address has no entry in the table.
#[derive(Debug, Default)]
pub(super) struct LatestEntries {
    by_ip: HashMap<i64, Option<Latest>>,
}

const PROBE: &str = "SELECT start, state, chaddr FROM lease_history WHERE ip = ?1 \
     ORDER BY start DESC, id DESC LIMIT 1";

impl LatestEntries {
    /// The address's latest entry, read from the table (inside the group's
    /// transaction) the first time.
    pub(super) fn get(
        &mut self,
        tx: &Transaction<'_>,
        ip: i64,
    ) -> rusqlite::Result<Option<&Latest>> {
        let latest = match self.by_ip.entry(ip) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let read = tx
                    .prepare_cached(PROBE)?
                    .query_row(params![ip], |r| {
                        Ok(Latest {
                            start: r.get(0)?,
                            state: r.get(1)?,
                            chaddr: r.get(2)?,
                        })
                    })
                    .optional()?;
                unknown.insert(read)
            }
        };
        Ok(latest.as_ref())
    }

    /// A row was inserted for `ip`: it is the latest unless an entry that
    /// starts later is (ties go to the new row, its id being the greater).
    pub(super) fn inserted(&mut self, ip: i64, row: Latest) {
        let slot = self.by_ip.entry(ip).or_insert(None);
        if slot.as_ref().is_none_or(|l| row.start >= l.start) {
            *slot = Some(row);
        }
    }

    /// A row of `ip` was deleted: read the address again when next seen.
    pub(super) fn forget(&mut self, ip: i64) {
        self.by_ip.remove(&ip);
    }

    /// The group's transaction failed: what it inserted is gone.
    pub(super) fn forget_all(&mut self) {
        self.by_ip.clear();
    }
}
