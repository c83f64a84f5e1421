//! Several instances on one PostgreSQL database (issue 17): changes decided
//! from a stale copy are refused, every instance's feed carries every
//! instance's changes in log order exactly once, with data-source REMOTE
//! for the others', and live instances share the pools.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leaseline_store::battery::sample;
use leaseline_store::{
    Binding, DhcpState, HistoryLimits, LeaseStore, PostgresOptions, PostgresStore, StoreError,
    StoreObserver,
};
use leaseline_test_support::pg_database;

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
    fn remote_changes(&self, bindings: &[Binding]) {
        let _ = self
            .0
            .lock()
            .unwrap()
            .send(Event::Remote(bindings.to_vec()));
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
