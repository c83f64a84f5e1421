#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! UDP Leasequery (RFC 4388, RFC 6148) against `leaseline serve`, asked by
//! `leaseline query`: every query type (IP, MAC, client-id, remote-id) and
//! every reply type (ACTIVE, UNASSIGNED, UNKNOWN), with bindings made by real
//! DHCP exchanges over UDP through a relay client; then the PRL, the
//! allowlist, "off until configured" and the per-requestor rate limit.
//!
//! Relays use addresses 127.0.41.N and a per-test reply port
//! (`[dhcp] relay_port`), so these tests need neither root nor port 67.

use crate::lq_udp_common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use leaseline_requestor::prl;
use leaseline_requestor::query::{encode_query, QueryKey};
use leaseline_test_support::{
    free_udp_port, unix_now, wait_until, RelayClient, ServerProcess, TestClient,
};
use leaseline_wire::{DhcpOption, Message};
use lq_udp_common::*;

fn relay(giaddr: Ipv4Addr, port: u16, server: SocketAddr) -> RelayClient {
    RelayClient::bind_port(giaddr, port, server)
        .unwrap_or_else(|e| panic!("bind relay {giaddr}:{port}: {e}"))
}

fn listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()))
}

#[test]
fn by_ip_active_unassigned_unknown() {
    let (listen, rport) = (listen(), free_udp_port());
    let g = Ipv4Addr::new(127, 0, 41, 1);
    let cfg = config(
        listen,
        rport,
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.200",
            relays: &[g],
        }],
        LQ_LOOPBACK,
    )
    // A reserved address outside the pool, never leased.
    .replace(
        "lease_time = 3600\n",
        "lease_time = 3600\n[[subnet.reservation]]\nip = \"10.0.0.250\"\nmac = \"02:aa:00:00:41:01\"\n",
    );
    let mut server = ServerProcess::spawn(BIN, &cfg);
    let mut r = relay(g, rport, listen);
    let client = TestClient::new(0x4101).with_client_id(b"\x01client-4101");
    let info = rai(b"port-1/1/7", b"modem-4101");
    let lease = dora(&mut r, &client, Some(&info));
    let ip = lease.ip.to_string();

    // ACTIVE, with what RFC 4388 §6.4.2 says comes back for the default PRL.
    let v = query_json(listen, &["--ip", &ip], EXIT_ACTIVE);
    assert_eq!(v["type"], "DHCPLEASEACTIVE", "{v}");
    assert_eq!(v["ip"], ip.as_str(), "{v}");
    assert_eq!(v["htype"], 1, "{v}");
    assert_eq!(v["mac"], mac(&client.chaddr).as_str(), "{v}");
    assert_eq!(v["client_id"], hexs(b"\x01client-4101").as_str(), "{v}");
    let left = v["lease_time_remaining"].as_u64().expect("option 51");
    assert!((3590..=3600).contains(&left), "{v}");
    let t1 = v["renewal_time_remaining"].as_u64().expect("option 58");
    let t2 = v["rebinding_time_remaining"].as_u64().expect("option 59");
    assert!(
        (1790..=1800).contains(&t1) && (3140..=3150).contains(&t2),
        "{v}"
    );
    assert!(v["cltt_age"].as_u64().expect("option 91") <= 10, "{v}");
    assert_eq!(
        v["relay_agent_info"]["circuit_id"],
        hexs(b"port-1/1/7").as_str(),
        "{v}"
    );
    assert_eq!(
        v["relay_agent_info"]["remote_id"],
        hexs(b"modem-4101").as_str(),
        "{v}"
    );
    assert_eq!(v["server_id"], "127.0.0.1", "{v}");
    assert_eq!(associated(&v), Vec::<Ipv4Addr>::new(), "{v}");
    assert_eq!(v["giaddr"], "127.0.0.1", "{v}");
    assert_eq!(v["server"], listen.to_string(), "{v}");

    // The same answer, readable.
    let t = query(listen, &["--ip", &ip]);
    t.expect_code(EXIT_ACTIVE);
    assert!(t.stdout.starts_with("DHCPLEASEACTIVE\n"), "{t:?}");
    for needle in [
        format!("ip                {ip}"),
        format!("mac               {} (htype 1)", mac(&client.chaddr)),
        format!("circuit-id        {}", hexs(b"port-1/1/7")),
        "server-id         127.0.0.1".to_string(),
    ] {
        assert!(
            t.stdout.contains(&needle),
            "`{needle}` not in:\n{}",
            t.stdout
        );
    }

    // A pool address never leased: UNASSIGNED, ciaddr set, no other options.
    let v = query_json(listen, &["--ip", "10.0.0.199"], EXIT_UNASSIGNED);
    assert_eq!(v["type"], "DHCPLEASEUNASSIGNED", "{v}");
    assert_eq!(v["ip"], "10.0.0.199", "{v}");
    assert_eq!(v["mac"], serde_json::Value::Null, "{v}");
    assert_eq!(v["lease_time_remaining"], serde_json::Value::Null, "{v}");
    assert_eq!(v["relay_agent_info"], serde_json::Value::Null, "{v}");
    assert_eq!(v["other_options"], serde_json::json!([]), "{v}");

    // A reserved address is the server's too: UNASSIGNED until leased.
    let v = query_json(listen, &["--ip", "10.0.0.250"], EXIT_UNASSIGNED);
    assert_eq!(v["ip"], "10.0.0.250", "{v}");
    // In the subnet but neither pool nor reservation: not managed, UNKNOWN.
    query_json(listen, &["--ip", "10.0.0.251"], EXIT_UNKNOWN);

    // Not an address of ours: UNKNOWN.
    let v = query_json(listen, &["--ip", "192.0.2.77"], EXIT_UNKNOWN);
    assert_eq!(v["type"], "DHCPLEASEUNKNOWN", "{v}");
    assert_eq!(v["relay_agent_info"], serde_json::Value::Null, "{v}");
    let t = query(listen, &["--ip", "192.0.2.77"]);
    t.expect_code(EXIT_UNKNOWN);
    assert!(t.stdout.starts_with("DHCPLEASEUNKNOWN"), "{t:?}");

    // After a RELEASE the address is the server's but not leased.
    r.release(&client, lease.ip, lease.server_id)
        .expect("send RELEASE");
    wait_until(
        "the released address to answer UNASSIGNED",
        Duration::from_secs(10),
        || {
            let q = query(listen, &["--ip", &ip, "--json"]);
            (q.code == EXIT_UNASSIGNED).then_some(())
        },
    );
    // ... and the client has no active lease any more.
    query_json(listen, &["--mac", &mac(&client.chaddr)], EXIT_UNKNOWN);

    server.assert_running();
    assert!(server.terminate().success());
}

