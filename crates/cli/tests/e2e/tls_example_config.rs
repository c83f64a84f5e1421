#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! examples/loopback-tls.toml runs as-is with the files `leaseline certs
//! init examples/certs` creates: in a copy of examples/ in a temporary
//! directory, check-config refuses it before the PKI exists and accepts it
//! after; the server starts on it; `leaseline watch` with the flags from the
//! example's header gets the leases over TLS; a plaintext watch gets nothing.
//!
//! The example's own addresses are used: DHCP on 127.0.0.1:1067 for relay
//! 127.0.0.1 (the DORA relay binds 127.0.0.1:67), leasequery on TCP
//! 127.0.0.1:67. The test waits for them to be free first.

use crate::tls_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use leaseline_test_support::{unix_now, wait_until};
use tls_common::*;

const EXAMPLE: &str = "loopback-tls.toml";

fn leaseline(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run leaseline")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `leaseline serve`, killed on drop.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Serve {
    fn start(cwd: &Path, config: &str) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config])
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start leaseline serve");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Serve {
            child,
            lines: rx,
            log: Vec::new(),
        }
    }

    fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.log.push(l.clone());
            if l.contains(needle) {
                return l;
            }
        }
        panic!(
            "no server line with `{needle}` within {limit:?}\n--- server log ---\n{}",
            self.log.join("\n")
        );
    }

    /// SIGTERM; the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            while let Ok(l) = self.lines.try_recv() {
                self.log.push(l);
            }
            eprintln!("--- server log ---\n{}", self.log.join("\n"));
        }
    }
}

/// True when the example's sockets can be bound now.
fn ports_free() -> bool {
    let lo = Ipv4Addr::LOCALHOST;
    std::net::UdpSocket::bind((lo, 1067)).is_ok()
        && std::net::UdpSocket::bind((lo, 67)).is_ok()
        && std::net::TcpListener::bind((lo, 67)).is_ok()
}

#[test]
fn example_runs_as_is_with_certs_init() {
    let tmp = tempfile::Builder::new()
        .prefix("leaseline-example-tls-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let examples = root.join("examples");
    std::fs::create_dir(&examples).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(EXAMPLE);
    std::fs::copy(&source, examples.join(EXAMPLE)).expect("copy the example");
    let config = format!("examples/{EXAMPLE}");

    // Without the PKI, check-config names the missing file.
    let o = leaseline(root, &["check-config", &config]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certs/server.pem"),
        "{}",
        text(&o)
    );

    let o = leaseline(root, &["certs", "init", "examples/certs"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = leaseline(root, &["check-config", &config]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("secure only (TLS)"), "{out}");
    assert!(out.contains("1 allowed requestor"), "{out}");

    wait_until(
        "127.0.0.1 udp 1067, udp 67 and tcp 67 to be free (another loopback example running?)",
        Duration::from_secs(120),
        || ports_free().then_some(()),
    );
    let mut server = Serve::start(root, &config);
    let ready = server.wait_line("leaseline ready", Duration::from_secs(30));
    assert!(
        ready.contains("tcp 127.0.0.1:67 (bulk+active+tls)"),
        "{ready}"
    );

    let since = unix_now();
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, 1067));
    let leases = dora(Ipv4Addr::LOCALHOST, dhcp, 0x4c54_0000, 2);
    let mut want: BTreeSet<Ipv4Addr> = leases.iter().map(|l| l.ip).collect();

    // The requestor command from the example's header, catching up.
    let since_arg = since.to_string();
    let mut watch = spawn_watch(
        &[
            "--server",
            "127.0.0.1",
            "--tls",
            "--ca",
            "examples/certs/ca.pem",
            "--cert",
            "examples/certs/requestor.pem",
            "--key",
            "examples/certs/requestor-key.pem",
            "--since",
            &since_arg,
            "--json",
            "--no-reconnect",
        ],
        Some(root),
    );
    while !want.is_empty() {
        let line = watch.wait_line("with a lease", Duration::from_secs(20), |l| {
            update_ip(l).is_some_and(|ip| want.contains(&ip))
        });
        want.remove(&update_ip(&line).unwrap());
    }
    watch.wait_line("catch-up-complete", Duration::from_secs(10), |l| {
        l.contains("\"catch-up-complete\"")
    });
    drop(watch);
    server.wait_line("TLS requestor authenticated", Duration::from_secs(5));

    // Secure only: the same watch without --tls gets no data and fails.
    let exit = spawn_watch(
        &[
            "--server",
            "127.0.0.1",
            "--since",
            &since_arg,
            "--json",
            "--no-reconnect",
        ],
        Some(root),
    )
    .wait_exit(Duration::from_secs(30));
    let (code, stdout, stderr) = (exit.code(), exit.stdout, exit.stderr);
    assert_eq!(code, Some(4), "stdout {stdout:?}\nstderr {stderr}");
    assert!(stdout.iter().all(|l| update_ip(l).is_none()), "{stdout:?}");
    server.wait_line(
        "plaintext message on a secure-only listener",
        Duration::from_secs(10),
    );

    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        root.join("leaseline.db").exists(),
        "state_dir \".\" is the working directory"
    );
}
