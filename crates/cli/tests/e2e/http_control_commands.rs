#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Every control command (issue 19), success and failure, through
//! `leaseline ctl` against a running server; http_control.rs has the tour
//! of the lease queries, paging, dhcp-disable and the statistics.
//!
//! 1. `list-commands` lists every command the issue names, and the server
//!    answers each one it lists (result other than 2, "unsupported");
//!    `version-get` names the version; `config-get` returns the running
//!    file without the bearer token; bad arguments are result 1 (and
//!    `leaseline ctl` exits 1) and change nothing; a lease nobody holds is
//!    result 3.
//! 2. `leases-reclaim` with the reaper off (`[dhcp] reclaim_interval = 0`):
//!    a lease past its expiry stays ACTIVE until the command, which
//!    answers `changed` 1; it is EXPIRED as soon as the command answers.
//! 3. `lease4-del` is a binding change: a `leaseline watch` connected to
//!    the server sees the address become AVAILABLE.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use crate::http_support::{Ctl, BIN, TOKEN};
use leaseline_test_support::{
    free_tcp_port, free_udp_port, loopback_relay, mac_string, unix_now, wait_until, RelayClient,
    ServerConfig, ServerProcess, Subnet, TestClient, WatchProcess,
};
use serde_json::Value;

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const SECOND: Duration = Duration::from_secs(1);

/// The commands the issue asks for.
const ISSUE_COMMANDS: &[&str] = &[
    "status-get",
    "version-get",
    "config-get",
    "config-test",
    "config-reload",
    "lease4-get",
    "lease4-get-page",
    "lease4-get-by-hw-address",
    "lease4-del",
    "statistic-get-all",
    "leases-reclaim",
    "dhcp-disable",
    "dhcp-enable",
    "list-commands",
];

/// A server with DHCP for relayed clients on free ports and the HTTP
/// endpoint on `web` ([`TOKEN`] required); `config` adds the rest.
struct Setup {
    dhcp: SocketAddr,
    relay_port: u16,
    web: SocketAddr,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dhcp: SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port())),
            relay_port: free_udp_port(),
            web: SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port())),
        }
    }

    fn config(&self) -> ServerConfig {
        ServerConfig::new(self.dhcp).relay_port(self.relay_port)
    }

    /// Starts the server on `config` plus the `[http]` section.
    fn spawn(&self, config: ServerConfig) -> (ServerProcess, RelayClient, Ctl) {
        let web = self.web;
        let text = config
            .extra(&format!(
                "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\n"
            ))
            .build();
        let server = ServerProcess::spawn(BIN, &text);
        let relay = RelayClient::bind_port(*RELAY, self.relay_port, self.dhcp).expect("bind relay");
        (server, relay, Ctl::new(web))
    }
}

/// The answer's result code and `leaseline ctl`'s exit status, which is
/// the same number.
fn result(exit: i32, answer: &Value) -> i32 {
    let result = answer["result"].as_i64().expect("a result") as i32;
    assert_eq!(exit, result, "ctl's exit status is the result: {answer}");
    result
}

fn text(answer: &Value) -> &str {
    answer["text"].as_str().expect("a text")
}

