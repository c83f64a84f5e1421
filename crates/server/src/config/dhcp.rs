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
