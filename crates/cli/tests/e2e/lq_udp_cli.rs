#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline query` as a program: --help documents the exit statuses,
//! usage errors are told apart from answers, and against a fake server on
//! loopback: retransmission with backoff under --timeout, replies matched
//! by xid (strangers ignored), giaddr and the reply port, --bind.

use crate::lq_udp_common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use leaseline_proto::{
    build_leaseactive, build_leaseunknown, parse_leasequery, Binding, DhcpState, ExtraOptions,
};
use leaseline_wire::Message;
use lq_udp_common::*;

#[test]
fn help_documents_the_exit_statuses() {
    let out = Command::new(BIN)
        .args(["query", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "0  DHCPLEASEACTIVE",
        "3  DHCPLEASEUNASSIGNED",
        "4  DHCPLEASEUNKNOWN",
        "5  no answer",
        "1  error",
        "2  command-line usage error",
        "--ip",
        "--mac",
        "--client-id",
        "--remote-id",
        "--json",
        "--timeout",
        "--bind",
    ] {
        assert!(
            help.contains(needle),
            "`{needle}` missing from --help:\n{help}"
        );
    }
}

#[test]
fn usage_errors_are_not_answers() {
    let s = "127.0.0.1:9";
    let run = |args: &[&str]| {
        let mut all = vec!["query", "--server", s];
        all.extend_from_slice(args);
        Command::new(BIN).args(&all).output().unwrap()
    };
    // No key, two keys: usage errors (clap, 2).
    assert_eq!(run(&[]).status.code(), Some(EXIT_USAGE));
    assert_eq!(
        run(&["--ip", "10.0.0.1", "--mac", "00:01:02:03:04:05"])
            .status
            .code(),
        Some(EXIT_USAGE)
    );
    assert_eq!(run(&["--ip", "not-an-ip"]).status.code(), Some(EXIT_USAGE));
    // Bad values: errors (1), with a message.
    for args in [
        &["--mac", "00:zz"][..],
        &["--mac", "00:00:00:00:00:00"],
        &["--client-id", ""],
        &["--remote-id", "abc"],
        &["--ip", "10.0.0.1", "--timeout", "0"],
        &["--ip", "10.0.0.1", "--prl", "51,999"],
        &["--ip", "0.0.0.0"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(EXIT_ERROR), "{args:?}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("leaseline:"),
            "{args:?}: {o:?}"
        );
    }
    let o = Command::new(BIN)
        .args(["query", "--server", "::1", "--ip", "10.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(EXIT_ERROR), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("IPv4"), "{o:?}");
}

#[test]
fn no_answer_after_backoff_within_the_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap();
    let r = query(
        server,
        &["--client-id", "01:02:03", "--timeout", "3.5", "--json"],
    );
    r.expect_code(EXIT_NO_ANSWER);
    assert!(
        r.took >= Duration::from_millis(3400) && r.took < Duration::from_secs(6),
        "{r:?}"
    );
    let v = r.json();
    assert_eq!(v["error"], "no answer", "{v}");
    assert_eq!(v["attempts"], 3, "{v}");
    // Sent at 0 s, 1 s, 3 s: the same query each time.
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let mut got = Vec::new();
    while let Ok((n, from)) = silent.recv_from(&mut buf) {
        got.push((buf[..n].to_vec(), from));
    }
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|(d, _)| d == &got[0].0),
        "retransmissions are identical"
    );
    assert!(got[0].0.len() >= 300, "padded to the BOOTP minimum");
    let m = Message::decode(&got[0].0).unwrap();
    let q = parse_leasequery(&m).expect("a valid DHCPLEASEQUERY");
    assert_eq!(q.giaddr, Ipv4Addr::LOCALHOST);
    assert_eq!(q.xid, v["xid"].as_u64().unwrap() as u32);
    // Readable mode says the same on stderr, nothing on stdout.
    let r = query(server, &["--ip", "10.0.0.1", "--timeout", "0.3"]);
    r.expect_code(EXIT_NO_ANSWER);
    assert!(
        r.stdout.is_empty() && r.stderr.contains("no answer from"),
        "{r:?}"
    );
}

