#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `/metrics` for leasequery (issue 19): the counters move as the traffic
//! says, against a running server with UDP, Bulk and Active Leasequery on.
//!
//! 1. 4 UDP leasequeries for leased addresses, 3 for an address of the pool
//!    never leased, 2 for one outside every subnet: the answers by type
//!    move by 4, 3 and 2. 2 queries without a query key: 2 refusals
//!    `no_query_key`.
//! 2. A bulk query of every address: 1 query, and as many bindings sent as
//!    `leaseline bulk` printed.
//! 3. A watcher attached: 1 active session; 2 DORAs: the updates sent are
//!    the updates it reported; nothing pending once it has them. The
//!    watcher gone: 0 sessions.
//! 4. Every page parses as Prometheus text (the `prometheus-parse` crate).

use crate::active_support;
use crate::bulk_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use active_support::spawn_watch;
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, wait_until, RelayClient, ServerConfig, ServerProcess, Subnet,
    TestClient,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const TOKEN: &str = "0123456789abcdef-metrics-token";

/// One authenticated scrape; its text, checked by the exposition parser.
fn scrape(web: SocketAddr) -> String {
    let mut s = TcpStream::connect(web).expect("connect to the http endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: leaseline\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    assert!(!parsed.samples.is_empty(), "{body}");
    body.to_owned()
}

/// The value of one sample (`name{labels} value`), 0 when absent (a
/// labelled series appears once it has counted something).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn answers(page: &str, kind: &str) -> f64 {
    sample(
        page,
        &format!("leaseline_leasequery_answers_total{{type=\"{kind}\"}}"),
    )
}

/// `leaseline query --ip IP --json` against the server; its answer type.
fn udp_query(dhcp: SocketAddr, ip: &str) -> String {
    let out = Command::new(BIN)
        .args(["query", "--server", &dhcp.to_string(), "--ip", ip, "--json"])
        .output()
        .expect("run leaseline query");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("query {ip}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    v["type"].as_str().expect("type").to_owned()
}

/// A DHCPLEASEQUERY with no query key (RFC 4388 §6.3: no reply).
fn keyless_leasequery(xid: u32) -> Vec<u8> {
    let mut b = vec![1, 0, 0, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // secs, flags, ciaddr, yiaddr, siaddr
    b.extend_from_slice(&Ipv4Addr::LOCALHOST.octets()); // giaddr
    b.extend_from_slice(&[0; 16 + 192]); // chaddr, sname, file
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 10, 255]);
    b.resize(300, 0);
    b
}

#[test]
fn leasequery_counters_move_as_the_traffic_says() {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let cfg = ServerConfig::new(dhcp)
        .relay_port(rport)
        .history(3600, 100_000)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.200",
            &[*RELAY],
        ))
        .allow(&["127.0.0.0/8"])
        .udp(1000, 2000)
        .bulk(tcp, "")
        .active(true, "")
        .extra(&format!(
            "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\n"
        ))
        .build();
    let server = ServerProcess::spawn(BIN, &cfg);
    let mut relay = RelayClient::bind_port(*RELAY, rport, dhcp).expect("bind relay");
    let leases: Vec<_> = (1..=4)
        .map(|n| relay.dora(&TestClient::new(0x3100 + n)).expect("DORA"))
        .collect();

    let before = scrape(web);
    for kind in ["active", "unassigned", "unknown"] {
        assert_eq!(answers(&before, kind), 0.0, "{before}");
    }
    assert_eq!(sample(&before, "leaseline_active_sessions"), 0.0);

    // 1. UDP leasequery: answers by type, refusals by reason.
    for l in &leases {
        assert_eq!(udp_query(dhcp, &l.ip.to_string()), "DHCPLEASEACTIVE");
    }
    for _ in 0..3 {
        assert_eq!(udp_query(dhcp, "10.0.0.199"), "DHCPLEASEUNASSIGNED");
    }
    for _ in 0..2 {
        assert_eq!(udp_query(dhcp, "192.0.2.77"), "DHCPLEASEUNKNOWN");
    }
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    for xid in [1, 2] {
        sock.send_to(&keyless_leasequery(xid), dhcp).expect("send");
    }
    // The refusals have no reply to wait for: the page says when.
    let page = wait_until("the 2 refusals counted", Duration::from_secs(10), || {
        let page = scrape(web);
        let refused = "leaseline_leasequery_refusals_total{reason=\"no_query_key\"}";
        (sample(&page, refused) == 2.0).then_some(page)
    });
    assert_eq!(
        [
            answers(&page, "active"),
            answers(&page, "unassigned"),
            answers(&page, "unknown")
        ],
        [4.0, 3.0, 2.0],
        "{page}"
    );

    // 2. Bulk: one query, the bindings the requestor received.
    let got = bulk_support::bulk_json(tcp, &["--all"]);
    assert!(got.len() >= 191, "every pool address: {}", got.len());
    let page = scrape(web);
    assert_eq!(sample(&page, "leaseline_bulk_queries_total"), 1.0, "{page}");
    assert_eq!(
        sample(&page, "leaseline_bulk_bindings_sent_total"),
        got.len() as f64,
        "{page}"
    );

    // 3. Active: a session, its updates, nothing left pending.
    let mark = server.log_mark();
    let watch = spawn_watch(tcp, &["--no-reconnect"], None);
    watch.wait_event(0, "connected", Duration::from_secs(15));
    server.wait_for_log_since(mark, "active query started", Duration::from_secs(15));
    let page = scrape(web);
    assert_eq!(sample(&page, "leaseline_active_sessions"), 1.0, "{page}");
    let updates_before = sample(&page, "leaseline_active_updates_sent_total");
    for n in 1..=2 {
        let l = relay.dora(&TestClient::new(0x3200 + n)).expect("DORA");
        let ip = l.ip.to_string();
        watch.wait_for(
            0,
            &format!("the update for {ip}"),
            Duration::from_secs(15),
            |v| v["event"] == "update" && v["ip"] == ip.as_str(),
        );
    }
    let reported = watch.count("update") as f64;
    let page = scrape(web);
    assert_eq!(
        sample(&page, "leaseline_active_updates_sent_total") - updates_before,
        reported,
        "{page}"
    );
    assert_eq!(
        sample(&page, "leaseline_active_pending_changes"),
        0.0,
        "{page}"
    );
    assert_eq!(sample(&page, "leaseline_feed_lag_seconds"), 0.0, "{page}");
    assert_eq!(sample(&page, "leaseline_active_data_missing_total"), 0.0);
    drop(watch);
    wait_until("the session gone", Duration::from_secs(10), || {
        (sample(&scrape(web), "leaseline_active_sessions") == 0.0).then_some(())
    });
    // A store only this server writes has no outbox.
    assert!(!scrape(web).contains("leaseline_outbox_lag"));
}
