//! `[leasequery.active]`: Active Leasequery (RFC 7724).

use serde::Deserialize;

use crate::config::{ConfigError, Validator};

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

impl Validator<'_> {
    /// None unless enabled; `bulk`: Bulk Leasequery is on; `tls`:
    /// `[leasequery.tls]` is written.
    pub(super) fn active_leasequery(
        &self,
        raw: Option<&ActiveLeasequerySection>,
        bulk: bool,
        tls: bool,
    ) -> Result<Option<ActiveLeasequery>, ConfigError> {
        let Some(a) = raw.filter(|a| a.enabled) else {
            return Ok(None);
        };
        if !bulk {
            return Err(self.key_err(
                "leasequery.active.enabled",
                "Active Leasequery runs on the Bulk Leasequery listener: enable leasequery.bulk too (RFC 7724 §8)",
            ));
        }
        if !a.insecure && !tls {
            // RFC 7724 §8.1: secure mode is the default; it needs TLS material.
            return Err(self.key_err(
                "leasequery.active",
                "secure mode (the default) needs [leasequery.tls] cert, key, ca and \
                 allowed_requestors; or set insecure = true explicitly for plain TCP (lab use only)",
            ));
        }
        if a.max_connections == 0 || a.max_connections_per_requestor == 0 {
            return Err(self.key_err("leasequery.active.max_connections", "must be at least 1"));
        }
        if a.idle_timeout == 0 || a.send_timeout == 0 {
            return Err(self.key_err(
                "leasequery.active.idle_timeout",
                "timeouts must be at least 1 second",
            ));
        }
        Ok(Some(ActiveLeasequery {
            insecure: a.insecure,
            idle_timeout: std::time::Duration::from_secs(u64::from(a.idle_timeout)),
            send_timeout: std::time::Duration::from_secs(u64::from(a.send_timeout)),
            max_connections: a.max_connections,
            max_connections_per_requestor: a.max_connections_per_requestor,
            denied_options: a.denied_options.clone(),
        }))
    }
}
