#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Live reload (issue 19): SIGHUP and the control API's `config-reload`
//! read the file again and apply it without a restart.
//!
//! 1. A pool of two addresses is full (a third client gets no offer); the
//!    pool is widened in the file and the server gets SIGHUP: the third
//!    client is served, the first two keep their addresses (renewals ACK
//!    the same ones), and an Active Leasequery requestor connected before
//!    the reload is still connected and sees the new lease.
//! 2. A broken file: `config-reload` answers result 1 naming the key and
//!    line, and the running configuration stays (the widened pool still
//!    serves).
//! 3. A change that needs a restart (the DHCP port) is applied to nothing
//!    and named in the answer.

use crate::active_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use active_support::{spawn_watch, Config, BIN};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{free_tcp_port, RelayClient, ServerProcess, TestClient};
use serde_json::Value;

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const SECOND: Duration = Duration::from_secs(1);

fn ctl(url: &str, args: &[&str]) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(["ctl", "--server", url, "--json"])
        .args(args)
        .output()
        .expect("run leaseline ctl");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ctl {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit status"), v)
}

#[test]
fn sighup_and_config_reload_apply_without_a_restart() {
    let mut cfg = Config::new(*RELAY);
    cfg.pool = "10.0.0.10-10.0.0.11".into();
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let url = format!("http://{web}");
    let text = format!("{}\n[http]\nlisten = \"{web}\"\n", cfg.render());
    let server = ServerProcess::spawn(BIN, &text);
    let watch = spawn_watch(cfg.tcp, &[], None);
    watch.wait_event(0, "connected", 10 * SECOND);
    let mut relay = RelayClient::bind(*RELAY, cfg.dhcp).expect("bind relay");

    // 1. Full, then widened by SIGHUP.
    let (a, b, c) = (TestClient::new(1), TestClient::new(2), TestClient::new(3));
    let la = relay.dora(&a).expect("DORA a");
    let lb = relay.dora(&b).expect("DORA b");
    assert!(relay.discover(&c).is_none(), "the pool of two is full");
    // The file as the server read it (its state_dir filled in).
    let running = server.config_text().to_owned();
    let wider = running.replace("10.0.0.10-10.0.0.11", "10.0.0.10-10.0.0.20");
    assert_ne!(wider, running);
    std::fs::write(server.config_path(), &wider).expect("rewrite the config");
    let mark = server.log_mark();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log_since(mark, "configuration reloaded", 10 * SECOND);
    assert!(
        !line.contains("next restart"),
        "nothing needs a restart: {line}"
    );
    let lc = relay.dora(&c).expect("DORA c after the reload");
    assert!(lc.ip != la.ip && lc.ip != lb.ip);
    assert_eq!(
        relay.dora(&a).expect("renew a").ip,
        la.ip,
        "a keeps its address"
    );
    assert_eq!(
        relay.dora(&b).expect("renew b").ip,
        lb.ip,
        "b keeps its address"
    );
    // The requestor connected before the reload sees the new lease.
    let ip = lc.ip.to_string();
    watch.wait_for(0, "the new lease", 10 * SECOND, |e| e["ip"] == ip.as_str());
    assert!(
        !watch.events().iter().any(|e| e["event"] == "disconnected"),
        "{:?}",
        watch.events()
    );

    // 2. A broken file: refused, the running configuration stays.
    std::fs::write(
        server.config_path(),
        wider.replace("offer_hold = ", "offer_hold = 0 #"),
    )
    .expect("rewrite");
    let (code, a_) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 1, "{a_}");
    assert!(
        a_["text"]
            .as_str()
            .expect("text")
            .contains("`dhcp.offer_hold`"),
        "{a_}"
    );
    let d = TestClient::new(4);
    relay.dora(&d).expect("the widened pool still serves");

    // 3. A change that needs a restart is named, not applied.
    let other_port = wider.replace(
        &format!("listen = \"{}\"", cfg.dhcp),
        &format!(
            "listen = \"127.0.0.1:{}\"",
            leaseline_test_support::free_udp_port()
        ),
    );
    assert_ne!(other_port, wider);
    std::fs::write(server.config_path(), &other_port).expect("rewrite");
    let (code, r) = ctl(&url, &["config-reload"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        r["arguments"]["need-restart"],
        serde_json::json!(["dhcp.listen"]),
        "{r}"
    );
    relay
        .dora(&TestClient::new(5))
        .expect("still on the running port");
    drop(server);
}
