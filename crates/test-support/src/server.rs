//! `leaseline serve` as a child process.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// The line the server logs once it accepts traffic.
pub const READY_LINE: &str = "leaseline ready";

/// Placeholder that may appear anywhere in a config; replaced by the state dir.
pub const STATE_DIR_PLACEHOLDER: &str = "@STATE_DIR@";

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    /// Runs (spawn counter values) whose output streams have both ended.
    ended_runs: Vec<u64>,
}

/// All output lines of every run of the server, shared with reader threads.
#[derive(Default)]
struct LogBuf {
    state: Mutex<LogState>,
    cv: Condvar,
}

impl LogBuf {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How to start the server; see [`ServerProcess::builder`].
pub struct ServerBuilder {
    bin: PathBuf,
    config: String,
    netns: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    ready_timeout: Duration,
}

impl ServerBuilder {
    /// Extra arguments after `serve --config FILE`, e.g. `--log-format json`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }
    /// Run the server inside this network namespace (`ip netns exec`).
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_owned());
        self
    }
    /// Extra environment, e.g. `("RUST_LOG", "debug")` (default RUST_LOG=info).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }
    /// Writes the config, starts the server and waits for `leaseline ready`.
    pub fn spawn(self) -> ServerProcess {
        let dir = tempfile::Builder::new()
            .prefix("leaseline-test-")
            .tempdir()
            .expect("create the server's temporary state dir");
        let config_text = substitute_state_dir(&self.config, dir.path());
        let config_path = dir.path().join("leaseline.toml");
        std::fs::write(&config_path, &config_text).expect("write the server config");
        let mut server = ServerProcess {
            bin: self.bin,
            config_text,
            config_path,
            netns: self.netns,
            env: self.env,
            args: self.args,
            ready_timeout: self.ready_timeout,
            dir: Some(dir),
            child: None,
            log: Arc::new(LogBuf::default()),
            run: 0,
            run_start: 0,
            readers: Vec::new(),
        };
        server.start();
        server
    }
}

/// A running (or stopped) `leaseline serve`. Dropping it kills the process.
/// When the test is panicking, Drop prints the tail of the log and keeps the
/// state directory for inspection.
pub struct ServerProcess {
    bin: PathBuf,
    config_text: String,
    config_path: PathBuf,
    netns: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    ready_timeout: Duration,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    log: Arc<LogBuf>,
    /// Counts starts; the current run's number.
    run: u64,
    /// Index of the current run's first log line.
    run_start: usize,
    readers: Vec<JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `bin serve --config FILE` with `config_toml` (its `state_dir`
    /// replaced by a fresh temporary directory) and waits for `leaseline ready`.
    /// Pass `env!("CARGO_BIN_EXE_leaseline")` as `bin`.
    pub fn spawn(bin: impl AsRef<Path>, config_toml: &str) -> ServerProcess {
        Self::builder(bin, config_toml).spawn()
    }

    pub fn builder(bin: impl AsRef<Path>, config_toml: &str) -> ServerBuilder {
        ServerBuilder {
            bin: bin.as_ref().to_owned(),
            config: config_toml.to_owned(),
            netns: None,
            env: Vec::new(),
            args: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    fn start(&mut self) {
        crate::watchdog::arm();
        assert!(self.child.is_none(), "server already running");
        self.join_readers();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(crate::require_tool("ip"));
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .args(&self.args)
            .current_dir(self.state_dir())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.run += 1;
        self.run_start = self.log.lock().lines.len();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stderr.take().expect("piped stderr")),
            Box::new(child.stdout.take().expect("piped stdout")),
        ];
        let open = Arc::new(Mutex::new(streams.len()));
        for stream in streams {
            let log = Arc::clone(&self.log);
            let open = Arc::clone(&open);
            let run = self.run;
            self.readers.push(std::thread::spawn(move || {
                read_lines(stream, &log);
                let mut n = open.lock().unwrap_or_else(|e| e.into_inner());
                *n -= 1;
                if *n == 0 {
                    log.lock().ended_runs.push(run);
                    log.cv.notify_all();
                }
            }));
        }
        self.child = Some(child);
        let timeout = self.ready_timeout;
        if self
            .try_wait_for_log_since(self.run_start, READY_LINE, timeout)
            .is_none()
        {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "server did not log `{READY_LINE}` within {timeout:?} (exit status: {status:?}).\n\
                 config:\n{}\n--- server log ---\n{}",
                self.config_text,
                self.log_tail(200)
            );
        }
    }

    fn join_readers(&mut self) {
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
    }

