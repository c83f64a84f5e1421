#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline mirror query` by each key (ip, MAC, client-id, remote-id,
//! relay-id, all; text and JSON) and `leaseline mirror status` (phase live,
//! a lag) on a replica of a real server. The bindings come from a relay (a
//! loopback address of its own) whose clients carry client-ids and option
//! 82 with remote-id and relay-id, so every look-up has something to find;
//! one more lease taken while the mirror is live shows the active query at
//! work.

use crate::mirror_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_udp_port, require_root, wait_until, Lease, RelayClient, ServerProcess, TestClient,
};
use leaseline_wire::{RelayAgentInfo, SubOption};
use mirror_support::{free_tcp_port, leaseline, server_config, Mirror, BIN};

static GIADDR: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// DORA for `client` with option 82 (remote-id, relay-id) when given.
fn dora(relay: &mut RelayClient, client: &TestClient, rai: Option<(&[u8], &[u8])>) -> Lease {
    let rai = rai.map(|(remote, relay_id)| RelayAgentInfo {
        sub_options: vec![
            SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: remote.to_vec(),
            },
            SubOption {
                code: RelayAgentInfo::RELAY_ID,
                data: relay_id.to_vec(),
            },
        ],
    });
    relay
        .dora_with(client, &[], rai.as_ref())
        .unwrap_or_else(|e| panic!("DORA: {e}"))
}

/// `leaseline mirror query --db DB ARGS`: (exit code, stdout lines).
fn query(db: &str, args: &[&str]) -> (i32, Vec<String>) {
    let mut full = vec!["mirror", "query", "--db", db];
    full.extend_from_slice(args);
    let (code, out, err) = leaseline(&full);
    assert!(err.trim().is_empty() || code == 0 || code == 1, "{err}");
    (code, out.lines().map(str::to_owned).collect())
}

