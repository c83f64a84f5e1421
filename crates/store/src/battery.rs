//! The test battery every LeaseStore backend must pass.
//!
//! `make` returns a fresh, empty store each time it is called. Its feed must
//! keep at least 2,000 changes and 1,000 seconds of history. The battery uses
//! times from the feed's horizon on, and panics on the first failure.
//! Call it from a plain `#[test]` (not inside a tokio runtime: tickets are
//! awaited with `blocking_recv`).

// A test battery (run by the backends' tests): a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::{Binding, DhcpState, LeaseStore};

mod history;

pub fn run_all<S: LeaseStore>(make: impl Fn() -> S) {
    upsert_then_get(&make());
    get_many_reads_each_address_in_order(&make());
    lookups_find_exactly_their_rows(&make());
    range_pagination(&make());
    feed_publishes_once_in_commit_order_after_readable(&make());
    group_commit_concurrent_submits(&make());
    changed_since_is_inclusive(&make());
    grant_round_trips(&make());
    history::run_all(&make);
}

/// A binding with every field derived from `n`, so lookups have distinct keys.
pub fn sample(n: u32, time: u32) -> Binding {
    let [_, _, hi, lo] = n.to_be_bytes();
    let mac = vec![0x02, 0x00, 0x5e, (n >> 16) as u8, hi, lo];
    Binding {
        ip: Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)),
        state: DhcpState::Active,
        htype: 1,
        client_id: (n % 2 == 0).then(|| [&[1u8][..], &mac].concat()),
        chaddr: mac,
        expiry: time + 3600,
        cltt: time,
        state_since: time.saturating_sub(n % 100),
        data_source: (n % 2) as u8,
        relay_info: Some(vec![1, 2, 0, n as u8, 2, 1, (n % 3) as u8]),
        circuit_id: Some(vec![0, n as u8]),
        remote_id: Some(format!("remote-{}", n % 3).into_bytes()),
        relay_id: (n % 4 == 0).then(|| format!("relay-{}", n % 8).into_bytes()),
        vendor_class_id: Some(b"MSFT 5.0".to_vec()),
        hostname: (n % 5 != 0).then(|| format!("host{n}").into_bytes()),
        lease_time: 3600,
        renew_time: Some(1800 - n % 7),
        rebind_time: Some(3150 - n % 11),
    }
}

fn commit<S: LeaseStore>(store: &S, bindings: Vec<Binding>, now: u32) -> u64 {
    store
        .submit(bindings, now)
        .blocking_recv()
        .expect("ticket dropped")
        .expect("commit failed")
}

fn start<S: LeaseStore>(store: &S) -> u32 {
    store.feed().horizon()
}

fn upsert_then_get<S: LeaseStore>(store: &S) {
    let t = start(store);
    let a = sample(1, t);
    assert_eq!(store.get(a.ip).expect("get"), None);
    commit(store, vec![a.clone()], t);
    assert_eq!(store.get(a.ip).expect("get"), Some(a.clone()));

    // Update in place: every field replaced, including options set to None.
    let mut a2 = sample(2, t + 1);
    a2.ip = a.ip;
    a2.state = DhcpState::Released;
    a2.client_id = None;
    a2.hostname = None;
    commit(store, vec![a2.clone()], t + 1);
    assert_eq!(store.get(a.ip).expect("get"), Some(a2.clone()));

    // Extremes round-trip: empty chaddr, no options, edge addresses, max times.
    let bare = Binding::available(Ipv4Addr::new(0, 0, 0, 0));
    let mut max = sample(3, u32::MAX - 3600);
    max.ip = Ipv4Addr::BROADCAST;
    max.expiry = u32::MAX;
    max.state = DhcpState::Transitioning;
    max.htype = u8::MAX;
    max.data_source = u8::MAX;
    max.lease_time = u32::MAX;
    commit(store, vec![bare.clone(), max.clone()], t + 2);
    assert_eq!(store.get(bare.ip).expect("get"), Some(bare.clone()));
    assert_eq!(store.get(max.ip).expect("get"), Some(max.clone()));
    assert_eq!(store.get(Ipv4Addr::new(10, 9, 9, 9)).expect("get"), None);

    let mut all = store.load_all().expect("load_all");
    all.sort_by_key(|b| b.ip);
    assert_eq!(all, vec![bare, a2, max]);
}

