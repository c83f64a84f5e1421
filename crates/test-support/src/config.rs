//! [`ServerConfig`]: the server TOML the integration tests run against,
//! built from the few things the tests vary.
//!
//! ```
//! # use leaseline_test_support::{ServerConfig, Subnet};
//! # use std::net::Ipv4Addr;
//! let relay = Ipv4Addr::new(127, 0, 0, 9);
//! let toml = ServerConfig::new("127.0.0.1:1067".parse().unwrap())
//!     .subnet(Subnet::new("10.0.0.0/16", "10.0.0.10-10.0.255.250", &[relay]))
//!     .allow(&["127.0.0.0/8"])
//!     .bulk("127.0.0.1:6767".parse().unwrap(), "data_timeout = 2")
//!     .build();
//! assert!(toml.contains("[leasequery.bulk]\nenabled = true\n"));
//! ```
//!
//! `state_dir` is left as `@STATE_DIR@`, filled in by
//! [`ServerProcess`](crate::ServerProcess).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

/// `["a", "b"]`.
fn string_list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// `lines` followed by a newline unless empty or already ending with one.
fn push_lines(s: &mut String, lines: &str) {
    s.push_str(lines);
    if !lines.is_empty() && !lines.ends_with('\n') {
        s.push('\n');
    }
}

/// One `[[subnet]]` with a lease time of 3600 s. `lease_time` is always the
/// last key of the table, so a test may append `[[subnet.reservation]]`
/// tables after `lease_time = 3600\n`.
#[derive(Debug, Clone)]
pub struct Subnet {
    prefix: String,
    pool: String,
    relays: Vec<Ipv4Addr>,
    router: Option<Ipv4Addr>,
    dns_servers: Vec<Ipv4Addr>,
    domain_name: Option<String>,
}

impl Subnet {
    /// `prefix` with one pool (`"first-last"`), served to relays (giaddr)
    /// `relays`; no options.
    pub fn new(prefix: &str, pool: &str, relays: &[Ipv4Addr]) -> Subnet {
        Subnet {
            prefix: prefix.to_owned(),
            pool: pool.to_owned(),
            relays: relays.to_vec(),
            router: None,
            dns_servers: Vec::new(),
            domain_name: None,
        }
    }

    /// `router = ["10.0.0.1"]`.
    pub fn router(mut self) -> Subnet {
        self.router = Some(Ipv4Addr::new(10, 0, 0, 1));
        self
    }

    /// The options of examples/loopback.toml: the router, `dns` as
    /// `dns_servers` and `domain_name = "lab.example"`.
    pub fn lab_options(mut self, dns: &[Ipv4Addr]) -> Subnet {
        self = self.router();
        self.dns_servers = dns.to_vec();
        self.domain_name = Some("lab.example".to_owned());
        self
    }

    fn render(&self, s: &mut String) {
        let _ = writeln!(s, "[[subnet]]");
        let _ = writeln!(s, "prefix = \"{}\"", self.prefix);
        let _ = writeln!(s, "pools = [\"{}\"]", self.pool);
        let _ = writeln!(s, "relay_addresses = {}", string_list(&self.relays));
        if let Some(r) = self.router {
            let _ = writeln!(s, "router = [\"{r}\"]");
        }
        if !self.dns_servers.is_empty() {
            let _ = writeln!(s, "dns_servers = {}", string_list(&self.dns_servers));
        }
        if let Some(d) = &self.domain_name {
            let _ = writeln!(s, "domain_name = \"{d}\"");
        }
        s.push_str("lease_time = 3600\n");
    }
}

/// A server config on loopback: `[server]` (state directory filled in by
/// `ServerProcess`, server id 127.0.0.1), `[dhcp]` on the given address,
/// and whatever the methods add. Leasequery sections appear only when asked
/// for.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    dhcp_listen: SocketAddr,
    relay_port: Option<u16>,
    holds: bool,
    dhcp: String,
    history: Option<(u32, usize)>,
    store: String,
    subnets: String,
    allow: Option<Vec<String>>,
    udp: Option<(u32, u32)>,
    bulk: Option<(SocketAddr, String)>,
    active: Option<(bool, String)>,
    extra: String,
}

