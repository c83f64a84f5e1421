#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! SqliteStore: the shared battery plus SQLite-specific behaviour.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use leaseline_store::battery::{run_all, sample};
use leaseline_store::{
    Binding, DhcpState, HistoryKey, HistoryLimits, HistoryQuery, LeaseLogLimits, LeaseStore,
    SqliteOptions, SqliteStore, StoreError,
};

const T0: u32 = 1_700_000_000;

fn opts(path: &Path) -> SqliteOptions {
    SqliteOptions {
        path: path.to_path_buf(),
        history: HistoryLimits {
            max_age: 86_400,
            max_count: 100_000,
        },
        max_batch: 512,
        lease_log: Some(leaseline_store::LeaseLogLimits::DEFAULT),
    }
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(opts(path), T0).expect("open")
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("leases.db")
}

/// A store in `dir` whose lease history keeps 100 s (1,000 entries at most).
fn keeping_100_s(dir: &tempfile::TempDir) -> SqliteOptions {
    let mut o = opts(&db_in(dir));
    o.lease_log = Some(LeaseLogLimits {
        keep_secs: 100,
        max_rows: 1_000,
    });
    o
}

#[test]
fn battery() {
    let base = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    run_all(|| {
        let path = base
            .path()
            .join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
        open(&path)
    });
}

/// At shutdown the last handle to the store can be the one a commit
/// callback holds (the server's DHCP path keeps the store in its callbacks):
/// it is then dropped on the writer thread, which cannot join itself. The
/// store closes cleanly anyway, and what was queued is committed.
#[test]
fn last_handle_dropped_by_a_commit_callback_closes_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = std::sync::Arc::new(open(&path));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let held = std::sync::Arc::clone(&store);
    store.submit_then(
        vec![sample(1, T0)],
        T0,
        Box::new(move |r| {
            // Wait for the test to drop its handle: `held` is then the last.
            while std::sync::Arc::strong_count(&held) > 1 {
                std::thread::yield_now();
            }
            drop(held);
            let _ = done_tx.send(r.is_ok());
        }),
    );
    drop(store);
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "the callback ran to its end (no panic dropping the store)"
    );
    // The writer thread has exited and released the database.
    let store = open(&path);
    assert_eq!(
        store.get(sample(1, T0).ip).expect("get"),
        Some(sample(1, T0))
    );
}

#[test]
fn reopen_keeps_data_and_drop_drains_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = open(&path);
    let tickets: Vec<_> = (0..200)
        .map(|n| store.submit(vec![sample(n, T0)], T0))
        .collect();
    drop(store); // must commit everything already queued, then join the writer
    for t in tickets {
        t.blocking_recv().expect("resolved").expect("committed");
    }
    let store = open(&path);
    assert_eq!(store.load_all().expect("load_all").len(), 200);
    assert_eq!(
        store.get(sample(7, T0).ip).expect("get"),
        Some(sample(7, T0))
    );
    // The reopened store's history is rebuilt from the rows: a requestor
    // resuming from the first run catches up on all 200 (RFC 7724 §7.4.1).
    assert_eq!(
        store.feed().horizon(),
        T0,
        "recorded since the store was created"
    );
    let caught_up = store
        .feed()
        .changed_since(T0, T0)
        .expect("inside the history");
    assert_eq!(caught_up.len(), 200);

    let raw = rusqlite::Connection::open(&path).expect("raw");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(version, 4);
}

#[test]
fn restart_history_covers_recent_changes_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = open(&path);
    let old = sample(1, T0);
    let recent = sample(2, T0 + 100_000);
    store
        .submit(vec![old], T0)
        .blocking_recv()
        .unwrap()
        .unwrap();
    store
        .submit(vec![recent.clone()], T0 + 100_000)
        .blocking_recv()
        .unwrap()
        .unwrap();
    drop(store);
    // Reopened a day and a bit later: only the last max_age (86,400 s) is kept.
    let now = T0 + 100_100;
    let store = SqliteStore::open(opts(&path), now).expect("reopen");
    assert_eq!(store.feed().horizon(), now - 86_400);
    assert_eq!(
        store.feed().changed_since(now - 86_400, now),
        Some(vec![recent.ip])
    );
    assert_eq!(store.feed().changed_since(now - 86_401, now), None);
    // Recorded no earlier than it was published: a requestor that resumes
    // from a base-time a little after the change still gets it.
    assert_eq!(
        store.feed().changed_since(T0 + 100_030, now),
        Some(vec![recent.ip])
    );
}

