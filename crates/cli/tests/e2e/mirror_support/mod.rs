//! Shared by the `mirror_*` tests: `leaseline mirror` as a child process
//! (SIGKILL and restart on the same replica), its status and queries through
//! the CLI, a server config with the leasequery listener, and the
//! field-by-field comparison of a replica with the server's store.

#![allow(dead_code)] // each test file uses a different part

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use leaseline_test_support::{
    load_bindings, mac_string, strip_ansi, Binding, DhcpState, Netns, ServerConfig, Subnet,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// A TCP port on 127.0.0.1 no other caller in this process was given.
#[allow(unused_imports)] // not every test of this module uses it
pub use leaseline_test_support::free_tcp_port;

/// A server config: DHCP on `dhcp` for relays `relays`, pool 10.0.0.10 -
/// 10.0.255.250, lease 3600 s (so nothing expires during a test), the bulk
/// and active leasequery listener on `lq`, a history of `history_age`
/// seconds, keepalives every `idle_timeout` seconds.
pub fn server_config(
    dhcp: SocketAddr,
    relays: &[Ipv4Addr],
    lq: SocketAddr,
    history_age: u32,
    idle_timeout: u32,
) -> String {
    ServerConfig::new(dhcp)
        .holds()
        .history(history_age, 1_000_000)
        .subnet(Subnet::new("10.0.0.0/16", "10.0.0.10-10.0.255.250", relays).router())
        .allow(&["127.0.0.0/8"])
        .bulk(lq, "")
        .active(true, &format!("idle_timeout = {idle_timeout}"))
        .build()
}

/// `leaseline mirror` as a child process. Each start writes its output to
/// its own log file (`mirror-N.log` in `dir`); dropping it kills the process.
pub struct Mirror {
    args: Vec<String>,
    netns: Option<String>,
    pub dir: PathBuf,
    pub db: PathBuf,
    pub events: PathBuf,
    child: Option<Child>,
    /// Number of starts so far; the current run's number.
    pub run: usize,
}

impl Mirror {
    /// `leaseline mirror --server SERVER --db DIR/replica.db --events
    /// DIR/events.jsonl` plus `extra`, run inside `netns` when given.
    pub fn new(dir: &Path, server: SocketAddr, extra: &[&str], netns: Option<&Netns>) -> Mirror {
        let db = dir.join("replica.db");
        let events = dir.join("events.jsonl");
        let mut args: Vec<String> = vec![
            "mirror".into(),
            "--server".into(),
            server.to_string(),
            "--db".into(),
            db.display().to_string(),
            "--events".into(),
            events.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Mirror {
            args,
            netns: netns.map(|n| n.name().to_owned()),
            dir: dir.to_owned(),
            db,
            events,
            child: None,
            run: 0,
        }
    }

    pub fn log_path(&self, run: usize) -> PathBuf {
        self.dir.join(format!("mirror-{run}.log"))
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "mirror already running");
        self.run += 1;
        let log = std::fs::File::create(self.log_path(self.run)).expect("create mirror log");
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the program: the child's pid is the mirror's.
            Some(ns) => {
                let mut c = Command::new(leaseline_test_support::require_tool("ip"));
                c.args(["netns", "exec", ns]).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start leaseline mirror"));
    }

    /// SIGKILL (std's `Child::kill`), then reap.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("mirror not running");
        c.kill().expect("SIGKILL the mirror");
        let status = c.wait().expect("reap the mirror");
        assert!(!status.success(), "the mirror died of SIGKILL: {status:?}");
    }

    /// Panics (with its log) unless the mirror is still running.
    pub fn assert_running(&mut self) {
        let c = self.child.as_mut().expect("mirror not started");
        if let Ok(Some(st)) = c.try_wait() {
            panic!(
                "the mirror exited ({st:?})\n--- mirror log ---\n{}",
                self.log(self.run)
            );
        }
    }

    /// The log of run `run`, colours removed.
    pub fn log(&self, run: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
        text.lines().map(strip_ansi).collect::<Vec<_>>().join("\n")
    }

    /// Every run's log, for failure messages.
    pub fn all_logs(&self) -> String {
        (1..=self.run)
            .map(|r| format!("--- mirror run {r} ---\n{}", self.log(r)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the current run's log has a line containing `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log(self.run).lines().find(|l| l.contains(needle)) {
                return l.to_owned();
            }
            if Instant::now() >= deadline {
                panic!(
                    "no line containing `{needle}` in the mirror's log within {timeout:?}\n{}",
                    self.all_logs()
                );
            }
            self.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `leaseline mirror status --json` of this replica.
    pub fn status(&self) -> serde_json::Value {
        status_json(&self.db)
    }

    /// Waits until `mirror status` says `live`; returns that status.
    pub fn wait_live(&mut self, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if self.db.exists() {
                let s = self.status();
                if s["phase"] == "live" {
                    return s;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "the mirror did not reach phase live within {timeout:?}; status {s}\n{}",
                        self.all_logs()
                    );
                }
            }
            self.assert_running();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The event lines written so far, parsed (a line still being written,
    /// without its newline yet, is left for the next call).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.events).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("event line `{l}` is not JSON: {e}"))
            })
            .collect()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
    }
}

/// Runs `leaseline ARGS`; returns (exit code, stdout, stderr).
pub fn leaseline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run leaseline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `leaseline mirror status --db DB --json`, parsed.
pub fn status_json(db: &Path) -> serde_json::Value {
    let db = db.display().to_string();
    let (code, out, err) = leaseline(&["mirror", "status", "--db", &db, "--json"]);
    assert_eq!(code, 0, "mirror status failed: {out}{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status `{out}` not JSON: {e}"))
}

