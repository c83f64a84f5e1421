//! perfdhcp (Kea 2.x, package kea-admin): command line and report parsing.
//!
//! Facts checked against perfdhcp 2.2 on Debian 12:
//! - `-l ADDR` must be an address configured on an interface; perfdhcp then
//!   acts as a relay: giaddr = ADDR, bound on ADDR:67, so the server's
//!   replies to giaddr:67 come back to it. Use it in a namespace of the
//!   test's own (see [`crate::Netns`]) for isolation.
//! - `-R N` simulates N clients, taken in sequence (client i has MAC base+i);
//!   `-n M` with M <= N is therefore M distinct clients.
//! - A NAK is not counted as received: the REQUEST counts as a drop.
//! - `-W` (microseconds) keeps receiving after the last send, so late
//!   replies are not counted as drops.
//! - Exit status 0: all exchanges completed; 3: some did not.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// Counters of one exchange ("DISCOVER-OFFER" or "REQUEST-ACK").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExchangeStats {
    pub sent: u64,
    pub received: u64,
    pub drops: u64,
    pub drops_ratio_percent: Option<f64>,
    pub orphans: u64,
    pub rejected_leases: u64,
    pub non_unique_addresses: u64,
}

/// perfdhcp's final report.
#[derive(Debug, Clone, Default)]
pub struct PerfReport {
    pub command: String,
    pub exit_code: Option<i32>,
    /// "Rate: X 4-way exchanges/second".
    pub rate: Option<f64>,
    pub malformed: u64,
    pub discover_offer: Option<ExchangeStats>,
    pub request_ack: Option<ExchangeStats>,
    pub stdout: String,
    pub stderr: String,
}

impl PerfReport {
    pub fn parse(stdout: &str) -> PerfReport {
        let mut r = PerfReport {
            stdout: stdout.to_owned(),
            ..PerfReport::default()
        };
        let mut section: Option<&str> = None;
        let mut cur = ExchangeStats::default();
        let flush = |section: Option<&str>, cur: &mut ExchangeStats, r: &mut PerfReport| {
            match section {
                Some("DISCOVER-OFFER") => r.discover_offer = Some(*cur),
                Some("REQUEST-ACK") => r.request_ack = Some(*cur),
                _ => {}
            }
            *cur = ExchangeStats::default();
        };
        for line in stdout.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("***Statistics for:") {
                flush(section, &mut cur, &mut r);
                let name = rest.trim().trim_end_matches('*').trim();
                section = Some(match name {
                    "DISCOVER-OFFER" => "DISCOVER-OFFER",
                    "REQUEST-ACK" => "REQUEST-ACK",
                    _ => "other",
                });
                continue;
            }
            if line.starts_with("***") {
                flush(section, &mut cur, &mut r);
                section = None;
                continue;
            }
            if let Some(v) = line.strip_prefix("Rate:") {
                r.rate = v.split_whitespace().next().and_then(|x| x.parse().ok());
                continue;
            }
            if let Some(v) = line.strip_prefix("Malformed packets:") {
                r.malformed = v.trim().parse().unwrap_or(0);
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let num = || value.trim().parse::<u64>().ok();
            match key.trim() {
                "sent packets" => cur.sent = num().unwrap_or(0),
                "received packets" => cur.received = num().unwrap_or(0),
                "drops" => cur.drops = num().unwrap_or(0),
                "orphans" => cur.orphans = num().unwrap_or(0),
                "rejected leases" => cur.rejected_leases = num().unwrap_or(0),
                "non unique addresses" => cur.non_unique_addresses = num().unwrap_or(0),
                "drops ratio" => {
                    cur.drops_ratio_percent = value
                        .trim()
                        .trim_end_matches('%')
                        .trim()
                        .parse::<f64>()
                        .ok()
                }
                _ => {}
            }
        }
        flush(section, &mut cur, &mut r);
        r
    }