#[test]
fn upgrade_from_schema_1_vouches_for_history_from_the_upgrade_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    {
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute_batch(
            "CREATE TABLE bindings (ip INTEGER PRIMARY KEY, state INTEGER NOT NULL,
                htype INTEGER NOT NULL, chaddr BLOB NOT NULL, client_id BLOB,
                expiry INTEGER NOT NULL, cltt INTEGER NOT NULL,
                state_since INTEGER NOT NULL, data_source INTEGER NOT NULL,
                relay_info BLOB, circuit_id BLOB, remote_id BLOB, relay_id BLOB,
                vendor_class_id BLOB, hostname BLOB, lease_time INTEGER NOT NULL);
             INSERT INTO bindings VALUES (167772161, 2, 1, x'020000000001', NULL,
                1700003600, 1700000000, 1700000000, 0, NULL, NULL, NULL, NULL,
                NULL, NULL, 3600);
             PRAGMA user_version = 1;",
        )
        .expect("schema 1");
    }
    let store = open(&path);
    assert_eq!(store.load_all().expect("load_all").len(), 1, "rows kept");
    assert_eq!(
        store.feed().horizon(),
        T0,
        "nothing vouched for before the upgrade"
    );
    assert_eq!(store.feed().changed_since(T0, T0), Some(vec![]));
    assert_eq!(store.feed().changed_since(T0 - 1, T0), None);
}

/// A schema 2 file (no stored T1 / T2) opens as schema 3 with its rows
/// readable: lease and times as they were, T1 / T2 unknown (the grant was
/// not kept, and lease/2, 7/8 would be a guess), and a new grant then
/// stores and reads back.
#[test]
fn upgrade_from_schema_2_keeps_rows_with_the_grant_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    {
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute_batch(
            "CREATE TABLE bindings (ip INTEGER PRIMARY KEY, state INTEGER NOT NULL,
                htype INTEGER NOT NULL, chaddr BLOB NOT NULL, client_id BLOB,
                expiry INTEGER NOT NULL, cltt INTEGER NOT NULL,
                state_since INTEGER NOT NULL, data_source INTEGER NOT NULL,
                relay_info BLOB, circuit_id BLOB, remote_id BLOB, relay_id BLOB,
                vendor_class_id BLOB, hostname BLOB, lease_time INTEGER NOT NULL,
                changed_at INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta VALUES ('history_since', 1699999000);
             INSERT INTO bindings VALUES (167772161, 2, 1, x'020000000001', NULL,
                1700003600, 1700000000, 1700000000, 0, NULL, NULL, NULL, NULL,
                NULL, NULL, 3600, 1700000000);
             PRAGMA user_version = 2;",
        )
        .expect("schema 2");
    }
    let store = open(&path);
    let old = store
        .get(Ipv4Addr::new(10, 0, 0, 1))
        .expect("get")
        .expect("row kept");
    assert_eq!(
        (old.expiry, old.cltt, old.lease_time),
        (1_700_003_600, 1_700_000_000, 3600)
    );
    assert_eq!((old.renew_time, old.rebind_time), (None, None));
    assert_eq!(old.remaining_lease(1_700_000_100), Some(3500));
    assert_eq!(old.remaining_t1(1_700_000_100), None);
    assert_eq!(old.remaining_t2(1_700_000_100), None);
    assert_eq!(
        store.feed().horizon(),
        1_699_999_000,
        "history kept from schema 2"
    );

    let mut renewed = old.clone();
    renewed.renew_time = Some(1000);
    renewed.rebind_time = Some(3000);
    store
        .submit(vec![renewed.clone()], T0)
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert_eq!(store.get(renewed.ip).expect("get"), Some(renewed));
    drop(store);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(version, 4);
}

