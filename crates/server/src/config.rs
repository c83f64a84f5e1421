//! TOML configuration, validated at start. Every error names the key and,
//! where it can, the line.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use leaseline_proto::text;
use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use crate::engine::Grant;

mod history;
mod http;
pub use history::HistorySection;
pub use http::{HttpConfig, HttpSection, HttpTls};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: `{key}`: {reason}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        reason: String,
    },
}

/// The file as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub dhcp: DhcpSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub subnet: Vec<SubnetSection>,
    #[serde(default)]
    pub leasequery: LeasequerySection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub history: HistorySection,
}

/// Leasequery services. All are off until configured.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeasequerySection {
    /// Requestor networks (CIDR) allowed to use any leasequery service.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    pub udp: Option<UdpLeasequerySection>,
    pub bulk: Option<BulkLeasequerySection>,
    pub active: Option<ActiveLeasequerySection>,
    pub tls: Option<TlsSection>,
}

/// Secure mode for the leasequery TCP listener (RFC 7724 §8.1, §9): the
/// server's certificate, the CA requestor certificates must chain to, and
/// the requestors allowed in (`san:NAME`, `sha256:HEX`, `spki-sha256:HEX`).
/// Relative paths are relative to the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    #[serde(default)]
    pub allowed_requestors: Vec<String>,
}

/// Active Leasequery (RFC 7724). It runs on the Bulk Leasequery listener
/// (RFC 7724 §5.3, §8: a server with Active Leasequery supports Bulk too).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveLeasequerySection {
    /// RFC 7724 §8.1: never on by default; this is the explicit step.
    #[serde(default)]
    pub enabled: bool,
    /// RFC 7724 §8.1: plain TCP (no TLS) needs its own explicit setting.
    #[serde(default)]
    pub insecure: bool,
    /// ACTIVE_LQ_IDLE_TIMEOUT: keepalive after this much silence (seconds).
    #[serde(default = "default_active_idle")]
    pub idle_timeout: u32,
    /// ACTIVE_LQ_SEND_TIMEOUT: close after writes stay blocked this long (seconds).
    #[serde(default = "default_active_send")]
    pub send_timeout: u32,
    /// Active queries at once, overall.
    #[serde(default = "default_active_max")]
    pub max_connections: usize,
    /// Active queries at once from one requestor address (RFC 7724 §8.3).
    #[serde(default = "default_active_per_requestor")]
    pub max_connections_per_requestor: usize,
    /// Option codes never sent even when requested (RFC 7724 §8.2).
    #[serde(default)]
    pub denied_options: Vec<u8>,
}

fn default_active_idle() -> u32 {
    60
}
fn default_active_send() -> u32 {
    120
}
fn default_active_max() -> usize {
    100
}
fn default_active_per_requestor() -> usize {
    4
}

/// Bulk Leasequery over TCP (RFC 6926).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkLeasequerySection {
    #[serde(default)]
    pub enabled: bool,
    /// TCP listen address; RFC 6926 §6.3: port 67.
    #[serde(default = "default_tcp_listen")]
    pub listen: SocketAddr,
    /// BULK_LQ_MAX_CONNS (RFC 6926 §6.3).
    #[serde(default = "default_bulk_max_conns")]
    pub max_connections: usize,
    /// BULK_LQ_DATA_TIMEOUT (RFC 6926 §6.3), seconds.
    #[serde(default = "default_bulk_data_timeout")]
    pub data_timeout: u32,
    /// Queries in flight at once on one connection (RFC 6926 §8.4).
    #[serde(default = "default_bulk_max_queries")]
    pub max_queries_per_connection: usize,
    /// Largest message accepted from a requestor.
    #[serde(default = "default_max_message")]
    pub max_message_size: usize,
    /// Option codes never sent to requestors even when requested.
    #[serde(default)]
    pub denied_options: Vec<u8>,
}

