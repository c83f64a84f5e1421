//! `[server]`: the process — state directory, server identifier and the
//! async runtime's threads.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    pub server_id: Option<Spanned<Ipv4Addr>>,
    /// Threads of the async runtime (leasequery listeners, sessions, the
    /// reaper); None: one per core but one (see `Config::worker_threads`).
    pub worker_threads: Option<usize>,
    /// Nice value of the async runtime's threads, relative to the DHCP
    /// threads (which keep the process's): under CPU contention DHCP goes
    /// first and the leasequery fan-out takes what is left.
    #[serde(default = "default_leasequery_nice")]
    pub leasequery_nice: i32,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            state_dir: default_state_dir(),
            server_id: None,
            worker_threads: None,
            leasequery_nice: default_leasequery_nice(),
        }
    }
}

/// DHCP strictly first by default: with the overload hold
/// (`crate::overload`) both Active Leasequery targets are met at 19
/// (bench/README.md), and a requestor's lag is the cheaper thing to give.
fn default_leasequery_nice() -> i32 {
    19
}

/// One async worker per core but one: DHCP itself runs on threads of its
/// own (the UDP loop and the store's writer), which must not queue behind
/// the leasequery sessions; on two cores, a second worker only ping-pongs
/// tasks with the first (bench/README.md, Active Leasequery).
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".")
}

impl Validator<'_> {
    /// `server.server_id`, when set: the default of every subnet's.
    pub(super) fn server_id(&self, raw: &ServerSection) -> Result<Option<Ipv4Addr>, ConfigError> {
        if let Some(sid) = &raw.server_id {
            if sid.get_ref().is_unspecified() || sid.get_ref().is_broadcast() {
                return Err(self.err(sid.span(), "server.server_id", "must be a unicast address"));
            }
        }
        Ok(raw.server_id.as_ref().map(|s| *s.get_ref()))
    }

    /// The async runtime's worker threads (`leasequery_nice` checked too).
    pub(super) fn worker_threads(&self, raw: &ServerSection) -> Result<usize, ConfigError> {
        let worker_threads = match raw.worker_threads {
            Some(0) => return Err(self.key_err("server.worker_threads", "must be at least 1")),
            Some(n) => n,
            None => default_worker_threads(),
        };
        if !(0..=19).contains(&raw.leasequery_nice) {
            return Err(self.key_err(
                "server.leasequery_nice",
                "must be 0 to 19 (0: same priority as DHCP)",
            ));
        }
        Ok(worker_threads)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GOOD};

    #[test]
    fn worker_threads_default_leaves_a_core_and_can_be_set() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = Config::parse(GOOD, "t").unwrap();
        assert_eq!(c.worker_threads, cores.saturating_sub(1).max(1));
        let text = GOOD.replace("[server]", "[server]\nworker_threads = 3");
        assert_eq!(Config::parse(&text, "t").unwrap().worker_threads, 3);
        let text = GOOD.replace("[server]", "[server]\nworker_threads = 0");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("server.worker_threads"), "{e}");
    }

    #[test]
    fn leasequery_nice_defaults_to_19_and_is_bounded() {
        assert_eq!(Config::parse(GOOD, "t").unwrap().leasequery_nice, 19);
        let text = GOOD.replace("[server]", "[server]\nleasequery_nice = 0");
        assert_eq!(Config::parse(&text, "t").unwrap().leasequery_nice, 0);
        for bad in ["-1", "20"] {
            let text = GOOD.replace("[server]", &format!("[server]\nleasequery_nice = {bad}"));
            let e = Config::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains("server.leasequery_nice"), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_server_id_refused() {
        let text = GOOD
            .replace("server_id = \"127.0.0.1\"", "")
            .replace("127.0.0.1:1067", "0.0.0.0:1067");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("server_id"), "{e}");
    }
}
