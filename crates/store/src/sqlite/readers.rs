//! A small pool of read connections. WAL lets them read concurrently with the
//! writer; each is checked out by one caller at a time (a Connection is not Sync).

use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::schema;
use crate::StoreError;

/// Idle connections kept for reuse; busier moments open more, then close them.
const MAX_IDLE: usize = 8;

pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> Result<Self, StoreError> {
        // Open one now so a bad path fails at open time, not at first read.
        let first = schema::open_reader(&path)?;
        Ok(ReadPool {
            path,
            idle: Mutex::new(vec![first]),
        })
    }

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let spare = {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
                None
            } else {
                Some(conn)
            }
        };
        drop(spare); // closed outside the lock
        result
    }
}
