#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Interop: ISC dhclient on a directly attached link. Two namespaces joined
//! by a veth pair; leaseline serves the subnet on the server-side veth, and
//! dhclient (with Debian's /sbin/dhclient-script) configures the client side.
//! Then `dhclient -r` releases the lease and the store shows it RELEASED.

use std::net::Ipv4Addr;
use std::time::Duration;

use leaseline_test_support::{
    mac_string, require_root, require_tool, run_logged, wait_for_binding, DhcpState, NetnsPair,
    ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

const SERVER_ADDR: &str = "192.0.2.1";
const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const POOL_LAST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 150);

fn config(interface: &str) -> String {
    format!(
        r#"[server]
state_dir = "@STATE_DIR@"
server_id = "{SERVER_ADDR}"

[dhcp]
offer_hold = 30
decline_hold = 3600
expired_grace = 600

[store]
history_max_age = 3600
history_max_count = 100000

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["{POOL_FIRST}-{POOL_LAST}"]
relay_addresses = []
interface = "{interface}"
router = ["{SERVER_ADDR}"]
dns_servers = ["192.0.2.53"]
domain_name = "lab.example"
lease_time = 600
"#
    )
}

const DHCLIENT_CONF: &str = "\
timeout 30;
retry 5;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers;
";

#[test]
fn dhclient_gets_an_address_and_releases_it() {
    require_root();
    let dhclient = require_tool("dhclient");
    require_tool("dhclient-script");
    require_tool("ip");

    let net = NetnsPair::new("lldhc");
    net.server.ip(&[
        "addr",
        "add",
        &format!("{SERVER_ADDR}/24"),
        "dev",
        &net.server_if,
    ]);
    let mut server = ServerProcess::builder(BIN, &config(&net.server_if))
        .netns(&net.server)
        .spawn();

    let dir = tempfile::tempdir().expect("tempdir");
    let cf = dir.path().join("dhclient.conf");
    let lf = dir.path().join("dhclient.leases");
    let pf = dir.path().join("dhclient.pid");
    std::fs::write(&cf, DHCLIENT_CONF).expect("write dhclient.conf");
    let dhclient_args = |extra: &[&str]| {
        let mut c = net.client.command(&dhclient);
        c.args(extra)
            .arg("-v")
            .arg("-cf")
            .arg(&cf)
            .arg("-lf")
            .arg(&lf)
            .arg("-pf")
            .arg(&pf)
            .arg(&net.client_if);
        c
    };
    let client_mac = net.client.mac(&net.client_if);

    // Acquire: -1 tries once and exits 2 on failure; on success dhclient
    // configures the interface and goes to the background.
    let (status, out) = run_logged(
        &mut dhclient_args(&["-1"]),
        &dir.path().join("dhclient-acquire.log"),
        Duration::from_secs(90),
    );
    assert!(
        status.success(),
        "dhclient -1 failed ({status:?}):\n{out}\n--- server log ---\n{}",
        server.log_tail(100)
    );

    let addrs = net.client.ipv4_addrs(&net.client_if);
    let ip: Ipv4Addr = addrs
        .iter()
        .find_map(|a| a.strip_suffix("/24").and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| {
            panic!(
                "no /24 address on {} after dhclient: {addrs:?}\n{out}",
                net.client_if
            )
        });
    assert!(
        (u32::from(POOL_FIRST)..=u32::from(POOL_LAST)).contains(&u32::from(ip)),
        "address {ip} is outside the pool"
    );
    eprintln!(
        "dhclient configured {ip} on {} ({client_mac})",
        net.client_if
    );
    let routes = net.client.ip(&["-4", "route", "show", "default"]);
    assert!(
        routes.contains(&format!("default via {SERVER_ADDR}")),
        "router option not applied: `{routes}`"
    );
    let resolv = std::fs::read_to_string(net.client.resolv_conf()).unwrap_or_default();
    assert!(
        resolv.contains("nameserver 192.0.2.53") && resolv.contains("lab.example"),
        "DNS options not applied; resolv.conf in the client namespace:\n{resolv}"
    );

    let b = wait_for_binding(&server.db_path(), ip, Duration::from_secs(10), |b| {
        b.state == DhcpState::Active
    });
    assert_eq!(
        mac_string(&b.chaddr),
        client_mac,
        "the binding of {ip} names the wrong client: {b:?}"
    );

    // Release: stops the background dhclient, sends DHCPRELEASE, removes
    // the address.
    let (status, out) = run_logged(
        &mut dhclient_args(&["-r"]),
        &dir.path().join("dhclient-release.log"),
        Duration::from_secs(60),
    );
    assert!(status.success(), "dhclient -r failed ({status:?}):\n{out}");
    let addrs = net.client.ipv4_addrs(&net.client_if);
    assert!(
        addrs.is_empty(),
        "address still configured after release: {addrs:?}"
    );

    wait_for_binding(&server.db_path(), ip, Duration::from_secs(10), |b| {
        b.state == DhcpState::Released
    });

    server.assert_running();
    let status = server.terminate();
    assert!(
        status.success(),
        "server exit status after SIGTERM: {status:?}"
    );
}