#[test]
fn failed_commit_fails_every_ticket_of_its_batch_and_publishes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = open(&path);
    let sub = store.feed().subscribe();
    let bad = Binding::available(Ipv4Addr::new(0, 0, 0, 42));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON bindings WHEN NEW.ip = 42
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .expect("trigger");

    // Hold the write lock so the writer is stuck on request A while B, C, D
    // queue up behind it; they then form one batch, which C makes fail.
    raw.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let a = store.submit(vec![sample(1, T0)], T0);
    std::thread::sleep(Duration::from_millis(300));
    let b = store.submit(vec![sample(2, T0)], T0);
    let c = store.submit(vec![sample(3, T0), bad.clone()], T0);
    let d = store.submit(vec![sample(4, T0)], T0);
    raw.execute_batch("COMMIT").expect("unlock");

    assert_eq!(a.blocking_recv().expect("a").expect("a commits"), 1);
    for t in [b, c, d] {
        match t.blocking_recv().expect("resolved") {
            Err(StoreError::Sqlite(e)) => assert!(e.to_string().contains("boom"), "{e}"),
            other => panic!("expected the batch's error, got {other:?}"),
        }
    }
    for n in [2, 3, 4] {
        assert_eq!(store.get(sample(n, T0).ip).expect("get"), None);
    }
    assert_eq!(store.feed().last_seq(), 1);
    assert_eq!(sub.pending(), 1);

    // The writer carries on after a failed batch.
    let e = store.submit(vec![sample(2, T0)], T0);
    assert_eq!(e.blocking_recv().expect("e").expect("e commits"), 2);
}

#[test]
fn undecodable_rows_are_corrupt_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = open(&path);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let insert = |ip: &str, state: &str, chaddr: &str| {
        raw.execute_batch(&format!(
            "INSERT INTO bindings (ip, state, htype, chaddr, expiry, cltt, state_since,
                 data_source, lease_time) VALUES ({ip}, {state}, 1, {chaddr}, 0, 0, 0, 0, 0)"
        ))
        .expect("insert");
    };
    insert("1", "99", "x'00'"); // unknown state
    insert("2", "2", "'text'"); // chaddr not a blob
    let corrupt = |r: Result<Option<Binding>, StoreError>| {
        assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{r:?}");
    };
    corrupt(store.get(Ipv4Addr::from(1)));
    corrupt(store.get(Ipv4Addr::from(2)));
    raw.execute_batch("DELETE FROM bindings").expect("delete");
    insert("-1", "2", "x''"); // not an IPv4 address
    assert!(matches!(store.load_all(), Err(StoreError::Corrupt { .. })));
    raw.execute_batch("DELETE FROM bindings").expect("delete");
    insert("4", "2", "x''");
    raw.execute_batch("UPDATE bindings SET expiry = 4294967296")
        .expect("update"); // > u32
    corrupt(store.get(Ipv4Addr::from(4)));
    raw.execute_batch("UPDATE bindings SET expiry = 'soon'")
        .expect("update");
    corrupt(store.get(Ipv4Addr::from(4)));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    drop(open(&path));
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch("PRAGMA user_version = 99").expect("bump");
    drop(raw);
    assert!(matches!(
        SqliteStore::open(opts(&path), T0),
        Err(StoreError::Open { .. })
    ));
}

#[test]
fn bad_path_is_an_open_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("leases.db");
    assert!(matches!(
        SqliteStore::open(opts(&path), T0),
        Err(StoreError::Open { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn submit_from_a_runtime_does_not_block_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&db_in(&dir));
    let tickets: Vec<_> = (0..50)
        .map(|n| store.submit(vec![sample(n, T0)], T0))
        .collect();
    let mut last = 0;
    for t in tickets {
        let seq = t.await.expect("resolved").expect("committed");
        assert!(seq > last);
        last = seq;
    }
    assert_eq!(last, 50);
}

/// Not an assertion on speed: shows what group commit buys on this disk.
#[test]
fn group_commit_throughput_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&db_in(&dir));
    let sequential = Instant::now();
    for n in 0..100 {
        store
            .submit(vec![sample(n, T0)], T0)
            .blocking_recv()
            .expect("resolved")
            .expect("committed");
    }
    let sequential = sequential.elapsed();
    const THREADS: u32 = 32;
    const PER: u32 = 50;
    let grouped = Instant::now();
    std::thread::scope(|s| {
        for th in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..PER {
                    store
                        .submit(vec![sample(1000 + th * PER + i, T0)], T0)
                        .blocking_recv()
                        .expect("resolved")
                        .expect("committed");
                }
            });
        }
    });
    let grouped = grouped.elapsed();
    eprintln!(
        "sequential: {:.0} commits/s; {THREADS} submitters: {:.0} commits/s",
        100.0 / sequential.as_secs_f64(),
        f64::from(THREADS * PER) / grouped.as_secs_f64()
    );
}

