//! A deadline for each test that starts this crate's processes and
//! databases: a test that hangs (a wait with no timeout somewhere, in the
//! test or in a peer it talks to) ends the test binary with a report
//! instead of holding CI until CI's own limit, which prints nothing of use.
//!
//! The report says which tests run and for how long, what every thread of
//! the test process is doing (gdb's backtraces, else the kernel's view from
//! `/proc`), the process tree with each process's wait channel, and what
//! the sessions of the test binary's PostgreSQL clusters wait for. Then the
//! process aborts: a hang is a failure, and the other tests of the binary
//! have normally ended long before.
//!
//! A test is registered the first time it (its libtest thread, named by
//! the test's path) calls [`arm`], which the crate's constructors do, and
//! leaves when its thread ends. `LEASELINE_TEST_DEADLINE_SECS` sets the
//! deadline (default 15 minutes; the longest test takes about one).

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The environment variable that sets the deadline, in seconds.
pub const DEADLINE_ENV: &str = "LEASELINE_TEST_DEADLINE_SECS";
const DEFAULT_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// How often the watchdog looks.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The longest one diagnostic command may take (gdb attaching to a process
/// of a hundred threads takes seconds).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// A registered test: its name and when it registered.
#[derive(Debug, Clone)]
struct Running {
    name: String,
    since: Instant,
}

static RUNNING: Mutex<Vec<(u64, Running)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static STARTED: Once = Once::new();

/// Unregisters its test when the test's thread ends.
struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        running().retain(|(id, _)| *id != self.0);
    }
}

thread_local! {
    static REGISTERED: RefCell<Option<Registration>> = const { RefCell::new(None) };
}

fn running() -> std::sync::MutexGuard<'static, Vec<(u64, Running)>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers the calling test (once per test) and starts the watchdog
/// (once per process). A thread that is not a libtest test thread (no
/// `module::test` name) is not registered: its test is, by its own calls.
pub(crate) fn arm() {
    let thread = std::thread::current();
    let Some(name) = thread.name().filter(|n| n.contains("::")) else {
        return;
    };
    REGISTERED.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_none() {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            running().push((
                id,
                Running {
                    name: name.to_owned(),
                    since: Instant::now(),
                },
            ));
            *r = Some(Registration(id));
        }
    });
    STARTED.call_once(|| {
        let deadline = deadline_from(std::env::var(DEADLINE_ENV).ok().as_deref());
        let _ = std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || watch(deadline));
    });
}

/// The deadline `LEASELINE_TEST_DEADLINE_SECS` gives (the default when
/// unset, empty or not a positive number of seconds).
fn deadline_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(DEFAULT_DEADLINE, Duration::from_secs)
}

/// The first test past the deadline at `now`, and how long it has run.
fn overdue(tests: &[Running], now: Instant, deadline: Duration) -> Option<(String, Duration)> {
    tests
        .iter()
        .map(|t| (t.name.clone(), now.saturating_duration_since(t.since)))
        .filter(|(_, ran)| *ran >= deadline)
        .max_by_key(|(_, ran)| *ran)
}

fn watch(deadline: Duration) {
    loop {
        std::thread::sleep(CHECK_EVERY);
        let tests: Vec<Running> = running().iter().map(|(_, t)| t.clone()).collect();
        let now = Instant::now();
        if let Some((name, ran)) = overdue(&tests, now, deadline) {
            report(&name, ran, deadline, &tests, now);
            std::process::abort();
        }
    }
}

/// Straight to file descriptor 2: libtest captures the print macros of
/// this thread (it inherited the capture of the test that started it).
fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.write_all(b"\n");
    let _ = e.flush();
}

fn report(name: &str, ran: Duration, deadline: Duration, tests: &[Running], now: Instant) {
    say(&format!(
        "\n==== test watchdog: `{name}` has run for {} s, past the deadline of {} s \
         ({DEADLINE_ENV}): it hangs. What the test process, its children and the test \
         databases are doing, then abort.",
        ran.as_secs(),
        deadline.as_secs()
    ));
    let mut list = String::from("==== tests running:");
    for t in tests {
        let s = now.saturating_duration_since(t.since).as_secs();
        list.push_str(&format!("\n  {} ({s} s)", t.name));
    }
    say(&list);
    let pid = std::process::id().to_string();
    say("==== threads of the test process (/proc: name, state, kernel wait channel)");
    say(&threads_from_proc());
    say("==== backtraces (gdb)");
    say(&run_limited(Command::new("gdb").args([
        "-p",
        pid.as_str(),
        "-batch",
        "-nx",
        "-ex",
        "set pagination off",
        "-ex",
        "thread apply all bt 40",
    ])));
    say("==== processes (ps)");
    say(&run_limited(Command::new("ps").args([
        "-eo",
        "pid,ppid,stat,wchan:28,etime,args",
        "--forest",
    ])));
    say("==== PostgreSQL test clusters: sessions and the locks they wait for");
    say(&crate::postgres::diagnostics());
    say("==== test watchdog: aborting");
}

