//! DHCP first under overload. Each UDP thread measures, every [`WINDOW`],
//! how much CPU it wanted: the time it ran plus the time it was ready and
//! waited for a CPU (the kernel's schedstat for the thread). From
//! [`BUSY_ON`] of the window, DHCP is short of CPU, and Active Leasequery
//! sessions hold their updates until it wants less than [`BUSY_OFF`] for
//! [`OFF_WINDOWS`] (keepalives and the requestors' messages go on). Even
//! at the lowest priority, 100 requestors' TCP sends filled the CPU DHCP
//! left idle between packets and cost 10-20 % of the DORA rate at
//! saturation on a 2-CPU VM: each packet first had to take a CPU back
//! (bench/README.md).
//! Held updates stay pending (the shared log, then the history): RFC 7724
//! §6 lets a requestor miss intermediate states, never the last.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info};

/// How often each UDP thread looks at the CPU it wanted.
pub const WINDOW: Duration = Duration::from_millis(100);
/// CPU wanted (per mille of the window) from which DHCP is overloaded...
/// (at saturation ~770, at 5,600 DORA/s ~150, on a 2-CPU VM)
pub const BUSY_ON: u32 = 600;
/// ...for this many windows in a row (a single window over it happened at
/// 5,600 DORA/s, from an unlucky run of scheduling)...
pub const ON_WINDOWS: u32 = 3;
/// ...and below which it is not any more (hysteresis: held updates free
/// CPU, which lowers what DHCP waits for)...
pub const BUSY_OFF: u32 = 400;
/// ...for this many windows in a row: a store on a disk stalls in fsync
/// now and then (100-700 ms on the bench's VM), the UDP threads then wait
/// for the ACKs' commits and want little CPU; the hold lasts through such
/// a stall instead of letting the fan-out in for the three windows it
/// takes to come back.
pub const OFF_WINDOWS: u32 = 10;

/// Consecutive windows of one UDP thread: the last one's share, and how
/// many in a row were over [`BUSY_ON`] or under [`BUSY_OFF`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Windows {
    pub busy: u32,
    pub over: u32,
    pub under: u32,
}

impl Windows {
    fn next(self, busy: u32) -> Windows {
        let run = |on: bool, n: u32| if on { n + 1 } else { 0 };
        Windows {
            busy,
            over: run(busy >= BUSY_ON, self.over),
            under: run(busy < BUSY_OFF, self.under),
        }
    }
}

/// How often a held session looks again even without a wake-up.
const RECHECK: Duration = Duration::from_millis(100);

/// A load hovering at the thresholds would log every few hundred ms: the
/// start of a hold is logged at most this often (with the holds in
/// between counted), its end only if it lasted a second.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct DhcpLoad {
    /// Per UDP socket: overloaded after its last window.
    overloaded: Box<[AtomicBool]>,
    relieved: tokio::sync::Notify,
    log: parking_lot::Mutex<HoldLog>,
}

#[derive(Default)]
struct HoldLog {
    last_logged: Option<Instant>,
    unlogged: u32,
    since: Option<Instant>,
}

impl DhcpLoad {
    pub fn new(sockets: usize) -> Self {
        DhcpLoad {
            overloaded: (0..sockets).map(|_| AtomicBool::new(false)).collect(),
            relieved: tokio::sync::Notify::new(),
            log: parking_lot::Mutex::new(HoldLog::default()),
        }
    }

    /// The calling UDP thread's meter for socket `slot` (Linux: reads the
    /// thread's own schedstat; without it, DHCP never counts as overloaded).
    pub fn meter(&self, slot: usize) -> BusyMeter {
        let schedstat = std::fs::File::open("/proc/thread-self/schedstat").ok();
        let mut meter = BusyMeter {
            slot,
            schedstat,
            window_start: Instant::now(),
            wanted_ns: 0,
            windows: Windows::default(),
        };
        meter.wanted_ns = meter.read_wanted().unwrap_or(0);
        meter
    }

