#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Several instances on one PostgreSQL database (issue 17): changes decided
//! from a stale copy are refused, every instance's feed carries every
//! instance's changes in log order exactly once, with data-source REMOTE
//! for the others', and live instances share the pools. Commits run at
//! once: a commit still running holds the later log rows back on every
//! feed, a failed one's ids are skipped, and two commits binding one free
//! address at once store one.

use std::net::Ipv4Addr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leaseline_store::battery::sample;
use leaseline_store::{
    Binding, DhcpState, HistoryLimits, LeaseStore, PostgresOptions, PostgresStore, StoreError,
    StoreObserver,
};
use leaseline_test_support::pg_database;

mod pg_common;
use pg_common::commit_by_hand;

const T0: u32 = 1_700_000_000;
const WAIT: Duration = Duration::from_secs(20);

fn open(url: &str, name: &str) -> PostgresStore {
    PostgresStore::open(
        PostgresOptions {
            url: url.to_owned(),
            history: HistoryLimits {
                max_age: 86_400,
                max_count: 100_000,
            },
            max_batch: 512,
            instance_id: name.into(),
            readers: 1,
            lease_log: None,
        },
        T0,
    )
    .expect("open")
}

enum Event {
    Remote(Vec<Binding>),
    Share(usize, usize),
}

struct Recorder(Mutex<Sender<Event>>);

impl StoreObserver for Recorder {
    fn remote_changes(&self, bindings: Vec<Binding>) {
        let _ = self.0.lock().unwrap().send(Event::Remote(bindings));
    }
    fn share(&self, index: usize, of: usize) {
        let _ = self.0.lock().unwrap().send(Event::Share(index, of));
    }
}

fn observe(store: &PostgresStore) -> Receiver<Event> {
    let (tx, rx) = channel();
    store.observe(Arc::new(Recorder(Mutex::new(tx))));
    rx
}

/// The next `n` remote bindings told to the observer (shares skipped).
fn remote(rx: &Receiver<Event>, n: usize) -> Vec<Binding> {
    let mut got = Vec::new();
    while got.len() < n {
        match rx.recv_timeout(WAIT) {
            Ok(Event::Remote(b)) => got.extend(b),
            Ok(Event::Share(..)) => {}
            Err(e) => panic!("waiting for {n} remote changes, got {}: {e}", got.len()),
        }
    }
    got
}

fn decided(store: &PostgresStore, b: Binding) -> Result<u64, StoreError> {
    let now = b.cltt;
    store
        .submit_decided(vec![b], now)
        .blocking_recv()
        .expect("ticket")
}

fn client(n: u32, ip_of: u32, t: u32) -> Binding {
    let mut b = sample(n, t);
    b.ip = sample(ip_of, t).ip;
    b.data_source = 0;
    b
}

#[test]
fn a_grant_decided_from_a_stale_copy_is_refused_and_the_holders_renewal_is_not() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    // Client 1 gets the address through A.
    decided(&a, client(1, 1, T0)).expect("first grant");
    // B, not having seen it, gives the same address to client 2: refused.
    let e = decided(&b, client(2, 1, T0 + 1)).expect_err("a second client on one address");
    assert!(
        matches!(e, StoreError::Refused { ip, .. } if ip == sample(1, 0).ip),
        "{e}"
    );
    assert_eq!(
        b.get(sample(1, 0).ip).expect("get").map(|x| x.chaddr),
        Some(sample(1, 0).chaddr),
        "the first client keeps it"
    );
    // Client 1 renewing (or rebinding) through B: its own address, stored.
    decided(&b, client(1, 1, T0 + 2)).expect("renewal through the other instance");
    // A expiring it from its stale copy (B renewed it): refused.
    let mut lapsed = client(1, 1, T0 + 1);
    lapsed.state = DhcpState::Expired;
    lapsed.state_since = lapsed.expiry - 3600 + 1;
    lapsed.expiry = T0 + 3601;
    assert!(decided(&a, lapsed).is_err(), "expired over a renewal");
    // The undecided path (an import, an operator) writes as told.
    let mut reset = client(2, 1, T0 + 3);
    reset.state = DhcpState::Active;
    a.submit(vec![reset], T0 + 3)
        .blocking_recv()
        .expect("ticket")
        .expect("undecided write");
}

