//! WAL checkpoints, and keeping the WAL file bounded.
//!
//! The writer connection has SQLite's auto-checkpoint turned off: otherwise
//! every ~1,000 pages a commit also copies the WAL into the database file
//! and fsyncs it, and the DHCPACKs waiting on that commit wait for the copy
//! too. This thread copies instead, PASSIVE (it never blocks the writer or a
//! reader), on a short interval.
//!
//! A PASSIVE checkpoint alone never lets the WAL shrink under steady load.
//! SQLite writes the WAL again from its start only when a write transaction
//! begins with every frame already copied back and no reader still in the
//! log; this thread copies up to where the log ended when it started, and
//! the writer has appended more by the time it finishes. So the file grew by
//! every commit, without bound (tens of GB in minutes at a few thousand
//! DORA/s). Once the log holds [`RESTART_FRAMES`], this thread asks the
//! writer ([`WalRestart`]) to copy the few frames left *itself*, between two
//! batches: the writer is the only one appending, so that checkpoint
//! completes, and its next transaction starts the log again from the
//! beginning. `journal_size_limit` (schema.rs) then truncates a file that a
//! pinned reader let grow past [`JOURNAL_SIZE_LIMIT`].
//!
//! Durability is SQLite's: a checkpoint fsyncs the database file before the
//! log it copied can be overwritten, and every commit is still fsync'd to
//! the WAL before its ACK leaves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use crate::StoreError;

/// How often the WAL is copied back (it grows by at most this much load).
const EVERY: Duration = Duration::from_millis(100);

/// Frames in the log at which the writer is asked to restart it: 16 MiB of
/// the default 4 KiB pages. Smaller means more frequent restarts (each
/// fsyncs the database file on the writer's thread, a few ms at most since
/// this thread has already copied all but the last pass's frames).
pub(super) const RESTART_FRAMES: i64 = 4096;

/// `PRAGMA journal_size_limit`: the WAL file is truncated to this size when
/// it restarts. The documented bound on the WAL's size under load.
pub(super) const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

/// Set by the checkpoint thread when the log is long; taken by the writer.
#[derive(Clone, Default)]
pub(super) struct WalRestart(Arc<AtomicBool>);

impl WalRestart {
    fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Called by the writer between batches: one atomic swap when nothing
    /// is due. When due, copies the rest of the log on the writer's own
    /// connection so that its next transaction writes the log from its start.
    pub(super) fn run_if_due(&self, conn: &Connection) {
        if !self.0.swap(false, Ordering::Acquire) {
            return;
        }
        match checkpoint_passive(conn) {
            // A reader still in an old snapshot, or this thread's own pass
            // under way: the next pass asks again.
            Ok(p) if p.copied < p.log => {
                tracing::debug!(log = p.log, copied = p.copied, "WAL restart deferred")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint before restart failed"),
        }
    }
}

/// What `PRAGMA wal_checkpoint` reports: frames in the log, and copied back.
struct Pass {
    log: i64,
    copied: i64,
}

fn checkpoint_passive(conn: &Connection) -> rusqlite::Result<Pass> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Pass {
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

pub(super) struct Checkpointer {
    /// Dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, restart: WalRestart) -> Result<Checkpointer, StoreError> {
        let conn = schema::open_checkpointer(path)?;
        let (stop, rx) = mpsc::channel::<()>();
        let name: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("leaseline-store-checkpoint".into())
            .spawn(move || run(&conn, &rx, &name, &restart))
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

fn run(conn: &Connection, stop: &mpsc::Receiver<()>, path: &Path, restart: &WalRestart) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(EVERY) {
        match checkpoint_passive(conn) {
            Ok(p) if p.log >= RESTART_FRAMES => restart.request(),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "WAL checkpoint failed; retrying")
            }
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