#[test]
fn by_mac_client_id_remote_id_answer_the_latest_binding_and_list_the_others() {
    let (listen, rport) = (listen(), free_udp_port());
    let ga = Ipv4Addr::new(127, 0, 41, 2);
    let gb = Ipv4Addr::new(127, 0, 41, 3);
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
    let mut server = ServerProcess::spawn(BIN, &cfg);
    let mut ra = relay(ga, rport, listen);
    let mut rb = relay(gb, rport, listen);

    // One client (one MAC, one client-id) behind one modem (remote-id) with a
    // lease in each subnet; the second lease is made a second later.
    let cid = b"\xffcpe-7-iaid";
    let client = TestClient::new(0x4107).with_client_id(cid);
    let info_a = rai(b"circuit-a", b"cpe-7");
    let info_b = rai(b"circuit-b", b"cpe-7");
    let t0 = unix_now();
    let a = dora(&mut ra, &client, Some(&info_a)).ip;
    wait_past_second(unix_now().max(t0));
    let b = dora(&mut rb, &client, Some(&info_b)).ip;
    assert!(a.octets()[1] == 0 && b.octets()[1] == 1, "{a} {b}");

    // Another client alone behind another modem.
    let other = TestClient::new(0x4108);
    let c = dora(&mut ra, &other, Some(&rai(b"circuit-c", b"cpe-8"))).ip;

    let mac_s = mac(&client.chaddr);
    let cid_s = hexs(cid);
    let rid_s = hexs(b"cpe-7");
    let check = |args: &[&str], primary: Ipv4Addr, others: &[Ipv4Addr], circuit: &[u8]| {
        let v = query_json(listen, args, EXIT_ACTIVE);
        assert_eq!(v["type"], "DHCPLEASEACTIVE", "{args:?}: {v}");
        assert_eq!(v["ip"], primary.to_string().as_str(), "{args:?}: {v}");
        assert_eq!(associated(&v), others, "{args:?}: {v}");
        assert_eq!(v["mac"], mac_s.as_str(), "{args:?}: {v}");
        assert_eq!(v["client_id"], cid_s.as_str(), "{args:?}: {v}");
        assert_eq!(
            v["relay_agent_info"]["circuit_id"],
            hexs(circuit).as_str(),
            "{args:?}: {v}"
        );
        assert_eq!(
            v["relay_agent_info"]["remote_id"],
            rid_s.as_str(),
            "{args:?}: {v}"
        );
    };
    // b is the most recent transaction: ciaddr = b, option 92 = [a].
    check(&["--mac", &mac_s], b, &[a], b"circuit-b");
    check(&["--client-id", &cid_s], b, &[a], b"circuit-b");
    check(&["--remote-id", &rid_s], b, &[a], b"circuit-b");
    // By IP there is no option 92.
    let v = query_json(listen, &["--ip", &a.to_string()], EXIT_ACTIVE);
    assert_eq!(associated(&v), Vec::<Ipv4Addr>::new(), "{v}");
    assert_eq!(
        v["relay_agent_info"]["circuit_id"],
        hexs(b"circuit-a").as_str(),
        "{v}"
    );

    // Renewing a makes it the latest.
    wait_past_second(unix_now());
    renew(&mut ra, &client, a, Some(&info_a));
    check(&["--mac", &mac_s], a, &[b], b"circuit-a");
    check(&["--client-id", &cid_s], a, &[b], b"circuit-a");
    check(&["--remote-id", &rid_s], a, &[b], b"circuit-a");

    // The other modem's only client.
    let v = query_json(listen, &["--remote-id", &hexs(b"cpe-8")], EXIT_ACTIVE);
    assert_eq!(v["ip"], c.to_string().as_str(), "{v}");
    assert_eq!(associated(&v), Vec::<Ipv4Addr>::new(), "{v}");
    assert_eq!(v["mac"], mac(&other.chaddr).as_str(), "{v}");
    assert_eq!(v["client_id"], serde_json::Value::Null, "{v}");

    // Option 92 comes with a client query whatever the PRL (RFC 4388 §6.4.2);
    // otherwise only what was asked for.
    let v = query_json(listen, &["--mac", &mac_s, "--prl", "51"], EXIT_ACTIVE);
    assert!(v["lease_time_remaining"].is_u64(), "{v}");
    assert_eq!(associated(&v), vec![b], "{v}");
    for absent in [
        "client_id",
        "relay_agent_info",
        "cltt_age",
        "renewal_time_remaining",
    ] {
        assert_eq!(v[absent], serde_json::Value::Null, "{absent}: {v}");
    }
    let v = query_json(
        listen,
        &["--ip", &a.to_string(), "--prl", "82,91"],
        EXIT_ACTIVE,
    );
    assert_eq!(v["lease_time_remaining"], serde_json::Value::Null, "{v}");
    assert!(
        v["cltt_age"].is_u64() && v["relay_agent_info"].is_object(),
        "{v}"
    );
    // No PRL: what a DHCPACK carries (51, 58, 59), plus 92 for a client query.
    let v = query_json(
        listen,
        &["--client-id", &cid_s, "--prl", "none"],
        EXIT_ACTIVE,
    );
    assert!(
        v["lease_time_remaining"].is_u64() && v["renewal_time_remaining"].is_u64(),
        "{v}"
    );
    assert_eq!(v["client_id"], serde_json::Value::Null, "{v}");
    assert_eq!(associated(&v), vec![b], "{v}");

    // Nobody by these keys: UNKNOWN; by remote-id, option 82 echoed (RFC 6148 §4.3).
    query_json(listen, &["--mac", "02:99:00:00:00:01"], EXIT_UNKNOWN);
    query_json(listen, &["--client-id", "ff:00:11"], EXIT_UNKNOWN);
    let v = query_json(listen, &["--remote-id", &hexs(b"nobody")], EXIT_UNKNOWN);
    assert_eq!(v["type"], "DHCPLEASEUNKNOWN", "{v}");
    assert_eq!(
        v["relay_agent_info"]["remote_id"],
        hexs(b"nobody").as_str(),
        "{v}"
    );
    assert_eq!(
        v["relay_agent_info"]["circuit_id"],
        serde_json::Value::Null,
        "{v}"
    );
    assert_eq!(v["ip"], serde_json::Value::Null, "{v}");
    // A MAC is compared with its hardware type.
    query_json(listen, &["--mac", &mac_s, "--htype", "6"], EXIT_UNKNOWN);

    server.assert_running();
    assert!(server.terminate().success());
}