fn granted(
    store: &PostgresStore,
    b: Binding,
    network: (Ipv4Addr, Ipv4Addr),
) -> Result<u64, StoreError> {
    let now = b.cltt;
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit_grant_then(
        b,
        network,
        now,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.blocking_recv().expect("ticket")
}

#[test]
fn a_second_lease_for_a_client_in_one_network_is_refused_with_the_one_it_holds() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    let net = (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255));
    // Client 1 (known by its MAC) and client 2 (by its client-id) get an
    // address each through A.
    for n in [1, 2] {
        granted(&a, client(n, n, T0), net).expect("first lease");
    }
    for n in [1, 2] {
        // B, not having seen it, offers the client another address there:
        // refused, with the lease the client holds.
        let e = granted(&b, client(n, 10 + n, T0 + 1), net)
            .expect_err("a second address for one client in one network");
        let StoreError::Refused { ip, stored, .. } = e else {
            panic!("client {n}: {e}");
        };
        assert_eq!(ip, sample(10 + n, 0).ip);
        let held: Vec<Ipv4Addr> = stored
            .iter()
            .filter_map(|(ip, row)| {
                row.as_ref()
                    .filter(|r| r.state == DhcpState::Active)
                    .map(|_| *ip)
            })
            .collect();
        assert_eq!(
            held,
            vec![sample(n, 0).ip],
            "client {n}: the lease it holds"
        );
        assert_eq!(
            b.get(sample(10 + n, 0).ip).expect("get"),
            None,
            "nothing stored"
        );
        // Its renewal through B is its own address: stored.
        granted(&b, client(n, n, T0 + 2), net).expect("renewal through the other instance");
        // In another network (a client that moved): stored.
        let other = (Ipv4Addr::new(10, 0, 1, 0), Ipv4Addr::new(10, 0, 1, 255));
        granted(&b, client(n, 0x100 + n, T0 + 3), other).expect("a lease in another network");
    }
    // Once client 1 released its lease, the new address is its.
    let mut release = client(1, 1, T0 + 4);
    release.state = DhcpState::Released;
    decided(&a, release).expect("release");
    granted(&b, client(1, 11, T0 + 5), net).expect("a new lease after the release");
}

/// A renewal decided from a copy that is behind (the address went to
/// another client through the other instance, or the client got a second
/// address there) is refused with the rows that stand in its way, as
/// `overwrite` and `second_lease` say; one from a current copy is stored.
#[test]
fn a_renewal_from_a_copy_that_is_behind_is_refused_with_the_rows_in_its_way() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    let net = (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255));
    let written = |store: &PostgresStore, x: Binding| {
        let now = x.cltt;
        store
            .submit(vec![x], now)
            .blocking_recv()
            .expect("ticket")
            .expect("undecided write");
    };
    // Client 1 (by MAC) and client 2 (by client-id): a lease each through
    // A, and their renewals.
    for n in [1, 2] {
        granted(&a, client(n, n, T0), net).expect("lease");
        granted(&a, client(n, n, T0 + 1), net).expect("renewal");
        assert_eq!(
            a.get(sample(n, 0).ip).expect("get"),
            Some(client(n, n, T0 + 1))
        );
    }
    // Through B, client 1's address goes to client 3: client 1's renewal
    // through A is refused, with the row that holds the address.
    written(&b, client(3, 1, T0 + 2));
    let e = granted(&a, client(1, 1, T0 + 3), net).expect_err("renewal of a taken address");
    let StoreError::Refused { ip, reason, stored } = e else {
        panic!("{e}");
    };
    assert_eq!((ip, reason), (sample(1, 0).ip, "leased to another client"));
    let rows: Vec<_> = stored
        .iter()
        .map(|(ip, r)| (*ip, r.as_ref().map(lease)))
        .collect();
    assert_eq!(
        rows,
        vec![(sample(1, 0).ip, Some(lease(&client(3, 1, T0 + 2))))]
    );
    let now = a.get(sample(1, 0).ip).expect("get");
    assert_eq!(now.as_ref().map(lease), Some(lease(&client(3, 1, T0 + 2))));
    // Through B, client 2 gets a second address in the network: its
    // renewal through A is refused, with that lease.
    written(&b, client(2, 12, T0 + 4));
    let e = granted(&a, client(2, 2, T0 + 5), net).expect_err("renewal beside another lease");
    let StoreError::Refused { reason, stored, .. } = e else {
        panic!("{e}");
    };
    assert_eq!(reason, "the client holds another address there");
    let rows: Vec<_> = stored
        .iter()
        .map(|(ip, r)| (*ip, r.as_ref().map(lease)))
        .collect();
    assert!(
        rows.contains(&(sample(12, 0).ip, Some(lease(&client(2, 12, T0 + 4))))),
        "{rows:?}"
    );
    let now = a.get(sample(2, 0).ip).expect("get");
    assert_eq!(now.as_ref().map(lease), Some(lease(&client(2, 2, T0 + 1))));
    // Client 3's renewal through A, its row read in the refusal: stored.
    granted(&a, client(3, 1, T0 + 6), net).expect("renewal of the new holder");
    let now = a.get(sample(1, 0).ip).expect("get");
    assert_eq!(now.as_ref().map(lease), Some(lease(&client(3, 1, T0 + 6))));
}