#[test]
fn the_wal_is_copied_back_while_the_store_runs() {
    // The writer never checkpoints (no copy and fsync of the database file
    // inside a commit); the checkpoint thread copies the WAL back instead.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let store = open(&path);
    let initial = std::fs::metadata(&path).expect("db file").len();
    for chunk in 0..40u32 {
        let batch: Vec<Binding> = (0..100).map(|n| sample(chunk * 100 + n, T0)).collect();
        store.submit(batch, T0).blocking_recv().unwrap().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let len = std::fs::metadata(&path).expect("db file").len();
        if len > initial + 100_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database file still {len} bytes (was {initial}): the WAL is not being checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(store.load_all().expect("load_all").len(), 4000);
}

/// Bytes this process has handed to write(2) and friends so far.
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

/// Issue 16 item 0: under sustained writes (a commit always following the
/// last, readers reading throughout) the WAL used to grow by every commit,
/// because a passive checkpoint never caught up with the writer and nothing
/// restarted the log. It must stay within the documented bound however much
/// is written.
#[test]
fn the_wal_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let store = open(&path);
    let written_before = bytes_written();
    // Enough churn for the log to pass its bound several times over.
    let target = 6 * leaseline_store::WAL_SIZE_BOUND;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut largest = 0u64;
    let mut commits = 0u32;
    std::thread::scope(|s| {
        // Active Leasequery sessions read catch-up chunks all along.
        s.spawn(|| {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                let ips: Vec<Ipv4Addr> = (0..64)
                    .map(|i| sample((n + i * 997) % 60_000, T0).ip)
                    .collect();
                store.get_many(&ips).expect("get_many");
                n = n.wrapping_add(7919);
            }
        });
        // Two batches in flight, so the writer never idles between commits.
        let mut in_flight = std::collections::VecDeque::new();
        let mut x = 1u32;
        while bytes_written() - written_before < target {
            let batch: Vec<Binding> = (0..16)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    sample((x >> 8) % 60_000, T0 + commits)
                })
                .collect();
            in_flight.push_back(store.submit(batch, T0 + commits));
            commits += 1;
            if in_flight.len() > 2 {
                let t = in_flight.pop_front().expect("in flight");
                t.blocking_recv().expect("resolved").expect("committed");
                let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                largest = largest.max(len);
            }
        }
        for t in in_flight {
            t.blocking_recv().expect("resolved").expect("committed");
        }
        done.store(true, Ordering::Relaxed);
    });
    let written = bytes_written() - written_before;
    eprintln!("{commits} commits, {written} bytes written, largest WAL {largest} bytes");
    assert!(
        largest <= leaseline_store::WAL_SIZE_BOUND,
        "the WAL reached {largest} bytes after {commits} commits ({written} bytes written); \
         its bound is {}",
        leaseline_store::WAL_SIZE_BOUND
    );
}

fn history_of(store: &SqliteStore, ip: Ipv4Addr) -> Vec<(DhcpState, u32, Option<u32>)> {
    store
        .history(&HistoryQuery::all(HistoryKey::Ip(ip), 1000))
        .expect("history")
        .entries
        .iter()
        .map(|e| (e.state, e.start, e.end))
        .collect()
}

fn changed(n: u32, state: DhcpState, since: u32) -> Binding {
    let mut b = sample(n, since);
    b.state = state;
    b.state_since = since;
    b
}