fn default_tcp_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 67))
}
fn default_bulk_max_conns() -> usize {
    10
}
fn default_bulk_data_timeout() -> u32 {
    300
}
fn default_bulk_max_queries() -> usize {
    4
}
fn default_max_message() -> usize {
    16_384
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpLeasequerySection {
    #[serde(default)]
    pub enabled: bool,
    /// Queries per second per requestor (0: unlimited).
    #[serde(default = "default_lq_rate")]
    pub rate: u32,
    #[serde(default = "default_lq_burst")]
    pub burst: u32,
    /// Option codes, beyond 51, 58, 59, 61, 82 and 91, that may be returned
    /// when requested (RFC 4388 §6.4.1: a configured non-sensitive list).
    #[serde(default)]
    pub extra_options: Vec<u8>,
}

fn default_lq_rate() -> u32 {
    1_000
}
fn default_lq_burst() -> u32 {
    2_000
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpSection {
    /// UDP address for relayed (and unicast) DHCP traffic.
    pub listen: Option<SocketAddr>,
    #[serde(default = "default_offer_hold")]
    pub offer_hold: u32,
    #[serde(default = "default_decline_hold")]
    pub decline_hold: u32,
    #[serde(default = "default_expired_grace")]
    pub expired_grace: u32,
    /// Port replies to relay agents are sent to (RFC 2131 §4.1: 67).
    #[serde(default = "default_relay_port")]
    pub relay_port: u16,
    /// Port replies to directly attached clients are sent to (68).
    #[serde(default = "default_client_port")]
    pub client_port: u16,
}

impl Default for DhcpSection {
    fn default() -> Self {
        DhcpSection {
            listen: None,
            offer_hold: default_offer_hold(),
            decline_hold: default_decline_hold(),
            expired_grace: default_expired_grace(),
            relay_port: default_relay_port(),
            client_port: default_client_port(),
        }
    }
}

fn default_offer_hold() -> u32 {
    30
}
fn default_decline_hold() -> u32 {
    86_400
}
fn default_expired_grace() -> u32 {
    3_600
}
fn default_relay_port() -> u16 {
    67
}
fn default_client_port() -> u16 {
    68
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// "sqlite" (the default) or "postgres".
    #[serde(default)]
    pub backend: Option<String>,
    /// PostgreSQL URL (backend = "postgres" only).
    #[serde(default)]
    pub url: Option<String>,
    /// Store file; relative paths are under `server.state_dir`.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    #[serde(default = "default_history_age")]
    pub history_max_age: u32,
    #[serde(default = "default_history_count")]
    pub history_max_count: usize,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: None,
            url: None,
            path: default_store_path(),
            history_max_age: default_history_age(),
            history_max_count: default_history_count(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("leaseline.db")
}
fn default_history_age() -> u32 {
    3_600
}
fn default_history_count() -> usize {
    1_000_000
}
fn default_max_batch() -> usize {
    4_096
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSection {
    pub prefix: Spanned<Ipv4Net>,
    #[serde(default)]
    pub pools: Vec<Spanned<String>>,
    #[serde(default)]
    pub relay_addresses: Vec<Ipv4Addr>,
    pub interface: Option<String>,
    pub server_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub router: Vec<Ipv4Addr>,
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    #[serde(default = "default_lease_time")]
    pub lease_time: Spanned<u32>,
    pub renew_time: Option<u32>,
    pub rebind_time: Option<u32>,
    #[serde(default)]
    pub reservation: Vec<ReservationSection>,
}

fn default_lease_time() -> Spanned<u32> {
    Spanned::new(0..0, 3_600)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSection {
    pub ip: Spanned<Ipv4Addr>,
    pub mac: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub hostname: Option<String>,
}

/// Where the leases are kept.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded SQLite file at `Config::store_path`.
    Sqlite,
    /// A PostgreSQL database (the URL may hold a password: not printed).
    Postgres { url: String },
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreBackend::Sqlite => f.write_str("Sqlite"),
            StoreBackend::Postgres { .. } => f.write_str("Postgres { url: <hidden> }"),
        }
    }
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
    pub subnets: Vec<Subnet>,
    pub leasequery: LeasequeryConfig,
    /// The metrics and control endpoint; None when off.
    pub http: Option<HttpConfig>,
    /// The file it was read from (None: parsed from a string).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct LeasequeryConfig {
    pub allow: Vec<ipnet::IpNet>,
    /// UDP leasequery (RFC 4388, RFC 6148); None when off.
    pub udp: Option<UdpLeasequery>,
    /// Bulk Leasequery over TCP (RFC 6926); None when off.
    pub bulk: Option<BulkLeasequery>,
    /// Active Leasequery (RFC 7724) on the bulk listener; None when off.
    pub active: Option<ActiveLeasequery>,
    /// Secure mode material; None when no TLS is configured.
    pub tls: Option<TlsFiles>,
    /// Plain TCP accepted on the listener. With TLS configured, only when
    /// Active Leasequery's `insecure` says so (RFC 7724 §8.1: never the default).
    pub plaintext: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub allowed_requestors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ActiveLeasequery {
    /// Plain TCP allowed (insecure mode, RFC 7724 §8.1).
    pub insecure: bool,
    pub idle_timeout: std::time::Duration,
    pub send_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_connections_per_requestor: usize,
    pub denied_options: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct BulkLeasequery {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub data_timeout: std::time::Duration,
    pub max_queries_per_connection: usize,
    pub max_message_size: usize,
    pub denied_options: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct UdpLeasequery {
    pub rate: u32,
    pub burst: u32,
    pub extra_options: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub prefix: Ipv4Net,
    /// Inclusive ranges, as u32.
    pub pools: Vec<(u32, u32)>,
    pub relay_addresses: Vec<Ipv4Addr>,
    pub interface: Option<String>,
    pub server_id: Ipv4Addr,
    pub router: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub lease_time: u32,
    pub renew_time: u32,
    pub rebind_time: u32,
    pub reservations: Vec<Reservation>,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    /// Hardware address (Ethernet, htype 1).
    pub mac: Option<Vec<u8>>,
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<String>,
}

impl Subnet {
    pub fn pool_contains(&self, ip: u32) -> bool {
        self.pools.iter().any(|&(a, b)| a <= ip && ip <= b)
    }
    pub fn pool_size(&self) -> u64 {
        self.pools.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }
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

struct Validator<'a> {
    text: &'a str,
    path: &'a str,
}

impl Validator<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_string(),
            line: self.line(span),
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// The line of the first occurrence of `key =` (for keys without spans).
    fn key_err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let offset = self
            .text
            .lines()
            .scan(0usize, |off, l| {
                let here = *off;
                *off += l.len() + 1;
                Some((here, l))
            })
            .find(|(_, l)| l.trim_start().starts_with(leaf))
            .map(|(o, _)| o)
            .unwrap_or(0);
        self.err(offset..offset, key, reason)
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let global_sid = raw.server.server_id.as_ref().map(|s| *s.get_ref());
        if let Some(sid) = &raw.server.server_id {
            if sid.get_ref().is_unspecified() || sid.get_ref().is_broadcast() {
                return Err(self.err(sid.span(), "server.server_id", "must be a unicast address"));
            }
        }
        if raw.dhcp.offer_hold == 0 {
            return Err(self.key_err("dhcp.offer_hold", "must be at least 1 second"));
        }
        if raw.store.max_batch == 0 {
            return Err(self.key_err("store.max_batch", "must be at least 1"));
        }
        if raw.store.history_max_count == 0 {
            return Err(self.key_err("store.history_max_count", "must be at least 1"));
        }
        let store_backend = match (raw.store.backend.as_deref(), &raw.store.url) {
            (None | Some("sqlite"), None) => StoreBackend::Sqlite,
            (None | Some("sqlite"), Some(_)) => {
                return Err(self.key_err("store.url", "is only for backend = \"postgres\""))
            }
            (Some("postgres"), Some(url)) if !url.trim().is_empty() => {
                StoreBackend::Postgres { url: url.clone() }
            }
            (Some("postgres"), _) => {
                return Err(self.key_err(
                    "store.backend",
                    "backend = \"postgres\" needs store.url (postgres://user:password@host:port/dbname)",
                ))
            }
            (Some(other), _) => {
                return Err(self.key_err(
                    "store.backend",
                    format!("unknown backend {other:?}: expected \"sqlite\" or \"postgres\""),
                ))
            }
        };
        let listen_ip = match raw.dhcp.listen {
            Some(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Some(*a.ip()),
            Some(SocketAddr::V6(_)) => {
                return Err(self.key_err("dhcp.listen", "DHCPv4 needs an IPv4 address"))
            }
            _ => None,
        };
        if raw.subnet.is_empty() {
            return Err(self.key_err("subnet", "at least one [[subnet]] is needed"));
        }
        let mut subnets = Vec::with_capacity(raw.subnet.len());
        let mut all_pools: Vec<(u32, u32, std::ops::Range<usize>)> = Vec::new();
        for (i, s) in raw.subnet.into_iter().enumerate() {
            let key = |k: &str| format!("subnet[{i}].{k}");
            let prefix = *s.prefix.get_ref();
            let prefix = Ipv4Net::new(prefix.network(), prefix.prefix_len())
                .map_err(|e| self.err(s.prefix.span(), &key("prefix"), e.to_string()))?;
            let mut pools = Vec::new();
            for p in &s.pools {
                let (a, b) =
                    parse_range(p.get_ref()).map_err(|r| self.err(p.span(), &key("pools"), r))?;
                if !prefix.contains(&Ipv4Addr::from(a)) || !prefix.contains(&Ipv4Addr::from(b)) {
                    return Err(self.err(
                        p.span(),
                        &key("pools"),
                        format!("{} lies outside {prefix}", p.get_ref()),
                    ));
                }
                if let Some((_, _, span)) = all_pools.iter().find(|(x, y, _)| a <= *y && *x <= b) {
                    return Err(self.err(
                        p.span(),
                        &key("pools"),
                        format!(
                            "{} overlaps the pool on line {}",
                            p.get_ref(),
                            self.line(span.clone())
                        ),
                    ));
                }
                all_pools.push((a, b, p.span()));
                pools.push((a, b));
            }
            let lease_time = *s.lease_time.get_ref();
            if lease_time < 60 {
                return Err(self.err(
                    s.lease_time.span(),
                    &key("lease_time"),
                    "must be at least 60 seconds",
                ));
            }
            let Grant {
                renew_time,
                rebind_time,
                ..
            } = Grant::resolve(lease_time, s.renew_time, s.rebind_time)
                .map_err(|why| self.key_err(&key("renew_time"), why))?;
            let server_id = s.server_id.or(global_sid).or(listen_ip).ok_or_else(|| {
                self.key_err(
                    "server.server_id",
                    "no server identifier: set server.server_id (or a subnet's server_id)",
                )
            })?;
            let mut reservations = Vec::new();
            for (j, r) in s.reservation.iter().enumerate() {
                let rkey = |k: &str| format!("subnet[{i}].reservation[{j}].{k}");
                let ip = *r.ip.get_ref();
                if !prefix.contains(&ip) {
                    return Err(self.err(
                        r.ip.span(),
                        &rkey("ip"),
                        format!("{ip} lies outside {prefix}"),
                    ));
                }
                let mac = match &r.mac {
                    Some(m) => Some(
                        text::parse_mac(m.get_ref())
                            .map_err(|e| self.err(m.span(), &rkey("mac"), e.to_string()))?,
                    ),
                    None => None,
                };
                let client_id = match &r.client_id {
                    Some(c) => Some(
                        text::parse_hex(c.get_ref())
                            .map_err(|e| self.err(c.span(), &rkey("client_id"), e.to_string()))?,
                    ),
                    None => None,
                };
                if mac.is_none() && client_id.is_none() {
                    return Err(self.err(
                        r.ip.span(),
                        &rkey("ip"),
                        "a reservation needs mac or client_id",
                    ));
                }
                reservations.push(Reservation {
                    ip,
                    mac,
                    client_id,
                    hostname: r.hostname.clone(),
                });
            }
            let mut seen = HashSet::new();
            for r in &reservations {
                if !seen.insert(r.ip) {
                    return Err(
                        self.key_err(&key("reservation"), format!("{} is reserved twice", r.ip))
                    );
                }
            }
            if s.interface.is_none() && s.relay_addresses.is_empty() && raw.dhcp.listen.is_none() {
                return Err(self.err(
                    s.prefix.span(),
                    &key("prefix"),
                    "unreachable subnet: set dhcp.listen (relayed clients) or interface",
                ));
            }
            subnets.push(Subnet {
                prefix,
                pools,
                relay_addresses: s.relay_addresses,
                interface: s.interface,
                server_id,
                router: s.router,
                dns_servers: s.dns_servers,
                domain_name: s.domain_name,
                lease_time,
                renew_time,
                rebind_time,
                reservations,
            });
        }
        let leasequery = self.leasequery(&raw.leasequery)?;
        let store_path = if raw.store.path.is_absolute() {
            raw.store.path.clone()
        } else {
            raw.server.state_dir.join(&raw.store.path)
        };
        let worker_threads = match raw.server.worker_threads {
            Some(0) => return Err(self.key_err("server.worker_threads", "must be at least 1")),
            Some(n) => n,
            None => default_worker_threads(),
        };
        if !(0..=19).contains(&raw.server.leasequery_nice) {
            return Err(self.key_err(
                "server.leasequery_nice",
                "must be 0 to 19 (0: same priority as DHCP)",
            ));
        }
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
            subnets,
            leasequery,
            http: self.http(raw.http)?,
            source: None,
        })
    }

    fn leasequery(&self, raw: &LeasequerySection) -> Result<LeasequeryConfig, ConfigError> {
        let mut allow = Vec::new();
        for a in &raw.allow {
            let s = a.get_ref().trim();
            let net: ipnet::IpNet = s
                .parse()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    self.err(
                        a.span(),
                        "leasequery.allow",
                        format!("`{s}` is not a network (CIDR) or address"),
                    )
                })?;
            allow.push(net);
        }
        let udp = match &raw.udp {
            Some(u) if u.enabled => {
                if allow.is_empty() {
                    return Err(self.key_err(
                        "leasequery.allow",
                        "leasequery.udp is enabled but no requestor network is allowed",
                    ));
                }
                for &c in &u.extra_options {
                    if matches!(c, 0 | 255 | 50 | 52 | 53 | 54 | 55 | 92 | 151..=157) {
                        return Err(self.key_err(
                            "leasequery.udp.extra_options",
                            format!("option {c} is protocol-controlled and cannot be listed"),
                        ));
                    }
                }
                Some(UdpLeasequery {
                    rate: u.rate,
                    burst: u.burst.max(1),
                    extra_options: u.extra_options.clone(),
                })
            }
            _ => None,
        };
        let bulk = match &raw.bulk {
            Some(b) if b.enabled => {
                if allow.is_empty() {
                    return Err(self.key_err(
                        "leasequery.allow",
                        "leasequery.bulk is enabled but no requestor network is allowed",
                    ));
                }
                if b.max_connections == 0 {
                    return Err(
                        self.key_err("leasequery.bulk.max_connections", "must be at least 1")
                    );
                }
                if b.max_queries_per_connection == 0 {
                    return Err(self.key_err(
                        "leasequery.bulk.max_queries_per_connection",
                        "must be at least 1",
                    ));
                }
                if b.data_timeout == 0 {
                    return Err(
                        self.key_err("leasequery.bulk.data_timeout", "must be at least 1 second")
                    );
                }
                if !(300..=65_535).contains(&b.max_message_size) {
                    return Err(self.key_err(
                        "leasequery.bulk.max_message_size",
                        "must be between 300 and 65535",
                    ));
                }
                Some(BulkLeasequery {
                    listen: b.listen,
                    max_connections: b.max_connections,
                    data_timeout: std::time::Duration::from_secs(u64::from(b.data_timeout)),
                    max_queries_per_connection: b.max_queries_per_connection,
                    max_message_size: b.max_message_size,
                    denied_options: b.denied_options.clone(),
                })
            }
            _ => None,
        };
        let active = match &raw.active {
            Some(a) if a.enabled => {
                if bulk.is_none() {
                    return Err(self.key_err(
                        "leasequery.active.enabled",
                        "Active Leasequery runs on the Bulk Leasequery listener: enable leasequery.bulk too (RFC 7724 §8)",
                    ));
                }
                if !a.insecure && raw.tls.is_none() {
                    // RFC 7724 §8.1: secure mode is the default; it needs TLS material.
                    return Err(self.key_err(
                        "leasequery.active",
                        "secure mode (the default) needs [leasequery.tls] cert, key, ca and \
                         allowed_requestors; or set insecure = true explicitly for plain TCP (lab use only)",
                    ));
                }
                if a.max_connections == 0 || a.max_connections_per_requestor == 0 {
                    return Err(
                        self.key_err("leasequery.active.max_connections", "must be at least 1")
                    );
                }
                if a.idle_timeout == 0 || a.send_timeout == 0 {
                    return Err(self.key_err(
                        "leasequery.active.idle_timeout",
                        "timeouts must be at least 1 second",
                    ));
                }
                Some(ActiveLeasequery {
                    insecure: a.insecure,
                    idle_timeout: std::time::Duration::from_secs(u64::from(a.idle_timeout)),
                    send_timeout: std::time::Duration::from_secs(u64::from(a.send_timeout)),
                    max_connections: a.max_connections,
                    max_connections_per_requestor: a.max_connections_per_requestor,
                    denied_options: a.denied_options.clone(),
                })
            }
            _ => None,
        };
        let tls = match &raw.tls {
            Some(t) => {
                if t.allowed_requestors.is_empty() {
                    return Err(self.key_err(
                        "leasequery.tls.allowed_requestors",
                        "secure mode needs at least one allowed requestor identity (san:, sha256: or spki-sha256:)",
                    ));
                }
                let base = Path::new(self.path).parent().unwrap_or(Path::new("."));
                let rel = |p: &PathBuf| {
                    if p.is_absolute() {
                        p.clone()
                    } else {
                        base.join(p)
                    }
                };
                Some(TlsFiles {
                    cert: rel(&t.cert),
                    key: rel(&t.key),
                    ca: rel(&t.ca),
                    allowed_requestors: t.allowed_requestors.clone(),
                })
            }
            None => None,
        };
        let plaintext = match (&active, &tls) {
            (Some(a), _) => a.insecure,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        Ok(LeasequeryConfig {
            allow,
            udp,
            bulk,
            active,
            tls,
            plaintext,
        })
    }
}

/// `A-B` (inclusive) or a single address, as numbers.
fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = text::parse_ipv4_range(s).map_err(|e| e.to_string())?;
    Ok((u32::from(a), u32::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn store_backend_defaults_to_sqlite_and_selects_postgres() {
        assert_eq!(
            Config::parse(GOOD, "t").unwrap().store_backend,
            StoreBackend::Sqlite
        );
        let text = format!("{GOOD}[store]\nbackend = \"sqlite\"\n");
        assert_eq!(
            Config::parse(&text, "t").unwrap().store_backend,
            StoreBackend::Sqlite
        );
        let text = format!(
            "{GOOD}[store]\nbackend = \"postgres\"\nurl = \"postgres://u:p@db:5432/leases\"\n"
        );
        let c = Config::parse(&text, "t").unwrap();
        assert_eq!(
            c.store_backend,
            StoreBackend::Postgres {
                url: "postgres://u:p@db:5432/leases".into()
            }
        );
        assert!(
            !format!("{c:?}").contains("u:p@"),
            "the password is not printed"
        );
    }

    #[test]
    fn bad_store_backend_names_key_and_line() {
        let text = format!("{GOOD}[store]\nbackend = \"mysql\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("t:11:"), "{e}");
        assert!(e.contains("store.backend"), "{e}");
        assert!(e.contains("unknown backend \"mysql\""), "{e}");
    }

    #[test]
    fn postgres_without_url_and_url_without_postgres_refused() {
        let text = format!("{GOOD}[store]\nbackend = \"postgres\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("store.backend"), "{e}");
        assert!(e.contains("needs store.url"), "{e}");
        let text = format!("{GOOD}[store]\nurl = \"postgres://db/leases\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("store.url"), "{e}");
        assert!(e.contains("t:11:"), "{e}");
    }

    #[test]
    fn postgres_example_parses() {
        let text = include_str!("../../../examples/postgres.toml");
        let c = Config::parse(text, "postgres.toml").expect("example must validate");
        assert!(matches!(c.store_backend, StoreBackend::Postgres { .. }));
    }

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
    fn pool_outside_prefix_names_key_and_line() {
        let text = GOOD.replace("10.0.0.10-10.0.255.250", "10.1.0.10-10.1.0.20");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("t:8:"), "{e}");
        assert!(e.contains("subnet[0].pools"), "{e}");
        assert!(e.contains("outside"), "{e}");
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let text = GOOD.replace("[dhcp]", "[dhcp]\nlisten_port = 3");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn bad_mac_in_reservation() {
        let text = format!("{GOOD}[[subnet.reservation]]\nip = \"10.0.0.5\"\nmac = \"zz:00\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("reservation[0].mac"), "{e}");
        assert!(e.contains(":12:"), "{e}");
    }

    #[test]
    fn overlapping_pools_refused() {
        let text = GOOD.replace(
            "pools = [\"10.0.0.10-10.0.255.250\"]",
            "pools = [\"10.0.0.10-10.0.0.100\", \"10.0.0.50-10.0.0.60\"]",
        );
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn missing_server_id_refused() {
        let text = GOOD
            .replace("server_id = \"127.0.0.1\"", "")
            .replace("127.0.0.1:1067", "0.0.0.0:1067");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("server_id"), "{e}");
    }

    const LQ: &str = "[leasequery]\nallow = [\"127.0.0.0/8\"]\n[leasequery.bulk]\nenabled = true\nlisten = \"127.0.0.1:6767\"\n";

    #[test]
    fn active_needs_bulk() {
        let text = format!("{GOOD}[leasequery]\nallow = [\"127.0.0.0/8\"]\n[leasequery.active]\nenabled = true\ninsecure = true\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("leasequery.bulk"), "{e}");
    }

    #[test]
    fn active_is_secure_by_default_and_needs_certificates() {
        let text = format!("{GOOD}{LQ}[leasequery.active]\nenabled = true\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(
            e.contains("secure mode") && e.contains("insecure = true"),
            "{e}"
        );
    }

    #[test]
    fn insecure_active_is_an_explicit_second_setting() {
        let text = format!("{GOOD}{LQ}[leasequery.active]\nenabled = true\ninsecure = true\n");
        let c = Config::parse(&text, "t").unwrap();
        assert!(c.leasequery.active.is_some());
        assert!(c.leasequery.plaintext);
        let off = format!("{GOOD}{LQ}[leasequery.active]\ninsecure = true\n");
        assert!(
            Config::parse(&off, "t")
                .unwrap()
                .leasequery
                .active
                .is_none(),
            "off unless enabled"
        );
    }

    #[test]
    fn bulk_with_tls_and_no_active_refuses_plaintext() {
        let text = format!(
            "{GOOD}{LQ}[leasequery.tls]\ncert = \"s.pem\"\nkey = \"k.pem\"\nca = \"ca.pem\"\nallowed_requestors = [\"san:r\"]\n"
        );
        let c = Config::parse(&text, "/etc/leaseline/t.toml").unwrap();
        assert!(!c.leasequery.plaintext);
        assert_eq!(
            c.leasequery.tls.unwrap().cert,
            PathBuf::from("/etc/leaseline/s.pem")
        );
    }
}