#[test]
fn every_command_answers_and_bad_arguments_are_refused() {
    let setup = Setup::new();
    let (server, mut relay, ctl) = setup.spawn(setup.config().subnet(Subnet::new(
        "10.0.0.0/24",
        "10.0.0.10-10.0.0.200",
        &[*RELAY],
    )));
    let client = TestClient::new(1).with_client_id(&[0xff, 0, 0, 0, 1]);
    let lease = relay.dora(&client).expect("DORA");

    // list-commands: the issue's commands, and each one it lists is
    // answered (called without arguments: result 0, 1 or 3, never 2).
    let (exit, a) = ctl.run(&["list-commands"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    let listed: Vec<&str> = a["arguments"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c.as_str().expect("a command name"))
        .collect();
    for c in ISSUE_COMMANDS {
        assert!(listed.contains(c), "list-commands lacks {c}: {listed:?}");
    }
    for c in &listed {
        let (exit, a) = ctl.run(&[*c]);
        assert_ne!(result(exit, &a), 2, "{c} is listed but unsupported: {a}");
    }
    // The check above can fail: a command the server lacks is 2.
    let (exit, a) = ctl.run(&["lease6-get"]);
    assert_eq!(result(exit, &a), 2, "{a}");
    // dhcp-disable was among them; on again, and the server still serves.
    let (exit, a) = ctl.run(&["dhcp-enable"]);
    assert_eq!(result(exit, &a), 0, "{a}");

    // version-get: the version of this build (one workspace version).
    let version = env!("CARGO_PKG_VERSION");
    let (exit, a) = ctl.run(&["version-get"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(text(&a), format!("leaseline {version}"));
    let (exit, out) = ctl.run_text(&["version-get"]);
    assert_eq!(exit, 0, "{out}");
    assert_eq!(out.lines().next(), Some(&*format!("leaseline {version}")));

    // config-get: the running file, the token hidden.
    let (exit, a) = ctl.run(&["config-get"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(
        a["arguments"]["path"],
        server.config_path().display().to_string()
    );
    let running = &a["arguments"]["leaseline"];
    assert_eq!(running["subnet"][0]["prefix"], "10.0.0.0/24", "{a}");
    assert_eq!(running["subnet"][0]["pools"][0], "10.0.0.10-10.0.0.200");
    assert_eq!(running["http"]["listen"], setup.web.to_string());
    assert_eq!(running["http"]["token"], "<hidden>");
    assert!(!a.to_string().contains(TOKEN), "config-get leaks the token");

    // Bad arguments: result 1, a text naming the argument.
    for (args, named) in [
        (
            &["lease4-get-by-hw-address", "hw-address=zz:zz:zz"][..],
            "hw-address",
        ),
        (&["lease4-get-by-hw-address"], "hw-address"),
        (
            &["lease4-get-by-client-id", "client-id=not-hex"],
            "client-id",
        ),
        (&["lease4-get-by-client-id"], "client-id"),
        (&["dhcp-disable", "max-period=0"], "max-period"),
    ] {
        let (exit, a) = ctl.run(args);
        assert_eq!(result(exit, &a), 1, "{args:?}: {a}");
        assert!(text(&a).contains(named), "{args:?}: {a}");
    }
    let (exit, out) = ctl.run_text(&["lease4-get-by-hw-address", "hw-address=zz:zz:zz"]);
    assert_eq!(exit, 1, "{out}");
    assert!(out.starts_with("hw-address:"), "{out}");
    // The refused dhcp-disable disabled nothing.
    let (_, a) = ctl.run(&["status-get"]);
    assert_eq!(a["arguments"]["dhcp-state"]["disabled"], false, "{a}");
    relay
        .dora(&TestClient::new(2))
        .expect("DORA after a refused dhcp-disable");

    // The client's lease by its MAC and client id; nobody else's: 3.
    let by_mac = format!("hw-address={}", mac_string(&client.chaddr));
    let (exit, a) = ctl.run(&["lease4-get-by-hw-address", &by_mac]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(
        a["arguments"]["leases"][0]["ip-address"],
        lease.ip.to_string()
    );
    let (exit, a) = ctl.run(&["lease4-get-by-client-id", "client-id=ff:00:00:00:01"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(a["arguments"]["count"], 1, "{a}");
    assert_eq!(
        a["arguments"]["leases"][0]["ip-address"],
        lease.ip.to_string()
    );
    for args in [
        &["lease4-get-by-hw-address", "hw-address=02:00:00:00:99:99"][..],
        &["lease4-get-by-client-id", "client-id=ff:00:00:00:99"],
        &["lease4-del", "ip-address=10.0.0.199"],
    ] {
        let (exit, a) = ctl.run(args);
        assert_eq!(result(exit, &a), 3, "{args:?}: {a}");
    }
}

#[test]
fn leases_reclaim_expires_a_lease_past_its_time() {
    let setup = Setup::new();
    // The reaper off (`reclaim_interval = 0`): only the command expires
    // leases. The shortest lease the configuration allows
    // (subnet.lease_time: "must be at least 60 seconds").
    let (_server, mut relay, ctl) = setup.spawn(
        setup
            .config()
            .dhcp("reclaim_interval = 0")
            .subnet_toml(&format!(
                "[[subnet]]\nprefix = \"10.0.0.0/24\"\npools = [\"10.0.0.10-10.0.0.200\"]\n\
                 relay_addresses = [\"{}\"]\nlease_time = 60\n",
                *RELAY
            )),
    );
    let lease = relay.dora(&TestClient::new(1)).expect("DORA");
    let by_ip = format!("ip-address={}", lease.ip);
    let (exit, a) = ctl.run(&["lease4-get", &by_ip]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(a["arguments"]["state"], 0, "{a}");
    assert_eq!(a["arguments"]["valid-lft"], 60, "{a}");
    let expire = a["arguments"]["user-context"]["leaseline"]["expire"]
        .as_u64()
        .expect("expire") as u32;

    // Before the expiry nothing is due (Kea's `remove` argument is taken
    // and has nothing to change here).
    let (exit, a) = ctl.run(&["leases-reclaim", "remove=false"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(a["arguments"]["changed"], 0, "{a}");
    assert_eq!(text(&a), "0 bindings changed state");
    let (_, a) = ctl.run(&["lease4-get", &by_ip]);
    assert_eq!(a["arguments"]["state"], 0, "still leased: {a}");

    // Two seconds past the expiry: the default reaper (one pass a second)
    // would have expired the lease by now; with it off, the binding is
    // still ACTIVE (lease4-get shows the binding as held, its expiry in
    // the past).
    wait_until("two seconds past the lease's expiry", 90 * SECOND, || {
        (unix_now() >= expire + 2).then_some(())
    });
    let (exit, a) = ctl.run(&["lease4-get", &by_ip]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(
        a["arguments"]["state"], 0,
        "not reclaimed without the command: {a}"
    );
    assert_eq!(
        a["arguments"]["user-context"]["leaseline"]["state"], "active",
        "{a}"
    );

    // The command expires it, and only it.
    let (exit, a) = ctl.run(&["leases-reclaim"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(a["arguments"]["changed"], 1, "{a}");
    assert_eq!(text(&a), "1 bindings changed state");
    let (exit, a) = ctl.run(&["lease4-get", &by_ip]);
    assert_eq!(result(exit, &a), 0, "an expired lease is still found: {a}");
    assert_eq!(a["arguments"]["state"], 2, "Kea's expired-reclaimed: {a}");
    let ours = &a["arguments"]["user-context"]["leaseline"];
    assert_eq!(ours["state"], "expired", "{a}");
    assert_eq!(ours["state-since"], expire, "expired as of its expiry: {a}");
    // Done once: nothing else is due (the grace period runs an hour).
    let (exit, a) = ctl.run(&["leases-reclaim"]);
    assert_eq!(result(exit, &a), 0, "{a}");
    assert_eq!(a["arguments"]["changed"], 0, "{a}");
}

#[test]
fn lease4_del_is_seen_by_a_watcher() {
    let setup = Setup::new();
    let lq = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let (server, mut relay, ctl) = setup.spawn(
        setup
            .config()
            .subnet(Subnet::new(
                "10.0.0.0/24",
                "10.0.0.10-10.0.0.200",
                &[*RELAY],
            ))
            .allow(&["127.0.0.0/8"])
            .bulk(lq, "")
            .active(true, ""),
    );
    let mark = server.log_mark();
    let watch = WatchProcess::builder(BIN)
        .args(["--server", &lq.to_string(), "--json", "--no-reconnect"])
        .env("RUST_LOG", "warn")
        .spawn();
    watch.wait_event(0, "connected", 10 * SECOND);
    server.wait_for_log_since(mark, "active query started", 10 * SECOND);

    let lease = relay.dora(&TestClient::new(1)).expect("DORA");
    let ip = lease.ip.to_string();
    watch.wait_for(0, "the lease, active", 10 * SECOND, |v| {
        v["event"] == "update" && v["ip"] == ip && v["type"] == "DHCPLEASEACTIVE"
    });

    // Bad arguments delete nothing.
    for args in [&["lease4-del"][..], &["lease4-del", "ip-address=10.0.0"]] {
        let (exit, a) = ctl.run(args);
        assert_eq!(result(exit, &a), 1, "{args:?}: {a}");
        assert!(text(&a).contains("ip-address"), "{a}");
    }
    let (exit, a) = ctl.run(&["lease4-get", &format!("ip-address={ip}")]);
    assert_eq!(result(exit, &a), 0, "still leased: {a}");

    let from = watch.mark();
    let (exit, a) = ctl.run(&["lease4-del", &format!("ip-address={ip}")]);
    assert_eq!(result(exit, &a), 0, "{a}");
    let seen = watch.wait_for(from, "the deleted lease", 10 * SECOND, |v| {
        v["event"] == "update" && v["ip"] == ip
    });
    assert_eq!(seen["state"], "AVAILABLE", "{seen}");
    assert_eq!(seen["type"], "DHCPLEASEUNASSIGNED", "{seen}");
}