/// What the comparison looks at, per address: a missing row is AVAILABLE
/// with no MAC, client-id or expiry (never leased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub state: DhcpState,
    pub mac: Option<String>,
    pub client_id: Option<Vec<u8>>,
    pub expiry: u32,
}

impl Seen {
    fn of(b: Option<&Binding>) -> Seen {
        match b {
            None => Seen {
                state: DhcpState::Available,
                mac: None,
                client_id: None,
                expiry: 0,
            },
            Some(b) => Seen {
                state: b.state,
                mac: (!b.chaddr.is_empty()).then(|| mac_string(&b.chaddr)),
                client_id: b.client_id.clone(),
                expiry: b.expiry,
            },
        }
    }
}

/// Every address (union of both stores) where the replica differs from the
/// server in state, MAC, client-id or expiry, one line each.
pub fn differences(server: &[Binding], replica: &[Binding]) -> Vec<String> {
    let s: BTreeMap<Ipv4Addr, &Binding> = server.iter().map(|b| (b.ip, b)).collect();
    let r: BTreeMap<Ipv4Addr, &Binding> = replica.iter().map(|b| (b.ip, b)).collect();
    let all: BTreeSet<Ipv4Addr> = s.keys().chain(r.keys()).copied().collect();
    let mut out = Vec::new();
    for ip in all {
        let (a, b) = (Seen::of(s.get(&ip).copied()), Seen::of(r.get(&ip).copied()));
        if a != b {
            let mut fields = Vec::new();
            if a.state != b.state {
                fields.push(format!("state {} vs {}", a.state.name(), b.state.name()));
            }
            if a.mac != b.mac {
                fields.push(format!("mac {:?} vs {:?}", a.mac, b.mac));
            }
            if a.client_id != b.client_id {
                fields.push(format!("client-id {:?} vs {:?}", a.client_id, b.client_id));
            }
            if a.expiry != b.expiry {
                fields.push(format!("expiry {} vs {}", a.expiry, b.expiry));
            }
            out.push(format!("{ip}: server / replica: {}", fields.join("; ")));
        }
    }
    out
}

/// Loads both stores (either may be open in a running process).
pub fn load_both(server_db: &Path, replica_db: &Path) -> (Vec<Binding>, Vec<Binding>) {
    (load_bindings(server_db), load_bindings(replica_db))
}