/// Who holds a row since when (a row read back from another instance's
/// commit carries the data-source REMOTE bit).
fn lease(b: &Binding) -> (Ipv4Addr, DhcpState, Vec<u8>, Option<Vec<u8>>, u32) {
    (b.ip, b.state, b.chaddr.clone(), b.client_id.clone(), b.cltt)
}

/// Grants `bindings` (in this order) in one batch of `store`'s writer:
/// submitted while a lock holds its commit of `first` back. The answers,
/// by address.
fn in_one_batch(
    store: &PostgresStore,
    url: &str,
    first: Binding,
    bindings: Vec<Binding>,
    net: (Ipv4Addr, Ipv4Addr),
) -> Vec<(Ipv4Addr, Result<u64, StoreError>)> {
    // Its next commit waits for this lock (its read does not), and what is
    // submitted meanwhile is gathered into one batch.
    let mut other = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let mut lock = other.transaction().expect("begin");
    lock.batch_execute("LOCK TABLE bindings IN EXCLUSIVE MODE")
        .expect("lock");
    let (tx, rx) = channel();
    let submit = |b: Binding| {
        let (ip, now, tx) = (b.ip, b.cltt, tx.clone());
        store.submit_grant_then(
            b,
            net,
            now,
            Box::new(move |r| {
                let _ = tx.send((ip, r));
            }),
        );
    };
    let n = bindings.len() + 1;
    submit(first);
    let mut watch = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    until("the writer's commit to wait on the lock", || {
        watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .expect("pg_stat_activity")
            .get::<_, i64>(0)
            > 0
    });
    for b in bindings {
        submit(b);
    }
    lock.commit().expect("release the lock");
    let mut answers: Vec<_> = (0..n)
        .map(|_| rx.recv_timeout(WAIT).expect("an answer"))
        .collect();
    answers.sort_by_key(|(ip, _)| *ip);
    answers
}

/// Found by the instances test under heavy load: two grants of one client
/// in one batch were both stored (the lookup reads what was committed
/// before the batch).
#[test]
fn of_two_grants_of_one_client_in_one_batch_the_second_is_refused() {
    let db = pg_database();
    let a = open(&db.url, "a");
    let net = (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255));
    let refused_holding = |r: &Result<u64, StoreError>, want: Ipv4Addr, holds: Ipv4Addr| {
        let Err(StoreError::Refused { ip, stored, .. }) = r else {
            panic!("the second grant: {r:?}");
        };
        assert_eq!(*ip, want);
        assert!(
            stored.iter().any(|(ip, row)| *ip == holds && row.is_some()),
            "the refusal names the lease the client holds: {stored:?}"
        );
    };
    // Client 1 granted two addresses in one batch; then, in one batch, its
    // stored lease renewed and another address granted.
    for (t, second) in [(T0, 2), (T0 + 2, 4)] {
        let answers = in_one_batch(
            &a,
            &db.url,
            client(3, 3, t),
            vec![client(1, 1, t + 1), client(1, second, t + 1)],
            net,
        );
        let answer = |n: u32| {
            let ip = sample(n, 0).ip;
            answers
                .iter()
                .find(|(i, _)| *i == ip)
                .map(|(_, r)| r)
                .unwrap_or_else(|| panic!("no answer for {ip}"))
        };
        assert!(answer(1).is_ok(), "client 1's lease: {:?}", answer(1));
        assert!(answer(3).is_ok(), "client 3: {:?}", answer(3));
        refused_holding(answer(second), sample(second, 0).ip, sample(1, 0).ip);
        let stored = a.get(sample(second, 0).ip).expect("get");
        assert_eq!(stored, None, "nothing stored");
    }
}