/// The T1 / T2 granted in the ACK come back as stored: any values (not
/// derived from the lease length), unknown ones as unknown, each one
/// replaced by an update, through every read path.
fn grant_round_trips<S: LeaseStore>(store: &S) {
    let t = start(store);
    let mut a = sample(21, t);
    a.lease_time = 60;
    a.expiry = t + 60;
    a.renew_time = Some(2);
    a.rebind_time = Some(4);
    let mut unknown = sample(22, t);
    unknown.renew_time = None;
    unknown.rebind_time = None;
    let mut max = sample(23, t);
    max.renew_time = Some(u32::MAX - 1);
    max.rebind_time = Some(u32::MAX);
    let mut zero = sample(24, t);
    zero.renew_time = Some(0);
    zero.rebind_time = None;
    let rows = vec![a.clone(), unknown.clone(), max.clone(), zero.clone()];
    commit(store, rows.clone(), t);
    for b in &rows {
        assert_eq!(store.get(b.ip).expect("get").as_ref(), Some(b));
        let by_mac = store.by_chaddr(b.htype, &b.chaddr).expect("by_chaddr");
        assert_eq!(by_mac, vec![b.clone()]);
    }
    assert_eq!(sorted(store.load_all().expect("load_all")), sorted(rows));

    // A renewal with a grant from a reloaded configuration replaces both;
    // a later row without one does not keep the old values.
    a.renew_time = Some(20);
    a.rebind_time = Some(40);
    commit(store, vec![a.clone()], t + 1);
    assert_eq!(store.get(a.ip).expect("get"), Some(a.clone()));
    a.renew_time = None;
    a.rebind_time = None;
    commit(store, vec![a.clone()], t + 2);
    assert_eq!(store.get(a.ip).expect("get"), Some(a));
}

/// A catch-up chunk: every address's binding (or None), in the order asked,
/// repeats and unknown addresses included.
fn get_many_reads_each_address_in_order<S: LeaseStore>(store: &S) {
    let t = start(store);
    let (a, b) = (sample(11, t), sample(12, t));
    commit(store, vec![a.clone(), b.clone()], t);
    let unknown = Ipv4Addr::new(10, 9, 9, 9);
    assert_eq!(store.get_many(&[]).expect("get_many"), vec![]);
    assert_eq!(
        store
            .get_many(&[b.ip, unknown, a.ip, b.ip])
            .expect("get_many"),
        vec![Some(b.clone()), None, Some(a), Some(b)]
    );
}

fn sorted(mut v: Vec<Binding>) -> Vec<Binding> {
    v.sort_by_key(|b| b.ip);
    v
}

fn lookups_find_exactly_their_rows<S: LeaseStore>(store: &S) {
    let t = start(store);
    let mut rows: Vec<Binding> = (1..=24).map(|n| sample(n, t)).collect();
    // Two rows sharing a MAC (e.g. a client moved subnets), same htype.
    rows[5].chaddr = rows[4].chaddr.clone();
    // Same MAC bytes under another htype must not match.
    rows[6].chaddr = rows[4].chaddr.clone();
    rows[6].htype = 6;
    commit(store, rows.clone(), t);

    let expect = |f: &dyn Fn(&Binding) -> bool| -> Vec<Binding> {
        sorted(rows.iter().filter(|b| f(b)).cloned().collect())
    };
    for b in &rows {
        let got = sorted(store.by_chaddr(b.htype, &b.chaddr).expect("by_chaddr"));
        assert_eq!(got, expect(&|x| x.htype == b.htype && x.chaddr == b.chaddr));
        if let Some(cid) = &b.client_id {
            let got = sorted(store.by_client_id(cid).expect("by_client_id"));
            assert_eq!(got, expect(&|x| x.client_id.as_ref() == Some(cid)));
        }
        if let Some(rid) = &b.remote_id {
            let got = sorted(store.by_remote_id(rid).expect("by_remote_id"));
            assert_eq!(got, expect(&|x| x.remote_id.as_ref() == Some(rid)));
            assert!(got.len() > 1);
        }
        if let Some(rid) = &b.relay_id {
            let got = sorted(store.by_relay_id(rid).expect("by_relay_id"));
            assert_eq!(got, expect(&|x| x.relay_id.as_ref() == Some(rid)));
        }
    }
    assert_eq!(
        store
            .by_chaddr(1, &rows[4].chaddr)
            .expect("by_chaddr")
            .len(),
        2
    );
    assert!(store.by_chaddr(1, &[9; 6]).expect("by_chaddr").is_empty());
    assert!(store.by_chaddr(1, &[]).expect("by_chaddr").is_empty());
    assert!(store
        .by_client_id(b"nope")
        .expect("by_client_id")
        .is_empty());
    assert!(store
        .by_remote_id(b"nope")
        .expect("by_remote_id")
        .is_empty());
    assert!(store.by_relay_id(b"nope").expect("by_relay_id").is_empty());

    // An update moves a row out of its old keys' results.
    let mut moved = rows[0].clone();
    let old_mac = moved.chaddr.clone();
    moved.chaddr = vec![0xaa; 6];
    moved.remote_id = None;
    commit(store, vec![moved.clone()], t + 1);
    assert!(store.by_chaddr(1, &old_mac).expect("by_chaddr").is_empty());
    assert_eq!(
        store.by_chaddr(1, &[0xaa; 6]).expect("by_chaddr"),
        vec![moved.clone()]
    );
    let rid = rows[0].remote_id.clone().expect("sample has remote_id");
    assert!(!store
        .by_remote_id(&rid)
        .expect("by_remote_id")
        .iter()
        .any(|b| b.ip == moved.ip));
}

