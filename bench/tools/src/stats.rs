/// p50 and p99 of microsecond samples (0, 0 when empty).
pub fn percentiles(samples: &[u32]) -> (u32, u32) {
    let p = Percentiles::of(samples.to_vec());
    (p.p50, p.p99)
}

/// Percentiles of microsecond samples (all 0 when there are none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u32,
    pub p99: u32,
    pub p999: u32,
    pub max: u32,
}

impl Percentiles {
    pub fn of(mut v: Vec<u32>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            count: v.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }

    /// These, or `other` when these have no samples.
    pub fn or<'a>(&'a self, other: &'a Percentiles) -> &'a Percentiles {
        if self.count == 0 {
            other
        } else {
            self
        }
    }
}
