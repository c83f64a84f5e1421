//! `[leasequery.bulk]`: Bulk Leasequery over TCP (RFC 6926).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::config::{ConfigError, Validator};

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

#[derive(Debug, Clone)]
pub struct BulkLeasequery {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub data_timeout: std::time::Duration,
    pub max_queries_per_connection: usize,
    pub max_message_size: usize,
    pub denied_options: Vec<u8>,
}

impl Validator<'_> {
    /// None unless enabled.
    pub(super) fn bulk_leasequery(
        &self,
        raw: Option<&BulkLeasequerySection>,
        allow: &[ipnet::IpNet],
    ) -> Result<Option<BulkLeasequery>, ConfigError> {
        let Some(b) = raw.filter(|b| b.enabled) else {
            return Ok(None);
        };
        if allow.is_empty() {
            return Err(self.key_err(
                "leasequery.allow",
                "leasequery.bulk is enabled but no requestor network is allowed",
            ));
        }
        if b.max_connections == 0 {
            return Err(self.key_err("leasequery.bulk.max_connections", "must be at least 1"));
        }
        if b.max_queries_per_connection == 0 {
            return Err(self.key_err(
                "leasequery.bulk.max_queries_per_connection",
                "must be at least 1",
            ));
        }
        if b.data_timeout == 0 {
            return Err(self.key_err("leasequery.bulk.data_timeout", "must be at least 1 second"));
        }
        if !(300..=65_535).contains(&b.max_message_size) {
            return Err(self.key_err(
                "leasequery.bulk.max_message_size",
                "must be between 300 and 65535",
            ));
        }
        Ok(Some(BulkLeasequery {
            listen: b.listen,
            max_connections: b.max_connections,
            data_timeout: std::time::Duration::from_secs(u64::from(b.data_timeout)),
            max_queries_per_connection: b.max_queries_per_connection,
            max_message_size: b.max_message_size,
            denied_options: b.denied_options.clone(),
        }))
    }
}
