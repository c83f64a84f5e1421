//! `[leasequery]`: who may ask, and the services — UDP (RFC 4388), Bulk
//! (RFC 6926) and Active (RFC 7724) — with the secure mode's material.

use serde::Deserialize;
use toml::Spanned;

use super::value::parse_network;
use super::{ConfigError, Validator};

mod active;
mod bulk;
mod tls;
mod udp;

pub use active::{ActiveLeasequery, ActiveLeasequerySection};
pub use bulk::{BulkLeasequery, BulkLeasequerySection};
pub use tls::{TlsFiles, TlsSection};
pub use udp::{UdpLeasequery, UdpLeasequerySection};

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

impl Validator<'_> {
    pub(super) fn leasequery(
        &self,
        raw: &LeasequerySection,
    ) -> Result<LeasequeryConfig, ConfigError> {
        let mut allow = Vec::new();
        for a in &raw.allow {
            let net = parse_network(a.get_ref())
                .map_err(|reason| self.err(a.span(), "leasequery.allow", reason))?;
            allow.push(net);
        }
        let udp = self.udp_leasequery(raw.udp.as_ref(), &allow)?;
        let bulk = self.bulk_leasequery(raw.bulk.as_ref(), &allow)?;
        let active =
            self.active_leasequery(raw.active.as_ref(), bulk.is_some(), raw.tls.is_some())?;
        let tls = self.leasequery_tls(raw.tls.as_ref())?;
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::{Config, GOOD};

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
