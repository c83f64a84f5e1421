//! `[dhcp]`: the DHCP listener and the lease state machine's holds.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use super::{ConfigError, Validator};

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
    /// Seconds between the reaper's passes; 0: none, only the control
    /// API's `leases-reclaim` (Kea's `reclaim-timer-wait-time`).
    #[serde(default = "default_reclaim_interval")]
    pub reclaim_interval: u32,
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
            reclaim_interval: default_reclaim_interval(),
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
fn default_reclaim_interval() -> u32 {
    1
}

impl Validator<'_> {
    /// Checks `[dhcp]`; returns the listen address when it is a specific
    /// one: a subnet without a server identifier falls back on it.
    pub(super) fn dhcp(&self, raw: &DhcpSection) -> Result<Option<Ipv4Addr>, ConfigError> {
        if raw.offer_hold == 0 {
            return Err(self.key_err("dhcp.offer_hold", "must be at least 1 second"));
        }
        match raw.listen {
            Some(SocketAddr::V4(a)) if !a.ip().is_unspecified() => Ok(Some(*a.ip())),
            Some(SocketAddr::V6(_)) => {
                Err(self.key_err("dhcp.listen", "DHCPv4 needs an IPv4 address"))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GOOD};

    fn with_dhcp_line(line: &str) -> String {
        GOOD.replace("[dhcp]\n", &format!("[dhcp]\n{line}\n"))
    }

    #[test]
    fn reclaim_interval_defaults_to_one_second() {
        assert_eq!(Config::parse(GOOD, "t").unwrap().reclaim_interval, 1);
    }

    #[test]
    fn reclaim_interval_zero_and_longer_are_taken() {
        let c = Config::parse(&with_dhcp_line("reclaim_interval = 0"), "t").unwrap();
        assert_eq!(c.reclaim_interval, 0);
        let c = Config::parse(&with_dhcp_line("reclaim_interval = 60"), "t").unwrap();
        assert_eq!(c.reclaim_interval, 60);
    }

    #[test]
    fn a_bad_reclaim_interval_is_refused_with_its_key_and_line() {
        for bad in ["-1", "\"1s\"", "1.5", "4294967296"] {
            let text = with_dhcp_line(&format!("reclaim_interval = {bad}"));
            let e = Config::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains("reclaim_interval"), "{bad}: {e}");
            assert!(e.contains("line 5"), "{bad}: {e}");
        }
    }
}
