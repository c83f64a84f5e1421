#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The HTTP endpoint (issue 19): `/metrics` and the control API, as an
//! operator uses them, against a running server that leases addresses to
//! relayed clients.
//!
//! 1. Without the bearer token both answer 401; with it, `/metrics` counts
//!    the DHCP messages exchanged and the pool's leased addresses, and
//!    `leaseline ctl` answers with Kea's envelope and result codes (its
//!    exit status is the result).
//! 2. `lease4-get` by address, hardware address and client id, and
//!    `lease4-get-page` page by page, return the leases the clients got.
//! 3. `dhcp-disable` stops DHCP answers (counted as drops) until
//!    `dhcp-enable`; `max-period` turns it back on by itself.
//! 4. `statistic-get-all` has Kea's names with the same counts.
//! 5. `lease4-del` frees an address: not found afterwards, no longer
//!    assigned, and stored (the store has it AVAILABLE after a stop).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use crate::http_support::{http, Ctl, BIN, TOKEN};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, mac_string, wait_until, RelayClient, ServerConfig, ServerProcess,
    Subnet, TestClient,
};

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

/// The value of one sample of the metrics page (`name{labels} value`).
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_and_control_api_over_http() {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let ctl = Ctl::new(web);
    let cfg = ServerConfig::new(dhcp)
        .relay_port(rport)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.200",
            &[*RELAY],
        ))
        .extra(&format!(
            "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\nkea_compat = true\n"
        ))
        .build();
    let server = ServerProcess::spawn(BIN, &cfg);
    let mut relay = RelayClient::bind_port(*RELAY, rport, dhcp).expect("bind relay");

    // 1. The token is required.
    assert_eq!(http(web, "GET", "/metrics", None, "").0, 401);
    assert_eq!(
        http(web, "GET", "/metrics", Some("wrong-token-wrong-token"), "").0,
        401
    );
    assert_eq!(
        http(web, "POST", "/", None, r#"{"command":"status-get"}"#).0,
        401
    );

    let clients: Vec<TestClient> = (1..=5)
        .map(|n| TestClient::new(n).with_client_id(&[0xff, 0, 0, 0, n as u8]))
        .collect();
    let leases: Vec<_> = clients
        .iter()
        .map(|c| relay.dora(c).expect("DORA"))
        .collect();

    // The server counts a reply once it has left: the page may trail the
    // last ACK by a moment.
    let page = wait_until(
        "the metrics count the 5 ACKs",
        Duration::from_secs(10),
        || {
            let (status, page) = http(web, "GET", "/metrics", Some(TOKEN), "");
            assert_eq!(status, 200, "{page}");
            let acks = sample(&page, "leaseline_dhcp_packets_sent_total{type=\"ack\"}");
            (acks == Some(5.0)).then_some(page)
        },
    );
    assert_eq!(
        sample(
            &page,
            "leaseline_dhcp_packets_received_total{type=\"discover\"}"
        ),
        Some(5.0),
        "{page}"
    );
    let pool = "subnet=\"10.0.0.0/24\",pool=\"10.0.0.10-10.0.0.200\"";
    assert_eq!(
        sample(&page, &format!("leaseline_pool_size{{{pool}}}")),
        Some(191.0)
    );
    assert_eq!(
        sample(
            &page,
            &format!("leaseline_pool_addresses{{{pool},state=\"assigned\"}}")
        ),
        Some(5.0)
    );
    assert_eq!(
        sample(
            &page,
            "kea_dhcp4_addresses_assigned_total{subnet=\"10.0.0.0/24\",subnet_id=\"1\"}"
        ),
        Some(5.0)
    );
    // Each ACK's binding went through one group commit.
    assert_eq!(
        sample(&page, "leaseline_store_commit_batch_size_sum"),
        Some(5.0),
        "{page}"
    );
    let commits = sample(&page, "leaseline_store_commit_duration_seconds_count").expect("commits");
    assert!((1.0..=5.0).contains(&commits), "{page}");
    assert!(page.trim_end().ends_with("# EOF"), "{page}");

    // ctl's exit status is the result code.
    let (code, a) = ctl.run(&["status-get"]);
    assert_eq!((code, a["result"].as_u64()), (0, Some(0)), "{a}");
    assert_eq!(a["arguments"]["bindings"], 5);
    let (code, a) = ctl.run(&["no-such-command"]);
    assert_eq!((code, a["result"].as_u64()), (2, Some(2)), "{a}");
    let (code, _) = ctl.run(&["lease4-get", "ip-address=10.0.0.250"]);
    assert_eq!(code, 3, "not found");
    let (code, a) = ctl.run(&["lease4-get", "ip-address=not-an-address"]);
    assert_eq!(code, 1, "{a}");
    let (status, body) = http(web, "POST", "/", Some(TOKEN), "{not json");
    assert_eq!(status, 400, "{body}");

    // config-test: the running file is sane; a broken one is named by key and line.
    let (code, a) = ctl.run(&["config-test"]);
    assert_eq!(code, 0, "{a}");
    let bad = server.state_dir().join("bad.toml");
    std::fs::write(&bad, "[dhcp]\noffer_hold = 0\n").expect("write");
    let (code, a) = ctl.run(&["config-test", &format!("path={}", bad.display())]);
    assert_eq!(code, 1, "{a}");
    assert!(
        a["text"]
            .as_str()
            .expect("text")
            .contains(":2: `dhcp.offer_hold`"),
        "{a}"
    );

    // 2. Leases by address, MAC and client id; paging.
    for (c, l) in clients.iter().zip(&leases) {
        let (code, a) = ctl.run(&["lease4-get", &format!("ip-address={}", l.ip)]);
        assert_eq!(code, 0, "{a}");
        let lease = &a["arguments"];
        assert_eq!(lease["hw-address"], mac_string(&c.chaddr).to_lowercase());
        assert_eq!(lease["state"], 0);
        assert_eq!(lease["subnet-id"], 1);
        let (code, a) = ctl.run(&[
            "lease4-get-by-hw-address",
            &format!("hw-address={}", mac_string(&c.chaddr)),
        ]);
        assert_eq!(code, 0, "{a}");
        assert_eq!(a["arguments"]["leases"][0]["ip-address"], l.ip.to_string());
        let id = c.client_id.as_deref().expect("client id");
        let hex: Vec<String> = id.iter().map(|b| format!("{b:02x}")).collect();
        let (code, a) = ctl.run(&["lease4-get", &format!("client-id={}", hex.join(":"))]);
        assert_eq!(code, 0, "{a}");
        assert_eq!(a["arguments"]["ip-address"], l.ip.to_string());
    }
    let mut paged = Vec::new();
    let mut from = "start".to_owned();
    loop {
        let (code, a) = ctl.run(&["lease4-get-page", &format!("from={from}"), "limit=2"]);
        if code == 3 {
            break;
        }
        assert_eq!(code, 0, "{a}");
        let page: Vec<String> = a["arguments"]["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| l["ip-address"].as_str().expect("ip").to_owned())
            .collect();
        assert!(page.len() <= 2);
        from = page.last().expect("a page").clone();
        paged.extend(page);
    }
    let mut want: Vec<String> = leases.iter().map(|l| l.ip.to_string()).collect();
    want.sort_by_key(|ip| ip.parse::<Ipv4Addr>().expect("ip"));
    assert_eq!(paged, want);

    // lease4-del frees the address: committed, gone from lease4-get and
    // from the pool's assigned addresses.
    let gone = leases[0].ip.to_string();
    let (code, a) = ctl.run(&["lease4-del", &format!("ip-address={gone}")]);
    assert_eq!(code, 0, "{a}");
    let (code, _) = ctl.run(&["lease4-get", &format!("ip-address={gone}")]);
    assert_eq!(code, 3, "a deleted lease is not found");
    let (code, _) = ctl.run(&["lease4-del", &format!("ip-address={gone}")]);
    assert_eq!(code, 3, "deleting it again finds nothing");
    let (_, page) = http(web, "GET", "/metrics", Some(TOKEN), "");
    assert_eq!(
        sample(
            &page,
            &format!("leaseline_pool_addresses{{{pool},state=\"assigned\"}}")
        ),
        Some(4.0),
        "{page}"
    );

    // 3. DHCP off, on, and off for a period.
    let (code, _) = ctl.run(&["dhcp-disable"]);
    assert_eq!(code, 0);
    let late = TestClient::new(50);
    assert!(relay.discover(&late).is_none(), "no OFFER while disabled");
    let (_, page) = http(web, "GET", "/metrics", Some(TOKEN), "");
    assert!(
        sample(
            &page,
            "leaseline_dhcp_drops_total{reason=\"dhcp disabled\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{page}"
    );
    assert_eq!(sample(&page, "leaseline_dhcp_enabled"), Some(0.0));
    let (code, _) = ctl.run(&["dhcp-enable"]);
    assert_eq!(code, 0);
    relay.dora(&late).expect("DORA after dhcp-enable");
    let (code, a) = ctl.run(&["dhcp-disable", "max-period=1"]);
    assert_eq!(code, 0, "{a}");
    let (_, a) = ctl.run(&["status-get"]);
    assert_eq!(a["arguments"]["dhcp-state"]["disabled"], true);
    // Back on by itself within a second or two: the DORA's retries reach it.
    let after = TestClient::new(51);
    let answered = (0..6).any(|_| relay.discover(&after).is_some());
    assert!(answered, "DHCP back on after max-period");

    // 4. Kea's statistic names.
    let (code, a) = ctl.run(&["statistic-get-all"]);
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["arguments"]["pkt4-ack-sent"][0][0], 6, "{a}");
    // Six ACKed, one of them deleted.
    assert_eq!(
        a["arguments"]["subnet[1].assigned-addresses"][0][0], 5,
        "{a}"
    );

    // The deletion was stored: after the server stops, the store has the
    // address AVAILABLE.
    let mut server = server;
    server.terminate();
    let stored = leaseline_test_support::load_bindings(&server.db_path());
    let freed = stored
        .iter()
        .find(|b| b.ip.to_string() == gone)
        .expect("the freed address's binding");
    assert_eq!(freed.state, leaseline_proto::DhcpState::Available);
}
