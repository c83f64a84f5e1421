use super::*;
use std::time::Duration;
use subscription::FROM_HISTORY;

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}

fn feed(max_age: u32, max_count: usize) -> ChangeFeed {
    feed_from(100, max_age, max_count)
}

/// A feed whose history starts at `start`.
fn feed_from(start: u32, max_age: u32, max_count: usize) -> ChangeFeed {
    ChangeFeed::new(HistoryLimits { max_age, max_count }, start)
}

/// A feed whose live log holds `cap` changes.
fn small_log(cap: usize) -> ChangeFeed {
    let limits = HistoryLimits {
        max_age: 3600,
        max_count: 100_000,
    };
    ChangeFeed::with_log_cap(limits, 100, cap)
}

fn committed(n: u32, cltt: u32) -> Arc<Committed> {
    let mut b = crate::Binding::available(ip(n));
    b.cltt = cltt;
    Arc::new(Committed::new(b))
}

fn take_all(s: &Subscription) -> Vec<crate::PendingEntry> {
    let mut out = Vec::new();
    assert_eq!(s.take_entries(usize::MAX, &mut out), None, "all taken");
    out
}

#[test]
fn seqs_are_consecutive() {
    let f = feed(1000, 1000);
    assert_eq!(f.last_seq(), 0);
    assert_eq!(f.publish(100, &[ip(1), ip(2)]), 2);
    assert_eq!(f.publish(101, &[]), 2);
    assert_eq!(f.publish(101, &[ip(3)]), 3);
    let seqs: Vec<u64> = f.changes().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn changed_since_is_inclusive_and_dedups_by_latest() {
    let f = feed(1000, 1000);
    f.publish(110, &[ip(1), ip(2)]);
    f.publish(120, &[ip(3), ip(1)]);
    assert_eq!(f.changed_since(99, 120), None);
    assert_eq!(f.changed_since(100, 120), Some(vec![ip(2), ip(3), ip(1)]));
    assert_eq!(f.changed_since(110, 120), Some(vec![ip(2), ip(3), ip(1)]));
    assert_eq!(f.changed_since(111, 120), Some(vec![ip(3), ip(1)]));
    assert_eq!(f.changed_since(120, 120), Some(vec![ip(3), ip(1)]));
    assert_eq!(f.changed_since(121, 120), Some(vec![]));
}

#[test]
fn count_trim_moves_horizon_past_trimmed_second() {
    let f = feed(1000, 2);
    f.publish(110, &[ip(1)]);
    f.publish(110, &[ip(2)]);
    assert_eq!(f.horizon(), 100);
    f.publish(111, &[ip(3)]);
    // ip(1) at 110 was trimmed; ip(2) at 110 remains but 110 is incomplete.
    assert_eq!(f.horizon(), 111);
    assert_eq!(f.changed_since(110, 111), None);
    assert_eq!(f.changed_since(111, 111), Some(vec![ip(3)]));
}

#[test]
fn age_trim_relative_to_newest_time() {
    let f = feed(10, 1000);
    f.publish(100, &[ip(1)]);
    f.publish(105, &[ip(2)]);
    f.publish(110, &[ip(3)]);
    assert_eq!(f.horizon(), 100, "age exactly max_age is kept");
    // Asking with a later `now` trims too.
    assert_eq!(f.changed_since(105, 115), Some(vec![ip(2), ip(3)]));
    assert_eq!(f.horizon(), 101);
    assert_eq!(f.changed_since(100, 115), None);
    assert_eq!(f.changed_since(121, 121), Some(vec![]));
    assert_eq!(f.horizon(), 111);
    assert!(f.changes().is_empty());
}

#[test]
fn clock_going_back_is_recorded_as_newest() {
    let f = feed(1000, 1000);
    f.publish(120, &[ip(1)]);
    f.publish(115, &[ip(2)]);
    assert_eq!(f.changes()[1].time, 120);
    assert_eq!(f.changed_since(120, 120), Some(vec![ip(1), ip(2)]));
}

#[test]
fn only_changes_after_subscribe_and_drop_unsubscribes() {
    let f = feed(1000, 1000);
    f.publish(100, &[ip(1)]);
    let s = f.subscribe();
    let s2 = f.subscribe();
    assert_eq!(f.subscribers(), 2);
    f.publish(100, &[ip(2)]);
    let mut out = Vec::new();
    s.take(10, &mut out);
    assert_eq!(out, vec![ip(2)]);
    drop(s2);
    assert_eq!(f.subscribers(), 1);
    drop(s);
    f.publish(100, &[ip(3)]);
    assert_eq!(f.subscribers(), 0);
}

#[test]
fn changed_wakes_without_losing_notifications() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let f = Arc::new(feed(1_000_000, 1_000_000));
        // Already pending: immediate.
        let s = f.subscribe();
        f.publish(100, &[ip(0)]);
        tokio::time::timeout(Duration::from_secs(5), s.changed())
            .await
            .expect("immediate");
        let mut out = Vec::new();
        s.take(1, &mut out);

        // Racing publisher: every published address is eventually taken.
        const N: u32 = 20_000;
        let pubf = f.clone();
        let publisher = tokio::spawn(async move {
            for i in 1..=N {
                pubf.publish(100, &[ip(i)]);
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut got = 0;
        while got < N as usize {
            tokio::time::timeout(Duration::from_secs(5), s.changed())
                .await
                .expect("lost wakeup");
            out.clear();
            s.take(usize::MAX, &mut out);
            got += out.len();
        }
        publisher.await.expect("publisher");
        assert_eq!(got, N as usize);
    });
}

#[test]
fn now_is_never_behind_a_recorded_change() {
    let f = feed(3600, 100);
    f.publish(50, &[ip(1)]);
    assert_eq!(f.now(40), 100, "the start time is already recorded");
    assert_eq!(f.now(120), 120);
    // A change handled before that reading but published after it is
    // recorded at the reading, so a requestor resuming from it gets it.
    f.publish(119, &[ip(2)]);
    assert_eq!(f.changed_since(120, 120), Some(vec![ip(2)]));
}

#[test]
fn seeded_history_answers_catch_up_after_a_restart() {
    // Horizon 900: what the store vouches for; 1000: the restart.
    let f = feed_from(900, 100, 3);
    f.seed(vec![(995, ip(2)), (990, ip(1)), (1000, ip(3))]);
    assert_eq!(f.now(1000), 1000);
    assert_eq!(f.changed_since(1000, 1000), Some(vec![ip(3)]));
    assert_eq!(f.changed_since(991, 1000), Some(vec![ip(2), ip(3)]));
    assert_eq!(f.changed_since(900, 1000), Some(vec![ip(1), ip(2), ip(3)]));
    assert_eq!(f.changed_since(899, 1000), None, "before the horizon");
    let f = feed_from(900, 100, 2);
    f.seed(vec![(990, ip(1)), (995, ip(2)), (999, ip(3))]);
    assert_eq!(
        f.horizon(),
        991,
        "count trim moves the horizon past the dropped time"
    );
    assert_eq!(f.changed_since(991, 1000), Some(vec![ip(2), ip(3)]));
}

#[test]
fn a_subscriber_that_keeps_up_gets_every_change_in_order() {
    let f = feed(1000, 1000);
    let s = f.subscribe();
    let a = committed(1, 1);
    f.publish_bindings(100, &[Arc::clone(&a), committed(2, 1)]);
    f.publish(101, &[ip(3)]);
    f.publish_bindings(102, &[committed(1, 2)]);
    assert_eq!(s.pending(), 4);
    let mut out = Vec::new();
    assert_eq!(
        s.take_entries(2, &mut out),
        Some(101),
        "ip 3's change is next"
    );
    assert!(
        Arc::ptr_eq(out[0].latest.as_ref().expect("binding"), &a),
        "the published binding itself, shared"
    );
    let rest = take_all(&s);
    let got: Vec<(Ipv4Addr, u32, Option<u32>)> = out
        .iter()
        .chain(&rest)
        .map(|e| (e.ip, e.time, e.latest.as_ref().map(|c| c.binding.cltt)))
        .collect();
    assert_eq!(
        got,
        vec![
            (ip(1), 100, Some(1)),
            (ip(2), 100, Some(1)),
            (ip(3), 101, None),
            (ip(1), 102, Some(2)),
        ]
    );
    assert_eq!(
        (s.pending(), s.own_queue_len()),
        (0, 0),
        "nothing copied per subscriber"
    );
}

#[test]
fn catch_up_addresses_go_before_unread_changes() {
    let f = feed(1000, 1000);
    let s = f.subscribe();
    f.publish(100, &[ip(1)]);
    s.extend(&[ip(3), ip(2)], f.now(100));
    f.publish(101, &[ip(4)]);
    assert_eq!(s.pending(), 4);
    let ips: Vec<Ipv4Addr> = take_all(&s).iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip(3), ip(2), ip(1), ip(4)]);
}