/// Retention: a commit prunes the entries logged longer ago than the keep
/// (by the commits' own clock), and the oldest beyond the size cap; what is
/// younger stays, and the history survives a reopen.
#[test]
fn lease_history_prunes_by_age_and_size_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = keeping_100_s(&dir);
    let store = SqliteStore::open(o.clone(), T0).expect("open");
    let a = sample(1, T0).ip;
    commit_at(&store, vec![changed(1, DhcpState::Active, T0)], T0);
    commit_at(
        &store,
        vec![changed(1, DhcpState::Released, T0 + 50)],
        T0 + 50,
    );
    commit_at(
        &store,
        vec![changed(1, DhcpState::Active, T0 + 120)],
        T0 + 120,
    );
    // At T0 + 120 the entry logged at T0 is older than the keep; T0 + 50's is not.
    assert_eq!(
        history_of(&store, a),
        vec![
            (DhcpState::Released, T0 + 50, Some(T0 + 120)),
            (DhcpState::Active, T0 + 120, None),
        ]
    );
    drop(store);
    let store = SqliteStore::open(o.clone(), T0 + 121).expect("reopen");
    assert_eq!(history_of(&store, a).len(), 2, "kept across a reopen");
    commit_at(&store, vec![sample(2, T0 + 151)], T0 + 151);
    assert_eq!(
        history_of(&store, a),
        vec![(DhcpState::Active, T0 + 120, None)],
        "T0 + 50 is older than the keep at T0 + 151"
    );
    drop(store);

    // The size cap: the oldest go first.
    o.lease_log = Some(LeaseLogLimits {
        keep_secs: 1_000_000,
        max_rows: 10,
    });
    let store = SqliteStore::open(o, T0 + 200).expect("reopen");
    for n in 0..30u32 {
        commit_at(
            &store,
            vec![changed(1, DhcpState::Active, T0 + 200 + n)],
            T0 + 200 + n,
        );
    }
    let kept = history_of(&store, a);
    assert_eq!(kept.len(), 10, "{kept:?}");
    assert_eq!(kept[0].1, T0 + 220);
    assert_eq!(kept[9], (DhcpState::Active, T0 + 229, None));
}

/// A renewal continues its address's entry, also after a reopen (the
/// writer reads the latest entry back from the table); once the prune has
/// taken that entry, the next renewal logs the lease again.
#[test]
fn lease_history_renewals_continue_the_entry_until_it_is_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = keeping_100_s(&dir);
    let store = SqliteStore::open(o.clone(), T0).expect("open");
    let a = sample(1, T0).ip;
    let lease = changed(1, DhcpState::Active, T0);
    commit_at(&store, vec![lease.clone()], T0);
    commit_at(&store, vec![lease.clone()], T0 + 10);
    assert_eq!(history_of(&store, a), vec![(DhcpState::Active, T0, None)]);
    drop(store);
    let store = SqliteStore::open(o, T0 + 20).expect("reopen");
    commit_at(&store, vec![lease.clone()], T0 + 20);
    assert_eq!(
        history_of(&store, a),
        vec![(DhcpState::Active, T0, None)],
        "a renewal after a reopen continues the entry"
    );
    // At T0 + 150 the entry (logged at T0) is older than the keep: this
    // renewal continues it, then the commit's prune takes it.
    commit_at(&store, vec![lease.clone()], T0 + 150);
    assert_eq!(history_of(&store, a), vec![]);
    commit_at(&store, vec![lease], T0 + 160);
    assert_eq!(
        history_of(&store, a),
        vec![(DhcpState::Active, T0, None)],
        "the lease is logged again once its entry was pruned"
    );
}

#[test]
fn lease_history_off_answers_history_off_and_logs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_in(&dir);
    let mut o = opts(&path);
    o.lease_log = None;
    let store = SqliteStore::open(o, T0).expect("open");
    commit_at(&store, vec![sample(1, T0)], T0);
    let q = HistoryQuery::all(HistoryKey::Ip(sample(1, T0).ip), 10);
    assert!(matches!(store.history(&q), Err(StoreError::HistoryOff)));
    drop(store);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let rows: i64 = raw
        .query_row("SELECT count(*) FROM lease_history", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 0);
}

fn commit_at(store: &SqliteStore, bindings: Vec<Binding>, now: u32) {
    store
        .submit(bindings, now)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
}
