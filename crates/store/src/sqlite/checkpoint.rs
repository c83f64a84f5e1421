//! WAL checkpoints off the commit path. The writer connection has SQLite's
//! auto-checkpoint turned off: otherwise every ~1,000 pages a commit also
//! copies the WAL into the database file and fsyncs it, and the DHCPACKs
//! waiting on that commit wait for the copy too. This thread copies instead,
//! PASSIVE (it never blocks the writer or a reader), on a short interval.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use crate::StoreError;

/// How often the WAL is copied back (it grows by at most this much load).
const EVERY: Duration = Duration::from_millis(100);

pub(super) struct Checkpointer {
    /// Dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = schema::open_checkpointer(path)?;
        let (stop, rx) = mpsc::channel::<()>();
        let name: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("leaseline-store-checkpoint".into())
            .spawn(move || run(&conn, &rx, &name))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: format!("spawning the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(conn: &Connection, stop: &mpsc::Receiver<()>, path: &Path) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(path = %path.display(), error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("store checkpoint thread panicked");
            }
        }
    }
}
