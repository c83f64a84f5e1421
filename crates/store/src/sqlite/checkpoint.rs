//! WAL checkpoints, and keeping the WAL file bounded.
//!
//! A checkpoint inside a commit delays the DHCPACKs waiting on that commit:
//! it copies the WAL into the database file and fsyncs it. So this thread
//! copies instead, PASSIVE (it never blocks the writer or a reader), on a
//! short interval, and the writer's own auto-checkpoint only fires when the
//! log is long (below).
//!
//! A PASSIVE checkpoint alone never lets the WAL shrink under steady load.
//! SQLite writes the WAL again from its start only when a write transaction
//! begins with every frame already copied back and no reader still in the
//! log; this thread copies up to where the log ended when it started, and
//! the writer has appended more by the time it finishes. So the file grew by
//! every commit, without bound (tens of GB in minutes at a few thousand
//! DORA/s). The writer therefore keeps SQLite's auto-checkpoint, at
//! [`RESTART_FRAMES`] (schema.rs): the commit that takes the log past it
//! copies back, on the writer's connection, the frames this thread has not
//! copied yet (the last pass's worth: a few ms). The writer is the only one
//! appending, so that checkpoint completes, and its next transaction writes
//! the log from its start. If this thread's pass holds the checkpoint lock
//! at that moment, the writer's attempt returns at once and the next commit
//! tries again. `journal_size_limit` then truncates a file that a pinned
//! reader let grow past [`JOURNAL_SIZE_LIMIT`].
//!
//! Durability is SQLite's: a checkpoint fsyncs the database file before the
//! log it copied can be overwritten, and every commit is still fsync'd to
//! the WAL before its ACK leaves.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use crate::StoreError;

/// How often the WAL is copied back (it grows by at most this much load).
const EVERY: Duration = Duration::from_millis(100);

/// Frames in the log at which the writer checkpoints and so restarts it:
/// 16 MiB of the default 4 KiB pages. Smaller means more frequent restarts
/// (each fsyncs the database file inside a commit, a few ms since this
/// thread has already copied all but the last pass's frames).
pub(super) const RESTART_FRAMES: i64 = 4096;

/// `PRAGMA journal_size_limit`: the WAL file is truncated to this size when
/// it restarts. The documented bound on the WAL's size under load.
pub(super) const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

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
            tracing::warn!(path = %path.display(), error = %e, event = "wal_checkpoint_failed", "WAL checkpoint failed; retrying");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(
                    event = "store_checkpoint_panicked",
                    "store checkpoint thread panicked"
                );
            }
        }
    }
}