#[test]
fn each_instance_publishes_every_instances_changes_in_log_order_once() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    let (seen_a, seen_b) = (observe(&a), observe(&b));
    let (sub_a, sub_b) = (a.feed().subscribe(), b.feed().subscribe());
    // Interleaved commits through both, some on the same addresses.
    for round in 0..20u32 {
        let n = round % 7 + 1;
        let store = if round % 2 == 0 { &a } else { &b };
        store
            .submit(vec![sample(n, T0 + round)], T0 + round)
            .blocking_recv()
            .expect("ticket")
            .expect("commit");
    }
    let to_a = remote(&seen_a, 10);
    let to_b = remote(&seen_b, 10);
    // Published after the observer is told: wait for all 20 on each feed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    for sub in [&sub_a, &sub_b] {
        let mut got = Vec::new();
        while got.len() < 20 {
            rt.block_on(async { tokio::time::timeout(WAIT, sub.changed()).await })
                .expect("feed publishes within the wait");
            sub.take(100, &mut got);
        }
    }
    assert!(to_a.iter().all(|x| x.data_source & 1 == 1), "REMOTE flag");
    assert!(to_b.iter().all(|x| x.data_source & 1 == 1), "REMOTE flag");
    // Both feeds: the whole log, in id order, each change once.
    let log: Vec<_> = a
        .changes_after(0, 1000)
        .expect("log")
        .into_iter()
        .map(|c| c.binding.ip)
        .collect();
    assert_eq!(log.len(), 20);
    for (name, store) in [("a", &a), ("b", &b)] {
        let fed: Vec<_> = store.feed().changes().iter().map(|c| c.ip).collect();
        assert_eq!(fed, log, "feed of {name}");
    }
    // Reads say who changed a binding last: REMOTE when another instance.
    let by_b = sample(19 % 7 + 1, 0).ip;
    assert_eq!(a.get(by_b).unwrap().unwrap().data_source & 1, 1);
    assert_eq!(b.get(by_b).unwrap().unwrap().data_source & 1, 0);
}

#[test]
fn live_instances_share_the_pools_and_a_stopped_one_hands_its_share_over() {
    let db = pg_database();
    let a = open(&db.url, "a");
    let seen_a = observe(&a);
    let share = |rx: &Receiver<Event>, want: (usize, usize)| loop {
        match rx.recv_timeout(WAIT) {
            Ok(Event::Share(i, n)) if (i, n) == want => return,
            Ok(_) => {}
            Err(e) => panic!("waiting for share {want:?}: {e}"),
        }
    };
    share(&seen_a, (0, 1));
    let b = open(&db.url, "b");
    let seen_b = observe(&b);
    share(&seen_b, (1, 2));
    share(&seen_a, (0, 2));
    drop(b);
    share(&seen_a, (0, 1));
}

fn key(n: u32) -> i64 {
    i64::from(u32::from(sample(n, 0).ip))
}

/// Waits (on the instance's own state, not a clock) until `ok`.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "waiting for {what}");
        std::thread::yield_now();
    }
}

fn fed(store: &PostgresStore) -> Vec<std::net::Ipv4Addr> {
    store.feed().changes().iter().map(|c| c.ip).collect()
}

#[test]
fn a_running_commit_holds_later_rows_back_and_a_failed_ones_ids_are_skipped() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    // Observed: each follows the log (as a server's engine does).
    let (_seen_a, _seen_b) = (observe(&a), observe(&b));
    let mut other = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");

    // Another writer's commit takes log id 1 and has not ended...
    let mut running = other.transaction().expect("begin");
    let held = commit_by_hand(&mut running, key(1), &[1; 6], -1, T0).expect("call");
    assert_eq!(held, Ok(1));
    // ... when B commits id 2.
    b.submit(vec![sample(2, T0)], T0)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
    // A has read id 2 and holds it back behind the missing 1.
    until("A to wait behind id 1", || a.change_log_position().waiting);
    assert_eq!(a.change_log_position().published, 0);
    assert!(
        fed(&a).is_empty(),
        "nothing published past a running commit"
    );
    running.commit().expect("commit");
    until("A to publish ids 1 and 2", || fed(&a).len() == 2);
    assert_eq!(
        fed(&a),
        vec![sample(1, 0).ip, sample(2, 0).ip],
        "in id order"
    );
    until("B to publish ids 1 and 2", || fed(&b).len() == 2);
    assert_eq!(fed(&b), fed(&a));

    // A commit that takes id 3 and fails: id 4 does not wait for ever.
    let mut failing = other.transaction().expect("begin");
    assert_eq!(
        commit_by_hand(&mut failing, key(3), &[3; 6], -1, T0).expect("call"),
        Ok(3)
    );
    b.submit(vec![sample(4, T0)], T0)
        .blocking_recv()
        .expect("ticket")
        .expect("commit");
    until("A to wait behind id 3", || a.change_log_position().waiting);
    failing.rollback().expect("rollback");
    until("A to skip id 3", || fed(&a).len() == 3);
    assert_eq!(fed(&a)[2], sample(4, 0).ip);
    assert_eq!(a.change_log_position().published, 4);
    assert!(!a.change_log_position().waiting);
    until("B to skip id 3", || fed(&b).len() == 3);
    assert_eq!(fed(&b), fed(&a));
    // A restarted instance follows from after them.
    drop(a);
    let a = open(&db.url, "a");
    assert_eq!(a.change_log_position().published, 4);
}

