//! The lease history cases of the battery (`crate::lease_history`): the
//! store must keep the lease history on, with at least a day of retention.

use std::net::Ipv4Addr;

use super::{commit, start};
use crate::{Binding, DhcpState, HistoryEntry, HistoryKey, HistoryQuery, LeaseStore};

pub(super) fn run_all<S: LeaseStore>(make: &impl Fn() -> S) {
    history_answers_who_held_an_address(&make());
    history_by_client_keys_pages_through_every_entry(&make());
}

fn holding(ip: Ipv4Addr, mac: u8, state: DhcpState, since: u32) -> Binding {
    Binding {
        ip,
        state,
        htype: 1,
        chaddr: vec![0x02, 0, 0, 0, 0, mac],
        client_id: Some(vec![1, 0x02, 0, 0, 0, 0, mac]),
        expiry: since + 600,
        cltt: since,
        state_since: since,
        data_source: 0,
        relay_info: None,
        circuit_id: Some(vec![0, mac]),
        remote_id: Some(vec![b'r', mac]),
        relay_id: None,
        vendor_class_id: None,
        hostname: None,
        lease_time: 600,
        renew_time: None,
        rebind_time: None,
    }
}

fn who<S: LeaseStore>(
    store: &S,
    ip: Ipv4Addr,
    at: u32,
) -> Option<(u8, DhcpState, u32, Option<u32>)> {
    let page = store
        .history(&HistoryQuery::at(ip, at))
        .expect("history at");
    assert!(page.entries.len() <= 1, "{page:?}");
    assert_eq!(page.next, None);
    page.entries
        .first()
        .map(|e| (e.chaddr[5], e.state, e.start, e.end))
}

fn summary(entries: &[HistoryEntry]) -> Vec<(Ipv4Addr, u8, DhcpState, u32, Option<u32>)> {
    entries
        .iter()
        .map(|e| (e.ip, e.chaddr[5], e.state, e.start, e.end))
        .collect()
}

/// One address held by a client (renewed: still one entry), released,
/// then leased to another client: each second answers who held it.
fn history_answers_who_held_an_address<S: LeaseStore>(store: &S) {
    use DhcpState::{Active, Released};
    let t = start(store);
    let ip = Ipv4Addr::new(10, 9, 0, 1);
    let other = Ipv4Addr::new(10, 9, 0, 2);
    commit(
        store,
        vec![holding(ip, 1, Active, t), holding(other, 9, Active, t)],
        t,
    );
    let mut renewed = holding(ip, 1, Active, t);
    renewed.cltt = t + 10;
    renewed.expiry = t + 610;
    commit(store, vec![renewed], t + 10);
    commit(store, vec![holding(ip, 1, Released, t + 20)], t + 20);
    commit(store, vec![holding(ip, 2, Active, t + 30)], t + 30);

    assert_eq!(
        who(store, ip, t.saturating_sub(1)),
        None,
        "before any lease"
    );
    assert_eq!(who(store, ip, t), Some((1, Active, t, Some(t + 20))));
    assert_eq!(who(store, ip, t + 15), Some((1, Active, t, Some(t + 20))));
    assert_eq!(who(store, ip, t + 19), Some((1, Active, t, Some(t + 20))));
    assert_eq!(
        who(store, ip, t + 20),
        Some((1, Released, t + 20, Some(t + 30)))
    );
    assert_eq!(who(store, ip, t + 30), Some((2, Active, t + 30, None)));
    assert_eq!(who(store, ip, t + 100_000), Some((2, Active, t + 30, None)));
    assert_eq!(who(store, Ipv4Addr::new(10, 9, 0, 3), t + 30), None);

    let all = store
        .history(&HistoryQuery::all(HistoryKey::Ip(ip), 100))
        .expect("history");
    assert_eq!(
        summary(&all.entries),
        vec![
            (ip, 1, Active, t, Some(t + 20)),
            (ip, 1, Released, t + 20, Some(t + 30)),
            (ip, 2, Active, t + 30, None),
        ]
    );
    assert_eq!(all.next, None);
    let e = &all.entries[0];
    assert_eq!(
        (
            e.client_id.as_deref(),
            e.circuit_id.as_deref(),
            e.remote_id.as_deref()
        ),
        (
            Some(&[1, 2, 0, 0, 0, 0, 1][..]),
            Some(&[0, 1][..]),
            Some(&b"r\x01"[..])
        )
    );

    // A client that gets the address back within the second its earlier
    // lease began: a new entry, not a renewal of the first.
    let quick = Ipv4Addr::new(10, 9, 0, 4);
    for state in [Active, Released, Active] {
        commit(store, vec![holding(quick, 3, state, t + 50)], t + 50);
    }
    let all = store
        .history(&HistoryQuery::all(HistoryKey::Ip(quick), 100))
        .expect("history");
    assert_eq!(
        summary(&all.entries),
        vec![
            (quick, 3, Active, t + 50, Some(t + 50)),
            (quick, 3, Released, t + 50, Some(t + 50)),
            (quick, 3, Active, t + 50, None),
        ]
    );
    assert_eq!(who(store, quick, t + 50), Some((3, Active, t + 50, None)));

    // A range: the entries overlapping it, the earlier one included.
    let mut q = HistoryQuery::all(HistoryKey::Ip(ip), 100);
    (q.from, q.to) = (t + 21, t + 29);
    let got = store.history(&q).expect("range");
    assert_eq!(
        summary(&got.entries),
        vec![(ip, 1, Released, t + 20, Some(t + 30))]
    );
    (q.from, q.to) = (t + 5, t + 20);
    let got = store.history(&q).expect("range");
    assert_eq!(got.entries.len(), 2, "{got:?}");
}