#[test]
fn other_options_only_from_the_configured_non_sensitive_list() {
    let g = Ipv4Addr::new(127, 0, 41, 5);
    let hostname = DhcpOption::Hostname(b"host-4105".to_vec());
    let vendor = DhcpOption::VendorClassId(b"vendor-x".to_vec());
    let mut answers = Vec::new();
    for extra in ["extra_options = [12, 60]\n", ""] {
        let (listen, rport) = (listen(), free_udp_port());
        let cfg = config(
            listen,
            rport,
            &[Subnet {
                prefix: "10.0.0.0/16",
                pool: "10.0.0.10-10.0.0.200",
                relays: &[g],
            }],
            &format!("{LQ_LOOPBACK}{extra}"),
        );
        let server = ServerProcess::spawn(BIN, &cfg);
        let mut r = relay(g, rport, listen);
        let client = TestClient::new(0x4105);
        let ip = dora_with(&mut r, &client, None, &[hostname.clone(), vendor.clone()])
            .ip
            .to_string();
        // 12 and 60 asked for, with 15 and 6 (options the client was given,
        // not on the list) and 51.
        let asked = query_json(
            listen,
            &["--ip", &ip, "--prl", "51,12,15,6,60"],
            EXIT_ACTIVE,
        );
        // No PRL: 51, 58, 59 and the list.
        let default = query_json(listen, &["--ip", &ip, "--prl", "none"], EXIT_ACTIVE);
        answers.push((asked, default));
        drop(server);
    }
    let listed = serde_json::json!([
        {"code": 12, "data": hexs(b"host-4105")},
        {"code": 60, "data": hexs(b"vendor-x")},
    ]);
    let (asked, default) = &answers[0];
    assert_eq!(asked["other_options"], listed, "{asked}");
    assert!(asked["lease_time_remaining"].is_u64(), "{asked}");
    assert_eq!(default["other_options"], listed, "{default}");
    assert!(default["renewal_time_remaining"].is_u64(), "{default}");
    // Without the list, neither comes back, asked for or not.
    let (asked, default) = &answers[1];
    assert_eq!(asked["other_options"], serde_json::json!([]), "{asked}");
    assert_eq!(default["other_options"], serde_json::json!([]), "{default}");
}