fn range_pagination<S: LeaseStore>(store: &S) {
    let t = start(store);
    // Scattered addresses, including both ends of the address space.
    let mut ips: Vec<Ipv4Addr> = (0..150u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i * 37 % 4099))
        .collect();
    ips.push(Ipv4Addr::new(0, 0, 0, 0));
    ips.push(Ipv4Addr::BROADCAST);
    ips.push(Ipv4Addr::new(192, 0, 2, 1));
    let rows: Vec<Binding> = ips
        .iter()
        .enumerate()
        .map(|(i, &ip)| Binding {
            ip,
            ..sample(i as u32, t)
        })
        .collect();
    for chunk in rows.chunks(40) {
        commit(store, chunk.to_vec(), t);
    }
    let by_ip: BTreeMap<Ipv4Addr, Binding> = rows.iter().map(|b| (b.ip, b.clone())).collect();

    let (from, to) = (Ipv4Addr::new(10, 0, 1, 0), Ipv4Addr::new(10, 0, 10, 0));
    let want: Vec<Binding> = by_ip.range(from..=to).map(|(_, b)| b.clone()).collect();
    assert!(want.len() > 20);
    let first = store.range(from, to, 10).expect("range");
    assert_eq!(first, want[..10].to_vec(), "ascending, limited, in bounds");
    assert_eq!(store.range(from, to, usize::MAX).expect("range"), want);
    assert!(store.range(to, from, 10).expect("range").is_empty());
    assert!(store.range(from, to, 0).expect("range").is_empty());
    // Inclusive bounds.
    let one = want[3].ip;
    assert_eq!(
        store.range(one, one, 5).expect("range"),
        vec![want[3].clone()]
    );

    // Walking the whole space with a cursor visits every row once.
    for limit in [1usize, 7, 64] {
        let mut seen = Vec::new();
        let mut cursor = Some(Ipv4Addr::new(0, 0, 0, 0));
        while let Some(from) = cursor {
            let page = store
                .range(from, Ipv4Addr::BROADCAST, limit)
                .expect("range");
            assert!(page.len() <= limit);
            assert!(page.windows(2).all(|w| w[0].ip < w[1].ip));
            cursor = match page.last() {
                Some(last) if page.len() == limit => {
                    u32::from(last.ip).checked_add(1).map(Ipv4Addr::from)
                }
                _ => None,
            };
            seen.extend(page);
        }
        let all: Vec<Binding> = by_ip.values().cloned().collect();
        assert_eq!(seen, all, "cursor walk with limit {limit}");
    }
}

