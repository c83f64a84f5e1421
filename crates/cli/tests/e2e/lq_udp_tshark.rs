#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! tshark as an independent decoder of every leasequery reply leaseline
//! sends: no malformed packet, no expert info, and the fields we meant
//! (message type, ciaddr, chaddr, options 51, 91, 92, 82) equal to what
//! `leaseline query` printed for the same xid.
//!
//! The capture runs on lo (dumpcap, root), filtered on the server's port;
//! tshark is told that port carries DHCP (`-d udp.port==PORT,dhcp`).

use crate::lq_udp_common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use leaseline_test_support::{
    free_udp_port, require_root, require_tool, unix_now, wait_until, RelayClient, ServerProcess,
    TestClient,
};
use lq_udp_common::*;

/// dumpcap on lo for `udp port PORT`, known to be live before `start`
/// returns and to have written everything before `stop` returns.
///
/// dumpcap prints "File: ..." well before its filter is attached (about
/// 1.5 s on this machine), so packets sent right after it are lost; and on
/// SIGINT it drops what it has not yet taken from the kernel. So probe
/// datagrams go to a second port in the filter, and the file is read back
/// until a probe (at start) or the final marker (at stop) is in it; lo
/// delivers in order, so everything sent before the marker is there too.
struct LiveCapture {
    child: std::process::Child,
    file: std::path::PathBuf,
    probe: std::net::UdpSocket,
    probe_port: u16,
    _sink: std::net::UdpSocket,
}

impl LiveCapture {
    fn start(port: u16, file: &std::path::Path) -> LiveCapture {
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let probe_port = sink.local_addr().unwrap().port();
        let child = Command::new(require_tool("dumpcap"))
            .args([
                "-i",
                "lo",
                "-f",
                &format!("udp port {port} or udp port {probe_port}"),
                "-w",
            ])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dumpcap");
        let cap = LiveCapture {
            child,
            file: file.to_owned(),
            probe: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            probe_port,
            _sink: sink,
        };
        cap.wait_for_probe(b"probe");
        cap
    }

