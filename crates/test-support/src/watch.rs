//! `leaseline watch` (the Active Leasequery requestor) as a child process.
//!
//! Reader threads collect its stdout lines (each also parsed as JSON when it
//! is, for `--json`) and its stderr; a reaper thread records its exit. Tests
//! wait on a condition variable for a line, an event or the exit, never on a
//! sleep.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Netns;

/// Everything the process printed so far, and whether it has exited.
#[derive(Default)]
struct Output {
    /// Every stdout line, in order.
    lines: Vec<String>,
    /// The stdout lines that are JSON, in order (all of them with `--json`).
    events: Vec<Value>,
    /// Stdout lines that are not JSON.
    not_json: Vec<String>,
    stderr: Vec<String>,
    stdout_ended: bool,
    stderr_ended: bool,
    status: Option<ExitStatus>,
}

#[derive(Default)]
struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Output)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` returns `Some` or `timeout` passes (`Err` with
    /// the output as it is then).
    fn wait<T>(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Output) -> Option<T>,
    ) -> Result<T, MutexGuard<'_, Output>> {
        let deadline = Instant::now() + timeout;
        let mut out = self.lock();
        loop {
            if let Some(v) = done(&out) {
                return Ok(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(out);
            }
            out = self
                .changed
                .wait_timeout(out, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// How the process ended: its status, every stdout line and its stderr.
#[derive(Debug)]
pub struct WatchExit {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl WatchExit {
    /// The exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// How to start `leaseline watch`; see [`WatchProcess::builder`].
pub struct WatchBuilder<'a> {
    bin: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    netns: Option<&'a Netns>,
    cwd: Option<PathBuf>,
}

impl<'a> WatchBuilder<'a> {
    /// Arguments after `watch`, e.g. `["--server", "127.0.0.1:67", "--json"]`.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Extra environment, e.g. `("RUST_LOG", "warn")`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs it inside this network namespace (`ip netns exec`).
    pub fn netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Runs it in this working directory (relative paths in its arguments).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    pub fn spawn(self) -> WatchProcess {
        crate::watchdog::arm();
        let mut cmd = match self.netns {
            Some(ns) => ns.command(&self.bin),
            None => Command::new(&self.bin),
        };
        cmd.arg("watch")
            .args(&self.args)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let shared = Arc::new(Shared::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            read_lines(
                stdout,
                &shared,
                |out, line| {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => out.events.push(v),
                        Err(_) => out.not_json.push(line.clone()),
                    }
                    out.lines.push(line);
                },
                |out| out.stdout_ended = true,
            ),
            read_lines(
                stderr,
                &shared,
                |out, line| out.stderr.push(line),
                |out| out.stderr_ended = true,
            ),
        ];
        let pid = child.id();
        let reaper = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || reap(child, &shared))
        };
        WatchProcess {
            pid,
            next_line: 0,
            shared,
            threads: readers.into_iter().chain([reaper]).collect(),
        }
    }
}

/// One reader thread: `push` each line of `from`, then `end`.
fn read_lines(
    from: impl Read + Send + 'static,
    shared: &Arc<Shared>,
    push: impl Fn(&mut Output, String) + Send + 'static,
    end: fn(&mut Output),
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            shared.update(|out| push(out, line));
        }
        shared.update(end);
    })
}

/// Waits for the child without reaping it (so its pid stays ours and
/// [`WatchProcess`]'s Drop may still signal it), records the status, then
/// reaps it.
fn reap(mut child: Child, shared: &Shared) {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid(2).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid(2) on our own child; WNOWAIT leaves it waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let mut out = shared.lock();
    let status = child.wait().expect("reap leaseline watch");
    out.status = Some(status);
    drop(out);
    shared.changed.notify_all();
}

/// A running `leaseline watch`. Dropping it kills the process; when the
/// test is panicking, Drop prints its stderr.
pub struct WatchProcess {
    pid: u32,
    /// The stdout line after the one [`WatchProcess::wait_line`] returned last.
    next_line: usize,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl WatchProcess {
    /// `bin watch ...`; pass `env!("CARGO_BIN_EXE_leaseline")` as `bin`.
    pub fn builder<'a>(bin: impl AsRef<Path>) -> WatchBuilder<'a> {
        WatchBuilder {
            bin: bin.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
            cwd: None,
        }
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// The stdout lines so far, as JSON events (`--json`). Panics if a line
    /// was not JSON.
    pub fn events(&self) -> Vec<Value> {
        let out = self.shared.lock();
        assert_all_json(&out);
        out.events.clone()
    }

    /// stderr so far, one line per line.
    pub fn stderr(&self) -> String {
        self.shared.lock().stderr.join("\n")
    }

    /// Index of the next event.
    pub fn mark(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// How many events `{"event": name}` came so far.
    pub fn count(&self, name: &str) -> usize {
        let out = self.shared.lock();
        assert_all_json(&out);
        out.events.iter().filter(|v| v["event"] == name).count()
    }

    /// The first stdout line for which `pred` holds after the line the
    /// previous call returned (lines are taken in order, like reading
    /// stdout); panics with the output after `timeout`, or once stdout
    /// ended without one.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let mut next = self.next_line;
        let got = self.shared.wait(timeout, |out| {
            if let Some(i) = out.lines[next..].iter().position(|l| pred(l)) {
                next += i + 1;
                return Some(Some(out.lines[next - 1].clone()));
            }
            next = out.lines.len();
            out.stdout_ended.then_some(None)
        });
        self.next_line = next;
        // A timeout hands the lock back (`Err`): locking again here would
        // wait for ourselves for ever.
        let out = match got {
            Ok(Some(line)) => return line,
            Ok(None) => self.shared.lock(),
            Err(out) => out,
        };
        let (lines, stderr) = (out.lines.join("\n"), out.stderr.join("\n"));
        let ended = out.stdout_ended;
        drop(out);
        panic!(
            "leaseline watch: no line {what} within {timeout:?} (output ended: {ended}); lines:\n{lines}\nstderr:\n{stderr}"
        )
    }

    /// The first event at index `from` or later for which `pred` holds;
    /// panics with the last events after `timeout`, or once stdout ended
    /// without one.
    pub fn wait_for(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut next = from;
        let got = self.shared.wait(timeout, |out| {
            assert_all_json(out);
            while next < out.events.len() {
                if pred(&out.events[next]) {
                    return Some(Some(out.events[next].clone()));
                }
                next += 1;
            }
            out.stdout_ended.then_some(None)
        });
        // As in `wait_line`: on a timeout the lock is ours already.
        let out = match got {
            Ok(Some(v)) => return v,
            Ok(None) => self.shared.lock(),
            Err(out) => out,
        };
        let tail: Vec<String> = out
            .events
            .iter()
            .rev()
            .take(10)
            .map(Value::to_string)
            .collect();
        let (ended, stderr) = (out.stdout_ended, out.stderr.join("\n"));
        // Not while holding the lock: it would poison it for the readers.
        drop(out);
        panic!(
            "leaseline watch: no {what} within {timeout:?} (output ended: {ended}); last events: {tail:#?}\nstderr:\n{stderr}"
        );
    }

    /// Waits for an event `{"event": name}` at index `from` or later.
    pub fn wait_event(&self, from: usize, name: &str, timeout: Duration) -> Value {
        self.wait_for(from, name, timeout, |v| v["event"] == name)
    }

    /// Waits for the process to exit by itself and for the end of its
    /// output; panics (killing it) after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> WatchExit {
        let got = self.shared.wait(timeout, |out| {
            (out.stdout_ended && out.stderr_ended)
                .then_some(out.status)
                .flatten()
                .map(|status| WatchExit {
                    status,
                    stdout: out.lines.clone(),
                    stderr: out.stderr.join("\n"),
                })
        });
        match got {
            Ok(exit) => exit,
            Err(out) => {
                let (lines, stderr) = (out.lines.join("\n"), out.stderr.join("\n"));
                drop(out);
                self.kill();
                panic!(
                    "leaseline watch still running after {timeout:?}\nstdout:\n{lines}\nstderr:\n{stderr}"
                );
            }
        }
    }

    /// SIGKILL, unless it has exited already.
    fn kill(&self) {
        let out = self.shared.lock();
        if out.status.is_none() {
            // SAFETY: kill(2) on our child, not reaped yet (the reaper
            // records the status under this lock before reaping), so the
            // pid is still ours.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

fn assert_all_json(out: &Output) {
    assert!(
        out.not_json.is_empty(),
        "leaseline watch printed lines that are not JSON: {:?}",
        out.not_json
    );
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        self.kill();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if std::thread::panicking() {
            eprintln!("--- leaseline watch stderr ---\n{}", self.stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// What `f` panicked with ("(returned)" when it did not panic).
    fn panic_text<T>(f: impl FnOnce() -> T) -> String {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(_) => String::from("(returned)"),
            Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        }
    }

    /// A stand-in for `leaseline`: `BIN watch ...` runs `script`.
    fn fake_bin(dir: &Path, script: &str) -> PathBuf {
        let bin = dir.join("fake-leaseline");
        std::fs::write(&bin, format!("#!/bin/sh\nshift\n{script}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn lines_events_and_exit() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(
            dir.path(),
            "echo '{\"event\":\"connected\"}'\necho \"$1 $(pwd)\"\necho oops >&2\nexit 3",
        );
        let mut w = WatchProcess::builder(&bin)
            .args(["--flag"])
            .current_dir(dir.path())
            .spawn();
        let line = w.wait_line("with the flag", Duration::from_secs(10), |l| {
            l.starts_with("--flag")
        });
        assert!(line.ends_with(&dir.path().display().to_string()), "{line}");
        let exit = w.wait_exit(Duration::from_secs(10));
        assert_eq!(exit.code(), Some(3));
        assert_eq!(exit.stdout.len(), 2, "{:?}", exit.stdout);
        assert_eq!(exit.stderr, "oops");
        assert_eq!(exit.stdout[0], r#"{"event":"connected"}"#);
        // The second line is not JSON: reading events says so.
        let msg = panic_text(|| w.wait_event(0, "connected", Duration::from_secs(1)));
        assert!(msg.contains("not JSON"), "{msg}");
        let msg = panic_text(|| w.count("connected"));
        assert!(msg.contains("not JSON"), "{msg}");
    }

    #[test]
    fn json_events_in_order_from_a_mark() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(
            dir.path(),
            "for e in connected update update; do echo \"{\\\"event\\\":\\\"$e\\\"}\"; done\nexec sleep 600",
        );
        let w = WatchProcess::builder(&bin).spawn();
        let second = w.wait_for(1, "the 2nd update", Duration::from_secs(10), |v| {
            v["event"] == "update"
        });
        assert_eq!(second["event"], "update");
        w.wait_for(2, "the 3rd event", Duration::from_secs(10), |_| true);
        assert_eq!(w.mark(), 3);
        assert_eq!((w.count("connected"), w.count("update")), (1, 2));
        assert_eq!(w.events().len(), 3);
    }

    /// Found by CI: a wait that timed out locked the output again while
    /// its timeout still held the lock, and the test hung for good instead
    /// of failing.
    #[test]
    fn a_wait_that_times_out_fails_with_the_output_and_never_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(
            dir.path(),
            "echo '{\"event\":\"connected\"}'\nexec sleep 600",
        );
        let mut w = WatchProcess::builder(&bin).spawn();
        w.wait_event(0, "connected", Duration::from_secs(10));
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let event =
                panic_text(|| w.wait_event(0, "catch-up-complete", Duration::from_millis(200)));
            let line = panic_text(|| {
                w.wait_line("a second line", Duration::from_millis(200), |l| {
                    l.contains("update")
                })
            });
            let _ = tx.send((event, line));
        });
        let (event, line) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the waits ended (a deadlock never does)");
        waiter.join().expect("the waiting thread");
        assert!(
            event.contains("no catch-up-complete within") && event.contains("connected"),
            "{event}"
        );
        assert!(
            line.contains("no line a second line within") && line.contains("connected"),
            "{line}"
        );
    }

    #[test]
    fn a_line_that_never_comes_fails_once_the_output_ends() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "echo one");
        let mut w = WatchProcess::builder(&bin).spawn();
        let msg = panic_text(|| w.wait_line("two", Duration::from_secs(30), |l| l == "two"));
        assert!(
            msg.contains("output ended: true") && msg.contains("one"),
            "{msg}"
        );
    }

    #[test]
    fn drop_kills_a_running_watch() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_bin(dir.path(), "echo $$\nexec sleep 600");
        let mut w = WatchProcess::builder(&bin).spawn();
        let pid: i32 = w
            .wait_line("with the pid", Duration::from_secs(10), |_| true)
            .parse()
            .unwrap();
        drop(w);
        // SAFETY: signal 0 only checks whether the (reaped) pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "pid {pid} still running after drop");
    }
}