#[test]
fn a_lagging_subscriber_skips_at_no_cost_and_reads_back_every_address_from_the_history() {
    const CAP: usize = 8;
    let f = small_log(CAP);
    let s = f.subscribe();
    let keeping_up = f.subscribe();
    // 16 changes a second: all of it stays in the history (one hour).
    for t in 0..10_000u32 {
        f.publish_bindings(100 + t / 16, &[committed(t % 7, t)]);
        if t % 3 == 0 {
            let _ = take_all(&keeping_up);
        }
    }
    assert_eq!(
        keeping_up.backlog().in_history,
        0,
        "never fell behind the log"
    );
    let b = s.backlog();
    assert_eq!(s.own_queue_len(), 0, "skipping holds nothing of its own");
    assert_eq!(b.own, 0);
    assert!(b.unread_log <= CAP, "{b:?}");
    assert_eq!(b.in_history + b.unread_log, 10_000, "{b:?}");
    let got = take_all(&s);
    assert!(
        got.windows(2).all(|w| w[0].time <= w[1].time),
        "in change order"
    );
    // Read back a chunk at a time: each address once per chunk at most,
    // then what is left in the log, with its binding.
    assert!(
        got.len() <= 7 * (10_000 / FROM_HISTORY + 1) + CAP,
        "{} entries",
        got.len()
    );
    for n in 0..7 {
        let last = got
            .iter()
            .rev()
            .find(|e| e.ip == ip(n))
            .expect("every address");
        let want = (0..10_000u32).rev().find(|t| t % 7 == n).expect("a change");
        assert_eq!(last.time, 100 + want / 16);
        // From the log: the committed binding; from the history: none
        // (the session reads the store, which has the latest).
        if let Some(c) = &last.latest {
            assert_eq!(c.binding.cltt, want);
        }
    }
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_subscriber_whose_skipped_changes_left_the_history_is_told_when_lost() {
    // History of 20 changes, log of 4: a subscriber that read nothing
    // while 50 changes went by has lost the first it skipped.
    let limits = HistoryLimits {
        max_age: 3600,
        max_count: 20,
    };
    let f = ChangeFeed::with_log_cap(limits, 100, 4);
    let s = f.subscribe();
    let reader = f.subscribe();
    for t in 0..50u32 {
        f.publish(100 + t, &[ip(t)]);
        let _ = take_all(&reader);
    }
    assert_eq!(reader.lost(), None, "kept up");
    assert_eq!(s.lost(), None, "not known before it reads");
    let mut out = Vec::new();
    let left = s.take_entries(usize::MAX, &mut out);
    assert_eq!(s.lost(), Some(100), "from the first change it skipped");
    assert!(out.is_empty(), "nothing handed out past a gap: {out:?}");
    assert_eq!(left, Some(100), "base-time stays at the gap");
    assert_eq!(s.oldest_pending(), Some(100));
}

#[test]
fn take_reports_the_oldest_change_left() {
    let f = feed(3600, 100);
    let sub = f.subscribe();
    f.publish(110, &[ip(1)]);
    f.publish(112, &[ip(2)]);
    f.publish(115, &[ip(1), ip(3)]);
    assert_eq!(sub.oldest_pending(), Some(110));
    let mut out = Vec::new();
    assert_eq!(sub.take_entries(1, &mut out), Some(112));
    assert_eq!(sub.take_entries(2, &mut out), Some(115), "mid-group");
    assert_eq!(sub.take_entries(5, &mut out), None);
    assert_eq!(sub.oldest_pending(), None);
    let ips: Vec<Ipv4Addr> = out.iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip(1), ip(2), ip(1), ip(3)]);
}