/// A requestor that is not leaseline's CLI: queries from one socket, and
/// counts the answers.
struct RawRequestor {
    sock: UdpSocket,
    server: SocketAddr,
}

impl RawRequestor {
    fn new(local: Ipv4Addr, server: SocketAddr) -> RawRequestor {
        let sock = UdpSocket::bind((local, 0)).expect("bind requestor");
        RawRequestor { sock, server }
    }
    fn giaddr(&self) -> Ipv4Addr {
        match self.sock.local_addr().unwrap() {
            SocketAddr::V4(a) => *a.ip(),
            _ => unreachable!(),
        }
    }
    fn send(&self, key: &QueryKey, xid: u32) {
        let bytes = encode_query(key, xid, self.giaddr(), prl::UDP).unwrap();
        self.sock.send_to(&bytes, self.server).expect("send query");
    }
    /// Replies until `timeout` of silence.
    fn replies(&self, timeout: Duration) -> Vec<Message> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            out.push(Message::decode(&buf[..n]).expect("reply decodes"));
        }
        out
    }
}

#[test]
fn off_until_configured_and_only_for_allowed_requestors() {
    let key = ["--ip", "10.0.0.10", "--timeout", "1.5"];
    // No [leasequery.udp]: no answer; the server says why.
    let listen1 = listen();
    let cfg = config(
        listen1,
        free_udp_port(),
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.200",
            relays: &[],
        }],
        "[leasequery]\nallow = [\"127.0.0.0/8\"]\n",
    );
    let mut off = ServerProcess::spawn(BIN, &cfg);
    let q = query(listen1, &key);
    q.expect_code(EXIT_NO_ANSWER);
    assert!(q.stderr.contains("no answer"), "{q:?}");
    // Retransmitted with backoff: at 0 s and 1 s within 1.5 s.
    assert!(q.stderr.contains("(2 transmissions"), "{q:?}");
    let l = off.wait_for_log("dropped datagram", Duration::from_secs(5));
    assert!(
        l.contains("WARN") && l.contains("not enabled") && l.contains("peer=127.0.0.1:"),
        "{l}"
    );

    // enabled = false is the same.
    let listen2 = listen();
    let cfg = config(
        listen2,
        free_udp_port(),
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.200",
            relays: &[],
        }],
        "[leasequery]\nallow = [\"127.0.0.0/8\"]\n[leasequery.udp]\nenabled = false\n",
    );
    let _disabled = ServerProcess::spawn(BIN, &cfg);
    query(listen2, &key).expect_code(EXIT_NO_ANSWER);

    // Enabled, but only for 127.0.41.0/24: 127.0.0.1 gets nothing, 127.0.41.20 an answer.
    let listen3 = listen();
    let cfg = config(
        listen3,
        free_udp_port(),
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.200",
            relays: &[],
        }],
        "[leasequery]\nallow = [\"127.0.41.0/24\"]\n[leasequery.udp]\nenabled = true\n",
    );
    let mut narrow = ServerProcess::spawn(BIN, &cfg);
    query(listen3, &key).expect_code(EXIT_NO_ANSWER);
    let l = narrow.wait_for_log("dropped datagram", Duration::from_secs(5));
    assert!(
        l.contains("leasequery.allow") && l.contains("peer=127.0.0.1:"),
        "{l}"
    );
    let mut allowed = key.to_vec();
    allowed.extend(["--bind", "127.0.41.20"]);
    let v = query(listen3, &allowed);
    v.expect_code(EXIT_UNASSIGNED);

    off.assert_running();
    narrow.assert_running();
}