#[test]
fn two_commits_binding_one_free_address_at_once_store_one_client() {
    let db = pg_database();
    let b = open(&db.url, "b");
    let mut other = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    // Another instance's commit binds address 1 to its client, not ended.
    let mut running = other.transaction().expect("begin");
    commit_by_hand(&mut running, key(1), &[9; 6], -1, T0)
        .expect("call")
        .expect("written");
    // B decides from "no row" too and commits: its insert waits for the
    // other's...
    let (tx, rx) = channel();
    let b = Arc::new(b);
    let b2 = Arc::clone(&b);
    std::thread::spawn(move || {
        let _ = tx.send(decided(&b2, client(2, 1, T0 + 1)));
    });
    let mut watch = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    until("B's commit to wait on the running one's insert", || {
        watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .expect("pg_stat_activity")
            .get::<_, i64>(0)
            > 0
    });
    assert!(rx.try_recv().is_err(), "B has no answer while it waits");
    running.commit().expect("commit");
    // ... and, finding the address bound once it ended, is decided again
    // from that row: refused.
    let e = rx
        .recv_timeout(WAIT)
        .expect("B's answer")
        .expect_err("refused");
    assert!(
        matches!(e, StoreError::Refused { ip, .. } if ip == sample(1, 0).ip),
        "{e}"
    );
    assert_eq!(
        b.get(sample(1, 0).ip).expect("get").map(|x| x.chaddr),
        Some(vec![9; 6]),
        "the first client keeps it"
    );
}

/// The outbox lag (metrics): rows another instance committed that this
/// one has not published, until its follower reads them.
#[test]
fn the_outbox_lag_counts_what_the_follower_has_not_published() {
    let db = pg_database();
    let (a, b) = (open(&db.url, "a"), open(&db.url, "b"));
    let lag = |s: &PostgresStore| s.outbox_lag().expect("a shared store").expect("read");
    assert_eq!(lag(&b).unpublished, 0);
    for n in 1..=3 {
        a.submit(vec![sample(n, T0 + n)], T0 + n)
            .blocking_recv()
            .expect("ticket")
            .expect("commit");
    }
    assert_eq!(lag(&a).unpublished, 0, "A published its own commits");
    let behind = lag(&b);
    assert_eq!(behind.unpublished, 3, "B follows no one yet");
    assert!(
        behind.age_seconds >= 0.0 && behind.age_seconds < 60.0,
        "{behind:?}"
    );
    let seen_b = observe(&b);
    remote(&seen_b, 3);
    let caught_up = lag(&b);
    assert_eq!((caught_up.unpublished, caught_up.age_seconds), (0, 0.0));
}