#[test]
fn oldest_never_passes_a_change_moved_behind_catch_up() {
    // A change published before the catch-up time, skipped and read back
    // from the history after the catch-up addresses went in: the oldest
    // time left must not pass it.
    let f = small_log(4); // skip beyond 2 behind, checked at every change
    let s = f.subscribe();
    f.publish(100, &[ip(1)]);
    s.extend(&[ip(5)], f.now(105));
    f.publish(105, &[ip(2)]);
    assert_eq!(s.own_queue_len(), 1, "2 behind: still read from the log");
    f.publish(105, &[ip(3)]); // 3 behind: ip 1 (at 100) is skipped, read later
    assert_eq!(s.own_queue_len(), 1);
    assert_eq!(s.backlog().in_history, 3);
    assert_eq!(s.oldest_pending(), Some(100));
    let mut out = Vec::new();
    assert_eq!(
        s.take_entries(1, &mut out),
        Some(100),
        "ip 1 is still to send"
    );
    let ips: Vec<Ipv4Addr> = out.iter().chain(&take_all(&s)).map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip(5), ip(1), ip(2), ip(3)]);
}

#[test]
fn the_last_reader_of_a_long_chain_frees_it_without_recursion() {
    // The feed gone, a subscriber that read nothing holds the first of
    // 300,000 linked groups: dropping it frees them all (a recursive drop
    // would overflow the test thread's stack).
    let f = small_log(1_000_000);
    let s = f.subscribe();
    for t in 0..300_000u32 {
        f.publish(100, &[ip(t % 16)]);
    }
    assert_eq!(s.pending(), 300_000);
    drop(f);
    drop(s);
}

