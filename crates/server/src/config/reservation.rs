//! `[[subnet.reservation]]`: an address kept for one client.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use leaseline_proto::text;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSection {
    pub ip: Spanned<Ipv4Addr>,
    pub mac: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    /// Hardware address (Ethernet, htype 1).
    pub mac: Option<Vec<u8>>,
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<String>,
}

impl Validator<'_> {
    /// The reservations of subnet `i` (numbered in errors), inside `prefix`,
    /// each address reserved once.
    pub(super) fn reservations(
        &self,
        i: usize,
        prefix: Ipv4Net,
        raw: &[ReservationSection],
    ) -> Result<Vec<Reservation>, ConfigError> {
        let mut reservations = Vec::new();
        for (j, r) in raw.iter().enumerate() {
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
                return Err(self.key_err(
                    &format!("subnet[{i}].reservation"),
                    format!("{} is reserved twice", r.ip),
                ));
            }
        }
        Ok(reservations)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GOOD};

    #[test]
    fn bad_mac_in_reservation() {
        let text = format!("{GOOD}[[subnet.reservation]]\nip = \"10.0.0.5\"\nmac = \"zz:00\"\n");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("reservation[0].mac"), "{e}");
        assert!(e.contains(":12:"), "{e}");
    }
}
