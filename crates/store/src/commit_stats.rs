//! How the writer's group commits go: the number of bindings per commit
//! and how long each commit takes (SQLite: the transaction and its fsync;
//! PostgreSQL: the rows' read and the commit call). Recorded once per
//! commit on the writer thread (a few atomic adds), read by the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the batch-size buckets (bindings per commit).
const BATCH_BOUNDS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Upper bounds of the latency buckets (seconds).
const LATENCY_BOUNDS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A fixed-bucket histogram.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// One per bound, and one above the last.
    counts: Vec<AtomicU64>,
    /// The sum of the observations, in millionths (µs for seconds).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len() + 1);
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        HistogramSnapshot {
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            buckets,
        }
    }
}

/// A histogram as read: the observations in each bucket, by its upper
/// bound (the last is +Inf; the metrics' encoder makes them cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

/// The writer's commits.
#[derive(Debug)]
pub struct CommitStats {
    batch: Histogram,
    latency: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            batch: Histogram::new(&BATCH_BOUNDS),
            latency: Histogram::new(&LATENCY_BOUNDS),
        }
    }
}

impl CommitStats {
    /// One commit of `bindings` that took `took`.
    pub(crate) fn record(&self, bindings: usize, took: Duration) {
        self.batch.observe(bindings as f64);
        self.latency.observe(took.as_secs_f64());
    }

    /// Bindings per commit.
    pub fn batch_sizes(&self) -> HistogramSnapshot {
        self.batch.snapshot()
    }

    /// Seconds per commit.
    pub fn latencies(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let s = CommitStats::default();
        s.record(1, Duration::from_micros(80));
        s.record(3, Duration::from_millis(2));
        s.record(10_000, Duration::from_secs(3));
        let b = s.batch_sizes();
        assert_eq!(b.count, 3);
        assert_eq!(b.buckets[0], (1.0, 1));
        assert_eq!(b.buckets[2], (4.0, 1), "3 is at most 4");
        assert_eq!(b.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(b.buckets.iter().map(|(_, n)| n).sum::<u64>(), 3);
        assert_eq!(b.sum, 10_004.0);
        let l = s.latencies();
        assert_eq!(l.buckets[0], (0.0001, 1));
        assert_eq!(l.buckets[4], (0.0025, 1));
        assert_eq!(l.buckets[13], (f64::INFINITY, 1));
        assert_eq!(l.count, 3);
    }
}
