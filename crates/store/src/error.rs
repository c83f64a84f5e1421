use std::net::Ipv4Addr;

use leaseline_proto::Binding;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store file {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("corrupt row for {ip}: {reason}")]
    Corrupt { ip: String, reason: String },
    #[error("postgresql: {0}")]
    Postgres(String),
    /// Opening a PostgreSQL store failed; `target` never holds the password.
    #[error("postgresql store {target}: {reason}")]
    PgOpen { target: String, reason: String },
    #[error("the store's writer has stopped")]
    WriterGone,
    /// A bulk import stopped before its commit (its input failed): the
    /// transaction was rolled back.
    #[error("import abandoned, nothing written: {0}")]
    ImportAbandoned(String),
    /// A lease history query on a store that keeps none (`[history]`).
    #[error("the lease history is off ([history] enabled = false)")]
    HistoryOff,
    /// A change decided from a stale copy of the bindings: another server
    /// changed the row first (see `leaseline_proto::overwrite`). The first
    /// refused change of a submission is named; refused changes are not
    /// stored, the submission's other changes are.
    /// `stored`: what the store holds for every refused change's address
    /// (None: nothing), for the submitter's copy to follow.
    #[error("{ip}: refused by the shared store: {reason}")]
    Refused {
        ip: Ipv4Addr,
        reason: &'static str,
        stored: Vec<(Ipv4Addr, Option<Binding>)>,
    },
}

impl StoreError {
    /// A copy of this error for each ticket of a failed group commit
    /// (rusqlite's error is not Clone; the code and message are kept).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
            }
            StoreError::Sqlite(other) => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(other.to_string()),
            )),
            StoreError::Open { path, reason } => StoreError::Open {
                path: path.clone(),
                reason: reason.clone(),
            },
            StoreError::Corrupt { ip, reason } => StoreError::Corrupt {
                ip: ip.clone(),
                reason: reason.clone(),
            },
            StoreError::Postgres(m) => StoreError::Postgres(m.clone()),
            StoreError::PgOpen { target, reason } => StoreError::PgOpen {
                target: target.clone(),
                reason: reason.clone(),
            },
            StoreError::WriterGone => StoreError::WriterGone,
            StoreError::ImportAbandoned(m) => StoreError::ImportAbandoned(m.clone()),
            StoreError::HistoryOff => StoreError::HistoryOff,
            StoreError::Refused { ip, reason, stored } => StoreError::Refused {
                ip: *ip,
                reason,
                stored: stored.clone(),
            },
        }
    }
}
