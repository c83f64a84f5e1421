#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline import leases` into a PostgreSQL store that a running
//! server uses: the import is one commit on the shared change log, so the
//! server learns it and an Active Leasequery watcher attached to it sees
//! every imported binding as an update, with the file's MAC.

use crate::active_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use active_support::spawn_watch;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, pg_database, unix_now, ServerConfig, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const LEASES: u32 = 50;

#[test]
fn a_running_server_and_its_watcher_see_the_import() {
    let db = pg_database();
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let cfg_text = ServerConfig::loopback(dhcp, &[Ipv4Addr::LOCALHOST])
        .allow(&["127.0.0.0/8"])
        .bulk(tcp, "")
        .active(true, "")
        .store(&format!("backend = \"postgres\"\nurl = \"{}\"\n", db.url))
        .build();
    let server = ServerProcess::spawn(BIN, &cfg_text);
    let watch = spawn_watch(tcp, &[], None);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("leaseline.toml");
    std::fs::write(
        &cfg,
        cfg_text.replace("@STATE_DIR@", &dir.path().display().to_string()),
    )
    .unwrap();
    let expire = unix_now() + 3600;
    let mut csv = String::from("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n");
    for i in 0..LEASES {
        csv += &format!("10.0.1.{i},02:00:00:00:01:{i:02x},,3600,{expire},1,0,0,,0,\n");
    }
    let file = dir.path().join("kea-leases4.csv");
    std::fs::write(&file, csv).unwrap();

    let o = Command::new(BIN)
        .args(["import", "leases", "--from", "kea-csv"])
        .arg(&file)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("imported: {LEASES} bindings")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    for i in 0..LEASES {
        let ip = format!("10.0.1.{i}");
        let mac = format!("02:00:00:00:01:{i:02x}");
        watch.wait_for(
            0,
            &format!("the update of {ip}"),
            Duration::from_secs(20),
            |v| v["event"] == "update" && v["ip"] == ip.as_str() && v["mac"] == mac.as_str(),
        );
    }
    drop(server);
}