/// Each thread of this process: name, state and wait channel.
fn threads_from_proc() -> String {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc/self/task)".into();
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let state = read(&dir.join("stat"))
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            .unwrap_or_default();
        out.push(format!(
            "  {:>7} {:<16} {} {}",
            task.file_name().to_string_lossy(),
            read(&dir.join("comm")),
            state,
            read(&dir.join("wchan"))
        ));
    }
    out.sort();
    out.join("\n")
}

/// Runs `cmd` (stdout and stderr to a file, so a child that keeps the
/// output open cannot hold the watchdog) for at most [`COMMAND_LIMIT`];
/// returns what it printed, or why it could not run.
pub(crate) fn run_limited(cmd: &mut Command) -> String {
    let Ok(file) = tempfile::NamedTempFile::new() else {
        return "(no temporary file for the output)".into();
    };
    match crate::run_to_file(cmd, file.path(), COMMAND_LIMIT) {
        Ok((Some(_), text)) => text,
        Ok((None, text)) => format!("{text}\n(stopped after {} s)", COMMAND_LIMIT.as_secs()),
        Err(e) => format!("(cannot run {cmd:?}: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(name: &str, since: Instant) -> Running {
        Running {
            name: name.into(),
            since,
        }
    }

    #[test]
    fn the_longest_test_past_the_deadline_is_named() {
        let t0 = Instant::now();
        let tests = [
            test("a::short", t0 + Duration::from_secs(50)),
            test("b::long", t0),
            test("c::past_too", t0 + Duration::from_secs(5)),
        ];
        let deadline = Duration::from_secs(60);
        assert_eq!(
            overdue(&tests, t0 + Duration::from_secs(59), deadline),
            None,
            "none past the deadline yet"
        );
        assert_eq!(
            overdue(&tests, t0 + Duration::from_secs(70), deadline),
            Some(("b::long".into(), Duration::from_secs(70)))
        );
    }

    #[test]
    fn the_deadline_comes_from_the_environment_or_defaults() {
        assert_eq!(deadline_from(Some("90")), Duration::from_secs(90));
        assert_eq!(deadline_from(Some(" 90\n")), Duration::from_secs(90));
        for bad in [None, Some(""), Some("0"), Some("-5"), Some("soon")] {
            assert_eq!(deadline_from(bad), DEFAULT_DEADLINE, "{bad:?}");
        }
    }

    #[test]
    fn a_test_is_registered_once_and_leaves_with_its_thread() {
        let mine = std::thread::current().name().unwrap_or_default().to_owned();
        let count = || running().iter().filter(|(_, t)| t.name == mine).count();
        arm();
        arm();
        assert_eq!(count(), 1, "registered once, as {mine}");
        // A thread of the test (unnamed) is not a test.
        std::thread::spawn(arm)
            .join()
            .expect("arm on a helper thread");
        assert_eq!(count(), 1);
        // A test thread that ends leaves the list.
        let other = std::thread::Builder::new()
            .name("watchdog::tests::other".into())
            .spawn(|| {
                arm();
                running()
                    .iter()
                    .any(|(_, t)| t.name == "watchdog::tests::other")
            })
            .expect("spawn")
            .join()
            .expect("join");
        assert!(other, "registered while it ran");
        assert!(
            !running()
                .iter()
                .any(|(_, t)| t.name == "watchdog::tests::other"),
            "gone once its thread ended"
        );
    }

    #[test]
    fn a_commands_output_and_errors_come_back_and_a_missing_tool_is_named() {
        let out = run_limited(Command::new("sh").args(["-c", "echo hello; echo oops >&2"]));
        assert!(out.contains("hello") && out.contains("oops"), "{out}");
        let missing = run_limited(&mut Command::new("/nonexistent/tool"));
        assert!(missing.starts_with("(cannot run"), "{missing}");
    }
}
