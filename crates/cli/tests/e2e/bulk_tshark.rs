#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! tshark as an independent decoder of what the Bulk Leasequery server
//! sends: every reply of every kind of query (bindings ACTIVE, RELEASED and
//! AVAILABLE, with option 82 and client-id; DONE after success, after
//! nothing found, after each refusal) is unframed and written to a pcap as
//! a UDP datagram from port 67 (tshark 4.0 dissects DHCP on UDP only).
//! tshark must decode each one as the DHCP message type we sent, with no
//! malformed packet and no expert info above Note.
//!
//! The relay address is the test's own (`Setup::new`).

use crate::bulk_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bulk_support::*;
use leaseline_test_support::{require_root, require_tool, TestClient};
use leaseline_wire::{DhcpOption, Message, RelayAgentInfo};

const SMALL: &str = r#"[[subnet]]
prefix = "10.7.0.0/24"
pools = ["10.7.0.10-10.7.0.60"]
relay_addresses = ["@RELAY@"]
lease_time = 3600
"#;

/// A classic pcap (LINKTYPE_ETHERNET) of IPv4/UDP datagrams 127.0.0.1:67 → 127.0.0.1:68.
fn write_pcap(path: &Path, payloads: &[Vec<u8>]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic (µs)
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    f.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    f.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, p) in payloads.iter().enumerate() {
        let udp_len = 8 + p.len();
        let ip_len = 20 + udp_len;
        let mut pkt = Vec::with_capacity(14 + ip_len);
        pkt.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let mut ip = vec![
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            (i >> 8) as u8,
            i as u8,
            0x40,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ];
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&67u16.to_be_bytes());
        pkt.extend_from_slice(&68u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&0u16.to_be_bytes()); // no checksum
        pkt.extend_from_slice(p);
        f.extend_from_slice(&(i as u32).to_le_bytes()); // ts_sec
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&pkt);
    }
    std::fs::write(path, f).expect("write pcap");
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new(require_tool("tshark"))
        .args(args)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_decodes_every_bulk_reply_cleanly() {
    require_root();
    require_tool("tshark");
    let s = Setup::new();
    let server = s.spawn(&s.config(Some(SMALL), ""));
    let mut relay = s.relay_client();
    let a = TestClient::new(0xD001).with_client_id(b"\x01tshark-bulk");
    let b = TestClient::new(0xD002);
    let line = rai(&[
        (RelayAgentInfo::CIRCUIT_ID, b"ge-0/0/1"),
        (RelayAgentInfo::REMOTE_ID, b"cpe-42"),
        (RelayAgentInfo::RELAY_ID, b"relay-7"),
    ]);
    let ip_a = dora(&mut relay, &a, Some(&line));
    let ip_b = dora(&mut relay, &b, Some(&line));
    relay.release(&b, ip_b, Ipv4Addr::LOCALHOST).unwrap();
    leaseline_test_support::wait_for_binding(
        &server.db_path(),
        ip_b,
        Duration::from_secs(10),
        |x| x.state == leaseline_test_support::DhcpState::Released,
    );

    let mut conn = RawConn::connect(s.tcp);
    let mut queries: Vec<Message> = Vec::new();
    queries.push(bulk_query(1)); // all: ACTIVE, RELEASED, AVAILABLE
    let mut q = bulk_query(2);
    q.htype = 1;
    q.hlen = 6;
    q.chaddr[..6].copy_from_slice(&a.chaddr);
    queries.push(q);
    let mut q = bulk_query(3);
    q.options
        .push(DhcpOption::ClientId(b"\x01tshark-bulk".to_vec()));
    queries.push(q);
    let mut q = bulk_query(4);
    q.options.push(DhcpOption::RelayAgentInfo(rai(&[(
        RelayAgentInfo::REMOTE_ID,
        b"cpe-42",
    )])));
    queries.push(q);
    let mut q = bulk_query(5);
    q.options.push(DhcpOption::RelayAgentInfo(rai(&[(
        RelayAgentInfo::RELAY_ID,
        b"relay-7",
    )])));
    queries.push(q);
    let mut q = bulk_query(6); // a window: stored rows only
    q.options.push(DhcpOption::QueryStartTime(1));
    q.options.push(DhcpOption::QueryEndTime(u32::MAX - 1));
    queries.push(q);
    let mut q = bulk_query(7); // nothing found
    q.options.push(DhcpOption::ClientId(b"\x01nobody".to_vec()));
    queries.push(q);
    let mut q = bulk_query(8); // MalformedQuery
    q.ciaddr = ip_a;
    queries.push(q);
    let mut q = bulk_query(9); // NotAllowed
    q.options.push(DhcpOption::Vss(b"\x00blue".to_vec()));
    queries.push(q);

    let mut raw = Vec::new();
    let mut types = Vec::new();
    for q in &queries {
        conn.send(q);
        let ans = conn.until_done(q.xid);
        check_answer_rules(&ans);
        for m in ans.replies.iter().chain(ans.done.iter()) {
            types.push(m.message_type().unwrap() as u8);
        }
        raw.extend(ans.raw);
    }
    assert!(raw.len() > 60, "{} messages", raw.len());
    for t in [11u8, 13, 15] {
        assert!(types.contains(&t), "message type {t} covered");
    }

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bulk.pcap");
    write_pcap(&pcap, &raw);
    let p = pcap.to_str().unwrap();

    // Each packet decodes as DHCP with the message type we sent.
    let fields = tshark(&["-r", p, "-T", "fields", "-e", "dhcp.option.dhcp"]);
    let decoded: Vec<u8> = fields
        .lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("no DHCP message type in `{l}`"))
        })
        .collect();
    assert_eq!(decoded, types, "tshark's message types");
    // Options 151..157 are named, and the values we set come through.
    let verbose = tshark(&["-r", p, "-V"]);
    for needle in [
        "(152) Leasequery Base Time",
        "(153) Leasequery Start Time of State",
        "(156) Leasequery Dhcp State",
        "(151) Leasequery Status code",
        "Status Code: MalformedQuery (3)",
        "Status Code: NotAllowed (4)",
        "Dhcp State: Released (4)",
        "Dhcp State: Active (2)",
        "Dhcp State: Available (1)",
        "Agent Remote ID: 6370652d3432",
        "Relay Agent Identifier: 72656c61792d37",
    ] {
        assert!(verbose.contains(needle), "tshark -V lacks `{needle}`");
    }
    assert!(
        !verbose.contains("[Malformed Packet"),
        "malformed packet:\n{verbose}"
    );
    // No malformed packet, no expert info above Note. (tshark adds a Note,
    // "Client address not given", to messages with hlen 0: DONE, and
    // replies about addresses never leased, which have no client.)
    let flagged = tshark(&[
        "-r",
        p,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 6291456",
    ]);
    assert!(
        flagged.trim().is_empty(),
        "tshark flags packets:\n{flagged}"
    );
    let expert = tshark(&["-r", p, "-q", "-z", "expert,warn"]);
    assert!(
        !expert.contains("Warns (") && !expert.contains("Errors ("),
        "expert info:\n{expert}"
    );
}