    /// The DISCOVER-OFFER counters; panics (with the report) when absent.
    pub fn do_stats(&self) -> ExchangeStats {
        self.discover_offer
            .unwrap_or_else(|| panic!("no DISCOVER-OFFER statistics in perfdhcp output:\n{self}"))
    }

    /// The REQUEST-ACK counters; panics (with the report) when absent.
    pub fn ra_stats(&self) -> ExchangeStats {
        self.request_ack
            .unwrap_or_else(|| panic!("no REQUEST-ACK statistics in perfdhcp output:\n{self}"))
    }

    /// Total drops over both exchanges divided by packets sent.
    pub fn drop_fraction(&self) -> f64 {
        let (d, s) = [self.discover_offer, self.request_ack]
            .iter()
            .flatten()
            .fold((0u64, 0u64), |(d, s), e| (d + e.drops, s + e.sent));
        if s == 0 {
            1.0
        } else {
            d as f64 / s as f64
        }
    }
}

impl std::fmt::Display for PerfReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ {}\n(exit code {:?})", self.command, self.exit_code)?;
        writeln!(f, "{}", self.stdout)?;
        if !self.stderr.trim().is_empty() {
            writeln!(f, "stderr:\n{}", self.stderr)?;
        }
        Ok(())
    }
}

/// A periodic (`-t`) report line: `sent: D/R; received: O/A; drops: x/y; ...`
/// (with `-f` / `-F` each counter has a third field, renewals or releases,
/// which is not kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfProgress {
    pub discovers_sent: u64,
    pub requests_sent: u64,
    pub offers_received: u64,
    pub acks_received: u64,
    pub discover_drops: u64,
    pub request_drops: u64,
}

impl PerfProgress {
    pub fn parse(line: &str) -> Option<PerfProgress> {
        if !line.starts_with("sent:") {
            return None;
        }
        let mut p = PerfProgress::default();
        for part in line.split(';') {
            let (k, v) = part.split_once(':')?;
            let mut fields = v.trim().split('/');
            let a: u64 = fields.next()?.trim().parse().ok()?;
            let b: u64 = fields.next()?.trim().parse().ok()?;
            match k.trim() {
                "sent" => (p.discovers_sent, p.requests_sent) = (a, b),
                "received" => (p.offers_received, p.acks_received) = (a, b),
                "drops" => (p.discover_drops, p.request_drops) = (a, b),
                _ => {}
            }
        }
        Some(p)
    }
}

/// perfdhcp -4 command builder.
#[derive(Debug, Clone)]
pub struct Perfdhcp {
    server: String,
    args: Vec<String>,
    netns: Option<String>,
}

impl Perfdhcp {
    /// DHCPv4 against `server` (an address).
    pub fn new(server: impl ToString) -> Perfdhcp {
        Perfdhcp {
            server: server.to_string(),
            args: vec!["-4".into()],
            netns: None,
        }
    }
    fn arg(mut self, flag: &str, v: impl ToString) -> Self {
        self.args.push(flag.into());
        self.args.push(v.to_string());
        self
    }
    /// `-N`: the server's UDP port.
    pub fn remote_port(self, port: u16) -> Self {
        self.arg("-N", port)
    }
    /// `-l`: local address (must be configured on an interface); also giaddr.
    pub fn local(self, addr: impl ToString) -> Self {
        self.arg("-l", addr)
    }
    /// `-r`: exchanges initiated per second.
    pub fn rate(self, r: u32) -> Self {
        self.arg("-r", r)
    }
    /// `-R`: number of distinct simulated clients.
    pub fn clients(self, n: u32) -> Self {
        self.arg("-R", n)
    }
    /// `-n`: total exchanges to initiate.
    pub fn num_requests(self, n: u32) -> Self {
        self.arg("-n", n)
    }
    /// `-p`: test period, seconds.
    pub fn period(self, secs: f64) -> Self {
        self.arg("-p", secs)
    }
    /// `-d`: time after which a request counts as lost, seconds.
    pub fn drop_time(self, secs: f64) -> Self {
        self.arg("-d", secs)
    }
    /// `-W`: keep receiving this long after the last send.
    pub fn exit_wait(self, d: Duration) -> Self {
        self.arg("-W", d.as_micros())
    }
    /// `-t`: periodic report every `secs` seconds (see [`PerfRun::wait_progress`]).
    pub fn report_interval(self, secs: u32) -> Self {
        self.arg("-t", secs)
    }
    /// `-b mac=...`: MAC of the first simulated client.
    pub fn base_mac(self, mac: &str) -> Self {
        self.arg("-b", format!("mac={mac}"))
    }
    /// `-s`: random seed.
    pub fn seed(self, s: u32) -> Self {
        self.arg("-s", s)
    }
    /// Any other arguments, verbatim.
    pub fn extra(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
    /// Run it inside this namespace.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_owned());
        self
    }

