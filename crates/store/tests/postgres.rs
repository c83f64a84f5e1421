#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! PostgresStore: the shared battery plus PostgreSQL-specific behaviour, on
//! test-support's throwaway cluster (or `LEASELINE_TEST_PG_URL`).

use leaseline_store::battery::{run_all, sample};
use leaseline_store::{
    HistoryKey, HistoryLimits, HistoryQuery, LeaseStore, PostgresOptions, PostgresStore,
    PG_SCHEMA_VERSION,
};
use leaseline_test_support::pg_database;

mod pg_common;
use pg_common::commit_by_hand;

const T0: u32 = 1_700_000_000;

fn opts(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_owned(),
        history: HistoryLimits {
            max_age: 86_400,
            max_count: 100_000,
        },
        max_batch: 512,
        instance_id: "test-a".into(),
        readers: 2,
        lease_log: Some(leaseline_store::LeaseLogLimits::DEFAULT),
    }
}

fn open(url: &str) -> PostgresStore {
    PostgresStore::open(opts(url), T0).expect("open")
}

fn open_err(url: &str) -> String {
    match PostgresStore::open(opts(url), T0) {
        Ok(_) => panic!("open of {url} succeeded"),
        Err(e) => e.to_string(),
    }
}

fn commit(store: &PostgresStore, n: u32, now: u32) {
    commit_binding(store, sample(n, now), now);
}

fn commit_binding(store: &PostgresStore, b: leaseline_store::Binding, now: u32) {
    store
        .submit(vec![b], now)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
}

#[test]
fn battery() {
    run_all(|| open(&pg_database().url));
}

#[test]
fn every_commit_is_in_the_change_log_in_order() {
    let db = pg_database();
    let store = open(&db.url);
    for n in 1..=5 {
        commit(&store, n, T0 + n);
    }
    commit(&store, 2, T0 + 10);
    let log = store.changes_after(0, 100).expect("changes_after");
    let ips: Vec<_> = log.iter().map(|c| c.binding.ip).collect();
    let want: Vec<_> = [1, 2, 3, 4, 5, 2]
        .iter()
        .map(|&n| sample(n, 0).ip)
        .collect();
    assert_eq!(ips, want);
    assert!(log.windows(2).all(|w| w[0].id < w[1].id));
    assert!(log.iter().all(|c| c.instance_id == "test-a"));
    assert_eq!(log[5].changed_at, T0 + 10);
    assert_eq!(log[5].binding, sample(2, T0 + 10));
    // Paging by id.
    let rest = store.changes_after(log[2].id, 2).expect("changes_after");
    assert_eq!(rest, log[3..5].to_vec());
}

#[test]
fn change_log_is_pruned_by_count_and_age() {
    let db = pg_database();
    let store = open(&db.url);
    for n in 1..=10 {
        commit(&store, n, T0 + n);
    }
    let limits = HistoryLimits {
        max_age: 1_000_000,
        max_count: 4,
    };
    assert_eq!(store.prune_changes(limits, T0 + 20).expect("prune"), 6);
    let left = store.changes_after(0, 100).expect("changes_after");
    assert_eq!(left.len(), 4);
    assert_eq!(left[0].binding.ip, sample(7, 0).ip);
    let by_age = HistoryLimits {
        max_age: 10,
        max_count: 100,
    };
    // Older than T0 + 19 - 10 = T0 + 9: the row of 7 and 8.
    assert_eq!(store.prune_changes(by_age, T0 + 19).expect("prune"), 2);
    // While another instance prunes (it holds the prune lock), this one
    // skips its turn instead of waiting on the same rows.
    commit(&store, 11, T0 + 21);
    let mut other = postgres_client(&db.url);
    let mut tx = other.transaction().expect("begin");
    tx.execute("SELECT pg_advisory_xact_lock(7724003)", &[])
        .expect("the prune lock");
    assert_eq!(store.prune_changes(by_age, T0 + 40).expect("prune"), 0);
    tx.rollback().expect("rollback");
    assert!(store.prune_changes(by_age, T0 + 40).expect("prune") > 0);
}

