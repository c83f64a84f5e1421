#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! DHCP before leasequery: the async runtime's threads (leasequery listeners
//! and sessions) run at `[server] leasequery_nice` (default 19) below the
//! DHCP threads (UDP loop, store writer), which keep the process's priority.

use std::net::{Ipv4Addr, SocketAddr};

use std::time::Duration;

use leaseline_test_support::{loopback_config, require_root, wait_until, Netns, ServerProcess};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// (thread id, name, nice) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(u32, String, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let t = t.expect("task entry");
        let tid: u32 = t.file_name().to_string_lossy().parse().expect("tid");
        let stat = std::fs::read_to_string(t.path().join("stat")).expect("stat");
        // comm is in parentheses and may hold spaces; fields follow ")".
        let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // Field 19 of stat is nice; fields[0] here is field 3 (state).
        out.push((tid, name, fields[16].parse().expect("nice")));
    }
    out
}

fn niceness(extra: &str) -> Vec<(u32, String, i32)> {
    let ns = Netns::new("ll-prio");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 1067));
    let config = loopback_config(listen, &[Ipv4Addr::LOCALHOST])
        .replace("[server]", &format!("[server]\n{extra}"));
    let mut server = ServerProcess::builder(BIN, &config).netns(&ns).spawn();
    let pid = server.pid().expect("pid");
    // "ready" is logged as the UDP thread starts: until it has named itself
    // it shows the process's name (and is not a runtime thread).
    let t = wait_until("the UDP thread named", Duration::from_secs(10), || {
        let t = threads(pid);
        t.iter().any(|x| x.1 == "leaseline-udp").then_some(t)
    });
    server.terminate();
    t
}

#[test]
fn leasequery_threads_run_below_dhcp_threads() {
    require_root();
    let pid_of = |t: &[(u32, String, i32)]| t.iter().map(|x| x.0).min().unwrap();
    let t = niceness("");
    let main = pid_of(&t);
    let nice = |pred: &dyn Fn(&(u32, String, i32)) -> bool| -> Vec<i32> {
        t.iter().filter(|x| pred(x)).map(|x| x.2).collect()
    };
    let workers = nice(&|x| x.1 == "leaseline" && x.0 != main);
    let dhcp = nice(&|x| x.1 == "leaseline-udp" || x.1.starts_with("leaseline-store"));
    assert!(!workers.is_empty() && dhcp.len() >= 2, "threads: {t:?}");
    assert!(
        workers.iter().all(|&n| n == 19),
        "runtime threads at nice 19: {t:?}"
    );
    assert!(
        dhcp.iter().all(|&n| n == 0),
        "DHCP threads keep nice 0: {t:?}"
    );

    let t = niceness("leasequery_nice = 0");
    assert!(
        t.iter().all(|x| x.2 == 0),
        "leasequery_nice = 0: one priority: {t:?}"
    );
}