/// A client moves between addresses; the queries by MAC, client-id and
/// remote-id find each of its entries, and a page of one walks them all.
fn history_by_client_keys_pages_through_every_entry<S: LeaseStore>(store: &S) {
    use DhcpState::{Active, Expired};
    let t = start(store);
    let ips: Vec<Ipv4Addr> = (1..=5).map(|n| Ipv4Addr::new(10, 9, 1, n)).collect();
    for (i, &ip) in ips.iter().enumerate() {
        let at = t + 100 * i as u32;
        // One group: the previous address expires, the new lease starts.
        let mut group = Vec::new();
        if i > 0 {
            group.push(holding(ips[i - 1], 7, Expired, at));
        }
        group.push(holding(ip, 7, Active, at));
        // Another client in the same commits, which must not match.
        group.push(holding(Ipv4Addr::new(10, 9, 2, i as u8), 8, Active, at));
        commit(store, group, at);
    }
    let mac = vec![0x02, 0, 0, 0, 0, 7];
    for key in [
        HistoryKey::Mac(mac.clone()),
        HistoryKey::ClientId(vec![1, 0x02, 0, 0, 0, 0, 7]),
        HistoryKey::RemoteId(vec![b'r', 7]),
    ] {
        let all = store
            .history(&HistoryQuery::all(key.clone(), 1000))
            .expect("history");
        assert_eq!(all.entries.len(), 9, "{key:?}: {all:?}");
        assert!(all.entries.iter().all(|e| e.chaddr == mac));
        let starts: Vec<u32> = all.entries.iter().map(|e| e.start).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        assert_eq!(
            summary(&all.entries[..2]),
            vec![
                (ips[0], 7, Active, t, Some(t + 100)),
                (ips[0], 7, Expired, t + 100, None),
            ]
        );
        // Pages of one, then of two, give the same entries.
        for limit in [1, 2] {
            let mut q = HistoryQuery::all(key.clone(), limit);
            let mut walked = Vec::new();
            loop {
                let page = store.history(&q).expect("page");
                assert!(page.entries.len() <= limit);
                walked.extend(page.entries);
                match page.next {
                    Some(c) => q.after = Some(c),
                    None => break,
                }
            }
            assert_eq!(walked, all.entries, "{key:?} in pages of {limit}");
        }
        // A range in the middle: the client's latest entry begun before it
        // (it overlaps), and those begun in it.
        let mut q = HistoryQuery::all(key, 1000);
        (q.from, q.to) = (t + 150, t + 250);
        let got = store.history(&q).expect("range");
        assert_eq!(
            summary(&got.entries),
            vec![
                (ips[1], 7, Active, t + 100, Some(t + 200)),
                (ips[1], 7, Expired, t + 200, None),
                (ips[2], 7, Active, t + 200, Some(t + 300)),
            ]
        );
    }
    assert!(store
        .history(&HistoryQuery::all(HistoryKey::Mac(vec![9; 6]), 10))
        .expect("history")
        .entries
        .is_empty());
}