/// Whether a log row opens a lease-history entry is decided by the writer
/// for the rows it read (each change against the stored row, or against
/// the batch's previous change of the address) and by the database for
/// the others: one rule either way, as every row against its address's
/// previous one in log order shows.
#[test]
fn the_log_marks_the_changes_that_open_a_history_entry_by_one_rule() {
    let db = pg_database();
    let a = open(&db.url, "a");
    let net = (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255));
    let renewed = |b: &Binding, by: u32| {
        let mut r = b.clone();
        r.cltt += by;
        r.expiry += by;
        r
    };
    // Decided one at a time: a lease, its renewal, its release.
    let lease = client(1, 1, T0);
    let renewal = renewed(&lease, 2);
    let mut release = renewal.clone();
    release.state = DhcpState::Released;
    release.state_since = T0 + 4;
    release.cltt = T0 + 4;
    for b in [lease, renewal, release] {
        decided(&a, b).expect("decided");
    }
    // In one batch: a lease and its renewal (which follows the lease, not
    // the stored row: there is none).
    let lease2 = client(2, 2, T0 + 10);
    let renewal2 = renewed(&lease2, 1);
    for (ip, r) in in_one_batch(
        &a,
        &db.url,
        client(3, 3, T0 + 10),
        vec![lease2, renewal2.clone()],
        net,
    ) {
        r.unwrap_or_else(|e| panic!("{ip}: {e}"));
    }
    // Undecided (an import, an operator): the database decides.
    let again = renewed(&renewal2, 1);
    a.submit(vec![again], T0 + 12)
        .blocking_recv()
        .expect("ticket")
        .expect("undecided write");
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    let rows: Vec<(i64, bool, bool)> = c
        .query(
            "SELECT ip, opens_run, (lag(state_since) OVER w, lag(state) OVER w, \
             lag(chaddr) OVER w) IS DISTINCT FROM (state_since, state, chaddr) \
             FROM lease_changes WINDOW w AS (PARTITION BY ip ORDER BY id) ORDER BY id",
            &[],
        )
        .expect("log")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (ip, opens, rule) in &rows {
        assert_eq!(opens, rule, "address {ip}: {rows:?}");
    }
    let of = |n: u32| -> Vec<bool> {
        let key = i64::from(u32::from(sample(n, 0).ip));
        rows.iter().filter(|r| r.0 == key).map(|r| r.1).collect()
    };
    assert_eq!(of(1), [true, false, true], "lease, renewal, release");
    assert_eq!(of(2), [true, false, false], "lease, renewals");
}

/// An instance cut off from the database for longer than the log keeps
/// (here: its role may not log in, its sessions ended) comes back after
/// other instances' changes were pruned unread: its engine's copy gets the
/// bindings those changes left, its feed carries them before the rows
/// after them, and a watcher resuming from before them is told the
/// history does not reach back (DataMissing), not given an incomplete
/// catch-up.
#[test]
fn changes_pruned_before_an_instance_read_them_are_taken_from_the_bindings() {
    let db = pg_database();
    let role = format!("{}_cut", db.name);
    leaseline_test_support::pg_admin_sql(&format!(
        "CREATE ROLE {role} SUPERUSER LOGIN PASSWORD 'pw'"
    ));
    let a = open(
        &db.url
            .replacen("postgres:postgres@", &format!("{role}:pw@"), 1),
        "a",
    );
    let seen = observe(&a);
    let mut admin = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} NOLOGIN; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        ))
        .expect("cut A off");
    until("A's sessions to end", || {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&role],
            )
            .expect("sessions")
            .get::<_, i64>(0)
            == 0
    });
    // Another instance's changes meanwhile: 1 and 2, then 3; the log keeps
    // only the last.
    for (n, t) in [(1, T0 + 10), (2, T0 + 10), (3, T0 + 20)] {
        assert_eq!(
            commit_by_hand(&mut admin, key(n), &[n as u8; 6], -1, t).expect("call"),
            Ok(i64::from(n))
        );
    }
    admin
        .batch_execute(&format!(
            "DELETE FROM lease_changes WHERE id <= 2; \
             UPDATE meta SET value = 2 WHERE key = 'log_pruned_id'; \
             UPDATE meta SET value = {} WHERE key = 'log_pruned_logged_at'; \
             ALTER ROLE {role} LOGIN",
            T0 + 10
        ))
        .expect("prune, and let A back in");
    let mut got: Vec<Ipv4Addr> = remote(&seen, 3).iter().map(|b| b.ip).collect();
    got.sort();
    assert_eq!(
        got,
        vec![sample(1, 0).ip, sample(2, 0).ip, sample(3, 0).ip],
        "the engine's copy has every address the others changed"
    );
    until("A's feed to carry them", || fed(&a).len() == 3);
    assert_eq!(fed(&a)[2], sample(3, 0).ip, "the pruned ones first");
    assert_eq!(a.change_log_position().published, 3);
    assert_eq!(
        a.feed().changed_since(T0 + 10, T0 + 30),
        None,
        "from before the pruned changes: DataMissing"
    );
    let mut since: Vec<Ipv4Addr> = a
        .feed()
        .changed_since(T0 + 11, T0 + 30)
        .expect("after them: answered");
    since.sort();
    assert_eq!(since, got);
}
