#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Logs (issue 19): with `--log-format json` every line the server writes
//! is one JSON object with a stable `event` name next to its fields; a
//! DHCP exchange logs nothing at the default level (the per-exchange log
//! is debug), and start, reload and stop log the events
//! docs/operations.md lists.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_udp_port, RelayClient, ServerConfig, ServerProcess, Subnet, TestClient,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

/// Every line since `mark`, parsed; panics on a line that is not a JSON
/// object with a string `event`.
fn events(server: &ServerProcess, mark: usize) -> Vec<Value> {
    server.logs()[mark..]
        .iter()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(v["event"].is_string(), "no `event`: {line}");
            assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
            v
        })
        .collect()
}

fn names(v: &[Value]) -> Vec<&str> {
    v.iter().filter_map(|e| e["event"].as_str()).collect()
}

#[test]
fn json_log_lines_carry_an_event_name() {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let text = ServerConfig::new(dhcp)
        .subnet(Subnet::new("10.0.0.0/24", "10.0.0.10-10.0.0.200", &[*RELAY]).router())
        .build();
    let mut server = ServerProcess::builder(BIN, &text)
        .arg("--log-format")
        .arg("json")
        .spawn();
    let started = names(&events(&server, 0))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        started.iter().any(|e| e == "store_opened")
            && started.last().map(String::as_str) == Some("ready"),
        "{started:?}"
    );

    // Twenty DORAs: nothing at the default level (info).
    let mark = server.log_mark();
    let mut relay = RelayClient::bind(*RELAY, dhcp).expect("bind the relay (root)");
    for i in 0..20 {
        relay.dora(&TestClient::new(i)).expect("DORA");
    }
    let during = events(&server, mark);
    assert!(during.is_empty(), "logged during DORAs: {during:#?}");

    // A reload, then a broken file.
    let mark = server.log_mark();
    server.signal(libc::SIGHUP);
    server.wait_for_log_since(mark, "configuration reloaded", Duration::from_secs(10));
    std::fs::write(server.config_path(), format!("{text}\nnonsense = 1\n")).expect("rewrite");
    server.signal(libc::SIGHUP);
    server.wait_for_log_since(mark, "configuration not reloaded", Duration::from_secs(10));
    let reload = events(&server, mark);
    assert_eq!(
        names(&reload),
        [
            "reload_requested",
            "config_reloaded",
            "reload_requested",
            "config_reload_failed"
        ],
        "{reload:#?}"
    );
    assert!(
        reload[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nonsense")),
        "{:#}",
        reload[3]
    );

    let mark = server.log_mark();
    assert!(server.terminate().success());
    let stopped = events(&server, mark);
    assert_eq!(
        names(&stopped),
        ["shutting_down", "stopped"],
        "{stopped:#?}"
    );
}
