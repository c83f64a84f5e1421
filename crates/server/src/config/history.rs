//! `[history]`: the lease history (issue 20; docs/configuration.md).

use leaseline_store::LeaseLogLimits;
use serde::Deserialize;

use super::{ConfigError, Validator};

/// As written: on by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Days an entry is kept after it was logged (fractions allowed).
    #[serde(default = "default_keep_days")]
    pub keep_days: f64,
    /// Most entries kept; the oldest go first.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            enabled: default_enabled(),
            keep_days: default_keep_days(),
            max_rows: default_max_rows(),
        }
    }
}

fn default_enabled() -> bool {
    true
}
fn default_keep_days() -> f64 {
    f64::from(LeaseLogLimits::DEFAULT.keep_secs) / 86_400.0
}
fn default_max_rows() -> u64 {
    LeaseLogLimits::DEFAULT.max_rows
}

/// Longest retention: what fits a u32 of seconds, with margin.
const MAX_KEEP_DAYS: f64 = 36_500.0;

impl Validator<'_> {
    pub(super) fn history(
        &self,
        raw: &HistorySection,
    ) -> Result<Option<LeaseLogLimits>, ConfigError> {
        if !raw.enabled {
            return Ok(None);
        }
        if !(raw.keep_days.is_finite() && raw.keep_days > 0.0 && raw.keep_days <= MAX_KEEP_DAYS) {
            return Err(self.key_err(
                "history.keep_days",
                format!("must be more than 0 and at most {MAX_KEEP_DAYS} days"),
            ));
        }
        if raw.max_rows == 0 {
            return Err(self.key_err(
                "history.max_rows",
                "must be at least 1 (enabled = false turns the history off)",
            ));
        }
        // At least a second; the bound above keeps it within u32.
        let keep_secs = (raw.keep_days * 86_400.0).round().max(1.0) as u32;
        Ok(Some(LeaseLogLimits {
            keep_secs,
            max_rows: raw.max_rows,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use leaseline_store::LeaseLogLimits;

    fn parse(history: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!(
                "[dhcp]\nlisten = \"127.0.0.1:1067\"\n[[subnet]]\nprefix = \"10.0.0.0/24\"\n\
                 pools = [\"10.0.0.10-10.0.0.20\"]\nrelay_addresses = [\"127.0.0.1\"]\n{history}"
            ),
            "t.toml",
        )
    }

    #[test]
    fn on_by_default_with_the_documented_retention() {
        let c = parse("").expect("valid");
        assert_eq!(c.lease_history, Some(LeaseLogLimits::DEFAULT));
        assert_eq!(LeaseLogLimits::DEFAULT.keep_secs, 90 * 86_400);
        assert_eq!(
            parse("[history]\nenabled = false\n")
                .expect("valid")
                .lease_history,
            None
        );
    }

    #[test]
    fn keep_days_may_be_a_fraction_and_max_rows_is_read() {
        let c = parse("[history]\nkeep_days = 0.5\nmax_rows = 1000\n").expect("valid");
        assert_eq!(
            c.lease_history,
            Some(LeaseLogLimits {
                keep_secs: 43_200,
                max_rows: 1000
            })
        );
        let c = parse("[history]\nkeep_days = 400\n").expect("valid");
        assert_eq!(c.lease_history.expect("on").keep_secs, 400 * 86_400);
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        for (bad, says) in [
            ("keep_days = 0", "more than 0"),
            ("keep_days = -1", "more than 0"),
            ("keep_days = 100000", "at most"),
            ("max_rows = 0", "at least 1"),
        ] {
            let e = parse(&format!("[history]\n{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains("t.toml:8: `history."), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