    pub fn command_line(&self) -> String {
        let mut s = String::new();
        if let Some(ns) = &self.netns {
            s.push_str(&format!("ip netns exec {ns} "));
        }
        s.push_str("perfdhcp ");
        s.push_str(&self.args.join(" "));
        s.push(' ');
        s.push_str(&self.server);
        s
    }

    pub fn command(&self) -> Command {
        let perfdhcp = crate::require_tool("perfdhcp");
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(crate::require_tool("ip"));
                c.args(["netns", "exec", ns]).arg(perfdhcp);
                c
            }
            None => Command::new(perfdhcp),
        };
        c.args(&self.args).arg(&self.server);
        c
    }

    /// Starts perfdhcp in the background.
    pub fn spawn(&self) -> PerfRun {
        crate::watchdog::arm();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start perfdhcp");
        let out = Arc::new(Output::default());
        let mut readers = Vec::new();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for (stream, is_err) in [(stdout, false), (stderr, true)] {
            let out = Arc::clone(&out);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut st = out.state.lock().unwrap_or_else(|e| e.into_inner());
                    if is_err {
                        st.stderr.push(line);
                    } else {
                        if let Some(p) = PerfProgress::parse(line.trim()) {
                            st.progress = Some(p);
                        }
                        st.stdout.push(line);
                    }
                    drop(st);
                    out.cv.notify_all();
                }
            }));
        }
        PerfRun {
            command: self.command_line(),
            child: Some(child),
            out,
            readers,
        }
    }

    /// Runs to completion (panics if it runs longer than `timeout`).
    pub fn run(&self, timeout: Duration) -> PerfReport {
        self.spawn().wait(timeout)
    }
}

#[derive(Default)]
struct OutState {
    stdout: Vec<String>,
    stderr: Vec<String>,
    progress: Option<PerfProgress>,
}

#[derive(Default)]
struct Output {
    state: Mutex<OutState>,
    cv: Condvar,
}

/// A perfdhcp running in the background. Dropping it kills it.
pub struct PerfRun {
    command: String,
    child: Option<Child>,
    out: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
}

impl PerfRun {
    /// The latest periodic report (needs [`Perfdhcp::report_interval`]).
    pub fn progress(&self) -> Option<PerfProgress> {
        self.out
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .progress
    }

