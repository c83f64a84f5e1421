#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Resuming an Active Leasequery from the highest base-time seen
//! (RFC 7724 §7.3, §7.4.1; architecture, invariants: "an active requestor
//! that stays connected, or reconnects with the highest base-time it saw
//! after catch-up, ends up with every binding's current state").
//!
//! The risky case is a requestor with a backlog: the server holds pending
//! addresses for it while newer messages go out. If a message's base-time
//! were later than a change still pending, a requestor that loses the
//! connection right after reading it and resumes from that base-time would
//! never hear of the change. The server caps each message's base-time at
//! the oldest change still unsent on the connection (before that fix, this
//! test lost 999 of 1,000 final states).
//!
//! Relay address (giaddr): `loopback_relay` (test-support).

use crate::active_support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use active_support::*;
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{load_bindings, unix_now};
use leaseline_wire::StatusCode;

const SECOND: Duration = Duration::from_secs(1);
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

/// A requestor reads nothing while 30,000 changes cycle over 1,009
/// addresses (its connection's buffers fill, the server keeps a pending
/// set). After the churn it reads until the first message built after the
/// churn ended, then drops the connection, reconnects with
/// query-start-time = the highest base-time it read, and must end with the
/// store's state of every address.
#[test]
fn resume_from_highest_base_time_after_a_backlog() {
    let mut cfg = Config::new(*RELAY);
    cfg.pool = "10.0.0.10-10.0.3.250".into();
    let server = cfg.spawn();

    let mut r = connect_small(cfg.tcp, 4096);
    send_query(&mut r, 0x7e5_0001, None);
    server.wait_for_log("active query started", 5 * SECOND);
    let st = churn(*RELAY, cfg.dhcp, 1000, 30_000, 64, Duration::from_secs(120));
    assert_eq!(st.failed, 0, "{st:?}");
    // The clock moves past the churn: messages built from now on carry a
    // later base-time than any change of the churn.
    let churn_end = unix_now();
    let after = next_second_after(churn_end);

    // Read (in order) until a message built after the churn, then drop the
    // connection as a crash would.
    let mut view: HashMap<Ipv4Addr, Seen> = HashMap::new();
    let mut highest = 0u32;
    let mut conn = Conn::from_stream(r);
    let mut read = 0u64;
    loop {
        let (_, ev) = conn
            .recv_event(10 * SECOND)
            .expect("updates on the first connection");
        read += 1;
        match ev {
            ActiveEvent::Update(rec) => {
                let bt = rec.base_time.expect("base-time");
                highest = highest.max(bt);
                view.insert(rec.ip, Seen::from_record(&rec));
                // A crash mid-backlog: right after the first message whose
                // base-time is past the churn (with base-time capped at the
                // oldest unsent change, that is the backlog's last message).
                if bt >= after {
                    break;
                }
            }
            other => panic!("unexpected on the first connection: {other:?}"),
        }
    }
    drop(conn);
    eprintln!(
        "{} changes; first connection: {read} messages read, highest base-time {highest} (churn ended at {churn_end})",
        st.changes()
    );

    // Resume from the highest base-time seen.
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x7e5_0002, Some(highest), prl::BINDINGS));
    let db = server.db_path();
    let deadline = Instant::now() + 10 * SECOND;
    let mut caught_up = false;
    loop {
        let store = load_bindings(&db);
        let diff = diff_with_store(&store, &view);
        if caught_up && diff.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "after resuming from base-time {highest}, the requestor's last states differ from the store: {}",
                show_diff(&diff)
            );
        }
        match c.recv_event(Duration::from_millis(200)) {
            Ok((_, ActiveEvent::Update(rec))) => {
                view.insert(rec.ip, Seen::from_record(&rec));
            }
            Ok((
                _,
                ActiveEvent::Status {
                    code: StatusCode::CatchUpComplete,
                    ..
                },
            )) => caught_up = true,
            Ok((_, other)) => panic!("unexpected on the second connection: {other:?}"),
            Err(RecvError::Timeout) => {}
            Err(e) => panic!("second connection: {e:?}"),
        }
    }
}
