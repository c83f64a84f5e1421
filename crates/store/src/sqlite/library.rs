//! The SQLite library's process-wide settings, made before the first
//! connection opens (docs/operations.md, "The SQLite build").
//!
//! rusqlite's bundled SQLite is compiled with
//! `SQLITE_ENABLE_MEMORY_MANAGEMENT` and with memory statistics on. Both put
//! every connection of the process behind process-wide mutexes: the store's
//! writer (the DHCP path) then waits on Active Leasequery's reader
//! connections, which run at a lower priority and can be preempted holding
//! them (docs/active-leasequery.md, "DHCP first").
//!
//! - Memory statistics are turned off here, at run time
//!   (`SQLITE_CONFIG_MEMSTATUS`), however the binary was built.
//! - The shared page cache has no run-time switch: with
//!   `SQLITE_ENABLE_MEMORY_MANAGEMENT` compiled in, `pcache1Init` always
//!   uses one page cache group for all connections (sqlite3.c 3.50,
//!   `pcache1.separateCache = 0`); only replacing the whole page cache
//!   (`SQLITE_CONFIG_PCACHE2`) would avoid it. The workspace's
//!   `.cargo/config.toml` builds SQLite without it
//!   (`LIBSQLITE3_FLAGS = "-USQLITE_ENABLE_MEMORY_MANAGEMENT"`); a build
//!   that lost the setting (`cargo install` from git or crates.io does not
//!   read it) is named in a warning when the store opens.

use std::ffi::{c_int, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// What the SQLite library of this process runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteLibrary {
    /// No process-wide memory statistics (and their mutex) on each allocation.
    pub memory_statistics_off: bool,
    /// Each connection has its own page cache (no process-wide cache mutex).
    pub separate_page_caches: bool,
}

impl SqliteLibrary {
    /// Configure the library, once per process, before any connection of
    /// the store opens; the settings in effect.
    pub fn configure() -> SqliteLibrary {
        static SETTINGS: OnceLock<SqliteLibrary> = OnceLock::new();
        *SETTINGS.get_or_init(|| {
            // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config
            // must run before sqlite3_initialize and while no other thread
            // uses SQLite: this runs once, before the store's first
            // connection. Were SQLite already initialized (a connection
            // opened elsewhere first), it returns SQLITE_MISUSE and changes
            // nothing, which the check below reports.
            let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
            let settings = SqliteLibrary {
                memory_statistics_off: rc == ffi::SQLITE_OK
                    || compiled_with(c"DEFAULT_MEMSTATUS=0"),
                separate_page_caches: !compiled_with(c"ENABLE_MEMORY_MANAGEMENT"),
            };
            if !settings.separate_page_caches {
                tracing::warn!(
                    event = "sqlite_shared_page_cache",
                    "this binary's SQLite shares one page cache between all connections: \
                     the DHCP writer can wait on leasequery readers; build with \
                     LIBSQLITE3_FLAGS=\"-USQLITE_ENABLE_MEMORY_MANAGEMENT\" (docs/operations.md)"
                );
            }
            if !settings.memory_statistics_off {
                tracing::warn!(
                    event = "sqlite_memory_statistics_on",
                    rc,
                    "SQLite was initialized before the store could turn its memory statistics off"
                );
            }
            settings
        })
    }
}

/// Whether SQLite was compiled with `option` (as `PRAGMA compile_options`
/// names it, without the `SQLITE_` prefix).
fn compiled_with(option: &CStr) -> bool {
    // SAFETY: a NUL-terminated string that outlives the call.
    unsafe { ffi::sqlite3_compileoption_used(option.as_ptr()) != 0 }
}
