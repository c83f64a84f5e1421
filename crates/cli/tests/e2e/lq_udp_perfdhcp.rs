#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! UDP Leasequery about bindings made by a third-party client: perfdhcp
//! (Kea), as a relay, runs DORA for distinct clients against `leaseline
//! serve` (perfdhcp sends client-id 01 + MAC); then `leaseline query` asks
//! about each binding in the store by IP, by MAC and by client-id, and the
//! answers must agree with the store.
//!
//! perfdhcp's `-l` must be an address on an interface, and it listens on
//! port 67: the server, perfdhcp and the queries run in a namespace of this
//! test's own, on its loopback.

use crate::lq_udp_common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use leaseline_test_support::{
    assert_no_double_allocation, load_bindings, mac_string, require_root, require_tool, unix_now,
    Netns, Perfdhcp, ServerProcess,
};
use lq_udp_common::*;

const CLIENTS: u32 = 60;
const PORT: u16 = 1067;

#[test]
fn queries_agree_with_the_store_for_perfdhcp_bindings() {
    require_root();
    require_tool("perfdhcp");
    require_tool("ip");
    let ns = Netns::new("ll-lq-perfdhcp");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let cfg = config(
        listen,
        67,
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.250",
            relays: &[Ipv4Addr::LOCALHOST],
        }],
        LQ_LOOPBACK,
    );
    let server = ServerProcess::builder(BIN, &cfg).netns(&ns).spawn();
    let report = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(PORT)
        .local(Ipv4Addr::LOCALHOST)
        .rate(100)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(2.0)
        .exit_wait(Duration::from_secs(2))
        .base_mac("02:00:41:00:00:00")
        .run(Duration::from_secs(120));
    assert_eq!(report.ra_stats().received, u64::from(CLIENTS), "{report}");

    let bindings = load_bindings(&server.db_path());
    let active = assert_no_double_allocation(&bindings);
    assert_eq!(active.len(), CLIENTS as usize, "{report}");
    let q = |args: &[&str]| {
        let mut all: Vec<String> = ["--server", &listen.to_string(), "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = ns.command(BIN);
        cmd.arg("query").args(&all);
        let r = run_query_command(cmd, all);
        r.expect_code(EXIT_ACTIVE);
        r.json()
    };
    for (ip, b) in &active {
        let ip_s = ip.to_string();
        let mac_s = mac_string(&b.chaddr);
        let cid = b.client_id.clone().expect("perfdhcp sends a client-id");
        assert_eq!(cid[0], 1, "client-id type 1 + MAC: {b:?}");
        let now = unix_now();
        let v = q(&["--ip", &ip_s]);
        assert_eq!(v["ip"], ip_s.as_str(), "{v}");
        assert_eq!(v["mac"], mac_s.as_str(), "{v}");
        assert_eq!(v["client_id"], hexs(&cid).as_str(), "{v}");
        let left = v["lease_time_remaining"].as_i64().unwrap();
        assert!(
            (left - (i64::from(b.expiry) - i64::from(now))).abs() <= 2,
            "{v} vs {b:?}"
        );
        let age = v["cltt_age"].as_i64().unwrap();
        assert!(
            (age - (i64::from(now) - i64::from(b.cltt))).abs() <= 2,
            "{v} vs {b:?}"
        );
        for args in [["--mac", mac_s.as_str()], ["--client-id", &hexs(&cid)]] {
            let v = q(&args);
            assert_eq!(v["ip"], ip_s.as_str(), "{args:?}: {v}");
            assert_eq!(associated(&v), Vec::<Ipv4Addr>::new(), "{args:?}: {v}");
        }
    }
    // One past the last client: nobody.
    let mut cmd = ns.command(BIN);
    cmd.args([
        "query",
        "--server",
        &listen.to_string(),
        "--mac",
        "02:00:41:00:10:00",
    ]);
    run_query_command(cmd, vec![]).expect_code(EXIT_UNKNOWN);
}
