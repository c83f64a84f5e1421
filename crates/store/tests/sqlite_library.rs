#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The SQLite library this build links, as the store sets it up: no memory
//! statistics and one page cache per connection (docs/operations.md, "The
//! SQLite build"). Its own test binary: the first SQLite call of the process
//! must be the store's.

use leaseline_store::{HistoryLimits, SqliteLibrary, SqliteOptions, SqliteStore};

#[test]
fn store_connections_share_no_process_wide_sqlite_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(
        SqliteOptions {
            path: dir.path().join("leases.db"),
            history: HistoryLimits {
                max_age: 60,
                max_count: 100,
            },
            max_batch: 16,
            lease_log: None,
        },
        1_700_000_000,
    )
    .expect("open");
    assert_eq!(
        SqliteLibrary::configure(),
        SqliteLibrary {
            memory_statistics_off: true,
            separate_page_caches: true,
        },
        "docs/operations.md, \"The SQLite build\": memory statistics off at run time, page caches separate at build time (LIBSQLITE3_FLAGS in .cargo/config.toml)"
    );
    // With statistics on, the writer's, checkpointer's and readers'
    // allocations would be counted here.
    // SAFETY: reads a counter; no arguments.
    let counted = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    assert_eq!(counted, 0, "memory statistics are being kept");
    drop(store);
}