impl ServerConfig {
    /// DHCP on `dhcp_listen`, nothing else.
    pub fn new(dhcp_listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            dhcp_listen,
            relay_port: None,
            holds: false,
            dhcp: String::new(),
            history: None,
            store: String::new(),
            subnets: String::new(),
            allow: None,
            udp: None,
            bulk: None,
            active: None,
            extra: String::new(),
        }
    }

    /// The DHCP service, store and subnet of examples/loopback.toml: DHCP
    /// on `dhcp_listen` with its hold times, an hour / 100,000 entries of
    /// history, subnet 10.0.0.0/16 (pool 10.0.0.10-10.0.255.250) for
    /// `relays` with the lab options.
    pub fn loopback(dhcp_listen: SocketAddr, relays: &[Ipv4Addr]) -> ServerConfig {
        ServerConfig::new(dhcp_listen)
            .holds()
            .history(3600, 100_000)
            .subnet(
                Subnet::new("10.0.0.0/16", "10.0.0.10-10.0.255.250", relays)
                    .lab_options(&[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]),
            )
    }

    /// `[dhcp] relay_port`: where replies to relays go.
    pub fn relay_port(mut self, port: u16) -> Self {
        self.relay_port = Some(port);
        self
    }

    /// `offer_hold = 30`, `decline_hold = 3600`, `expired_grace = 600` in
    /// `[dhcp]`, as in examples/loopback.toml.
    pub fn holds(mut self) -> Self {
        self.holds = true;
        self
    }

    /// More `[dhcp]` lines, e.g. `reclaim_interval = 0`.
    pub fn dhcp(mut self, lines: &str) -> Self {
        push_lines(&mut self.dhcp, lines);
        self
    }

    /// More `[store]` lines, e.g. `backend = "postgres"` and its `url`.
    pub fn store(mut self, lines: &str) -> Self {
        self.store.push_str(lines);
        self
    }

    /// `[store] history_max_age` and `history_max_count`.
    pub fn history(mut self, max_age: u32, max_count: usize) -> Self {
        self.history = Some((max_age, max_count));
        self
    }

    /// A `[[subnet]]`.
    pub fn subnet(mut self, subnet: Subnet) -> Self {
        if !self.subnets.is_empty() {
            self.subnets.push('\n');
        }
        subnet.render(&mut self.subnets);
        self
    }

    /// `[[subnet]]` tables (and their reservations) as TOML text, verbatim.
    pub fn subnet_toml(mut self, toml: &str) -> Self {
        if !self.subnets.is_empty() {
            self.subnets.push('\n');
        }
        push_lines(&mut self.subnets, toml);
        self
    }

    /// `[leasequery] allow`: the requestor prefixes.
    pub fn allow(mut self, prefixes: &[&str]) -> Self {
        self.allow = Some(prefixes.iter().map(|p| p.to_string()).collect());
        self
    }

    /// `[leasequery.udp]` enabled with this rate limit.
    pub fn udp(mut self, rate: u32, burst: u32) -> Self {
        self.udp = Some((rate, burst));
        self
    }

    /// `[leasequery.bulk]` enabled on `listen`, plus `lines` (e.g.
    /// `"data_timeout = 2"`).
    pub fn bulk(mut self, listen: SocketAddr, lines: &str) -> Self {
        self.bulk = Some((listen, lines.to_owned()));
        self
    }

    /// `[leasequery.active]` enabled, `insecure = true` when `insecure`,
    /// plus `lines` (e.g. `"idle_timeout = 1"`).
    pub fn active(mut self, insecure: bool, lines: &str) -> Self {
        self.active = Some((insecure, lines.to_owned()));
        self
    }

    /// TOML appended verbatim at the end (e.g. a `[leasequery.tls]` or a
    /// whole `[leasequery]` section).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self
    }

    /// The config text.
    pub fn build(&self) -> String {
        let mut s = String::new();
        s.push_str("[server]\nstate_dir = \"@STATE_DIR@\"\nserver_id = \"127.0.0.1\"\n");

        let _ = write!(s, "\n[dhcp]\nlisten = \"{}\"\n", self.dhcp_listen);
        if let Some(port) = self.relay_port {
            let _ = writeln!(s, "relay_port = {port}");
        }
        if self.holds {
            s.push_str("offer_hold = 30\ndecline_hold = 3600\nexpired_grace = 600\n");
        }
        s.push_str(&self.dhcp);

        if self.history.is_some() || !self.store.is_empty() {
            s.push_str("\n[store]\n");
        }
        if let Some((age, count)) = self.history {
            let _ = writeln!(s, "history_max_age = {age}\nhistory_max_count = {count}");
        }
        s.push_str(&self.store);

        if !self.subnets.is_empty() {
            s.push('\n');
            s.push_str(&self.subnets);
        }

        if let Some(allow) = &self.allow {
            let _ = write!(s, "\n[leasequery]\nallow = {}\n", string_list(allow));
        }
        if let Some((rate, burst)) = self.udp {
            let _ = write!(
                s,
                "\n[leasequery.udp]\nenabled = true\nrate = {rate}\nburst = {burst}\n"
            );
        }
        if let Some((listen, lines)) = &self.bulk {
            let _ = write!(
                s,
                "\n[leasequery.bulk]\nenabled = true\nlisten = \"{listen}\"\n"
            );
            push_lines(&mut s, lines);
        }
        if let Some((insecure, lines)) = &self.active {
            s.push_str("\n[leasequery.active]\nenabled = true\n");
            if *insecure {
                s.push_str("insecure = true\n");
            }
            push_lines(&mut s, lines);
        }

        if !self.extra.is_empty() {
            s.push('\n');
            s.push_str(&self.extra);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_one_subnet_and_no_leasequery() {
        let t =
            ServerConfig::loopback("127.0.0.1:67".parse().unwrap(), &[Ipv4Addr::LOCALHOST]).build();
        assert!(t.starts_with("[server]\n"), "{t}");
        assert_eq!(t.matches("[[subnet]]").count(), 1, "{t}");
        assert!(t.contains("relay_addresses = [\"127.0.0.1\"]\n"), "{t}");
        assert!(t.ends_with("lease_time = 3600\n"), "{t}");
        assert!(!t.contains("leasequery"), "{t}");
    }

    #[test]
    fn leasequery_sections_in_order() {
        let t = ServerConfig::new("127.0.0.1:67".parse().unwrap())
            .allow(&["127.0.0.0/8", "10.0.0.0/8"])
            .udp(1, 2)
            .bulk("127.0.0.1:68".parse().unwrap(), "data_timeout = 2")
            .active(false, "")
            .extra("[leasequery.tls]\n")
            .build();
        let find = |p: &str| t.find(p).unwrap_or_else(|| panic!("{p} in {t}"));
        assert!(
            t.contains("allow = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n"),
            "{t}"
        );
        assert!(find("[leasequery]") < find("[leasequery.udp]"));
        assert!(find("[leasequery.udp]") < find("[leasequery.bulk]"));
        assert!(find("[leasequery.bulk]") < find("data_timeout = 2\n"));
        assert!(find("data_timeout = 2\n") < find("[leasequery.active]"));
        assert!(find("[leasequery.active]") < find("[leasequery.tls]"));
        assert!(!t.contains("insecure"), "{t}");
    }
}
