//! `[[subnet]]`: a network, its pools, options and reservations.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::grant::Grant;
use super::pool::PlacedPools;
use super::reservation::{Reservation, ReservationSection};
use super::{ConfigError, Validator};

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

impl Subnet {
    /// What the subnet grants now (its values were resolved by
    /// [`Grant::resolve`] when the configuration was read).
    pub fn grant(&self) -> Grant {
        Grant {
            lease_time: self.lease_time,
            renew_time: self.renew_time,
            rebind_time: self.rebind_time,
        }
    }

    pub fn pool_contains(&self, ip: u32) -> bool {
        self.pools.iter().any(|&(a, b)| a <= ip && ip <= b)
    }
    pub fn pool_size(&self) -> u64 {
        self.pools.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }
}

impl Validator<'_> {
    /// Every `[[subnet]]`. `default_server_id` is `server.server_id` or else
    /// the specific address of `dhcp.listen`; `relayed` says whether
    /// `dhcp.listen` is set (relayed clients can reach any subnet).
    pub(super) fn subnets(
        &self,
        raw: Vec<SubnetSection>,
        default_server_id: Option<Ipv4Addr>,
        relayed: bool,
    ) -> Result<Vec<Subnet>, ConfigError> {
        if raw.is_empty() {
            return Err(self.key_err("subnet", "at least one [[subnet]] is needed"));
        }
        let mut subnets = Vec::with_capacity(raw.len());
        let mut all_pools = PlacedPools::default();
        for (i, s) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("subnet[{i}].{k}");
            let prefix = *s.prefix.get_ref();
            let prefix = Ipv4Net::new(prefix.network(), prefix.prefix_len())
                .map_err(|e| self.err(s.prefix.span(), &key("prefix"), e.to_string()))?;
            let pools = self.pools(&key("pools"), prefix, &s.pools, &mut all_pools)?;
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
            let server_id = s.server_id.or(default_server_id).ok_or_else(|| {
                self.key_err(
                    "server.server_id",
                    "no server identifier: set server.server_id (or a subnet's server_id)",
                )
            })?;
            let reservations = self.reservations(i, prefix, &s.reservation)?;
            if s.interface.is_none() && s.relay_addresses.is_empty() && !relayed {
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
        Ok(subnets)
    }
}
