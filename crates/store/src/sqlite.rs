//! Embedded default store: SQLite in WAL mode, one writer thread doing group
//! commit, fsync on every commit (synchronous=FULL).

use std::path::PathBuf;

use crate::HistoryLimits;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    pub history: HistoryLimits,
    /// Most changes grouped into one transaction.
    pub max_batch: usize,
}

pub struct SqliteStore {
    _todo: (),
}

impl SqliteStore {
    /// Open (creating if needed) the store; `now` starts the feed's history.
    pub fn open(_opts: SqliteOptions, _now: u32) -> Result<Self, crate::StoreError> {
        todo!()
    }
}
