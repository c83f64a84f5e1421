//! `[leasequery.udp]`: leasequery over UDP (RFC 4388, RFC 6148).

use serde::Deserialize;

use crate::config::{ConfigError, Validator};

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

#[derive(Debug, Clone)]
pub struct UdpLeasequery {
    pub rate: u32,
    pub burst: u32,
    pub extra_options: Vec<u8>,
}

impl Validator<'_> {
    /// None unless enabled.
    pub(super) fn udp_leasequery(
        &self,
        raw: Option<&UdpLeasequerySection>,
        allow: &[ipnet::IpNet],
    ) -> Result<Option<UdpLeasequery>, ConfigError> {
        let Some(u) = raw.filter(|u| u.enabled) else {
            return Ok(None);
        };
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
        Ok(Some(UdpLeasequery {
            rate: u.rate,
            burst: u.burst.max(1),
            extra_options: u.extra_options.clone(),
        }))
    }
}