/// A fake leasequery server: for each query, first a reply with the wrong
/// xid and a datagram that is not DHCP, then the answer built by the proto
/// crate. Returns (query source, query) for each query handled.
fn fake_server(
    sock: UdpSocket,
    answers: usize,
    active: bool,
) -> std::thread::JoinHandle<Vec<(SocketAddr, Message)>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..answers {
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            let m = Message::decode(&buf[..n]).unwrap();
            let q = parse_leasequery(&m).unwrap();
            let dest = SocketAddr::from((q.giaddr, from.port()));
            let mut wrong = q.clone();
            wrong.xid = q.xid.wrapping_add(1);
            sock.send_to(
                &build_leaseunknown(&wrong, Ipv4Addr::LOCALHOST)
                    .to_bytes()
                    .unwrap(),
                dest,
            )
            .unwrap();
            sock.send_to(b"not dhcp at all", dest).unwrap();
            let reply = if active {
                let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, 42));
                b.state = DhcpState::Active;
                b.htype = 1;
                b.chaddr = vec![2, 0, 0, 0, 0, 0x42];
                b.cltt = 1_000;
                b.state_since = 1_000;
                b.expiry = 2_000;
                b.lease_time = 1_000;
                b.renew_time = Some(500);
                b.rebind_time = Some(875);
                build_leaseactive(
                    &q,
                    &b,
                    &[Ipv4Addr::new(10, 0, 0, 43)],
                    1_010,
                    Ipv4Addr::LOCALHOST,
                    &ExtraOptions::NONE,
                )
            } else {
                build_leaseunknown(&q, Ipv4Addr::LOCALHOST)
            };
            sock.send_to(&reply.to_bytes().unwrap(), dest).unwrap();
            seen.push((from, m));
        }
        seen
    })
}

#[test]
fn answers_are_matched_by_xid_and_printed() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = sock.local_addr().unwrap();
    let h = fake_server(sock, 3, true);
    let v = query_json(server, &["--mac", "02:00:00:00:00:42"], EXIT_ACTIVE);
    assert_eq!(v["type"], "DHCPLEASEACTIVE");
    assert_eq!(v["ip"], "10.0.0.42");
    assert_eq!(v["lease_time_remaining"], 990);
    assert_eq!(v["cltt_age"], 10);
    assert_eq!(v["associated_ips"], serde_json::json!(["10.0.0.43"]));
    assert_eq!(v["attempts"], 1);
    let t = query(server, &["--mac", "02:00:00:00:00:42"]);
    t.expect_code(EXIT_ACTIVE);
    assert_eq!(
        t.stdout,
        "DHCPLEASEACTIVE\n  ip                10.0.0.42\n  mac               02:00:00:00:00:42 (htype 1)\n  lease remaining   16m30s\n  renewal (T1) in   8m10s\n  rebinding (T2) in 14m25s\n  last transaction  10s ago\n  associated ips    10.0.0.43\n  server-id         127.0.0.1\n"
    );
    // --epoch: the durations in seconds.
    let t = query(server, &["--mac", "2:0:0:0:0:42", "--epoch"]);
    t.expect_code(EXIT_ACTIVE);
    assert_eq!(
        t.stdout,
        "DHCPLEASEACTIVE\n  ip                10.0.0.42\n  mac               02:00:00:00:00:42 (htype 1)\n  lease remaining   990s\n  renewal (T1) in   490s\n  rebinding (T2) in 865s\n  last transaction  10s ago\n  associated ips    10.0.0.43\n  server-id         127.0.0.1\n"
    );
    let seen = h.join().unwrap();
    for (from, m) in &seen {
        assert_eq!(from.ip(), m.giaddr, "the query comes from giaddr");
    }
}

#[test]
fn bind_sets_the_source_and_giaddr() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = sock.local_addr().unwrap();
    let h = fake_server(sock, 2, false);
    // A fixed local port (the way ISC dhcpd needs it, there port 67).
    let port = leaseline_test_support::free_udp_port();
    let bind = format!("127.0.41.71:{port}");
    let v = query_json(server, &["--ip", "10.9.0.1", "--bind", &bind], EXIT_UNKNOWN);
    assert_eq!(v["giaddr"], "127.0.41.71");
    // --giaddr overrides (here equal to the bound address, so the answer arrives).
    let v = query_json(
        server,
        &[
            "--remote-id",
            "0a0b",
            "--bind",
            "127.0.41.72",
            "--giaddr",
            "127.0.41.72",
        ],
        EXIT_UNKNOWN,
    );
    assert_eq!(v["relay_agent_info"]["remote_id"], "0a0b", "{v}");
    let seen = h.join().unwrap();
    assert_eq!(seen[0].0, bind.parse::<SocketAddr>().unwrap());
    assert_eq!(seen[1].0.ip(), Ipv4Addr::new(127, 0, 41, 72));
}
