//! Leasequery over UDP (RFC 4388 §6.4, RFC 6148): access control, the
//! store look-up, and the reply with its destination.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use leaseline_proto::{
    build_leaseactive, build_leaseunassigned, build_leaseunknown, choose_primary, parse_leasequery,
    Binding, ExtraOptions, QueryKind, UdpQuery,
};
use leaseline_store::{LeaseStore, StoreError};
use leaseline_wire::Message;
use parking_lot::Mutex;

use crate::access::{NetworkAllowlist, RateLimiter};
use crate::config::Config;

/// Why a query gets no reply (counted by reason, logged with the peer).
#[derive(Debug)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// The UDP leasequery service; absent when not configured.
pub struct UdpLeasequery {
    allow: NetworkAllowlist,
    limiter: Mutex<RateLimiter>,
    extra_options: Vec<u8>,
    epoch: Instant,
    /// The subnets, server ids and relay port the DHCP engine runs with:
    /// fixed until the next reload, read without the engine's lock.
    running: Arc<Config>,
    /// Reserved addresses (RFC 4388 §6.4.2: managed, if not leased).
    reserved: HashSet<Ipv4Addr>,
}

impl UdpLeasequery {
    /// From `cfg`'s `[leasequery]`; `running`: the configuration the DHCP
    /// engine runs (the same, unless a reload's DHCP part was refused).
    pub fn from_config(cfg: &Config, running: Arc<Config>) -> Option<UdpLeasequery> {
        let udp = cfg.leasequery.udp.as_ref()?;
        let reserved = running
            .subnets
            .iter()
            .flat_map(|s| s.reservations.iter().map(|r| r.ip))
            .collect();
        Some(UdpLeasequery {
            allow: NetworkAllowlist::new(cfg.leasequery.allow.clone()),
            limiter: Mutex::new(RateLimiter::new(udp.rate, udp.burst)),
            extra_options: udp.extra_options.clone(),
            epoch: Instant::now(),
            running,
            reserved,
        })
    }

    /// An address this server manages: in a pool or reserved.
    fn manages(&self, ip: Ipv4Addr) -> bool {
        self.reserved.contains(&ip)
            || self
                .running
                .subnets
                .iter()
                .any(|s| s.pool_contains(u32::from(ip)))
    }

    /// Answer one DHCPLEASEQUERY: the reply and where it goes, or why not.
    pub fn answer(
        &self,
        store: &dyn LeaseStore,
        msg: &Message,
        peer: SocketAddr,
        now: u32,
    ) -> Result<(Message, SocketAddrV4), Refusal> {
        if !self.allow.allows(peer.ip()) {
            return Err(Refusal::new(
                "requestor not allowed",
                "leasequery from a network not in leasequery.allow",
            ));
        }
        if !self
            .limiter
            .lock()
            .allow(peer.ip(), self.epoch.elapsed().as_secs_f64())
        {
            return Err(Refusal::new(
                "rate limited",
                "requestor over its leasequery rate",
            ));
        }
        let q = parse_leasequery(msg).map_err(|r| Refusal::new(r.reason(), r.to_string()))?;
        if !unicast_giaddr(q.giaddr, &self.running) {
            // RFC 4388 §6.4.3 unicasts the reply to giaddr: never broadcast binding data.
            return Err(Refusal::new(
                "giaddr not unicast",
                format!("giaddr {} is not a unicast address", q.giaddr),
            ));
        }
        if IpAddr::V4(q.giaddr) != peer.ip() && !self.allow.allows(IpAddr::V4(q.giaddr)) {
            // A reply goes to giaddr: it must be an allowed requestor too, or an
            // allowed host could steer binding data to any address.
            return Err(Refusal::new(
                "giaddr not allowed",
                format!("giaddr {} is not in leasequery.allow", q.giaddr),
            ));
        }
        let reply = self
            .build(store, &q, now)
            .map_err(|e| Refusal::new("store error", e.to_string()))?;
        Ok((reply, destination(&q, peer, self.running.relay_port)))
    }

