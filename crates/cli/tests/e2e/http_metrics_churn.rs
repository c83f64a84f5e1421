#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `/metrics` under perfdhcp churn (issue 19): the counters move as the
//! traffic says, the traffic as dumpcap captured it and tshark decoded it.
//!
//! perfdhcp (as a relay) runs DORA for 500 distinct clients, 100 new ones a
//! second, against `leaseline serve`, with `[http]` on the namespace's
//! loopback. While it runs, two scrapes: the ACKs sent have grown between
//! them. After it ends (and the capture holds everything: a marker sent
//! after the last reply is in the file), one more scrape:
//!
//! - `leaseline_dhcp_packets_sent_total{type="offer"|"ack"}` = the OFFERs
//!   and ACKs captured, `..._received_total{type="discover"|"request"}` =
//!   the DISCOVERs and REQUESTs;
//! - the pool's `leaseline_pool_addresses{state="assigned"}` = the ACTIVE
//!   bindings in the store = the distinct clients ACKed on the wire = the
//!   ACKs perfdhcp counted;
//! - every page parses as Prometheus text (the `prometheus-parse` crate).
//!
//! perfdhcp's `-l` must name an address configured on an interface, so the
//! server, perfdhcp and the capture run in a network namespace of this
//! test's own; the test scrapes through a socket opened inside it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use leaseline_test_support::{
    assert_no_double_allocation, load_bindings, read_dhcp_capture, require_root, require_tool,
    wait_until, Capture, Netns, Perfdhcp, ServerConfig, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const PORT: u16 = 1067;
const WEB: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8067);
const CLIENTS: u32 = 500;
const POOL: &str = "10.0.0.10-10.0.255.250";
const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;
const DHCPREQUEST: u8 = 3;
const DHCPACK: u8 = 5;

/// One scrape of `/metrics`, parsed by the exposition parser.
struct Page {
    text: String,
    parsed: prometheus_parse::Scrape,
}

impl Page {
    /// The sample `name` whose labels include `labels`; 0 when absent (a
    /// labelled series appears once it has counted something).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => panic!("{name}: not a number\n{}", self.text),
            })
            .unwrap_or(0.0)
    }

    fn sent(&self, kind: &str) -> u64 {
        self.value("leaseline_dhcp_packets_sent_total", &[("type", kind)]) as u64
    }

    fn received(&self, kind: &str) -> u64 {
        self.value("leaseline_dhcp_packets_received_total", &[("type", kind)]) as u64
    }

    fn assigned(&self) -> u64 {
        self.value(
            "leaseline_pool_addresses",
            &[("pool", POOL), ("state", "assigned")],
        ) as u64
    }
}

/// GET /metrics through a socket opened inside `ns`.
fn scrape(ns: &Netns) -> Page {
    let mut s = ns
        .run_inside(|| TcpStream::connect(WEB))
        .expect("connect to the http endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: leaseline\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{body}"));
    assert!(!parsed.samples.is_empty(), "{body}");
    Page { text: body, parsed }
}

#[test]
fn metrics_follow_perfdhcp_churn_as_tshark_counts_it() {
    require_root();
    require_tool("perfdhcp");
    require_tool("dumpcap");
    require_tool("tshark");

    let ns = Netns::new("ll-metrics");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let config = ServerConfig::loopback(listen, &[Ipv4Addr::LOCALHOST])
        .extra(&format!("\n[http]\nlisten = \"{WEB}\"\n"))
        .build();
    let mut server = ServerProcess::builder(BIN, &config).netns(&ns).spawn();

    // The capture takes the DHCP port and the markers' port.
    let (marker, sink) = ns.run_inside(|| {
        let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind (namespace)");
        (bind(), bind())
    });
    let marks = sink.local_addr().expect("sink address");
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("churn.pcapng");
    let capture = Capture::start(
        "lo",
        &format!("udp port {PORT} or udp port {}", marks.port()),
        &pcap,
        Some(&ns),
    );
    capture.wait_for_marker(&marker, marks, b"capture-live", Duration::from_secs(30));

    let before = scrape(&ns);
    assert_eq!(before.sent("ack"), 0, "{}", before.text);
    assert_eq!(before.assigned(), 0, "{}", before.text);

    let mut perf = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(PORT)
        .local(Ipv4Addr::LOCALHOST)
        .rate(100)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(2.0)
        .report_interval(1)
        .exit_wait(Duration::from_secs(2))
        .base_mac("02:00:19:00:00:00")
        .spawn();

    // Two scrapes while it runs: the ACKs sent grow between them.
    perf.wait_progress("50 ACKs", Duration::from_secs(30), |p| {
        p.acks_received >= 50
    });
    let first = scrape(&ns);
    assert!(first.sent("ack") >= 50, "{}", first.text);
    let second = wait_until(
        "the ACKs sent to grow between two scrapes",
        Duration::from_secs(30),
        || Some(scrape(&ns)).filter(|p| p.sent("ack") > first.sent("ack")),
    );
    assert!(
        second.sent("ack") < u64::from(CLIENTS),
        "perfdhcp still running: {} of {CLIENTS} ACKs so far",
        second.sent("ack")
    );
    assert!(second.assigned() >= first.assigned());

    let report = perf.wait(Duration::from_secs(90));
    eprintln!("{report}");
    assert_eq!(report.exit_code, Some(0), "{report}");
    let acked = report.ra_stats().received;
    assert_eq!(acked, u64::from(CLIENTS), "every client ACKed\n{report}");

    // perfdhcp is gone; nothing more goes to or from the server. The
    // marker after it in the file means the capture holds every reply.
    let after = scrape(&ns);
    capture.wait_for_marker(&marker, marks, b"end-of-traffic", Duration::from_secs(30));
    let pcap = capture.stop();
    let wire = read_dhcp_capture(&pcap);
    let count = |t: u8| wire.iter().filter(|m| m.msg_type == t).count() as u64;
    let (discovers, offers, requests, acks) = (
        count(DHCPDISCOVER),
        count(DHCPOFFER),
        count(DHCPREQUEST),
        count(DHCPACK),
    );
    eprintln!(
        "wire: {discovers} DISCOVER, {offers} OFFER, {requests} REQUEST, {acks} ACK; \
         metrics: {} / {} / {} / {}, assigned {}",
        after.received("discover"),
        after.sent("offer"),
        after.received("request"),
        after.sent("ack"),
        after.assigned()
    );
    assert_eq!(after.received("discover"), discovers, "{}", after.text);
    assert_eq!(after.sent("offer"), offers, "{}", after.text);
    assert_eq!(after.received("request"), requests, "{}", after.text);
    assert_eq!(after.sent("ack"), acks, "{}", after.text);
    assert_eq!(
        acks, acked,
        "ACKs on the wire vs perfdhcp's count\n{report}"
    );
    assert_eq!(after.sent("nak"), 0, "{}", after.text);

    let clients: HashSet<&str> = wire
        .iter()
        .filter(|m| m.msg_type == DHCPACK)
        .map(|m| m.chaddr.as_str())
        .collect();
    assert_eq!(clients.len() as u64, acks, "one ACK per client");
    assert_eq!(after.assigned(), acks, "{}", after.text);
    // The store agrees (read once the server has stopped).
    server.assert_running();
    let status = server.terminate();
    assert!(status.success(), "server exit status: {status:?}");
    let active = assert_no_double_allocation(&load_bindings(&server.db_path())).len();
    assert_eq!(
        active as u64,
        after.assigned(),
        "ACTIVE bindings in the store"
    );
}
