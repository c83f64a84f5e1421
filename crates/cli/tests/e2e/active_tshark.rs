#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! tshark as an independent decoder of every message on the leasequery TCP
//! connection: what the server sends (DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED,
//! DHCPLEASEQUERYSTATUS with each status an active query can end or go on
//! with, DHCPLEASEQUERYDONE, DHCPTLS) and what the requestor sends
//! (DHCPACTIVELEASEQUERY, DHCPBULKLEASEQUERY, DHCPTLS).
//!
//! tshark 4.0 dissects DHCP on UDP only, so the 2-byte framing is stripped
//! and each message is written as a UDP port 67 datagram into a pcap of our
//! own; tshark must decode every one without a malformed-packet mark or an
//! expert warning, name its type as we do, and read options 151–157 with
//! the values we put there.
//!
//! Relay address (giaddr): `loopback_relay` (test-support).

use crate::active_support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use active_support::*;
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    require_tool, unix_now, wait_for_binding, DhcpState, RelayClient, TestClient,
};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, StatusCode, SubOption};

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const SECOND: Duration = Duration::from_secs(1);

/// DORA with option 82 (circuit-id, remote-id) and a client-id, so the
/// replies carry options 61 and 82 too.
fn dora_with_relay_info(rc: &mut RelayClient, n: u32) -> (TestClient, Ipv4Addr, Ipv4Addr) {
    let client = TestClient::new(n).with_client_id(&[1, 2, 0x11, 0, 0, 0, n as u8]);
    let rai = RelayAgentInfo {
        sub_options: vec![
            SubOption {
                code: RelayAgentInfo::CIRCUIT_ID,
                data: b"eth0/1".to_vec(),
            },
            SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: vec![0xaa, 0xbb, n as u8],
            },
        ],
    };
    let mut d = rc.request_template(&client, MessageType::Discover);
    d.options.push(DhcpOption::RelayAgentInfo(rai.clone()));
    let offer = rc.exchange(&d, 3).expect("OFFER");
    let sid = offer
        .options
        .iter()
        .find_map(|o| match o {
            DhcpOption::ServerId(a) => Some(*a),
            _ => None,
        })
        .expect("server-id in the OFFER");
    let mut r = rc.request_template(&client, MessageType::Request);
    r.options.push(DhcpOption::RequestedIp(offer.yiaddr));
    r.options.push(DhcpOption::ServerId(sid));
    r.options.push(DhcpOption::RelayAgentInfo(rai));
    let ack = rc.exchange(&r, 3).expect("ACK");
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    (client, offer.yiaddr, sid)
}