    /// Socket `slot`'s thread's windows so far.
    pub(crate) fn set(&self, slot: usize, w: Windows) {
        let busy = w.busy;
        let Some(flag) = self.overloaded.get(slot) else {
            return;
        };
        let was = flag.load(Ordering::Relaxed);
        if !was && w.over >= ON_WINDOWS {
            flag.store(true, Ordering::Relaxed);
            let mut log = self.log.lock();
            let now = Instant::now();
            log.since = Some(now);
            log.unlogged += 1;
            if log
                .last_logged
                .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
            {
                info!(
                    socket = slot,
                    busy_permille = busy,
                    holds = log.unlogged,
                    event = "dhcp_overloaded",
                    "DHCP overloaded: active leasequery updates held"
                );
                log.last_logged = Some(now);
                log.unlogged = 0;
            }
        } else if was && w.under >= OFF_WINDOWS {
            flag.store(false, Ordering::Relaxed);
            let lasted = self.log.lock().since.take().map(|t| t.elapsed());
            if lasted.is_some_and(|d| d >= Duration::from_secs(1)) {
                info!(
                    socket = slot,
                    busy_permille = busy,
                    ?lasted,
                    event = "dhcp_overload_ended",
                    "DHCP no longer overloaded: active leasequery updates resume"
                );
            } else {
                debug!(
                    socket = slot,
                    busy_permille = busy,
                    ?lasted,
                    event = "dhcp_overload_ended",
                    "DHCP no longer overloaded: active leasequery updates resume"
                );
            }
            self.relieved.notify_waiters();
        }
    }

    /// Is some UDP thread overloaded?
    pub fn overloaded(&self) -> bool {
        self.overloaded.iter().any(|f| f.load(Ordering::Relaxed))
    }

    /// Resolves when the overload may be over: woken when it ends, or
    /// after [`RECHECK`] (the caller looks again).
    pub async fn relieved(&self) {
        let notified = self.relieved.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if !self.overloaded() {
            return;
        }
        let _ = tokio::time::timeout(RECHECK, notified).await;
    }
}

/// One UDP thread's CPU wanted: run time plus run-queue wait.
pub struct BusyMeter {
    slot: usize,
    schedstat: Option<std::fs::File>,
    window_start: Instant,
    wanted_ns: u64,
    windows: Windows,
}

impl BusyMeter {
    /// After each receive (data or its timeout): every [`WINDOW`], the
    /// share of it this thread ran or waited to run goes to `load`.
    pub fn tick(&mut self, load: &DhcpLoad) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW || self.schedstat.is_none() {
            return;
        }
        let Some(wanted) = self.read_wanted() else {
            self.schedstat = None;
            return;
        };
        let permille = share(wanted.saturating_sub(self.wanted_ns), elapsed);
        self.windows = self.windows.next(permille);
        load.set(self.slot, self.windows);
        self.window_start = now;
        self.wanted_ns = wanted;
    }

    /// Nanoseconds run plus waited on a run queue, since the thread began
    /// (schedstat: "run_ns wait_ns timeslices").
    fn read_wanted(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.schedstat.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
        Some(fields.next()??.saturating_add(fields.next()??))
    }
}