#[test]
fn rate_limit_is_per_requestor() {
    let listen = listen();
    let cfg = config(
        listen,
        free_udp_port(),
        &[Subnet { prefix: "10.0.0.0/16", pool: "10.0.0.10-10.0.0.200", relays: &[] }],
        "[leasequery]\nallow = [\"127.0.0.0/8\"]\n[leasequery.udp]\nenabled = true\nrate = 1\nburst = 3\n",
    );
    let mut server = ServerProcess::spawn(BIN, &cfg);
    let greedy = RawRequestor::new(Ipv4Addr::new(127, 0, 41, 30), listen);
    for i in 0..10 {
        greedy.send(
            &QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 10 + i)),
            0x4130_0000 + u32::from(i),
        );
    }
    let got = greedy.replies(Duration::from_millis(1500));
    // The burst, plus at most one more if a second passed.
    assert!(
        (3..=4).contains(&got.len()),
        "{} answers to 10 queries",
        got.len()
    );
    assert!(got.iter().all(|m| m.giaddr == greedy.giaddr()));
    server.wait_for_log("over its leasequery rate", Duration::from_secs(5));

    // Another requestor is not held back by the first one's excess.
    let polite = RawRequestor::new(Ipv4Addr::new(127, 0, 41, 31), listen);
    polite.send(&QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 20)), 0x4131_0001);
    let got = polite.replies(Duration::from_millis(1000));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].xid, 0x4131_0001);

    server.assert_running();
    server.terminate();
    let summary = server
        .logs_containing(&["leaseline stopped"])
        .pop()
        .expect("shutdown summary");
    assert!(summary.contains("\"rate limited\"="), "{summary}");
}

