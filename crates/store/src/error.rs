use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store file {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("corrupt row for {ip}: {reason}")]
    Corrupt { ip: String, reason: String },
    #[error("the store's writer has stopped")]
    WriterGone,
}