#[test]
fn reopen_keeps_bindings_and_rebuilds_history() {
    let db = pg_database();
    {
        let store = open(&db.url);
        commit(&store, 1, T0 + 5);
    }
    let store = PostgresStore::open(opts(&db.url), T0 + 100).expect("reopen");
    assert_eq!(store.load_all().expect("load_all"), vec![sample(1, T0 + 5)]);
    let changed = store
        .feed()
        .changed_since(T0 + 5, T0 + 100)
        .expect("within the history");
    assert_eq!(changed, vec![sample(1, 0).ip]);
}

#[test]
fn a_newer_schema_fails_open_with_one_line() {
    let db = pg_database();
    drop(open(&db.url));
    let mut c = postgres_client(&db.url);
    c.execute(
        "UPDATE schema_version SET version = $1",
        &[&(PG_SCHEMA_VERSION + 1)],
    )
    .expect("bump version");
    let e = open_err(&db.url);
    assert!(e.contains("newer than this build"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

/// Another tool's `schema_version` (its versions text, as an old Flyway's):
/// `leaseline db status` and a start fail with a clear error, and write
/// nothing.
#[test]
fn another_tools_schema_version_table_is_a_clear_error() {
    let db = pg_database();
    let mut c = postgres_client(&db.url);
    c.batch_execute(
        "CREATE TABLE schema_version (version varchar NOT NULL);
         INSERT INTO schema_version VALUES ('1.0');",
    )
    .expect("another tool's table");
    let e = PostgresStore::schema_status(&db.url)
        .expect_err("not a Leaseline schema version")
        .to_string();
    assert!(e.contains("reading the schema version"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = open_err(&db.url);
    assert!(!e.contains('\n'), "{e}");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 1, "nothing created beside it");
}

#[test]
fn a_version_4_database_is_upgraded_in_place() {
    let db = pg_database();
    // Address 1: a lease, its renewal (the same history entry), then
    // another client's lease (a second entry).
    let lease = sample(1, T0 + 1);
    let mut renewal = lease.clone();
    renewal.cltt = T0 + 5;
    renewal.expiry = T0 + 5 + 3600;
    let mut other = sample(2, T0 + 8);
    other.ip = lease.ip;
    let key = HistoryKey::Ip(lease.ip);
    let before = {
        let store = open(&db.url);
        for (b, now) in [(&lease, T0 + 1), (&renewal, T0 + 5), (&other, T0 + 8)] {
            commit_binding(&store, b.clone(), now);
        }
        store
            .history(&HistoryQuery::all(key.clone(), 10))
            .expect("history")
    };
    assert_eq!(before.entries.len(), 2, "{before:?}");
    // As version 4 left it: its commit function, planned at every call;
    // no `opens_run`, the history's indexes over every row.
    let mut c = postgres_client(&db.url);
    c.batch_execute(&format!(
        "UPDATE schema_version SET version = 4;
         ALTER TABLE lease_changes DROP COLUMN opens_run;
         CREATE INDEX lease_changes_history_ip ON lease_changes (ip, state_since, id);
         ALTER FUNCTION leaseline_commit_v{PG_SCHEMA_VERSION} RENAME TO leaseline_commit_v4;
         ALTER FUNCTION leaseline_commit_v4 RESET ALL;
         ALTER FUNCTION leaseline_commit_v4 SET plan_cache_mode = force_custom_plan;
         ALTER TABLE bindings SET (fillfactor = 80);",
    ))
    .expect("make it version 4");
    let store = PostgresStore::open(opts(&db.url), T0 + 10).expect("open upgrades");
    // The rows logged before: the same entries.
    assert_eq!(
        store
            .history(&HistoryQuery::all(key.clone(), 10))
            .expect("history"),
        before
    );
    // A renewal after the upgrade continues the current entry; a new
    // binding elsewhere opens one.
    let mut renewal = other.clone();
    renewal.cltt = T0 + 11;
    renewal.expiry = T0 + 11 + 3600;
    commit_binding(&store, renewal, T0 + 11);
    commit(&store, 3, T0 + 12);
    assert_eq!(
        store.history(&HistoryQuery::all(key, 10)).expect("history"),
        before
    );
    let third = sample(3, T0 + 12);
    let page = store
        .history(&HistoryQuery::all(HistoryKey::Ip(third.ip), 10))
        .expect("history");
    assert_eq!(page.entries.len(), 1, "{page:?}");
    assert_eq!(page.entries[0].start, third.state_since);
    let version: i64 = c
        .query_one("SELECT max(version) FROM schema_version", &[])
        .expect("version")
        .get(0);
    assert_eq!(version, PG_SCHEMA_VERSION);
    let functions: Vec<(String, Vec<String>)> = c
        .query(
            "SELECT proname::text, coalesce(proconfig, '{}') FROM pg_proc \
             WHERE proname LIKE 'leaseline_commit_%'",
            &[],
        )
        .expect("functions")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The old function is gone (an instance of the old build fails its
    // commits rather than writing beside this one); the new one plans once.
    assert_eq!(functions.len(), 1, "{functions:?}");
    assert_eq!(
        functions[0].0,
        format!("leaseline_commit_v{PG_SCHEMA_VERSION}")
    );
    assert!(
        functions[0]
            .1
            .contains(&"plan_cache_mode=force_generic_plan".to_owned()),
        "{functions:?}"
    );
    // The history's indexes hold the rows that open an entry only.
    let indexes: Vec<String> = c
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'lease_changes' \
             AND indexname LIKE 'lease_changes_%_ip'",
            &[],
        )
        .expect("indexes")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(indexes[0].contains("WHERE opens_run"), "{indexes:?}");
    // `bindings` pages half filled, room for renewals updated in place.
    let options: Vec<String> = c
        .query_one(
            "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = 'bindings'",
            &[],
        )
        .expect("reloptions")
        .get(0);
    assert_eq!(options, vec!["fillfactor=50".to_owned()]);
}

#[test]
fn bad_url_unreachable_server_and_wrong_password_fail_open_clearly() {
    let e = open_err("postgres://u@127.0.0.1:notaport/db");
    assert!(e.contains("bad PostgreSQL url"), "{e}");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let e = open_err(&format!(
        "postgres://u@127.0.0.1:{port}/db?connect_timeout=5"
    ));
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.contains("refused"), "the cause is named: {e}");
    assert!(!e.contains('\n'), "{e}");
    // Password authentication for a role with a password.
    let db = pg_database();
    let role = format!("{}_pw", db.name);
    leaseline_test_support::pg_admin_sql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'right'"));
    let wrong = db
        .url
        .replacen("postgres:postgres@", &format!("{role}:wrong@"), 1);
    let e = open_err(&wrong);
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.contains("password"), "{e}");
    assert!(!e.contains(":wrong"), "the password leaked: {e}");
}

/// A database host that takes no more connections and says nothing (its
/// listen queue full: the kernel drops the connection's SYNs, as for a
/// host that is gone): the open fails by itself, naming the cause, after
/// the default connect timeout rather than TCP's two minutes of retries.
#[test]
fn a_database_host_that_never_answers_is_given_up_on() {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    // The one connection the queue holds, never accepted.
    let _queued = std::net::TcpStream::connect(addr).expect("the queued connection");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(open_err(&format!("postgres://u@{addr}/db")));
    });
    // Without a connect timeout of its own the open waited for TCP's SYN
    // retries (over two minutes).
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the open gave up by itself");
    assert!(e.contains("cannot connect"), "{e}");
    assert!(e.contains("timed out"), "the cause is named: {e}");
    drop(listener);
}

fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// The server uses the store from its tokio tasks: reads and submits there
/// must not enter the sync client's own runtime (a panic), so they go to the
/// store's threads.
#[test]
fn reads_and_commits_from_inside_a_tokio_runtime() {
    let db = pg_database();
    let store = std::sync::Arc::new(open(&db.url));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let s = store.clone();
    let got = rt.block_on(async move {
        tokio::spawn(async move {
            let seq = s
                .submit(vec![sample(3, T0)], T0)
                .await
                .expect("ticket")
                .expect("commit");
            (seq, s.get(sample(3, T0).ip).expect("get"))
        })
        .await
        .expect("task")
    });
    assert_eq!(got.0, store.feed().last_seq());
    assert_eq!(got.1, Some(sample(3, T0)));
}

/// A broken connection (the database restarted, or an administrator ended
/// it) fails the batch it broke under, never resolving it Ok; the writer and
/// the readers then reconnect by themselves.
#[test]
fn writer_and_readers_reconnect_after_their_connections_are_ended() {
    let db = pg_database();
    let store = open(&db.url);
    commit(&store, 1, T0);
    let mut admin = postgres_client(&db.url);
    let ended: Vec<i32> = admin
        .query(
            "WITH ours AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()) \
             SELECT pid FROM ours WHERE pg_terminate_backend(pid)",
            &[&db.name],
        )
        .expect("terminate")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ended.len() >= 2, "writer and readers: {ended:?}");
    // pg_terminate_backend only signals: wait until they are gone, so that
    // the next batch meets a closed connection, not one about to close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
            &[&ended],
        )
        .expect("count")
        .get::<_, i64>(0)
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "backends still there");
    }
    // The batch that meets the broken connection may fail (never a false Ok:
    // if it resolves Ok, it is stored).
    let first = store
        .submit(vec![sample(2, T0 + 1)], T0 + 1)
        .blocking_recv()
        .expect("ticket");
    commit(&store, 3, T0 + 2);
    // Readers reconnect and read again within the same call.
    let all = store.load_all().expect("load_all after reconnecting");
    let ips: Vec<_> = all.iter().map(|b| b.ip).collect();
    assert!(ips.contains(&sample(1, 0).ip) && ips.contains(&sample(3, 0).ip));
    assert_eq!(first.is_ok(), ips.contains(&sample(2, 0).ip));
}

