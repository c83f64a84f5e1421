#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! An ACKed binding survives kill -9 (architecture: Invariants).
//!
//! The parent re-runs this test binary as a child (selected by an env var)
//! that submits bindings from several threads and prints `ACK n` once each
//! ticket resolves, as the DHCP server sends an ACK only then. The parent
//! SIGKILLs it mid-stream, reopens the store and checks every ACKed binding.
//! (This covers process death; power loss also relies on synchronous=FULL.)

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leaseline_store::battery::sample;
use leaseline_store::{HistoryLimits, LeaseStore, SqliteOptions, SqliteStore};

const CHILD_ENV: &str = "LEASELINE_DURABILITY_CHILD_DB";
const BASE_ENV: &str = "LEASELINE_DURABILITY_CHILD_BASE";
const T0: u32 = 1_700_000_000;
const THREADS: u32 = 4;
const ACKS_BEFORE_KILL: usize = 300;
const ROUNDS: u32 = 3;

fn open(path: &Path) -> SqliteStore {
    let opts = SqliteOptions {
        path: path.to_path_buf(),
        history: HistoryLimits {
            max_age: 3600,
            max_count: 10_000,
        },
        max_batch: 256,
        lease_log: Some(leaseline_store::LeaseLogLimits::DEFAULT),
    };
    SqliteStore::open(opts, T0).expect("open store")
}

/// Child mode: a no-op unless the parent selected it.
#[test]
fn durability_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let base: u32 = std::env::var(BASE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("base");
    let store = open(Path::new(&path));
    let deadline = Instant::now() + Duration::from_secs(60); // bounded if never killed
    std::thread::scope(|s| {
        for th in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..100_000 {
                    if Instant::now() > deadline {
                        return;
                    }
                    let n = base + i * THREADS + th;
                    store
                        .submit(vec![sample(n, T0)], T0)
                        .blocking_recv()
                        .expect("ticket")
                        .expect("commit");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {n}")
                        .and_then(|()| out.flush())
                        .expect("stdout");
                }
            });
        }
    });
}

#[test]
fn kill9_keeps_acked_bindings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db");
    let exe = std::env::current_exe().expect("current_exe");
    let mut acked: Vec<u32> = Vec::new();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .env(BASE_ENV, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut this_round = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child");
            if let Some(n) = line.strip_prefix("ACK ") {
                acked.push(n.parse().expect("ACK number"));
                this_round += 1;
                if this_round == ACKS_BEFORE_KILL {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL child"); // mid-stream: commits are in flight
        child.wait().expect("reap child");
        assert_eq!(this_round, ACKS_BEFORE_KILL, "child ended early");

        let store = open(&path);
        let all = store.load_all().expect("load_all after kill -9");
        assert!(all.len() >= acked.len());
        for &n in &acked {
            let want = sample(n, T0);
            assert_eq!(
                store.get(want.ip).expect("get"),
                Some(want),
                "ACKed binding {n} lost"
            );
        }
    }
}