    /// Payloads (hex) of the probes in the file so far. The file may end in
    /// the middle of a packet while dumpcap writes: tshark's status is ignored.
    fn probes_in_file(&self) -> String {
        let out = Command::new(require_tool("tshark"))
            .arg("-r")
            .arg(&self.file)
            .args(["-Y", &format!("udp.dstport=={}", self.probe_port)])
            .args(["-T", "fields", "-e", "data"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run tshark");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends `payload` to the probe port until it shows up in the file.
    fn wait_for_probe(&self, payload: &[u8]) {
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        wait_until("dumpcap to write a probe", Duration::from_secs(30), || {
            self.probe
                .send_to(payload, ("127.0.0.1", self.probe_port))
                .unwrap();
            self.probes_in_file().contains(&hex).then_some(())
        });
    }

    /// Waits until a final marker is in the file, then SIGINT (by pid).
    fn stop(mut self) {
        self.wait_for_probe(b"end-of-test-traffic");
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new(require_tool("tshark"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_decodes_every_reply_cleanly_with_the_fields_we_meant() {
    require_root();
    require_tool("tshark");
    require_tool("dumpcap");
    let port = free_udp_port();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let rport = free_udp_port();
    let ga = Ipv4Addr::new(127, 0, 41, 61);
    let gb = Ipv4Addr::new(127, 0, 41, 62);
    let cfg = config(
        listen,
        rport,
        &[
            Subnet {
                prefix: "10.0.0.0/16",
                pool: "10.0.0.10-10.0.0.200",
                relays: &[ga],
            },
            Subnet {
                prefix: "10.1.0.0/16",
                pool: "10.1.0.10-10.1.0.200",
                relays: &[gb],
            },
        ],
        LQ_LOOPBACK,
    );
    let server = ServerProcess::spawn(BIN, &cfg);
    let mut ra = RelayClient::bind_port(ga, rport, listen).unwrap();
    let mut rb = RelayClient::bind_port(gb, rport, listen).unwrap();
    let client = TestClient::new(0x4161).with_client_id(b"\x01tshark-client");
    let a = dora(&mut ra, &client, Some(&rai(b"eth0/1", b"modem-61"))).ip;
    wait_past_second(unix_now());
    let b = dora(&mut rb, &client, Some(&rai(b"eth0/2", b"modem-61"))).ip;

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("lq.pcapng");
    let cap = LiveCapture::start(port, &pcap);
    let mac_s = mac(&client.chaddr);
    let queries: Vec<(Vec<String>, i32)> = vec![
        (vec!["--ip".into(), a.to_string()], EXIT_ACTIVE),
        (vec!["--ip".into(), "10.0.0.150".into()], EXIT_UNASSIGNED),
        (vec!["--ip".into(), "192.0.2.9".into()], EXIT_UNKNOWN),
        (vec!["--mac".into(), mac_s.clone()], EXIT_ACTIVE),
        (
            vec!["--client-id".into(), hexs(b"\x01tshark-client")],
            EXIT_ACTIVE,
        ),
        (vec!["--remote-id".into(), hexs(b"modem-61")], EXIT_ACTIVE),
        (vec!["--remote-id".into(), hexs(b"modem-00")], EXIT_UNKNOWN),
        (
            vec!["--mac".into(), "02:00:00:00:99:99".into()],
            EXIT_UNKNOWN,
        ),
        (
            vec!["--mac".into(), mac_s.clone(), "--prl".into(), "none".into()],
            EXIT_ACTIVE,
        ),
    ];
    // xid → what leaseline query printed.
    let mut printed: BTreeMap<u32, serde_json::Value> = BTreeMap::new();
    for (args, code) in &queries {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = query_json(listen, &a, *code);
        printed.insert(v["xid"].as_u64().unwrap() as u32, v);
    }
    // Each query and its answer (none is retransmitted: see attempts).
    assert!(printed.values().all(|v| v["attempts"] == 1));
    cap.stop();
    drop(server);

    let p = pcap.to_str().unwrap();
    let decode_as = format!("udp.port=={port},dhcp");
    let replies_filter = format!("udp.srcport=={port}");

    // No malformed packet and no expert info on the replies, except the
    // Note tshark attaches to any BOOTP message with hlen 0 ("Client
    // address not given"): RFC 4388 leaves chaddr empty in UNASSIGNED and
    // in UNKNOWN to a query that was not by MAC.
    let experts = tshark(&[
        "-r",
        p,
        "-d",
        &decode_as,
        "-Y",
        &format!("{replies_filter} && (_ws.malformed || _ws.expert)"),
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-e",
        "frame.number",
        "-e",
        "dhcp.hw.len",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
        "-e",
        "_ws.expert.message",
    ]);
    for line in experts.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let ok = f.len() == 5
            && f[1] == "0"
            && f[2].is_empty()
            && f[3] == "4194304" // PI_NOTE
            && f[4] == "Client address not given";
        assert!(ok, "tshark flags a reply: {line}\n{experts}");
    }
    let verbose = tshark(&["-r", p, "-d", &decode_as, "-Y", &replies_filter, "-V"]);
    assert!(!verbose.contains("Malformed"), "{verbose}");
    assert!(
        verbose.contains("Dynamic Host Configuration Protocol (Lease Active)"),
        "{verbose}"
    );
    // The expert summary of the whole capture lists nothing above Note
    // (queries carry the Note "Client address not given" by design).
    let expert = tshark(&["-r", p, "-d", &decode_as, "-q", "-z", "expert,warn"]);
    assert!(
        !expert.contains("Warns (") && !expert.contains("Errors ("),
        "expert info:\n{expert}"
    );

    let fields = [
        "dhcp.id",
        "dhcp.type",
        "dhcp.option.dhcp",
        "dhcp.ip.client",
        "dhcp.hw.mac_addr",
        "dhcp.option.ip_address_lease_time",
        "dhcp.option.client_last_transaction_time",
        "dhcp.option.associated_ip_option",
        "dhcp.option.agent_information_option.agent_circuit_id",
        "dhcp.option.agent_information_option.agent_remote_id",
        "dhcp.option.dhcp_server_id",
        "dhcp.ip.relay",
    ];
    let mut args = vec![
        "-r",
        p,
        "-d",
        &decode_as,
        "-Y",
        &replies_filter,
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ];
    for f in &fields {
        args.push("-e");
        args.push(f);
    }
    let out = tshark(&args);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), queries.len(), "one reply per query:\n{out}");
    let type_name = |t: &str| match t {
        "11" => "DHCPLEASEUNASSIGNED",
        "12" => "DHCPLEASEUNKNOWN",
        "13" => "DHCPLEASEACTIVE",
        other => panic!("reply of type {other}"),
    };
    let hex_of = |s: &str| -> String { s.replace(':', "").to_lowercase() };
    let mut seen_92 = false;
    let mut seen_82 = false;
    for row in rows {
        let f: BTreeMap<&str, &str> = fields.iter().copied().zip(row.iter().copied()).collect();
        let xid = u32::from_str_radix(f["dhcp.id"].trim_start_matches("0x"), 16).unwrap();
        let v = printed
            .get(&xid)
            .unwrap_or_else(|| panic!("reply xid {xid:#x} matches no query"));
        assert_eq!(f["dhcp.type"], "2", "BOOTREPLY: {f:?}");
        assert_eq!(type_name(f["dhcp.option.dhcp"]), v["type"], "{f:?} vs {v}");
        assert_eq!(f["dhcp.ip.relay"], "127.0.0.1", "giaddr echoed: {f:?}");
        assert_eq!(f["dhcp.option.dhcp_server_id"], "127.0.0.1", "{f:?}");
        let ciaddr = v["ip"].as_str().unwrap_or("0.0.0.0");
        assert_eq!(f["dhcp.ip.client"], ciaddr, "{f:?} vs {v}");
        if let Some(m) = v["mac"].as_str() {
            assert_eq!(f["dhcp.hw.mac_addr"], m, "{f:?} vs {v}");
        }
        let num = |k: &str| v[k].as_u64().map(|n| n.to_string()).unwrap_or_default();
        assert_eq!(
            f["dhcp.option.ip_address_lease_time"],
            num("lease_time_remaining"),
            "{f:?} vs {v}"
        );
        assert_eq!(
            f["dhcp.option.client_last_transaction_time"],
            num("cltt_age"),
            "{f:?} vs {v}"
        );
        let assoc: Vec<String> = associated(v).iter().map(Ipv4Addr::to_string).collect();
        assert_eq!(
            f["dhcp.option.associated_ip_option"],
            assoc.join(","),
            "{f:?} vs {v}"
        );
        seen_92 |= !assoc.is_empty();
        let rai = &v["relay_agent_info"];
        let sub = |k: &str| rai[k].as_str().unwrap_or("").to_string();
        assert_eq!(
            hex_of(f["dhcp.option.agent_information_option.agent_circuit_id"]),
            sub("circuit_id"),
            "{f:?} vs {v}"
        );
        assert_eq!(
            hex_of(f["dhcp.option.agent_information_option.agent_remote_id"]),
            sub("remote_id"),
            "{f:?} vs {v}"
        );
        seen_82 |= rai.is_object();
        if v["type"] == "DHCPLEASEACTIVE" {
            assert_eq!(f["dhcp.hw.mac_addr"], mac_s, "{f:?}");
        }
    }
    assert!(seen_92 && seen_82, "option 92 and 82 were on the wire");
    let _ = b;
}
