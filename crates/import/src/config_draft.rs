//! What a converted configuration says, in Leaseline's terms: a plain
//! struct the dhcpd.conf and Kea mappers fill in, the list of what did not
//! map, and the TOML text of `leaseline.toml` (docs/configuration.md).
//! This crate does not validate the text against the server's loader (it
//! sits below the server); `leaseline import config` does, before writing.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use crate::ParseError;

/// The result of converting another server's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversion {
    pub draft: ConfigDraft,
    /// What the source says that the draft does not, sorted by line.
    pub unmapped: Vec<Finding>,
}

/// One thing in the source that does not map: where, what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: u64,
    /// The statement or key, e.g. `class "voip"`.
    pub what: String,
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.what, self.reason)
    }
}

/// Leaseline's configuration, as far as the source determines it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDraft {
    /// `server.server_id`, when the source names one globally.
    pub server_id: Option<Ipv4Addr>,
    pub subnets: Vec<DraftSubnet>,
    /// `leasequery.allow`, CIDR text; non-empty turns UDP leasequery on.
    pub leasequery_allow: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftSubnet {
    /// Where the subnet is declared in the source.
    pub line: u64,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Inclusive ranges.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub relay_addresses: Vec<Ipv4Addr>,
    pub interface: Option<String>,
    pub server_id: Option<Ipv4Addr>,
    pub router: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub lease_time: u32,
    pub renew_time: Option<u32>,
    pub rebind_time: Option<u32>,
    pub reservations: Vec<DraftReservation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftReservation {
    pub line: u64,
    pub ip: Ipv4Addr,
    /// Ethernet address.
    pub mac: Option<Vec<u8>>,
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<String>,
}

impl DraftSubnet {
    pub fn new(line: u64, network: Ipv4Addr, prefix_len: u8, lease_time: u32) -> DraftSubnet {
        DraftSubnet {
            line,
            network,
            prefix_len,
            pools: Vec::new(),
            relay_addresses: Vec::new(),
            interface: None,
            server_id: None,
            router: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: None,
            lease_time,
            renew_time: None,
            rebind_time: None,
            reservations: Vec::new(),
        }
    }

    /// `ip` lies inside the subnet's prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

/// The netmask of a prefix length (0..=32).
pub(crate) fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

/// What the operator decides, not the source: where the output runs.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// The source file and format, named in the header comment.
    pub source: String,
    pub listen: SocketAddr,
    pub state_dir: String,
    /// Overrides the source's server identifier.
    pub server_id: Option<Ipv4Addr>,
}

impl ConfigDraft {
    /// `leaseline.toml` for the draft.
    pub fn to_toml(&self, out: &OutputSettings) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Converted by `leaseline import config` from {}.",
            out.source
        );
        s.push_str(
            "# Review it with the list of what did not map (printed when converting)\n\
             # before serving with it: docs/migration.md.\n\n",
        );
        s.push_str("[server]\n");
        let _ = writeln!(s, "state_dir = {}", quote(&out.state_dir));
        if let Some(id) = out.server_id.or(self.server_id) {
            let _ = writeln!(s, "server_id = \"{id}\"");
        }
        s.push_str("\n[dhcp]\n");
        let _ = writeln!(s, "listen = \"{}\"", out.listen);
        for sub in &self.subnets {
            s.push_str("\n[[subnet]]\n");
            let _ = writeln!(s, "# source line {}", sub.line);
            let _ = writeln!(s, "prefix = \"{}/{}\"", sub.network, sub.prefix_len);
            let pools: Vec<String> = sub
                .pools
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            let _ = writeln!(s, "pools = {}", list(&pools));
            if !sub.relay_addresses.is_empty() {
                let _ = writeln!(s, "relay_addresses = {}", list(&sub.relay_addresses));
            }
            if let Some(i) = &sub.interface {
                let _ = writeln!(s, "interface = {}", quote(i));
            }
            if let Some(id) = sub.server_id {
                let _ = writeln!(s, "server_id = \"{id}\"");
            }
            if !sub.router.is_empty() {
                let _ = writeln!(s, "router = {}", list(&sub.router));
            }
            if !sub.dns_servers.is_empty() {
                let _ = writeln!(s, "dns_servers = {}", list(&sub.dns_servers));
            }
            if let Some(d) = &sub.domain_name {
                let _ = writeln!(s, "domain_name = {}", quote(d));
            }
            if let Some(t) = sub.renew_time {
                let _ = writeln!(s, "renew_time = {t}");
            }
            if let Some(t) = sub.rebind_time {
                let _ = writeln!(s, "rebind_time = {t}");
            }
            let _ = writeln!(s, "lease_time = {}", sub.lease_time);
            for r in &sub.reservations {
                s.push_str("\n[[subnet.reservation]]\n");
                let _ = writeln!(s, "# source line {}", r.line);
                let _ = writeln!(s, "ip = \"{}\"", r.ip);
                if let Some(m) = &r.mac {
                    let _ = writeln!(s, "mac = \"{}\"", colon_hex(m));
                }
                if let Some(c) = &r.client_id {
                    let _ = writeln!(s, "client_id = \"{}\"", colon_hex(c));
                }
                if let Some(h) = &r.hostname {
                    let _ = writeln!(s, "hostname = {}", quote(h));
                }
            }
        }
        if !self.leasequery_allow.is_empty() {
            s.push_str("\n[leasequery]\n");
            let _ = writeln!(s, "allow = {}", list(&self.leasequery_allow));
            s.push_str("\n[leasequery.udp]\nenabled = true\n");
        }
        s
    }
}

fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| quote(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML basic string (escapes per the TOML spec).
pub(crate) fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// One error per range (`what`: the source's word for it) that overlaps
/// a range declared before it, at its subnet's line: Leaseline's
/// configuration refuses overlapping pools.
pub(crate) fn overlapping_ranges(subnets: &[DraftSubnet], what: &str) -> Vec<ParseError> {
    let mut errors = Vec::new();
    let mut seen: Vec<(u32, u32, u64)> = Vec::new();
    for s in subnets {
        for &(a, b) in &s.pools {
            let (a, b) = (u32::from(a), u32::from(b));
            if let Some((_, _, line)) = seen.iter().find(|(x, y, _)| a <= *y && *x <= b) {
                errors.push(ParseError::new(
                    s.line,
                    format!(
                        "a {what} of subnet {}/{} overlaps one of the subnet on line {line}",
                        s.network, s.prefix_len
                    ),
                ));
            }
            seen.push((a, b, s.line));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_toml_needs() {
        assert_eq!(quote("a\"b\\c\n\u{7}"), r#""a\"b\\c\n\u0007""#);
    }

    #[test]
    fn contains_uses_the_prefix() {
        let s = DraftSubnet::new(1, Ipv4Addr::new(10, 1, 0, 0), 16, 600);
        assert!(s.contains(Ipv4Addr::new(10, 1, 255, 1)));
        assert!(!s.contains(Ipv4Addr::new(10, 2, 0, 1)));
        let all = DraftSubnet::new(1, Ipv4Addr::UNSPECIFIED, 0, 600);
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }
}