/// Distinct addresses submitted from several threads: the subscriber sees
/// each exactly once, in seq order, and each is readable when it is seen.
fn feed_publishes_once_in_commit_order_after_readable<S: LeaseStore>(store: &S) {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 50;
    // One extra binding on every fifth submission (see below).
    let total = (THREADS * (PER_THREAD + PER_THREAD.div_ceil(5))) as usize;
    let t = start(store);
    let seq0 = store.feed().last_seq();
    let sub = store.feed().subscribe();

    let (observed, tickets) = std::thread::scope(|s| {
        let observer = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut seen = Vec::new();
                let mut batch = Vec::new();
                while seen.len() < total {
                    tokio::time::timeout(Duration::from_secs(30), sub.changed())
                        .await
                        .expect("feed stalled");
                    batch.clear();
                    sub.take(usize::MAX, &mut batch);
                    for &ip in &batch {
                        // Published only after it is durable and readable.
                        assert!(
                            store.get(ip).expect("get").is_some(),
                            "{ip} published before readable"
                        );
                    }
                    seen.extend_from_slice(&batch);
                }
                seen
            })
        });
        let submitters: Vec<_> = (0..THREADS)
            .map(|th| {
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let n = th * 1000 + i;
                            // Some submissions carry two bindings.
                            let mut bs = vec![sample(n, t)];
                            if i % 5 == 0 {
                                bs.push(sample(n + 500, t));
                            }
                            let ips: Vec<Ipv4Addr> = bs.iter().map(|b| b.ip).collect();
                            (commit(store, bs, t + i), ips)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let tickets: Vec<(u64, Vec<Ipv4Addr>)> = submitters
            .into_iter()
            .flat_map(|h| h.join().expect("submitter"))
            .collect();
        (observer.join().expect("observer"), tickets)
    });

    // Ticket order by seq is the commit order; the feed and the subscriber agree.
    let mut tickets = tickets;
    tickets.sort_by_key(|(seq, _)| *seq);
    let in_commit_order: Vec<Ipv4Addr> = tickets.iter().flat_map(|(_, ips)| ips.clone()).collect();
    assert_eq!(observed, in_commit_order);
    let changes: Vec<(u64, Ipv4Addr)> = store
        .feed()
        .changes()
        .into_iter()
        .filter(|c| c.seq > seq0)
        .map(|c| (c.seq, c.ip))
        .collect();
    let expected: Vec<(u64, Ipv4Addr)> =
        (seq0 + 1..).zip(in_commit_order.iter().copied()).collect();
    assert_eq!(
        changes, expected,
        "each change exactly once, consecutive seqs"
    );
    // A ticket's seq is the seq of its own last change.
    let mut next = seq0;
    for (seq, ips) in &tickets {
        next += ips.len() as u64;
        assert_eq!(*seq, next);
    }
    assert_eq!(store.feed().last_seq(), next);
    assert_eq!(sub.pending(), 0);
}

fn group_commit_concurrent_submits<S: LeaseStore>(store: &S) {
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 125;
    const IN_FLIGHT: usize = 25;
    let t = start(store);
    let seqs: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                s.spawn(move || {
                    let mut seqs = Vec::new();
                    let ns: Vec<u32> = (0..PER_THREAD).map(|i| th * PER_THREAD + i).collect();
                    // Several tickets in flight per thread, as a busy engine has.
                    for chunk in ns.chunks(IN_FLIGHT) {
                        let tickets: Vec<_> = chunk
                            .iter()
                            .map(|&n| store.submit(vec![sample(n, t)], t))
                            .collect();
                        for ticket in tickets {
                            seqs.push(
                                ticket
                                    .blocking_recv()
                                    .expect("ticket dropped")
                                    .expect("commit"),
                            );
                        }
                    }
                    seqs
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("submitter"))
            .collect()
    });
    let total = (THREADS * PER_THREAD) as usize;
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), total, "every ticket has its own seq");
    assert_eq!(unique.last().copied(), Some(store.feed().last_seq()));
    let all = store.load_all().expect("load_all");
    assert_eq!(all.len(), total);
    for n in 0..THREADS * PER_THREAD {
        let b = sample(n, t);
        assert_eq!(store.get(b.ip).expect("get"), Some(b));
    }
}

fn changed_since_is_inclusive<S: LeaseStore>(store: &S) {
    let t = start(store);
    let feed = store.feed();
    let [a, b, c] = [1, 2, 3].map(|n| sample(n, t));
    commit(store, vec![a.clone()], t + 10);
    commit(store, vec![b.clone(), c.clone()], t + 20);
    commit(store, vec![a.clone()], t + 30);
    let now = t + 30;
    assert_eq!(feed.changed_since(t, now), Some(vec![b.ip, c.ip, a.ip]));
    assert_eq!(
        feed.changed_since(t + 10, now),
        Some(vec![b.ip, c.ip, a.ip])
    );
    assert_eq!(
        feed.changed_since(t + 20, now),
        Some(vec![b.ip, c.ip, a.ip])
    );
    assert_eq!(feed.changed_since(t + 21, now), Some(vec![a.ip]));
    assert_eq!(feed.changed_since(t + 30, now), Some(vec![a.ip]));
    assert_eq!(feed.changed_since(t + 31, now), Some(vec![]));
    assert!(
        feed.horizon() <= t,
        "history keeps 1,000 s and 2,000 changes"
    );
    if let Some(before) = feed.horizon().checked_sub(1) {
        assert_eq!(
            feed.changed_since(before, now),
            None,
            "DataMissing before the horizon"
        );
    }
}
