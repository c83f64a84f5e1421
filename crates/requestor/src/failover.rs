//! Several servers, one feed (issue 17): `watch` and `mirror` take a list of
//! servers that share one lease database, and fail over between them.
//!
//! Every instance's Active Leasequery feed carries every instance's changes,
//! so a requestor that loses its server resumes on the next one exactly as it
//! would on the same one (query-start-time = the last base-time kept,
//! RFC 7724 §7.4). This module owns the connection loop both commands run:
//! [`run`] asks a [`Sessions`] for one session at a time and decides, through
//! the pure [`Rotation`], which server comes next and when:
//!
//! - the first server in the order given, at once;
//! - after a lost connection (refused, timed out, closed, a failed TLS
//!   handshake): the next server, round robin, after a short backoff
//!   ([`BACKOFF_MIN`] doubling up to [`BACKOFF_MAX`], back to the minimum
//!   after a session that got data); each move is logged once, with the
//!   server left, the reason and the server tried next;
//! - never the same server twice within the retry interval
//!   (ACTIVE_LQ_IDLE_TIMEOUT, RFC 7724 §7.1), so one server alone behaves as
//!   before: it is retried once the interval has passed.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::addr::server_addr;
use crate::tls::default_server_name;

/// The first wait before moving to the next server.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// The longest wait between two servers.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One server of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    /// What was typed (shown in logs when it is a name, not the address).
    pub given: String,
    /// The name its certificate must carry in secure mode when no
    /// `--server-name` is given: the host typed, when it is a name; None:
    /// the server's IP address.
    pub tls_name: Option<String>,
}

impl From<SocketAddr> for Server {
    fn from(addr: SocketAddr) -> Server {
        Server {
            addr,
            given: addr.to_string(),
            tls_name: None,
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.given == self.addr.to_string() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} ({})", self.given, self.addr)
        }
    }
}

impl Server {
    /// `ADDR[:PORT]` or `NAME[:PORT]` (port 67 by default).
    pub fn parse(s: &str) -> Result<Server, String> {
        Ok(Server {
            addr: server_addr(s)?,
            given: s.to_string(),
            tls_name: default_server_name(s),
        })
    }
}

/// Every `--server` value, each one address or a comma-separated list, in
/// the order given (the order servers are tried in).
pub fn parse_servers<S: AsRef<str>>(args: &[S]) -> Result<Vec<Server>, String> {
    let mut out = Vec::new();
    for arg in args {
        for part in arg.as_ref().split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("`{}`: an empty server address", arg.as_ref()));
            }
            out.push(Server::parse(part)?);
        }
    }
    if out.is_empty() {
        return Err("no server given".into());
    }
    Ok(out)
}