/// `ns` as per mille of `of` (capped at 1000).
fn share(ns: u64, of: Duration) -> u32 {
    let of = of.as_nanos().max(1);
    (u128::from(ns) * 1000 / of).min(1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(over: u32) -> Windows {
        Windows {
            busy: 1000,
            over,
            under: 0,
        }
    }

    fn cold(under: u32) -> Windows {
        Windows {
            busy: 0,
            over: 0,
            under,
        }
    }

    #[test]
    fn sustained_demand_turns_overload_on_and_sustained_calm_turns_it_off() {
        let load = DhcpLoad::new(2);
        assert!(!load.overloaded());
        load.set(1, hot(ON_WINDOWS - 1));
        assert!(!load.overloaded(), "not for long enough yet");
        load.set(1, hot(ON_WINDOWS));
        assert!(load.overloaded());
        load.set(0, cold(100));
        assert!(load.overloaded(), "another socket says nothing of this one");
        load.set(1, cold(OFF_WINDOWS - 1));
        assert!(load.overloaded(), "a short lull (an fsync stall): still on");
        load.set(1, cold(OFF_WINDOWS));
        assert!(!load.overloaded());
        load.set(7, hot(100)); // no such socket: ignored
        assert!(!load.overloaded());
    }

    #[test]
    fn windows_count_in_a_row_with_hysteresis() {
        let w = Windows::default().next(BUSY_ON).next(BUSY_ON);
        assert_eq!((w.over, w.under), (2, 0));
        // Between the thresholds: neither run goes on.
        let w = w.next(BUSY_OFF);
        assert_eq!((w.over, w.under), (0, 0));
        let w = w.next(BUSY_OFF - 1).next(0);
        assert_eq!((w.busy, w.over, w.under), (0, 0, 2));
        assert_eq!(w.next(BUSY_ON).under, 0);
    }

    #[test]
    fn the_meter_counts_windows_in_a_row() {
        let load = DhcpLoad::new(1);
        let mut meter = load.meter(0);
        let spin = |meter: &mut BusyMeter| {
            let start = Instant::now();
            while start.elapsed() <= WINDOW {
                meter.tick(&load);
            }
        };
        for _ in 0..ON_WINDOWS - 1 {
            spin(&mut meter);
        }
        // A window asleep breaks the run.
        std::thread::sleep(WINDOW);
        meter.tick(&load);
        spin(&mut meter);
        assert!(!load.overloaded(), "{} windows, not in a row", ON_WINDOWS);
    }

    #[test]
    fn a_thread_that_spins_wants_a_cpu_one_that_sleeps_does_not() {
        let load = DhcpLoad::new(1);
        let mut meter = load.meter(0);
        assert!(meter.schedstat.is_some(), "Linux with schedstat");
        // Windows of work.
        let start = Instant::now();
        while start.elapsed() <= WINDOW * (ON_WINDOWS + 1) {
            meter.tick(&load);
        }
        assert!(load.overloaded());
        // Windows asleep (blocked in receive).
        for _ in 0..OFF_WINDOWS {
            std::thread::sleep(WINDOW);
            meter.tick(&load);
        }
        assert!(!load.overloaded());
    }

    #[test]
    fn share_is_per_mille_and_capped() {
        assert_eq!(share(50_000_000, Duration::from_millis(100)), 500);
        assert_eq!(share(0, Duration::from_millis(100)), 0);
        assert_eq!(share(300_000_000, Duration::from_millis(100)), 1000);
        assert_eq!(share(1, Duration::ZERO), 1000);
    }

    /// Paused tokio time: the recheck timer fires only if nothing else
    /// wakes the session, so a wake-up at 0 s is the overload's end.
    #[tokio::test(start_paused = true)]
    async fn a_held_session_is_woken_when_the_overload_ends() {
        let load = std::sync::Arc::new(DhcpLoad::new(1));
        load.set(0, hot(ON_WINDOWS));
        let waiter = {
            let load = load.clone();
            tokio::spawn(async move {
                let t = tokio::time::Instant::now();
                load.relieved().await;
                t.elapsed()
            })
        };
        tokio::task::yield_now().await;
        load.set(0, cold(OFF_WINDOWS));
        assert_eq!(waiter.await.unwrap(), Duration::ZERO, "woken at the end");
        // Still overloaded and nothing to wake it: the recheck.
        load.set(0, hot(ON_WINDOWS));
        let t = tokio::time::Instant::now();
        load.relieved().await;
        assert_eq!(t.elapsed(), RECHECK);
    }
}