/// A pcap (LINKTYPE_RAW: IPv4 packets) with each message as a UDP datagram.
fn write_pcap(path: &Path, frames: &[(bool, Vec<u8>)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    let now = unix_now();
    for (i, (from_server, body)) in frames.iter().enumerate() {
        let (src, dst, sport, dport) = if *from_server {
            ([127, 0, 0, 1], [127, 0, 0, 2], 67u16, 67u16)
        } else {
            ([127, 0, 0, 2], [127, 0, 0, 1], 67u16, 67u16)
        };
        let udp_len = 8 + body.len();
        let total = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut pkt = ip;
        pkt.extend_from_slice(&sport.to_be_bytes());
        pkt.extend_from_slice(&dport.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&0u16.to_be_bytes()); // no checksum (IPv4 allows it)
        pkt.extend_from_slice(body);
        out.extend_from_slice(&now.to_le_bytes());
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        out.extend_from_slice(&pkt);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// What we expect tshark to read from one message.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Expect {
    msg_type: u8,
    status: Option<u8>,
    /// Raw u32 values of options 152..155.
    base_time: Option<u32>,
    start_time_of_state: Option<u32>,
    query_start_time: Option<u32>,
    query_end_time: Option<u32>,
    dhcp_state: Option<u8>,
    /// Every option code, in wire order (53 first), without 255.
    codes: Vec<u8>,
}

fn expect_of(m: &Message) -> Expect {
    let mut e = Expect {
        msg_type: m.message_type().map(|t| t as u8).unwrap_or(0),
        ..Expect::default()
    };
    for o in &m.options {
        e.codes.push(o.code());
        match o {
            DhcpOption::StatusCode(c, _) => e.status = Some(c.as_u8()),
            DhcpOption::BaseTime(t) => e.base_time = Some(*t),
            DhcpOption::StartTimeOfState(t) => e.start_time_of_state = Some(*t),
            DhcpOption::QueryStartTime(t) => e.query_start_time = Some(*t),
            DhcpOption::QueryEndTime(t) => e.query_end_time = Some(*t),
            DhcpOption::DhcpState(s) => e.dhcp_state = Some(*s),
            _ => {}
        }
    }
    e
}

/// One `<field>` of tshark's PDML output.
#[derive(Debug)]
struct Field {
    name: String,
    showname: String,
    show: String,
    /// The raw bytes, hex.
    value: String,
}

fn attr(line: &str, key: &str) -> String {
    let pat = format!(" {key}=\"");
    line.find(&pat)
        .map(|i| {
            let rest = &line[i + pat.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .unwrap_or_default()
}

/// The fields of each packet of a PDML document.
fn parse_pdml(pdml: &str) -> Vec<Vec<Field>> {
    let mut packets = Vec::new();
    for line in pdml.lines().map(str::trim) {
        if line.starts_with("<packet") {
            packets.push(Vec::new());
        } else if line.starts_with("<field ") {
            if let Some(p) = packets.last_mut() {
                p.push(Field {
                    name: attr(line, "name"),
                    showname: attr(line, "showname"),
                    show: attr(line, "show"),
                    value: attr(line, "value"),
                });
            }
        } else if line.starts_with("<proto name=\"_ws.malformed\"") {
            if let Some(p) = packets.last_mut() {
                p.push(Field {
                    name: "_ws.malformed".into(),
                    showname: attr(line, "showname"),
                    show: String::new(),
                    value: String::new(),
                });
            }
        }
    }
    packets
}

#[test]
fn tshark_decodes_every_message_we_send() {
    require_tool("tshark");
    let mut cfg = Config::new(*RELAY).active("idle_timeout = 1");
    cfg.pool = "10.0.0.10-10.0.0.40".into();
    let mut server = cfg.spawn();
    let mut rc = RelayClient::bind(*RELAY, cfg.dhcp).expect("bind the relay");
    let mut conns: Vec<Conn> = Vec::new();

    // Bindings in three states: ACTIVE, RELEASED, ABANDONED.
    let since = unix_now();
    let leases: Vec<_> = (0..3)
        .map(|i| dora_with_relay_info(&mut rc, 0x56_0000 + i))
        .collect();
    rc.release(&leases[1].0, leases[1].1, leases[1].2)
        .expect("release");
    rc.decline(&leases[2].0, leases[2].1, leases[2].2)
        .expect("decline");
    let db = server.db_path();
    wait_for_binding(&db, leases[1].1, 10 * SECOND, |b| {
        b.state == DhcpState::Released
    });
    wait_for_binding(&db, leases[2].1, 10 * SECOND, |b| {
        b.state == DhcpState::Abandoned
    });

    // Catch-up: LEASEACTIVE, LEASEUNASSIGNED x2, CatchUpComplete; then a
    // live update and a ConnectionActive keepalive. Kept open for SIGTERM.
    let mut main = Conn::connect(cfg.tcp);
    main.send(&active_query(
        0x75_0001,
        Some(since),
        &[
            1, 3, 6, 51, 54, 58, 59, 61, 82, 91, 151, 152, 153, 154, 155, 156, 157,
        ],
    ));
    let mut kinds = BTreeMap::new();
    loop {
        let (m, ev) = main.recv_event(10 * SECOND).expect("catch-up");
        *kinds.entry(m.message_type().map(|t| t.name())).or_insert(0) += 1;
        if matches!(
            ev,
            ActiveEvent::Status {
                code: StatusCode::CatchUpComplete,
                ..
            }
        ) {
            break;
        }
    }
    dora_with_relay_info(&mut rc, 0x56_0010);
    main.recv_event(10 * SECOND).expect("live update");
    main.expect_status(StatusCode::ConnectionActive, 5 * SECOND);

    // DataMissing.
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x75_0002, Some(1), prl::BINDINGS));
    c.expect_status(StatusCode::DataMissing, 5 * SECOND);
    conns.push(c);
    // MalformedQuery (query-end-time).
    let mut c = Conn::connect(cfg.tcp);
    let mut q = active_query(0x75_0003, Some(since), prl::BINDINGS);
    q.options.push(DhcpOption::QueryEndTime(unix_now()));
    c.send(&q);
    c.expect_closed(5 * SECOND);
    conns.push(c);
    // NotAllowed (second active query).
    let mut c = Conn::connect(cfg.tcp);
    c.send(&active_query(0x75_0004, None, prl::BINDINGS));
    c.send(&active_query(0x75_0005, None, prl::BINDINGS));
    c.expect_closed(5 * SECOND);
    conns.push(c);
    // DHCPTLS + TLSConnectionRefused.
    let mut c = Conn::connect(cfg.tcp);
    c.send(&tls_request(0x75_0006));
    c.expect_closed(5 * SECOND);
    conns.push(c);
    // Bulk: all addresses (LEASEACTIVE, LEASEUNASSIGNED for AVAILABLE too),
    // a time window, and a refused query; each ends with DONE.
    let mut c = Conn::connect(cfg.tcp);
    c.send(&bulk_all_query(0x75_0007, None, None));
    c.send(&bulk_all_query(
        0x75_0008,
        Some(since),
        Some(unix_now() + 5),
    ));
    c.send(&bulk_all_query(0x75_0009, Some(since), Some(since - 1)));
    let mut done = 0;
    while done < 3 {
        let m = c.recv(10 * SECOND).expect("bulk replies");
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            done += 1;
        }
    }
    conns.push(c);
    // QueryTerminated at shutdown.
    server.terminate();
    main.expect_status(StatusCode::QueryTerminated, 5 * SECOND);
    conns.push(main);

    let mut frames: Vec<(bool, Vec<u8>)> = Vec::new();
    for c in &conns {
        frames.extend(c.sent.iter().map(|f| (false, f.clone())));
        frames.extend(c.received.iter().map(|f| (true, f.clone())));
    }
    let expected: Vec<Expect> = frames
        .iter()
        .map(|(_, f)| expect_of(&Message::decode(f).expect("our own frames decode")))
        .collect();
    let mut types: BTreeMap<u8, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<u8, usize> = BTreeMap::new();
    for e in &expected {
        *types.entry(e.msg_type).or_insert(0) += 1;
        if let Some(s) = e.status {
            *statuses.entry(s).or_insert(0) += 1;
        }
    }
    eprintln!(
        "{} messages; by type {types:?}; by status {statuses:?}",
        frames.len()
    );
    for t in [11u8, 13, 14, 15, 16, 17, 18] {
        assert!(
            types.contains_key(&t),
            "no message of type {t} in the sample: {types:?}"
        );
    }
    for s in [2u8, 3, 4, 5, 6, 7, 8] {
        assert!(
            statuses.contains_key(&s),
            "no status {s} in the sample: {statuses:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("leasequery.pcap");
    write_pcap(&pcap, &frames);
    let out = Command::new(require_tool("tshark"))
        .arg("-r")
        .arg(&pcap)
        .args(["-n", "-T", "pdml"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = parse_pdml(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(packets.len(), frames.len(), "one packet per message");
    for (i, fields) in packets.iter().enumerate() {
        let e = &expected[i];
        let ctx = format!(
            "message {} from the {}: {e:?}\ntshark fields: {fields:#?}",
            i + 1,
            if frames[i].0 { "server" } else { "requestor" }
        );
        let all =
            |name: &str| -> Vec<&Field> { fields.iter().filter(|f| f.name == name).collect() };
        let one = |name: &str| all(name).into_iter().next();
        assert!(one("_ws.malformed").is_none(), "malformed: {ctx}");
        // Expert severities: 0x00400000 note, 0x00600000 warning, 0x00800000 error.
        for f in all("_ws.expert.severity") {
            let v: u32 = f.show.parse().unwrap_or(u32::MAX);
            assert!(
                v < 0x0060_0000,
                "expert info at warning or above ({}): {ctx}",
                f.show
            );
        }
        let mt = one("dhcp.option.dhcp").unwrap_or_else(|| panic!("no message type: {ctx}"));
        assert_eq!(mt.show, e.msg_type.to_string(), "{ctx}");
        // tshark names the type as we do ("Lease Query Status" for
        // DHCPLEASEQUERYSTATUS): compare without "DHCP", spaces and case.
        let name = MessageType::from_u8(e.msg_type).unwrap().name();
        let norm = |s: &str| s.to_ascii_lowercase().replace(' ', "").replace("dhcp", "");
        let shown = mt.showname.split('(').next().unwrap_or("");
        assert_eq!(
            norm(shown).trim_start_matches(':'),
            norm(name),
            "type name: {ctx}"
        );
        let codes: Vec<u8> = all("dhcp.option.type")
            .into_iter()
            .filter(|f| f.value != "ff")
            .map(|f| f.show.parse().unwrap_or(0))
            .collect();
        assert_eq!(codes, e.codes, "option codes: {ctx}");
        let raw = |name: &str| one(name).map(|f| u32::from_str_radix(&f.value, 16).expect("hex"));
        assert_eq!(
            raw("dhcp.option.bulk_lease.status_code"),
            e.status.map(u32::from),
            "{ctx}"
        );
        assert_eq!(
            raw("dhcp.option.bulk_lease.base_time"),
            e.base_time,
            "{ctx}"
        );
        assert_eq!(
            raw("dhcp.option.bulk_lease.start_time_of_state"),
            e.start_time_of_state,
            "{ctx}"
        );
        assert_eq!(
            raw("dhcp.option.bulk_lease.query_start_time"),
            e.query_start_time,
            "{ctx}"
        );
        assert_eq!(
            raw("dhcp.option.bulk_lease.query_end_time"),
            e.query_end_time,
            "{ctx}"
        );
        assert_eq!(
            raw("dhcp.option.bulk_lease.dhcp_state"),
            e.dhcp_state.map(u32::from),
            "{ctx}"
        );
    }
    eprintln!(
        "tshark decoded all {} messages; catch-up sent {kinds:?}",
        packets.len()
    );
}
