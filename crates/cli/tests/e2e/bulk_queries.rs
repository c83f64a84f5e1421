#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Bulk Leasequery (RFC 6926) against the real server, with bindings made
//! by real DORA exchanges through a relay: every primary query (MAC,
//! client-id, remote-id, relay-id, all), the time window, the refusals of
//! §8.2, and query-for-all over a pool (each configured address exactly
//! once with its state). Queries go through `leaseline bulk` (the CLI, its
//! output formats and exit codes) and through a raw framed connection (the
//! messages exactly as sent).
//!
//! Each test's relay address is its own (`Setup::new`).

use crate::bulk_support;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bulk_support::*;
use leaseline_test_support::{require_root, unix_now, wait_until, TestClient};
use leaseline_wire::{DhcpOption, MessageType, RelayAgentInfo, StatusCode};

fn ips_of(records: &[serde_json::Value]) -> BTreeSet<Ipv4Addr> {
    records
        .iter()
        .map(|r| r["ip"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn every_primary_query_finds_the_bindings_dora_made() {
    require_root();
    let s = Setup::new();
    let server = s.spawn(&s.config(None, ""));
    let mut relay = s.relay_client();

    // Two clients of one subscriber line (remote-id r-1, relay-id R), one
    // with a client-id; a third on another line.
    let a = TestClient::new(0xB001).with_client_id(b"\x01bulk-a");
    let b = TestClient::new(0xB002);
    let c = TestClient::new(0xB003).with_client_id(b"\x01bulk-c");
    let line1 = rai(&[
        (RelayAgentInfo::CIRCUIT_ID, b"eth0/1"),
        (RelayAgentInfo::REMOTE_ID, b"r-1"),
        (RelayAgentInfo::RELAY_ID, b"relay-R"),
    ]);
    let line2 = rai(&[
        (RelayAgentInfo::REMOTE_ID, b"r-2"),
        (RelayAgentInfo::RELAY_ID, b"relay-S"),
    ]);
    let ip_a = dora(&mut relay, &a, Some(&line1));
    let ip_b = dora(&mut relay, &b, Some(&line1));
    let ip_c = dora(&mut relay, &c, Some(&line2));

    // By MAC.
    let r = bulk_json(s.tcp, &["--mac", &mac_of(&b)]);
    assert_eq!(ips_of(&r), BTreeSet::from([ip_b]));
    assert_eq!(r[0]["type"], "DHCPLEASEACTIVE");
    assert_eq!(r[0]["state"], "ACTIVE");
    assert_eq!(r[0]["mac"], mac_of(&b));
    assert_eq!(r[0]["remote_id"], hex(b"r-1"));
    assert_eq!(r[0]["relay_id"], hex(b"relay-R"));
    assert_eq!(r[0]["circuit_id"], hex(b"eth0/1"));
    let now = unix_now();
    let cltt = r[0]["cltt"].as_u64().unwrap() as u32;
    assert!(cltt <= now && now - cltt < 60, "cltt {cltt} vs now {now}");
    let expiry = r[0]["expiry"].as_u64().unwrap() as u32;
    assert!(
        expiry > now + 3000 && expiry <= now + 3600,
        "expiry {expiry}"
    );

    // By client-id.
    let r = bulk_json(s.tcp, &["--client-id", &hex(b"\x01bulk-c")]);
    assert_eq!(ips_of(&r), BTreeSet::from([ip_c]));
    assert_eq!(r[0]["client_id"], hex(b"\x01bulk-c"));

    // By remote-id and by relay-id: both bindings of line 1.
    let r = bulk_json(s.tcp, &["--remote-id", &hex(b"r-1")]);
    assert_eq!(ips_of(&r), BTreeSet::from([ip_a, ip_b]));
    let r = bulk_json(s.tcp, &["--relay-id", &hex(b"relay-S")]);
    assert_eq!(ips_of(&r), BTreeSet::from([ip_c]));

    // Nothing matches: DONE alone, exit 0, no records.
    let r = bulk_json(s.tcp, &["--remote-id", &hex(b"nobody")]);
    assert!(r.is_empty());

    // All: 65,521 configured addresses, three of them ACTIVE.
    let r = bulk_json(s.tcp, &["--all"]);
    assert_eq!(r.len(), 65_521);
    let active: BTreeSet<Ipv4Addr> = r
        .iter()
        .filter(|x| x["type"] == "DHCPLEASEACTIVE")
        .map(|x| x["ip"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(active, BTreeSet::from([ip_a, ip_b, ip_c]));
    assert!(r
        .iter()
        .filter(|x| x["type"] == "DHCPLEASEUNASSIGNED")
        .all(|x| x["state"] == "AVAILABLE"));

    // The same answers on the wire, checked message by message.
    let mut conn = RawConn::connect(s.tcp);
    let mut q = bulk_query(0x5001);
    q.htype = 1;
    q.hlen = 6;
    q.chaddr[..6].copy_from_slice(&a.chaddr);
    conn.send(&q);
    let ans = conn.until_done(0x5001);
    check_answer_rules(&ans);
    assert_eq!(ans.ips(), vec![ip_a]);
    assert_eq!(ans.status(), None, "success: DONE without a status");
    let m = &ans.replies[0];
    assert_eq!(m.hw_addr(), &a.chaddr);
    assert!(
        m.options
            .iter()
            .any(|o| matches!(o, DhcpOption::ClientId(id) if id == b"\x01bulk-a")),
        "client-id asked for and returned: {m:?}"
    );
    assert!(
        opt_u32(m, 91).is_some() && opt_u32(m, 51).is_some(),
        "{m:?}"
    );
    drop(server);
}

#[test]
fn current_bindings_only_for_keyed_queries_and_released_ones_show_in_all() {
    require_root();
    let s = Setup::new();
    let server = s.spawn(&s.config(None, ""));
    let mut relay = s.relay_client();
    let a = TestClient::new(0xB101).with_client_id(b"\x01bulk-rel");
    let ip = dora(
        &mut relay,
        &a,
        Some(&rai(&[(RelayAgentInfo::REMOTE_ID, b"r-rel")])),
    );
    relay
        .release(&a, ip, Ipv4Addr::LOCALHOST)
        .expect("send RELEASE");
    let db = server.db_path();
    leaseline_test_support::wait_for_binding(&db, ip, Duration::from_secs(10), |b| {
        b.state == leaseline_test_support::DhcpState::Released
    });
    // RFC 6926 §8.2: MAC, client-id, remote-id queries return current
    // bindings (in DHCPLEASEACTIVE); a released address is none.
    assert!(bulk_json(s.tcp, &["--mac", &mac_of(&a)]).is_empty());
    assert!(bulk_json(s.tcp, &["--client-id", &hex(b"\x01bulk-rel")]).is_empty());
    assert!(bulk_json(s.tcp, &["--remote-id", &hex(b"r-rel")]).is_empty());
    // Query for all: DHCPLEASEUNASSIGNED with dhcp-state RELEASED.
    let r = bulk_json(s.tcp, &["--all"]);
    let rec = r
        .iter()
        .find(|x| x["ip"] == ip.to_string())
        .expect("the released address");
    assert_eq!(rec["type"], "DHCPLEASEUNASSIGNED");
    assert_eq!(rec["state"], "RELEASED");
    assert_eq!(
        rec["mac"],
        mac_of(&a),
        "information about the last client (§7.3)"
    );
}

#[test]
fn time_window_selects_by_cltt_or_start_of_state() {
    require_root();
    let s = Setup::new();
    let _server = s.spawn(&s.config(None, ""));
    let mut relay = s.relay_client();
    let early: Vec<Ipv4Addr> = (0..3)
        .map(|i| dora(&mut relay, &TestClient::new(0xB200 + i), None))
        .collect();
    // Next second on the server's clock (polling with a deadline).
    let t0 = unix_now();
    let t = wait_until("the clock's next second", Duration::from_secs(3), || {
        (unix_now() > t0).then(unix_now)
    });
    let late: Vec<Ipv4Addr> = (0..2)
        .map(|i| dora(&mut relay, &TestClient::new(0xB210 + i), None))
        .collect();
    let set = |v: &[Ipv4Addr]| v.iter().copied().collect::<BTreeSet<_>>();

    let ts = t.to_string();
    let before = (t - 1).to_string();
    // On or after t: the late ones only (with a window, addresses never
    // leased have no times and do not match).
    assert_eq!(
        ips_of(&bulk_json(s.tcp, &["--all", "--since", &ts])),
        set(&late)
    );
    // On or before t - 1: the early ones only.
    assert_eq!(
        ips_of(&bulk_json(s.tcp, &["--all", "--until", &before])),
        set(&early)
    );
    // A window around both.
    let all: BTreeSet<Ipv4Addr> = early.iter().chain(&late).copied().collect();
    let from = (t - 120).to_string();
    let to = (t + 120).to_string();
    assert_eq!(
        ips_of(&bulk_json(
            s.tcp,
            &["--all", "--since", &from, "--until", &to]
        )),
        all
    );
    // Qualifiers apply to keyed queries too; RFC 3339 is accepted.
    let mac = mac_of(&TestClient::new(0xB200));
    assert_eq!(
        ips_of(&bulk_json(s.tcp, &["--mac", &mac, "--until", &before])),
        BTreeSet::from([early[0]])
    );
    let rfc3339 = humantime_rfc3339(t);
    assert!(bulk_json(s.tcp, &["--mac", &mac, "--since", &rfc3339]).is_empty());
}

fn humantime_rfc3339(t: u32) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn query_for_all_answers_each_configured_address_exactly_once() {
    require_root();
    let s = Setup::new();
    // Two subnets; adjacent pools; a reservation outside the pools and one
    // inside a pool (answered once).
    let subnets = r#"[[subnet]]
prefix = "10.1.0.0/24"
pools = ["10.1.0.10-10.1.0.29", "10.1.0.30-10.1.0.40"]
relay_addresses = ["@RELAY@"]
lease_time = 3600
[[subnet.reservation]]
ip = "10.1.0.5"
mac = "02:11:00:00:b3:99"
[[subnet.reservation]]
ip = "10.1.0.20"
mac = "02:11:00:00:b3:98"

[[subnet]]
prefix = "10.2.0.0/24"
pools = ["10.2.0.100-10.2.0.109"]
relay_addresses = ["127.0.0.254"]
lease_time = 3600
"#;
    let mut server = s.spawn(&s.config(Some(subnets), ""));
    let mut relay = s.relay_client();
    let mut leased = Vec::new();
    for i in 0..5 {
        leased.push(dora(&mut relay, &TestClient::new(0xB300 + i), None));
    }
    // The reserved client gets its reservation.
    let reserved = TestClient {
        chaddr: [0x02, 0x11, 0, 0, 0xb3, 0x99],
        client_id: None,
    };
    assert_eq!(
        dora(&mut relay, &reserved, None),
        Ipv4Addr::new(10, 1, 0, 5)
    );
    let released = leased[0];
    relay
        .release(&TestClient::new(0xB300), released, Ipv4Addr::LOCALHOST)
        .unwrap();
    leaseline_test_support::wait_for_binding(
        &server.db_path(),
        released,
        Duration::from_secs(10),
        |b| b.state == leaseline_test_support::DhcpState::Released,
    );

    let mut configured: BTreeSet<Ipv4Addr> =
        (10..=40).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    configured.insert(Ipv4Addr::new(10, 1, 0, 5));
    configured.extend((100..=109).map(|i| Ipv4Addr::new(10, 2, 0, i)));

    let mut conn = RawConn::connect(s.tcp);
    conn.send(&bulk_query(0xA11));
    let ans = conn.until_done(0xA11);
    check_answer_rules(&ans);
    assert_eq!(ans.status(), None);
    let by_ip = ans.by_ip(); // panics on an address answered twice
    assert_eq!(by_ip.keys().copied().collect::<BTreeSet<_>>(), configured);
    assert_eq!(
        ans.replies.len(),
        configured.len(),
        "each address exactly once"
    );
    for (ip, (t, state)) in &by_ip {
        let want = if *ip == released {
            (MessageType::LeaseUnassigned, Some(4))
        } else if leased.contains(ip) || *ip == Ipv4Addr::new(10, 1, 0, 5) {
            (MessageType::LeaseActive, Some(2))
        } else {
            (MessageType::LeaseUnassigned, Some(1))
        };
        assert_eq!((*t, *state), want, "{ip}");
    }
    // Ascending order (not required by the RFC; the walk is a cursor).
    let ips = ans.ips();
    assert!(ips.windows(2).all(|w| w[0] < w[1]));

    // A pool removed from the config: its stored bindings are still
    // answered (the server holds them), the rest of it no longer is.
    let text = server
        .config_text()
        .replace(r#""10.1.0.10-10.1.0.29", "#, "");
    std::fs::write(server.config_path(), text).unwrap();
    server.restart();
    let mut conn = RawConn::connect(s.tcp);
    conn.send(&bulk_query(0xA12));
    let ans = conn.until_done(0xA12);
    let got: BTreeSet<Ipv4Addr> = ans.ips().into_iter().collect();
    let mut want: BTreeSet<Ipv4Addr> = (30..=40).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    want.insert(Ipv4Addr::new(10, 1, 0, 5));
    want.insert(Ipv4Addr::new(10, 1, 0, 20)); // still reserved
    want.extend((100..=109).map(|i| Ipv4Addr::new(10, 2, 0, i)));
    want.extend(leased.iter().copied()); // stored rows, configured or not
    assert_eq!(got, want);
    assert_eq!(ans.replies.len(), want.len());
}

#[test]
fn refusals_of_section_8_2_end_with_done_and_a_status() {
    require_root();
    let s = Setup::new();
    let server = s.spawn(&s.config(None, ""));
    let mut conn = RawConn::connect(s.tcp);
    type Edit = Box<dyn Fn(&mut leaseline_wire::Message)>;
    let cases: Vec<(u32, Edit, StatusCode)> = vec![
        (
            1,
            Box::new(|m| m.ciaddr = Ipv4Addr::new(10, 0, 0, 10)),
            StatusCode::MalformedQuery,
        ),
        (
            2,
            Box::new(|m| m.yiaddr = Ipv4Addr::new(10, 0, 0, 10)),
            StatusCode::MalformedQuery,
        ),
        (
            3,
            Box::new(|m| m.siaddr = Ipv4Addr::new(10, 0, 0, 10)),
            StatusCode::MalformedQuery,
        ),
        (
            4,
            // MAC and client-id: two primary queries.
            Box::new(|m| {
                m.htype = 1;
                m.hlen = 6;
                m.chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
                m.options.push(DhcpOption::ClientId(vec![1, 2, 3]));
            }),
            StatusCode::NotAllowed,
        ),
        (
            5,
            // remote-id and relay-id: two primary queries.
            Box::new(|m| {
                m.options.push(DhcpOption::RelayAgentInfo(rai(&[
                    (RelayAgentInfo::REMOTE_ID, b"x"),
                    (RelayAgentInfo::RELAY_ID, b"y"),
                ])))
            }),
            StatusCode::NotAllowed,
        ),
        (
            6,
            // A VPN other than the default (RFC 6607 type 0, "blue").
            Box::new(|m| m.options.push(DhcpOption::Vss(b"\x00blue".to_vec()))),
            StatusCode::NotAllowed,
        ),
        (
            7,
            // Query by circuit-id: not a query Leaseline allows.
            Box::new(|m| {
                m.options.push(DhcpOption::RelayAgentInfo(rai(&[(
                    RelayAgentInfo::CIRCUIT_ID,
                    b"eth0",
                )])))
            }),
            StatusCode::NotAllowed,
        ),
    ];
    let mut statuses = HashMap::new();
    for (xid, edit, want) in &cases {
        let mut q = bulk_query(*xid);
        edit(&mut q);
        conn.send(&q);
        let ans = conn.until_done(*xid);
        assert!(
            ans.replies.is_empty(),
            "xid {xid}: no binding before the refusal"
        );
        check_answer_rules(&ans);
        let (code, text) = ans.status().expect("a status");
        assert_eq!(code, *want, "xid {xid}: {text}");
        statuses.insert(*xid, text);
    }
    // Refusals do not close the connection: a good query still runs.
    let mut q = bulk_query(99);
    q.options.push(DhcpOption::Vss(vec![255])); // the default VPN: fine
    q.options.push(DhcpOption::ClientId(b"\x01nobody".to_vec()));
    conn.send(&q);
    assert_eq!(conn.until_done(99).status(), None);
    // Each refusal is logged with the peer and the reason (the server's
    // output reaches the test through a pipe: awaited, not assumed there).
    server.wait_for_log_count(
        0,
        &["bulk query refused"],
        cases.len(),
        Duration::from_secs(10),
    );
    let refusals = server.logs_containing(&["bulk query refused"]);
    assert_eq!(refusals.len(), cases.len(), "{refusals:#?}");
    assert!(
        refusals.iter().all(|l| l.contains("127.0.0.1:")),
        "{refusals:#?}"
    );
}

/// The CLI's exit statuses: 3 with the status and its text when the server
/// refuses, 4 when the connection fails, 1 for a bad value, 2 (clap) for a
/// command-line usage error. A scripted peer plays the server
/// for the refusal (no real query makes our server refuse what the CLI sends).
#[test]
fn cli_exit_status_tells_refusal_and_connection_failure_apart() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = l.accept().unwrap();
        let mut d = leaseline_wire::FrameDecoder::new(65535);
        let mut buf = [0u8; 2048];
        let q = loop {
            let n = s.read(&mut buf).unwrap();
            d.extend(&buf[..n]);
            if let Some(f) = d.next_frame().unwrap() {
                break leaseline_wire::Message::decode(f).unwrap();
            }
        };
        let done = leaseline_proto::build_done(
            q.xid,
            Some((
                StatusCode::NotAllowed,
                "requestor may not ask for everything",
            )),
            unix_now(),
            Some(Ipv4Addr::LOCALHOST),
        );
        let mut out = Vec::new();
        leaseline_wire::encode_frame(&done.to_bytes().unwrap(), &mut out).unwrap();
        s.write_all(&out).unwrap();
    });
    let out = run_bulk(&["--server", &addr.to_string(), "--all"]);
    peer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("NotAllowed (4)") && err.contains("requestor may not ask"),
        "{err}"
    );

    // Nobody listening: connection failure.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let out = run_bulk(&["--server", &closed.to_string(), "--all"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A peer that closes before DONE: connection failure too.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || drop(l.accept().unwrap()));
    let out = run_bulk(&["--server", &addr.to_string(), "--all"]);
    peer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("before DHCPLEASEQUERYDONE") || err.contains("reset"),
        "{err}"
    );

    // A bad value: 1; a usage error (no query kind): 2, from clap.
    let out = run_bulk(&["--server", "127.0.0.1", "--all", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run_bulk(&["--server", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn csv_and_text_outputs_and_summary() {
    require_root();
    let s = Setup::new();
    let _server = s.spawn(&s.config(None, ""));
    let mut relay = s.relay_client();
    let a = TestClient::new(0xB501);
    let ip = dora(&mut relay, &a, None);
    let srv = s.tcp.to_string();
    let out = run_bulk(&["--server", &srv, "--mac", &mac_of(&a), "--csv"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ip,type,state,mac,"), "{text}");
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with(&format!("{ip},DHCPLEASEACTIVE,ACTIVE,{}", mac_of(&a))),
        "{text}"
    );
    let out = run_bulk(&["--server", &srv, "--mac", &mac_of(&a)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&ip.to_string()) && text.contains("ACTIVE"),
        "{text}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("1 binding(s) (ACTIVE 1)"), "summary: {err}");
    // Not a terminal: no progress line.
    assert!(!err.contains('\r'), "{err:?}");
}

/// The bytes of `m` with `raw` (an option as the wire carries it) spliced in
/// before END: a query the encoder would refuse to write.
fn with_raw_option(m: &leaseline_wire::Message, raw: &[u8]) -> Vec<u8> {
    let mut b = m.to_bytes().expect("encode");
    // Options start after the fixed header and the cookie; walk them to END.
    let mut at = 240;
    while b[at] != 255 {
        at += if b[at] == 0 {
            1
        } else {
            2 + usize::from(b[at + 1])
        };
    }
    b.splice(at..at, raw.iter().copied());
    b
}

/// Kea #4549 (issue 16 item 5): a bulk query whose client-id is malformed
/// (no bytes, or only a type byte: RFC 2132 §9.14 asks for at least two)
/// gets DHCPLEASEQUERYDONE with MalformedQuery, not silence or a crash, over
/// real TCP; then the server still answers a good query on a new
/// connection.
#[test]
fn a_malformed_client_id_in_a_bulk_query_gets_malformed_query() {
    require_root();
    let s = Setup::new();
    let mut server = s.spawn(&s.config(None, ""));
    for (xid, raw) in [(0xC1D0u32, &[61u8, 0][..]), (0xC1D1, &[61, 1, 1][..])] {
        let mut conn = RawConn::connect(s.tcp);
        let mut framed = Vec::new();
        leaseline_wire::encode_frame(&with_raw_option(&bulk_query(xid), raw), &mut framed)
            .expect("frame");
        conn.send_bytes(&framed).expect("send");
        let done = conn
            .recv(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("option {raw:?}: no answer ({e:?})"));
        assert_eq!(done.xid, xid, "option {raw:?}");
        assert_eq!(
            done.message_type(),
            Some(MessageType::LeaseQueryDone),
            "option {raw:?}: {done:?}"
        );
        assert_eq!(
            status_of(&done).map(|(c, _)| c),
            Some(StatusCode::MalformedQuery),
            "option {raw:?}: {done:?}"
        );
        assert!(conn.closed_within(Duration::from_secs(10)));
    }
    server.assert_running();
    let mut conn = RawConn::connect(s.tcp);
    conn.send(&bulk_query(0xC1D2));
    let ans = conn.until_done(0xC1D2);
    assert_eq!(ans.status(), None, "a good query is still answered");
}