    fn build(&self, store: &dyn LeaseStore, q: &UdpQuery, now: u32) -> Result<Message, StoreError> {
        let found: Vec<Binding> = match &q.kind {
            QueryKind::ByIp(ip) => {
                let b = store.get(*ip)?;
                let configured = self.manages(*ip);
                let sid = server_id_for(&self.running, Some(*ip));
                return Ok(match b {
                    Some(b) if b.state.is_leased() && b.expiry > now => {
                        build_leaseactive(q, &b, &[], now, sid, &self.extra())
                    }
                    // RFC 4388 §6.4.2: an address this server manages but has not leased.
                    Some(_) => build_leaseunassigned(q, *ip, sid),
                    None if configured => build_leaseunassigned(q, *ip, sid),
                    None => build_leaseunknown(q, sid),
                });
            }
            QueryKind::ByMac { htype, chaddr } => store.by_chaddr(*htype, chaddr)?,
            QueryKind::ByClientId(id) => store.by_client_id(id)?,
            // RFC 6148 §4.3.
            QueryKind::ByRemoteId(id) => store.by_remote_id(id)?,
        };
        let live = found.iter().filter(|b| b.expiry > now);
        Ok(match choose_primary(live) {
            Some(sel) => {
                let sid = server_id_for(&self.running, Some(sel.primary.ip));
                build_leaseactive(q, sel.primary, &sel.associated, now, sid, &self.extra())
            }
            None => build_leaseunknown(q, server_id_for(&self.running, None)),
        })
    }

    fn extra(&self) -> ExtraOptions<'_> {
        ExtraOptions {
            allowed: &self.extra_options,
            value: &|_, _| None,
        }
    }
}

/// Not 0/8, multicast, reserved, limited broadcast, or a served subnet's broadcast address.
fn unicast_giaddr(g: Ipv4Addr, cfg: &Config) -> bool {
    let o = g.octets()[0];
    !(o == 0
        || g.is_multicast()
        || o >= 240
        || cfg
            .subnets
            .iter()
            .any(|s| s.prefix.prefix_len() < 31 && s.prefix.broadcast() == g))
}

/// The server identifier of the subnet holding `ip`, else the first subnet's.
fn server_id_for(cfg: &Config, ip: Option<Ipv4Addr>) -> Ipv4Addr {
    ip.and_then(|ip| cfg.subnets.iter().find(|s| s.prefix.contains(&ip)))
        .or(cfg.subnets.first())
        .map(|s| s.server_id)
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// RFC 4388 §6.4.3: the reply is unicast to giaddr. A relay agent listens on
/// port 67; a requestor tool whose source address is giaddr gets the answer
/// at its own source port.
fn destination(q: &UdpQuery, peer: SocketAddr, relay_port: u16) -> SocketAddrV4 {
    match peer {
        SocketAddr::V4(p) if IpAddr::V4(*p.ip()) == IpAddr::V4(q.giaddr) => {
            SocketAddrV4::new(q.giaddr, p.port())
        }
        _ => SocketAddrV4::new(q.giaddr, relay_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaseline_proto::QueryKind;

    fn query(giaddr: Ipv4Addr) -> UdpQuery {
        UdpQuery {
            kind: QueryKind::ByIp(Ipv4Addr::new(10, 0, 0, 1)),
            giaddr,
            xid: 1,
            prl: vec![],
            relay_info: None,
        }
    }

    #[test]
    fn reply_goes_to_requestor_port_when_it_is_giaddr() {
        let g = Ipv4Addr::new(127, 0, 0, 9);
        let peer = SocketAddr::from((g, 40_000));
        assert_eq!(
            destination(&query(g), peer, 67),
            SocketAddrV4::new(g, 40_000)
        );
    }

    #[test]
    fn reply_goes_to_relay_port_of_giaddr_otherwise() {
        let g = Ipv4Addr::new(192, 0, 2, 1);
        let peer = SocketAddr::from(([127, 0, 0, 9], 40_000));
        assert_eq!(destination(&query(g), peer, 67), SocketAddrV4::new(g, 67));
    }

    #[test]
    fn broadcast_multicast_and_reserved_giaddrs_are_not_unicast() {
        let text = "[server]\nserver_id = \"127.0.0.1\"\n[dhcp]\nlisten = \"127.0.0.1:1067\"\n[[subnet]]\nprefix = \"10.99.0.0/24\"\nrelay_addresses = [\"127.0.0.1\"]\n";
        let cfg = Config::parse(text, "t").unwrap();
        for bad in [
            "255.255.255.255",
            "224.0.0.1",
            "10.99.0.255",
            "0.1.2.3",
            "240.0.0.1",
        ] {
            assert!(!unicast_giaddr(bad.parse().unwrap(), &cfg), "{bad}");
        }
        for good in ["127.0.0.1", "10.99.0.1", "192.0.2.1"] {
            assert!(unicast_giaddr(good.parse().unwrap(), &cfg), "{good}");
        }
    }
}
