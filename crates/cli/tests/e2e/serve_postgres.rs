#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline serve` on the PostgreSQL backend (`[store] backend =
//! "postgres"`), on a throwaway cluster: leases taken through a relay are
//! ACKed, a second server process started on the same database after the
//! first was killed (kill -9, with a state directory of its own) serves
//! them: its Bulk Leasequery returns every ACKed binding with its MAC, and
//! a client asking again gets its address back. No SQLite file is written.

use crate::mirror_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_udp_port, mac_string, pg_database, RelayClient, ServerConfig, ServerProcess, Subnet,
    TestClient,
};
use mirror_support::{free_tcp_port, leaseline, BIN};

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

fn config(dhcp: SocketAddr, rport: u16, lq: SocketAddr, url: &str) -> String {
    ServerConfig::new(dhcp)
        .relay_port(rport)
        .holds()
        .subnet(Subnet::new(
            "10.0.0.0/16",
            "10.0.0.10-10.0.255.250",
            &[*RELAY],
        ))
        .allow(&["127.0.0.0/8"])
        .bulk(lq, "")
        .extra(&format!(
            "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
        ))
        .build()
}

#[test]
fn a_server_on_postgres_keeps_its_leases_across_processes() {
    let db = pg_database();
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let lq = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let cfg = config(dhcp, rport, lq, &db.url);

    let mut first = ServerProcess::spawn(BIN, &cfg);
    let mut relay = RelayClient::bind_port(*RELAY, rport, dhcp).expect("bind relay");
    let clients: Vec<TestClient> = (0..5).map(|n| TestClient::new(0x9300 + n)).collect();
    let leases: Vec<_> = clients
        .iter()
        .map(|c| relay.dora(c).expect("DORA on the postgres backend"))
        .collect();
    assert!(
        !first.db_path().exists(),
        "no SQLite file beside a postgres store: {}",
        first.db_path().display()
    );
    first.kill9();

    let mut second = ServerProcess::spawn(BIN, &cfg);
    let (code, out, err) =
        leaseline(&["bulk", "--server", &lq.to_string(), "--all", "--json", "-q"]);
    assert_eq!(code, 0, "bulk --all: {err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for (c, lease) in clients.iter().zip(&leases) {
        let row = rows
            .iter()
            .find(|r| r["ip"] == lease.ip.to_string())
            .unwrap_or_else(|| {
                panic!(
                    "{} missing from the second server's bulk answer: {out}",
                    lease.ip
                )
            });
        assert_eq!(row["state"], "ACTIVE", "{row}");
        assert_eq!(row["mac"], mac_string(&c.chaddr), "{row}");
    }
    let again = relay.dora(&clients[0]).expect("DORA on the second server");
    assert_eq!(again.ip, leases[0].ip, "the client keeps its address");
    second.assert_running();
}