/// When to try which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Least time between two attempts on one server (RFC 7724 §7.1).
    pub retry_interval: Duration,
    /// Wait before the next server after a session that got data; doubled
    /// after each failed attempt, up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Policy {
    pub fn new(retry_interval: Duration) -> Policy {
        Policy {
            retry_interval,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// What the rotation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The first connection: the first server, at once.
    Start { server: usize },
    /// The only server, again, once `wait` has passed (the retry interval
    /// since its last attempt).
    Retry { server: usize, wait: Duration },
    /// The next server in order, after `wait` (the backoff, or longer when
    /// that server was tried less than a retry interval ago).
    FailOver {
        from: usize,
        to: usize,
        wait: Duration,
    },
}

impl Decision {
    pub fn server(&self) -> usize {
        match *self {
            Decision::Start { server } | Decision::Retry { server, .. } => server,
            Decision::FailOver { to, .. } => to,
        }
    }

    pub fn wait(&self) -> Duration {
        match *self {
            Decision::Start { .. } => Duration::ZERO,
            Decision::Retry { wait, .. } | Decision::FailOver { wait, .. } => wait,
        }
    }
}

/// The server-rotation state machine: time comes in, decisions go out; no
/// I/O, no sleeping.
#[derive(Debug, Clone)]
pub struct Rotation {
    policy: Policy,
    current: usize,
    /// When each server was (or will be, after the wait decided) last tried.
    last_attempt: Vec<Option<Instant>>,
    /// The backoff the next move waits.
    backoff: Duration,
    /// Attempts in a row that got no data.
    failures: usize,
}

impl Rotation {
    /// `servers` must be at least 1.
    pub fn new(servers: usize, policy: Policy) -> Rotation {
        Rotation {
            policy,
            current: 0,
            last_attempt: vec![None; servers.max(1)],
            backoff: policy.backoff_min,
            failures: 0,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    /// Every server failed since the last session that got data.
    pub fn all_failed(&self) -> bool {
        self.failures >= self.last_attempt.len()
    }

    /// The first attempt.
    pub fn start(&mut self, now: Instant) -> Decision {
        self.current = 0;
        self.last_attempt[0] = Some(now);
        Decision::Start { server: 0 }
    }

    /// The session on the current server ended (`established`: it got data
    /// from the server); `extra` lengthens this server's retry interval
    /// (jitter).
    pub fn ended(&mut self, now: Instant, established: bool, extra: Duration) -> Decision {
        if established {
            self.backoff = self.policy.backoff_min;
            self.failures = 1;
        } else {
            self.failures += 1;
        }
        let n = self.last_attempt.len();
        let from = self.current;
        let to = (from + 1) % n;
        let interval_left = self.last_attempt[to].map_or(Duration::ZERO, |t| {
            (self.policy.retry_interval + extra).saturating_sub(now.saturating_duration_since(t))
        });
        let decision = if n == 1 {
            Decision::Retry {
                server: to,
                wait: interval_left,
            }
        } else {
            let wait = interval_left.max(self.backoff);
            self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
            Decision::FailOver { from, to, wait }
        };
        self.current = to;
        self.last_attempt[to] = Some(now + decision.wait());
        decision
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum Ended<T> {
    /// Stop the loop with this (a refusal, a local failure).
    Stop(T),
    /// The connection failed or was lost; `established`: it got data first.
    Lost { reason: String, established: bool },
}

/// A lost connection, as [`Sessions::lost`] sees it.
#[derive(Debug)]
pub struct Loss<'a> {
    pub server: &'a Server,
    pub reason: &'a str,
    pub established: bool,
    /// Every server failed since the last session that got data.
    pub all_failed: bool,
}

/// What runs on each connection; [`run`] owns the loop around it.
pub trait Sessions {
    type Stop;
    /// For logs: "watch", "mirror".
    const NAME: &'static str;

    /// One session on `server` until it ends.
    fn session(&mut self, server: &Server) -> impl Future<Output = Ended<Self::Stop>>;

    /// A session was lost; Some stops the loop (e.g. no reconnecting).
    fn lost(&mut self, loss: Loss<'_>) -> Option<Self::Stop>;

    /// Waiting `wait` before the next attempt.
    fn waiting(&mut self, _wait: Duration) {}

    /// Added to the retry interval of the server tried next.
    fn jitter(&mut self) -> Duration {
        Duration::ZERO
    }
}

/// Connect to the servers in turn, one session at a time, until a session
/// (or [`Sessions::lost`]) stops.
pub async fn run<S: Sessions>(servers: &[Server], policy: Policy, s: &mut S) -> S::Stop {
    assert!(!servers.is_empty(), "at least one server");
    let mut rotation = Rotation::new(servers.len(), policy);
    let mut decision = rotation.start(Instant::now());
    loop {
        let wait = decision.wait();
        if !wait.is_zero() {
            s.waiting(wait);
            tokio::time::sleep(wait).await;
        }
        let server = &servers[decision.server()];
        let (reason, established) = match s.session(server).await {
            Ended::Stop(stop) => return stop,
            Ended::Lost {
                reason,
                established,
            } => (reason, established),
        };
        let jitter = s.jitter();
        decision = rotation.ended(Instant::now(), established, jitter);
        let loss = Loss {
            server,
            reason: &reason,
            established,
            all_failed: rotation.all_failed(),
        };
        if let Some(stop) = s.lost(loss) {
            return stop;
        }
        match decision {
            Decision::FailOver { to, wait, .. } => warn!(
                event = "requestor_fail_over",
                wait = ?wait,
                "{}: leaving {server}: {reason}; trying {} next",
                S::NAME,
                servers[to]
            ),
            _ => warn!(
                event = "requestor_connection_lost",
                server = %server,
                reason = %reason,
                retry_in = ?decision.wait(),
                "{} connection lost; will reconnect",
                S::NAME
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(retry_ms: u64) -> Policy {
        Policy {
            retry_interval: Duration::from_millis(retry_ms),
            backoff_min: 200 * MS,
            backoff_max: 5000 * MS,
        }
    }

    #[test]
    fn start_is_the_first_server_at_once() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3, policy(1000));
        assert_eq!(r.start(t0), Decision::Start { server: 0 });
        assert_eq!(r.start(t0).wait(), Duration::ZERO);
    }

    #[test]
    fn one_server_is_retried_after_the_retry_interval_since_its_last_attempt() {
        let t0 = Instant::now();
        let mut r = Rotation::new(1, policy(60_000));
        r.start(t0);
        // Lost after 10 s: 50 s of the interval remain.
        assert_eq!(
            r.ended(t0 + 10_000 * MS, true, Duration::ZERO),
            Decision::Retry {
                server: 0,
                wait: 50_000 * MS
            }
        );
        // That attempt (at 60 s) fails at once: another 60 s, plus jitter.
        assert_eq!(
            r.ended(t0 + 60_000 * MS, false, 7 * MS),
            Decision::Retry {
                server: 0,
                wait: 60_007 * MS
            }
        );
        // A session that lasted longer than the interval: at once.
        let mut r = Rotation::new(1, policy(1000));
        r.start(t0);
        assert_eq!(
            r.ended(t0 + 5000 * MS, true, Duration::ZERO).wait(),
            Duration::ZERO
        );
    }

    #[test]
    fn a_lost_server_fails_over_to_the_next_in_order_round_robin() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3, policy(1000));
        r.start(t0);
        let mut now = t0 + 30_000 * MS;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let d = r.ended(now, true, Duration::ZERO);
            match d {
                Decision::FailOver { from, to, wait } => {
                    assert_eq!(to, (from + 1) % 3);
                    assert_eq!(r.current(), to);
                    seen.push(to);
                    now += wait + 30_000 * MS;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, [1, 2, 0, 1]);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_while_nothing_connects() {
        let t0 = Instant::now();
        // A retry interval shorter than any backoff: only the backoff counts.
        let mut r = Rotation::new(2, policy(0));
        r.start(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let d = r.ended(now, false, Duration::ZERO);
            assert!(matches!(d, Decision::FailOver { .. }), "{d:?}");
            waits.push(d.wait().as_millis());
            now += d.wait();
        }
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert!(r.all_failed());
    }

    #[test]
    fn a_session_that_got_data_resets_the_backoff() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2, policy(0));
        r.start(t0);
        for _ in 0..4 {
            r.ended(t0, false, Duration::ZERO);
        }
        assert_eq!(r.ended(t0, false, Duration::ZERO).wait(), 3200 * MS);
        let d = r.ended(t0, true, Duration::ZERO);
        assert_eq!(d.wait(), 200 * MS, "{d:?}");
        assert!(!r.all_failed());
        assert_eq!(r.ended(t0, false, Duration::ZERO).wait(), 400 * MS);
        assert!(r.all_failed(), "both servers failed since the good session");
    }

    #[test]
    fn moving_back_to_a_server_waits_for_its_retry_interval() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2, policy(10_000));
        r.start(t0);
        // Server 0 lost at 1 s: server 1 after the backoff (never tried yet).
        assert_eq!(
            r.ended(t0 + 1000 * MS, true, Duration::ZERO),
            Decision::FailOver {
                from: 0,
                to: 1,
                wait: 200 * MS
            }
        );
        // Server 1 refuses at 1.2 s: server 0 was tried at 0 s, so it waits
        // until 10 s (plus jitter), not just the 400 ms backoff.
        assert_eq!(
            r.ended(t0 + 1200 * MS, false, 500 * MS),
            Decision::FailOver {
                from: 1,
                to: 0,
                wait: 9300 * MS
            }
        );
    }

    #[test]
    fn servers_parse_repeated_and_comma_separated() {
        let s = parse_servers(&["127.0.0.1:1067", "127.0.0.2, localhost:99"]).unwrap();
        let addrs: Vec<String> = s.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(addrs[..2], ["127.0.0.1:1067", "127.0.0.2:67"]);
        assert_eq!(s[2].addr.port(), 99);
        assert_eq!(s[0].tls_name, None);
        assert_eq!(s[2].tls_name.as_deref(), Some("localhost"));
        assert_eq!(s[2].to_string(), format!("localhost:99 ({})", s[2].addr));
        assert_eq!(s[0].to_string(), "127.0.0.1:1067");
        assert!(parse_servers(&["127.0.0.1,"]).is_err());
        assert!(parse_servers::<&str>(&[]).is_err());
        assert!(parse_servers(&["not an address"]).is_err());
    }
}
