//! TOML configuration, validated at start. Every error names the key and,
//! where it can, the line.
//!
//! One file per section under `config/`: each holds the section as written
//! (serde), the validated form and its checks (a method of
//! [`validator::Validator`]). This file reads the text and puts the
//! validated sections together in [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod dhcp;
mod error;
mod grant;
mod history;
mod http;
mod leasequery;
mod pool;
mod reservation;
mod server;
mod store;
mod subnet;
mod validator;
mod value;

pub use error::ConfigError;
pub use grant::Grant;
pub use history::HistorySection;
pub use http::{HttpConfig, HttpSection, HttpTls};
pub use leasequery::{ActiveLeasequery, BulkLeasequery, LeasequeryConfig, TlsFiles, UdpLeasequery};
pub use reservation::Reservation;
pub use store::StoreBackend;
pub use subnet::Subnet;

use dhcp::DhcpSection;
use leasequery::LeasequerySection;
use server::ServerSection;
use store::StoreSection;
use subnet::SubnetSection;
use validator::Validator;

/// The file as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    dhcp: DhcpSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    subnet: Vec<SubnetSection>,
    #[serde(default)]
    leasequery: LeasequerySection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    history: HistorySection,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// Threads of the async runtime.
    pub worker_threads: usize,
    /// Added to the async runtime threads' nice value (0..=19).
    pub leasequery_nice: i32,
    pub store_backend: StoreBackend,
    pub store_path: PathBuf,
    pub history_max_age: u32,
    pub history_max_count: usize,
    pub max_batch: usize,
    /// The lease history's retention (`[history]`); None when off.
    pub lease_history: Option<leaseline_store::LeaseLogLimits>,
    pub listen: Option<SocketAddr>,
    pub offer_hold: u32,
    pub decline_hold: u32,
    pub expired_grace: u32,
    pub relay_port: u16,
    pub client_port: u16,
    /// Seconds between the reaper's passes (`[dhcp] reclaim_interval`);
    /// 0: only the control API's `leases-reclaim`.
    pub reclaim_interval: u32,
    pub subnets: Vec<Subnet>,
    pub leasequery: LeasequeryConfig,
    /// The metrics and control endpoint; None when off.
    pub http: Option<HttpConfig>,
    /// The file it was read from (None: parsed from a string).
    pub source: Option<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Validator { text, path }.validate(raw)
    }
}

impl Validator<'_> {
    /// Section by section, in the order the first error is reported.
    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let global_sid = self.server_id(&raw.server)?;
        let listen_ip = self.dhcp(&raw.dhcp)?;
        let (store_backend, store_path) = self.store(&raw.store, &raw.server.state_dir)?;
        let subnets = self.subnets(
            raw.subnet,
            global_sid.or(listen_ip),
            raw.dhcp.listen.is_some(),
        )?;
        let leasequery = self.leasequery(&raw.leasequery)?;
        let worker_threads = self.worker_threads(&raw.server)?;
        Ok(Config {
            state_dir: raw.server.state_dir,
            worker_threads,
            leasequery_nice: raw.server.leasequery_nice,
            store_backend,
            store_path,
            history_max_age: raw.store.history_max_age,
            history_max_count: raw.store.history_max_count,
            max_batch: raw.store.max_batch,
            lease_history: self.history(&raw.history)?,
            listen: raw.dhcp.listen,
            offer_hold: raw.dhcp.offer_hold,
            decline_hold: raw.dhcp.decline_hold,
            expired_grace: raw.dhcp.expired_grace,
            relay_port: raw.dhcp.relay_port,
            client_port: raw.dhcp.client_port,
            reclaim_interval: raw.dhcp.reclaim_interval,
            subnets,
            leasequery,
            http: self.http(raw.http)?,
            source: None,
        })
    }
}

/// A small valid file the section tests vary.
#[cfg(test)]
const GOOD: &str = r#"
[server]
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:1067"
[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["127.0.0.1"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_example_parses() {
        let text = include_str!("../../../examples/loopback.toml");
        let c = Config::parse(text, "loopback.toml").expect("example must validate");
        assert!(c.subnets[0].pool_size() >= 60_000);
    }

    #[test]
    fn defaults_apply() {
        let c = Config::parse(GOOD, "t").unwrap();
        assert_eq!(c.subnets[0].lease_time, 3600);
        assert_eq!(c.subnets[0].renew_time, 1800);
        assert_eq!(c.subnets[0].rebind_time, 3150);
        assert_eq!(c.store_path, PathBuf::from("./leaseline.db"));
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let text = GOOD.replace("[dhcp]", "[dhcp]\nlisten_port = 3");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }
}
