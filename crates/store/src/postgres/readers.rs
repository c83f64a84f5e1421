//! Reader threads, each owning one connection. A read is sent to them and
//! its caller waits for the answer: the sync `postgres` client runs its own
//! tokio runtime, which must not be entered from a caller that is itself on
//! a runtime thread (the server's tasks), so no caller touches a client.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::Arc;

use parking_lot::Mutex;
use postgres::Client;

use super::connect::Database;
use super::schema;
use crate::StoreError;

type Job = Box<dyn FnOnce(&mut Reader) + Send>;

/// One reader thread's connection.
pub(super) struct Reader {
    client: Client,
    db: Arc<Database>,
    /// This instance's name (rows others changed read as REMOTE).
    me: Arc<str>,
}

impl Reader {
    /// Run `f`; if it failed because the connection broke (the database
    /// restarted, or the connection was ended), reconnect and run it once
    /// more. A read changes nothing, so running it again is safe.
    fn run<T>(
        &mut self,
        f: &dyn Fn(&mut Client, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let me = Arc::clone(&self.me);
        let first = f(&mut self.client, &me);
        if first.is_ok() || !self.client.is_closed() {
            return first;
        }
        match self.db.connect() {
            Ok(c) => {
                self.client = c;
                f(&mut self.client, &me)
            }
            Err(e) => {
                tracing::warn!(error = %e, event = "store_reader_reconnect_failed", "store reader cannot reconnect");
                first
            }
        }
    }
}

pub(super) struct ReadPool {
    jobs: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ReadPool {
    /// `n` connections, opened now so a bad database fails `open`.
    pub(super) fn new(db: &Arc<Database>, n: usize, me: &str) -> Result<Self, StoreError> {
        let me: Arc<str> = Arc::from(me);
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let client = db.connect()?;
            let rx = rx.clone();
            let reader_db = Arc::clone(db);
            let me = Arc::clone(&me);
            let t = std::thread::Builder::new()
                .name(format!("leaseline-pg-reader-{i}"))
                .spawn(move || {
                    serve(
                        Reader {
                            client,
                            db: reader_db,
                            me,
                        },
                        &rx,
                    )
                })
                .map_err(|e| {
                    schema::open_error(&db.target, format!("spawning a reader thread: {e}"))
                })?;
            threads.push(t);
        }
        Ok(ReadPool {
            jobs: Some(tx),
            threads,
        })
    }

    pub(super) fn with<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |r| {
            let _ = tx.send(r.run(&f));
        });
        match &self.jobs {
            Some(jobs) if jobs.send(job).is_ok() => {}
            _ => {
                return Err(StoreError::Postgres(
                    "the store's readers have stopped".into(),
                ))
            }
        }
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Postgres("a store reader stopped".into())))
    }
}

fn serve(mut reader: Reader, rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job(&mut reader);
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