#[test]
fn query_by_each_key_and_status_on_a_live_replica() {
    require_root(); // the relay binds port 67
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let lq = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let server = ServerProcess::spawn(BIN, &server_config(dhcp, &[*GIADDR], lq, 3600, 2));
    let mut relay = RelayClient::bind(*GIADDR, dhcp).expect("bind the relay");

    let c1 = TestClient::new(0x71_0001).with_client_id(b"\x01cid-one");
    let c2 = TestClient::new(0x71_0002);
    let c3 = TestClient::new(0x71_0003).with_client_id(b"\x01cid-three");
    let l1 = dora(&mut relay, &c1, Some((b"remote-1", b"relay-A")));
    let l2 = dora(&mut relay, &c2, Some((b"remote-2", b"relay-A")));
    let l3 = dora(&mut relay, &c3, None);
    relay.release(&c3, l3.ip, l3.server_id).expect("RELEASE");
    leaseline_test_support::wait_for_binding(
        &server.db_path(),
        l3.ip,
        Duration::from_secs(10),
        |b| b.state == leaseline_test_support::DhcpState::Released,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut mirror = Mirror::new(
        dir.path(),
        lq,
        &[
            "--rcv-timeout",
            "5",
            "--retry-interval",
            "1",
            "--status-interval",
            "1",
        ],
        None,
    );
    mirror.start();
    mirror.wait_live(Duration::from_secs(60));
    let db = mirror.db.display().to_string();
    let mac = |c: &TestClient| leaseline_test_support::mac_string(&c.chaddr);

    // By IP: one line, the binding's state and MAC.
    let (code, lines) = query(&db, &["--ip", &l1.ip.to_string()]);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(&l1.ip.to_string()), "{lines:?}");
    assert!(
        lines[0].contains("ACTIVE") && lines[0].contains(&mac(&c1)),
        "{lines:?}"
    );
    let (_, lines) = query(&db, &["--ip", &l3.ip.to_string()]);
    assert!(
        lines.len() == 1 && lines[0].contains("RELEASED"),
        "{lines:?}"
    );

    // By MAC, client-id, remote-id, relay-id.
    let (code, lines) = query(&db, &["--mac", &mac(&c2)]);
    assert_eq!(code, 0);
    assert!(
        lines.len() == 1 && lines[0].starts_with(&l2.ip.to_string()),
        "{lines:?}"
    );
    let (_, lines) = query(&db, &["--client-id", &hex(b"\x01cid-three")]);
    assert!(
        lines.len() == 1 && lines[0].starts_with(&l3.ip.to_string()),
        "{lines:?}"
    );
    let (_, lines) = query(&db, &["--remote-id", &hex(b"remote-1")]);
    assert!(
        lines.len() == 1 && lines[0].starts_with(&l1.ip.to_string()),
        "{lines:?}"
    );
    let (_, lines) = query(&db, &["--relay-id", &hex(b"relay-A")]);
    let mut ips: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ips.sort_unstable();
    let mut want = vec![l1.ip.to_string(), l2.ip.to_string()];
    want.sort_unstable();
    assert_eq!(ips, want, "{lines:?}");

    // --all, and --json.
    let (code, lines) = query(&db, &["--all"]);
    assert_eq!((code, lines.len()), (0, 3), "{lines:?}");
    let (_, lines) = query(&db, &["--client-id", &hex(b"\x01cid-one"), "--json"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let j: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON line");
    assert_eq!(j["ip"], l1.ip.to_string());
    assert_eq!(j["state"], "ACTIVE");
    assert_eq!(j["mac"], mac(&c1));
    assert_eq!(j["client_id"], hex(b"\x01cid-one"));
    assert_eq!(j["remote_id"], hex(b"remote-1"));
    assert_eq!(j["relay_id"], hex(b"relay-A"));
    let server_b1 = leaseline_test_support::load_bindings(&server.db_path())
        .into_iter()
        .find(|b| b.ip == l1.ip)
        .expect("server binding");
    assert_eq!(j["expiry"], server_b1.expiry, "expiry is exact");

    // Nothing found: exit status 1, no output.
    let (code, lines) = query(&db, &["--mac", "02:99:99:99:99:99"]);
    assert_eq!((code, lines.len()), (1, 0), "{lines:?}");

    // A lease taken while the mirror is live reaches the replica.
    let c4 = TestClient::new(0x71_0004);
    let l4 = dora(&mut relay, &c4, None);
    wait_until(
        "the new lease in the replica",
        Duration::from_secs(20),
        || {
            let (_, lines) = query(&db, &["--mac", &mac(&c4)]);
            lines
                .first()
                .filter(|l| l.starts_with(&l4.ip.to_string()) && l.contains("ACTIVE"))
                .cloned()
        },
    );
    assert!(
        mirror.events().iter().any(|e| e["ip"] == l4.ip.to_string()),
        "an event line for {}",
        l4.ip
    );

    // Status: live, with a lag, in text and JSON.
    let s = mirror.status();
    assert_eq!(s["phase"], "live", "{s}");
    assert!(s["lag_seconds"].as_u64().is_some_and(|l| l <= 5), "{s}");
    assert!(s["saved_base_time"].as_u64().is_some(), "{s}");
    let (code, text, _) = leaseline(&["mirror", "status", "--db", &db]);
    assert_eq!(code, 0);
    assert!(text.contains("phase:") && text.contains("live"), "{text}");
    // The lag is a duration: `0s`, `5s`, `1m5s` (docs/text-formats.md).
    let is_duration = |v: &str| {
        !v.is_empty()
            && v.split_inclusive(['d', 'h', 'm', 's']).all(|part| {
                part.len() >= 2 && part[..part.len() - 1].bytes().all(|b| b.is_ascii_digit())
            })
            && v.ends_with(['d', 'h', 'm', 's'])
    };
    assert!(
        text.lines()
            .filter_map(|l| l.strip_prefix("lag:"))
            .any(|v| is_duration(v.trim())),
        "{text}"
    );
    assert!(text.contains("bindings ACTIVE"), "{text}");
}