    /// Waits until a periodic report satisfies `pred`; panics after `timeout`
    /// or if perfdhcp exits first.
    pub fn wait_progress(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PerfProgress) -> bool,
    ) -> PerfProgress {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.out.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = st.progress.filter(|p| pred(p)) {
                    return p;
                }
                let now = Instant::now();
                let exited = self
                    .child
                    .as_mut()
                    .map(|c| !matches!(c.try_wait(), Ok(None)))
                    .unwrap_or(true);
                if now >= deadline || exited {
                    panic!(
                        "perfdhcp progress never reached: {what} (timeout {timeout:?}, exited: {exited})\n\
                         $ {}\n{}\nstderr:\n{}",
                        self.command,
                        st.stdout.join("\n"),
                        st.stderr.join("\n")
                    );
                }
                let _unused = self
                    .out
                    .cv
                    .wait_timeout(st, (deadline - now).min(Duration::from_millis(200)))
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// SIGINT (perfdhcp stops and prints its final report), then [`Self::wait`].
    pub fn interrupt(mut self, timeout: Duration) -> PerfReport {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                // Our own child, not yet reaped, by pid (`ip netns exec`
                // execs perfdhcp, so the pid is perfdhcp's).
                let st = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .expect("run kill");
                assert!(st.success(), "kill -INT perfdhcp: {st:?}");
            }
        }
        self.wait(timeout)
    }

    /// Waits for perfdhcp to exit and parses its report. Panics after
    /// `timeout` (perfdhcp is then killed).
    pub fn wait(mut self, timeout: Duration) -> PerfReport {
        let mut child = self.child.take().expect("perfdhcp already waited for");
        let deadline = Instant::now() + timeout;
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    for h in self.readers.drain(..) {
                        let _ = h.join();
                    }
                    let st = self.out.state.lock().unwrap_or_else(|e| e.into_inner());
                    panic!(
                        "perfdhcp did not finish within {timeout:?}\n$ {}\n{}\nstderr:\n{}",
                        self.command,
                        st.stdout.join("\n"),
                        st.stderr.join("\n")
                    );
                }
            }
        };
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        let st = self.out.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = PerfReport::parse(&st.stdout.join("\n"));
        report.command = self.command.clone();
        report.exit_code = status.code();
        report.stderr = st.stderr.join("\n");
        report
    }
}

impl Drop for PerfRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "Running: perfdhcp -4 -N 1067 -l 127.0.0.1 -r 500 -R 1000 -n 1000 127.0.0.1
Scenario: basic.
Multi-thread mode enabled.
sent: 99/99; received: 99/98; drops: 0/1; rejected: 0/0
***Rate statistics***
Rate: 249.976 4-way exchanges/second, expected rate: 500

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 1000
received packets: 999
drops: 1
drops ratio: 0.1 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.096 ms
avg delay: 0.376 ms
collected packets: 0

***Statistics for: REQUEST-ACK***
sent packets: 999
received packets: 998
drops: 1
drops ratio: 0.100 %
orphans: 2
rejected leases: 0
non unique addresses: 0

min delay: 0.113 ms
collected packets: 0
";

    #[test]
    fn parses_final_report() {
        let r = PerfReport::parse(SAMPLE);
        assert_eq!(r.rate, Some(249.976));
        assert_eq!(r.malformed, 0);
        let d = r.do_stats();
        assert_eq!((d.sent, d.received, d.drops), (1000, 999, 1));
        assert_eq!(d.drops_ratio_percent, Some(0.1));
        let a = r.ra_stats();
        assert_eq!((a.sent, a.received, a.drops, a.orphans), (999, 998, 1, 2));
        assert!((r.drop_fraction() - 2.0 / 1999.0).abs() < 1e-9);
    }

    #[test]
    fn parses_progress() {
        let p =
            PerfProgress::parse("sent: 99/99; received: 99/98; drops: 0/1; rejected: 0/0").unwrap();
        assert_eq!(p.discovers_sent, 99);
        assert_eq!(p.acks_received, 98);
        assert_eq!(p.request_drops, 1);
        assert!(PerfProgress::parse("Rate: 1").is_none());
        // With -f / -F: a third field (renewals, releases) per counter.
        let p = PerfProgress::parse("sent: 99/98/3; received: 99/97/0; drops: 0/1/0").unwrap();
        assert_eq!(
            (p.requests_sent, p.acks_received, p.request_drops),
            (98, 97, 1)
        );
    }

    #[test]
    fn command_line() {
        let p = Perfdhcp::new("127.0.0.1")
            .remote_port(1067)
            .local("127.0.0.1")
            .rate(10)
            .clients(5);
        assert_eq!(
            p.command_line(),
            "perfdhcp -4 -N 1067 -l 127.0.0.1 -r 10 -R 5 127.0.0.1"
        );
    }
}