/// The commit is conditional (issue 17): the database's commit function
/// writes a batch only if every row it was decided from is still the
/// version the writer read (its log id, -1 for no row), checked under the
/// log lock; otherwise it writes nothing and names the addresses that
/// changed, and the writer decides again. Called here as another
/// instance's writer would, with a version read before a commit of ours.
#[test]
fn a_commit_decided_from_a_row_that_changed_since_writes_nothing() {
    let db = pg_database();
    let store = open(&db.url);
    commit(&store, 1, T0);
    let mut c = postgres_client(&db.url);
    let version = |c: &mut postgres::Client, n: u32| -> i64 {
        c.query_one(
            "SELECT changed_id FROM bindings WHERE ip = $1",
            &[&i64::from(u32::from(sample(n, 0).ip))],
        )
        .expect("row")
        .get(0)
    };
    let read = version(&mut c, 1);
    // Our instance changes the row after it was read.
    commit(&store, 1, T0 + 5);
    assert!(version(&mut c, 1) > read);
    let log_rows = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM lease_changes", &[])
            .expect("count")
            .get(0)
    };
    let before = log_rows(&mut c);
    let call = |c: &mut postgres::Client, ip: i64, expected: i64| {
        commit_by_hand(c, ip, &[2, 0, 0, 0, 0, 0x99], expected, T0 + 9).expect("call")
    };
    let ip1 = i64::from(u32::from(sample(1, 0).ip));
    // Decided from the version read before our change: refused.
    assert_eq!(call(&mut c, ip1, read), Err(vec![ip1]));
    assert_eq!(log_rows(&mut c), before, "nothing written");
    assert_eq!(
        store.get(sample(1, 0).ip).expect("get"),
        Some(sample(1, T0 + 5))
    );
    // Decided as if the address had no row: refused too.
    assert_eq!(call(&mut c, ip1, -1), Err(vec![ip1]));
    assert_eq!(log_rows(&mut c), before, "nothing written");
    // From the current version: written, under a log id after the ones
    // the refused calls took and never used (the log's readers skip them).
    let current = version(&mut c, 1);
    let id = call(&mut c, ip1, current).expect("written");
    assert!(id > current, "{id} after {current}");
    assert_eq!(log_rows(&mut c), before + 1);
    assert_eq!(version(&mut c, 1), id);
    let max_logged: i64 = c
        .query_one("SELECT max(id) FROM lease_changes", &[])
        .expect("max")
        .get(0);
    assert_eq!(max_logged, id, "the refused calls logged nothing");
    // A new address, decided as having no row: written.
    let ip9 = i64::from(u32::from(sample(9, 0).ip));
    assert!(call(&mut c, ip9, -1).is_ok());
    assert_eq!(log_rows(&mut c), before + 2);
}