#[test]
fn skipping_while_the_subscriber_reads_loses_and_reorders_nothing() {
    // A publisher far faster than the reader, a log checked for laggards
    // every 16 changes: whatever the interleaving, the reader gets changes
    // in order of time, each address's log states oldest first, and every
    // address last at its last change.
    const ADDRS: u32 = 100;
    const CHANGES: u32 = 50_000;
    const AHEAD: u32 = 1_000;
    let f = Arc::new(small_log(64));
    let s = f.subscribe();
    let publish = |f: &ChangeFeed, i: u32| {
        f.publish_bindings(100 + i / 1000, &[committed(i % ADDRS, i)]);
    };
    // The reader starts behind, skipped; then both run at once.
    for i in 0..AHEAD {
        publish(&f, i);
    }
    assert!(s.backlog().in_history > 0, "skipped");
    let publisher = {
        let f = Arc::clone(&f);
        std::thread::spawn(move || {
            for i in AHEAD..CHANGES {
                publish(&f, i);
            }
        })
    };
    let mut last: std::collections::HashMap<Ipv4Addr, crate::PendingEntry> = Default::default();
    let mut time = 0;
    let mut check = |entries: &[crate::PendingEntry]| {
        for e in entries {
            assert!(e.time >= time, "{}: time {} after {time}", e.ip, e.time);
            time = e.time;
            if let Some(prev) = last.insert(e.ip, e.clone()) {
                let cltt = |e: &crate::PendingEntry| e.latest.as_ref().map(|c| c.binding.cltt);
                if let (Some(a), Some(b)) = (cltt(&prev), cltt(e)) {
                    assert!(a < b, "{}: state {b} after {a}", e.ip);
                }
            }
        }
    };
    let mut out = Vec::new();
    while !publisher.is_finished() {
        out.clear();
        s.take_entries(7, &mut out);
        check(&out);
        std::thread::yield_now();
    }
    publisher.join().expect("publisher");
    check(&take_all(&s));
    assert_eq!(last.len(), ADDRS as usize);
    for n in 0..ADDRS {
        let want = (0..CHANGES)
            .rev()
            .find(|i| i % ADDRS == n)
            .expect("a change");
        let e = &last[&ip(n)];
        assert_eq!(
            e.time,
            100 + want / 1000,
            "{}: ends at its last change",
            ip(n)
        );
        if let Some(c) = &e.latest {
            assert_eq!(c.binding.cltt, want, "{}: ends with its last state", ip(n));
        }
    }
    assert_eq!(s.lost(), None);
}

#[test]
fn lag_sums_the_subscribers_backlogs_and_ages_the_slowest() {
    let f = feed(3600, 1000);
    assert_eq!(
        f.lag(),
        FeedLag {
            newest: 100,
            ..FeedLag::default()
        }
    );
    let slow = f.subscribe();
    f.publish(110, &[ip(1), ip(2)]);
    let quick = f.subscribe();
    f.publish(130, &[ip(3)]);
    let lag = f.lag();
    assert_eq!(
        (lag.subscribers, lag.pending_total, lag.pending_max),
        (2, 4, 3),
        "slow: 3 unread, quick: 1"
    );
    assert_eq!(
        lag.seconds(),
        20,
        "the slowest has not read the change at 110"
    );
    take_all(&slow);
    let lag = f.lag();
    assert_eq!(
        (lag.pending_total, lag.seconds()),
        (1, 0),
        "quick's change is at 130"
    );
    take_all(&quick);
    drop(slow);
    let lag = f.lag();
    assert_eq!(
        (lag.subscribers, lag.pending_total, lag.seconds()),
        (1, 0, 0)
    );
}