    /// The directory holding the config and the store (`state_dir`).
    pub fn state_dir(&self) -> &Path {
        self.dir.as_ref().expect("state dir").path()
    }
    /// `<state_dir>/leaseline.db`.
    pub fn db_path(&self) -> PathBuf {
        self.state_dir().join("leaseline.db")
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    /// The config as written (state_dir substituted).
    pub fn config_text(&self) -> &str {
        &self.config_text
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The running server's name on a shared PostgreSQL database (its
    /// `changed_by` and `instances` rows): host name and pid. The server
    /// runs under `ip netns exec`, which execs it: the pid is the server's.
    pub fn instance_id(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        format!(
            "{}:{}",
            host.trim(),
            self.pid().expect("the server is running")
        )
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics (with the log tail) unless the server is still running.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "the server is not running (exit status {status:?})\n--- server log ---\n{}",
                self.log_tail(200)
            );
        }
    }

    /// Send `sig` without waiting for the process (see [`Self::terminate`]).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of our own child (not yet reaped).
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL, then reap. The state dir stays for [`Self::restart`].
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        // SAFETY: as in signal(); the child is not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        let status = child.wait().expect("wait for the killed server");
        self.join_readers();
        status
    }

    /// SIGTERM and wait for a clean exit (panics if it takes over 30 s;
    /// the process is then killed).
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// SIGINT and wait for a clean exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGINT)
    }

    fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        self.signal(sig);
        let mut child = self.child.take().expect("server is not running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.join_readers();
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.join_readers();
                    panic!(
                        "server did not exit within {STOP_TIMEOUT:?} of signal {sig}\n\
                         --- server log ---\n{}",
                        self.log_tail(100)
                    );
                }
            }
        }
    }

    /// Starts the server again on the same config and state dir (after
    /// [`Self::kill9`] or [`Self::terminate`]) and waits for `leaseline ready`.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.start();
    }

    /// Index of the next log line; pass it to [`Self::wait_for_log_since`].
    pub fn log_mark(&self) -> usize {
        self.log.lock().lines.len()
    }

    /// Every output line so far (all runs), ANSI colours removed.
    pub fn logs(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// Refusals from `ip` the server counted in its `suppressed N similar
    /// refusals from IP` summary lines since `mark` (its log throttle).
    pub fn suppressed_refusals(&self, mark: usize, ip: std::net::IpAddr) -> u64 {
        let needle = format!("similar refusals from {ip} ");
        self.logs()[mark..]
            .iter()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| {
                l.split("suppressed=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Lines (all runs) containing every one of `needles`.
    pub fn logs_containing(&self, needles: &[&str]) -> Vec<String> {
        self.log
            .lock()
            .lines
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
            .collect()
    }

    /// The last `n` lines, joined.
    pub fn log_tail(&self, n: usize) -> String {
        let st = self.log.lock();
        let from = st.lines.len().saturating_sub(n);
        st.lines[from..].join("\n")
    }

    /// Waits for a line of the current run containing `needle`; panics with
    /// the log tail on timeout or when the server's output ends first.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_since(self.run_start, needle, timeout)
    }

    /// As [`Self::wait_for_log`], for lines at index `mark` or later.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        self.try_wait_for_log_since(mark, needle, timeout)
            .unwrap_or_else(|| {
                panic!(
                    "no server log line containing `{needle}` within {timeout:?}\n\
                     --- server log ---\n{}",
                    self.log_tail(200)
                )
            })
    }

    /// Waits for a line at index `mark` or later containing `needle`. `None`
    /// on timeout, or as soon as the current run's output has ended.
    pub fn try_wait_for_log_since(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> Option<String> {
        self.try_wait_for_line(mark, timeout, |l| l.contains(needle))
    }

    /// Waits until at least `count` lines at index `mark` or later contain
    /// every one of `needles`; returns how many do. Panics (with the log
    /// tail) on timeout or when the server's output ends first.
    pub fn wait_for_log_count(
        &self,
        mark: usize,
        needles: &[&str],
        count: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut st = self.log.lock();
        let mut next = mark;
        let mut seen = 0;
        loop {
            while next < st.lines.len() {
                if needles.iter().all(|n| st.lines[next].contains(n)) {
                    seen += 1;
                }
                next += 1;
            }
            if seen >= count {
                return seen;
            }
            let now = Instant::now();
            if now >= deadline || st.ended_runs.contains(&self.run) {
                drop(st);
                panic!(
                    "{seen} of {count} expected server log lines containing {needles:?} \
                     within {timeout:?}\n--- server log ---\n{}",
                    self.log_tail(100)
                );
            }
            st = self
                .log
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for a line at index `mark` or later for which `pred` holds.
    pub fn try_wait_for_line(
        &self,
        mark: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.log.lock();
        let mut next = mark;
        loop {
            while next < st.lines.len() {
                if pred(&st.lines[next]) {
                    return Some(st.lines[next].clone());
                }
                next += 1;
            }
            if st.ended_runs.contains(&self.run) {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .log
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_readers();
        if std::thread::panicking() {
            eprintln!(
                "--- leaseline server log (last 150 lines) ---\n{}\n--- end of server log ---",
                self.log_tail(150)
            );
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("server state dir kept for inspection: {}", kept.display());
            }
        }
    }
}

fn read_lines(stream: Box<dyn Read + Send>, log: &LogBuf) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = crate::strip_ansi(text.trim_end_matches(['\n', '\r']));
                let mut st = log.lock();
                st.lines.push(line);
                drop(st);
                log.cv.notify_all();
            }
        }
    }
}

/// Replaces `@STATE_DIR@`, and the value of `state_dir` in `[server]` (added
/// when missing), with `dir`.
fn substitute_state_dir(config: &str, dir: &Path) -> String {
    let dir_s = dir.display().to_string();
    let quoted = format!("\"{}\"", dir_s.replace('\\', "\\\\").replace('"', "\\\""));
    let config = config.replace(STATE_DIR_PLACEHOLDER, &dir_s);
    let mut out = Vec::new();
    let mut section = String::new();
    let mut done = false;
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if section == "server" && !done {
                out.push(format!("state_dir = {quoted}"));
                done = true;
            }
            section = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        }
        let is_state_dir = section == "server"
            && t.split('=').next().map(str::trim) == Some("state_dir")
            && t.contains('=');
        if is_state_dir {
            out.push(format!("state_dir = {quoted}"));
            done = true;
        } else {
            out.push(line.to_owned());
        }
    }
    if section == "server" && !done {
        out.push(format!("state_dir = {quoted}"));
        done = true;
    }
    let mut text = out.join("\n");
    if !done {
        text = format!("[server]\nstate_dir = {quoted}\n\n{text}");
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_replaced() {
        let c = "[server]\nstate_dir = \"/x\"\nserver_id = \"127.0.0.1\"\n[dhcp]\nlisten = \"127.0.0.1:1\"\n";
        let out = substitute_state_dir(c, Path::new("/tmp/abc"));
        assert!(out.contains("state_dir = \"/tmp/abc\""), "{out}");
        assert!(!out.contains("/x\""), "{out}");
        assert!(out.contains("server_id"));
    }

    #[test]
    fn state_dir_is_added() {
        let c = "[server]\nserver_id = \"127.0.0.1\"\n[dhcp]\n";
        let out = substitute_state_dir(c, Path::new("/tmp/abc"));
        let server_at = out.find("[server]").unwrap();
        let dhcp_at = out.find("[dhcp]").unwrap();
        let sd = out.find("state_dir = \"/tmp/abc\"").unwrap();
        assert!(server_at < sd && sd < dhcp_at, "{out}");

        let out = substitute_state_dir("[dhcp]\n", Path::new("/tmp/abc"));
        assert!(
            out.starts_with("[server]\nstate_dir = \"/tmp/abc\""),
            "{out}"
        );
    }

    #[test]
    fn placeholder_is_replaced() {
        let out = substitute_state_dir("[store]\npath = \"@STATE_DIR@/x.db\"\n", Path::new("/s"));
        assert!(out.contains("path = \"/s/x.db\""), "{out}");
    }

    #[test]
    fn spawn_waits_for_ready_and_collects_logs() {
        // A stand-in "server": a shell script that logs like leaseline does.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-server");
        std::fs::write(
            &bin,
            // The trap is set before "ready": a SIGTERM right after it is handled.
            "#!/bin/sh\ntrap 'echo INFO bye >&2; exit 0' TERM\necho 'INFO starting' >&2\n\
             echo 'INFO leaseline ready' >&2\nwhile true; do sleep 0.05; done\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = ServerProcess::spawn(&bin, "[server]\nserver_id = \"127.0.0.1\"\n");
        assert!(s.is_running());
        assert_eq!(s.logs_containing(&["starting"]).len(), 1);
        assert!(s
            .config_text()
            .contains(&s.state_dir().display().to_string()));
        let st = s.terminate();
        assert!(st.success(), "{st:?}");
        assert!(s.logs().iter().any(|l| l.contains("bye")));
        s.restart();
        assert_eq!(s.logs_containing(&["leaseline ready"]).len(), 2);
        s.kill9();
        assert!(!s.is_running());
    }

    #[test]
    fn early_exit_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bad-server");
        std::fs::write(&bin, "#!/bin/sh\necho 'error: bad config' >&2\nexit 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let r = std::panic::catch_unwind(|| ServerProcess::spawn(&bin, "[server]\n"));
        assert!(r.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