/// Kea #4530 (issue 16 item 5): a binding whose subnet was removed from the
/// configuration (the server restarted on the same store without it) is
/// still answered truthfully, by IP and by MAC, and the server keeps
/// serving; a binding of the remaining subnet is answered as before.
#[test]
fn a_binding_whose_subnet_was_removed_is_still_answered() {
    let (listen, rport) = (listen(), free_udp_port());
    let (ga, gb) = (Ipv4Addr::new(127, 0, 41, 80), Ipv4Addr::new(127, 0, 41, 81));
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
                prefix: "10.9.0.0/16",
                pool: "10.9.0.10-10.9.0.200",
                relays: &[gb],
            },
        ],
        LQ_LOOPBACK,
    );
    let mut server = ServerProcess::spawn(BIN, &cfg);
    let kept_client = TestClient::new(0x4180);
    let kept = dora(&mut relay(ga, rport, listen), &kept_client, None);
    let gone_client = TestClient::new(0x4181).with_client_id(b"\x01gone-4181");
    let gone = dora(&mut relay(gb, rport, listen), &gone_client, None);
    assert!(gone.ip.octets()[..2] == [10, 9], "{gone:?}");

    // The second subnet goes; the store keeps its binding.
    let text = server.config_text().to_string();
    let from = text.rfind("[[subnet]]").expect("a second subnet");
    let to = from
        + text[from..]
            .find("[leasequery]")
            .expect("leasequery after it");
    assert!(text[from..to].contains("10.9.0.0/16"), "{text}");
    let without = format!("{}{}", &text[..from], &text[to..]);
    assert!(
        !without.contains("10.9.0.0") && without.contains("10.0.0.0/16"),
        "{without}"
    );
    std::fs::write(server.config_path(), without).expect("write config");
    server.restart();

    let ip = gone.ip.to_string();
    let mac_text = mac(&gone_client.chaddr);
    for args in [["--ip", ip.as_str()], ["--mac", mac_text.as_str()]] {
        let v = query_json(listen, &args, EXIT_ACTIVE);
        assert_eq!(v["type"], "DHCPLEASEACTIVE", "{args:?}: {v}");
        assert_eq!(v["ip"], ip.as_str(), "{args:?}: {v}");
        assert_eq!(v["mac"], mac_text.as_str(), "{args:?}: {v}");
        assert_eq!(v["client_id"], hexs(b"\x01gone-4181").as_str(), "{v}");
        let left = v["lease_time_remaining"].as_u64().expect("option 51");
        assert!((3500..=3600).contains(&left), "{args:?}: {v}");
    }
    let v = query_json(listen, &["--ip", &kept.ip.to_string()], EXIT_ACTIVE);
    assert_eq!(v["mac"], mac(&kept_client.chaddr).as_str(), "{v}");
    server.assert_running();
}
