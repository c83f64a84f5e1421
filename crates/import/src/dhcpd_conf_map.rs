//! dhcpd.conf statements → a [`ConfigDraft`] and the list of what does not
//! map, each with its line and why. Pure: statements in, conversion out.
//!
//! dhcpd's parameters apply to the whole scope they are written in
//! (global → shared-network → subnet → pool / host, and `group`), wherever
//! in the scope they stand: each block's parameters are read first, then
//! its declarations with the scope so far. A value dhcpd itself would
//! refuse (a bad address, a range outside its subnet) is an error; a
//! feature Leaseline does not have is a [`Finding`].

use std::net::Ipv4Addr;

use crate::config_draft::{
    prefix_mask, ConfigDraft, Conversion, DraftReservation, DraftSubnet, Finding,
};
use crate::dhcpd_conf::{self, Statement, Word};
use crate::text::colon_hex;
use crate::ParseError;

/// dhcpd's default-lease-time when the file sets none (dhcpd.conf(5)).
const DHCPD_DEFAULT_LEASE_TIME: u32 = 43_200;

/// Options Leaseline sends, besides the subnet mask and the lease times.
const SENT_OPTIONS: &str =
    "Leaseline sends the subnet mask, routers, domain-name-servers, domain-name and the lease times (51, 58, 59) only";

/// Converts a dhcpd.conf; every error found (with its line) when it is malformed.
pub fn convert_dhcpd_conf(bytes: &[u8]) -> Result<Conversion, Vec<ParseError>> {
    let tree = dhcpd_conf::parse(bytes).map_err(|e| vec![e])?;
    let mut m = Mapper::default();
    let mut global = Scope::default();
    m.scope_block(&tree, &mut global, Where::Global);
    m.finish(global)
}

/// Parameters inherited by inner scopes.
#[derive(Debug, Clone, Default)]
struct Scope {
    router: Option<Vec<Ipv4Addr>>,
    dns: Option<Vec<Ipv4Addr>>,
    domain: Option<String>,
    server_id: Option<Ipv4Addr>,
    lease_time: Option<(u64, u32)>,
    renew: Option<u32>,
    rebind: Option<u32>,
    /// `allow leasequery;` in force, and its line.
    leasequery: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Global,
    SharedNetwork,
    Subnet,
    Pool,
    Host,
    Group,
}

/// A `host` block, placed in its subnet once every subnet is known.
#[derive(Debug)]
struct Host {
    line: u64,
    name: String,
    mac: Option<Vec<u8>>,
    client_id: Option<Vec<u8>>,
    hostname: Option<String>,
    fixed: Vec<(u64, Ipv4Addr)>,
}

#[derive(Default)]
struct Mapper {
    subnets: Vec<DraftSubnet>,
    /// Ranges of pools written directly in a shared-network, placed in the
    /// subnet that holds them at the end of the shared-network.
    loose_ranges: Vec<(u64, Ipv4Addr, Ipv4Addr)>,
    hosts: Vec<Host>,
    lq_allow: Vec<String>,
    /// `allow leasequery;` at the top level, and its line.
    global_lq: Option<u64>,
    findings: Vec<Finding>,
    errors: Vec<ParseError>,
}

fn words_text(st: &Statement, from: usize) -> String {
    st.words
        .iter()
        .skip(from)
        .map(|w| match w {
            Word::Bare(s) => s.clone(),
            Word::Quoted(b) => String::from_utf8_lossy(b).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Mapper {
    fn not_mapped(&mut self, st: &Statement, reason: impl Into<String>) {
        self.findings.push(Finding {
            line: st.line,
            what: st.head(),
            reason: reason.into(),
        });
    }

    fn error(&mut self, line: u64, reason: impl Into<String>) {
        self.errors.push(ParseError::new(line, reason));
    }

    fn addr(&mut self, st: &Statement, s: &str) -> Option<Ipv4Addr> {
        match s.parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    st.line,
                    format!("{}: `{s}` is not an IPv4 address", st.keyword()),
                );
                None
            }
        }
    }

    /// `a, b c` (the statement's words from `from`) as addresses. A name
    /// (dhcpd resolves it with DNS at start) is a finding, not an error.
    fn addr_list(&mut self, st: &Statement, from: usize) -> Option<Vec<Ipv4Addr>> {
        let text = words_text(st, from);
        let items: Vec<&str> = text.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        if items.is_empty() {
            self.error(st.line, format!("`{}` has no value", st.head()));
            return None;
        }
        let mut out = Vec::new();
        for i in items {
            if let Ok(a) = i.parse::<Ipv4Addr>() {
                out.push(a);
            } else if i.chars().all(|c| c.is_ascii_digit() || c == '.') {
                self.error(st.line, format!("`{i}` is not an IPv4 address"));
                return None;
            } else {
                self.not_mapped(
                    st,
                    format!("`{i}` is a host name (dhcpd looks it up in DNS at start): write its address"),
                );
                return None;
            }
        }
        Some(out)
    }

    fn seconds(&mut self, st: &Statement, i: usize) -> Option<u32> {
        let v = st.word_lower(i).unwrap_or_default();
        match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    st.line,
                    format!("{}: `{v}` is not a number of seconds", st.keyword()),
                );
                None
            }
        }
    }

    /// The parameters of a block, then its declarations.
    fn scope_block(&mut self, body: &[Statement], scope: &mut Scope, at: Where) {
        for st in body.iter().filter(|s| s.body.is_none()) {
            self.parameter(st, scope, at);
        }
        for st in body.iter().filter(|s| s.body.is_some()) {
            self.declaration(st, scope, at);
        }
    }

    /// A statement without a block, in scope `at`.
    fn parameter(&mut self, st: &Statement, scope: &mut Scope, at: Where) {
        let kw = st.keyword();
        match kw.as_str() {
            "option" => self.option(st, scope, at),
            "default-lease-time" => {
                if let Some(n) = self.seconds(st, 1) {
                    scope.lease_time = Some((st.line, n));
                }
            }
            "max-lease-time" | "min-lease-time" => self.not_mapped(
                st,
                "Leaseline grants lease_time (default-lease-time) to every client and does not honour a requested lease time",
            ),
            "server-identifier" => {
                if let Some(a) = st.words.get(1).and_then(Word::bare).map(str::to_owned) {
                    scope.server_id = self.addr(st, &a);
                }
            }
            "authoritative" => {}
            "not" if st.word_lower(1).as_deref() == Some("authoritative") => self.not_mapped(
                st,
                "Leaseline is authoritative for its subnets: it NAKs a request for an address it does not hold for the client",
            ),
            "ddns-update-style" if st.word_lower(1).as_deref() == Some("none") => {}
            "ddns-updates" if st.word_lower(1).as_deref() == Some("off") => {}
            "ping-check" if st.word_lower(1).as_deref() == Some("false") => {}
            "ping-check" => self.not_mapped(
                st,
                "Leaseline does not ping an address before offering it",
            ),
            "allow" | "deny" | "ignore" => self.permit(st, scope, at),
            "range" => {
                if at != Where::Subnet && at != Where::Pool && at != Where::SharedNetwork {
                    self.not_mapped(st, "a range outside a subnet, pool or shared-network");
                }
                // Read with the subnet or pool it belongs to.
            }
            "hardware" | "fixed-address" => {
                if at != Where::Host {
                    self.not_mapped(st, "only meaningful in a host block");
                }
            }
            "include" => self.not_mapped(
                st,
                "included files are not followed: convert that file too, or inline it",
            ),
            "failover" => self.not_mapped(
                st,
                "dhcpd failover does not map: several Leaseline servers share one PostgreSQL store instead (docs/postgresql.md)",
            ),
            "ddns-update-style" | "ddns-updates" | "ddns-domainname" | "ddns-hostname"
            | "ddns-rev-domainname" | "update-static-leases" | "update-optimization"
            | "update-conflict-detection" | "do-forward-updates" | "key" | "zone" => self
                .not_mapped(st, "Leaseline does not update DNS (no DDNS)"),
            "next-server" | "filename" | "server-name" | "dynamic-bootp-lease-length"
            | "dynamic-bootp-lease-cutoff" | "always-reply-rfc1048" => self.not_mapped(
                st,
                "BOOTP / network boot fields are not served by Leaseline",
            ),
            "local-address" | "local-port" | "listen" => self.not_mapped(
                st,
                "where Leaseline listens is [dhcp] listen, set with `--listen` when converting",
            ),
            "lease-file-name" | "db-time-format" | "pid-file-name" | "log-facility"
            | "omapi-port" | "omapi-key" | "ldap-server" => self.not_mapped(
                st,
                "a setting of dhcpd's own files, logs or management: Leaseline keeps its store per [store] and logs to stderr",
            ),
            _ => self.not_mapped(st, "no Leaseline equivalent"),
        }
    }

    fn option(&mut self, st: &Statement, scope: &mut Scope, at: Where) {
        let name = st.word_lower(1).unwrap_or_default();
        if st.word_lower(2).as_deref() == Some("code") || name == "space" {
            self.not_mapped(
                st,
                "option definitions do not map: Leaseline sends a fixed set of options",
            );
            return;
        }
        match name.as_str() {
            "routers" => scope.router = self.addr_list(st, 2),
            "domain-name-servers" => scope.dns = self.addr_list(st, 2),
            "domain-name" => match st.words.get(2) {
                Some(Word::Quoted(b)) => match String::from_utf8(b.clone()) {
                    Ok(s) => scope.domain = Some(s),
                    Err(_) => self.error(st.line, "option domain-name: not UTF-8 text"),
                },
                _ => self.error(st.line, "option domain-name: needs a quoted name"),
            },
            "dhcp-server-identifier" => {
                if let Some(a) = st.words.get(2).and_then(Word::bare).map(str::to_owned) {
                    scope.server_id = self.addr(st, &a);
                }
            }
            "dhcp-lease-time" => {
                if let Some(n) = self.seconds(st, 2) {
                    scope.lease_time = Some((st.line, n));
                }
            }
            "dhcp-renewal-time" => scope.renew = self.seconds(st, 2),
            "dhcp-rebinding-time" => scope.rebind = self.seconds(st, 2),
            "subnet-mask" if at == Where::Subnet => {
                // Leaseline sends the prefix's mask; the same value maps.
                self.findings.push(Finding {
                    line: st.line,
                    what: st.head(),
                    reason: "Leaseline sends the mask of the subnet's prefix".into(),
                });
            }
            "host-name" | "dhcp-client-identifier" if at == Where::Host => {}
            _ => self.not_mapped(st, SENT_OPTIONS),
        }
    }

    /// `allow|deny|ignore ...` outside a pool (a pool reads its own).
    fn permit(&mut self, st: &Statement, scope: &mut Scope, at: Where) {
        let what = st.word_lower(1).unwrap_or_default();
        if what == "leasequery" {
            scope.leasequery = (st.keyword() == "allow").then_some(st.line);
            if at == Where::Global {
                self.global_lq = scope.leasequery;
            }
            return;
        }
        if at == Where::Pool {
            return;
        }
        match what.as_str() {
            "unknown-clients" | "known-clients" | "members" | "dynamic" | "all" => self.not_mapped(
                st,
                "client permits do not map: Leaseline gives any pool address to any client",
            ),
            "bootp" | "booting" => self.not_mapped(st, "Leaseline does not answer BOOTP"),
            "duplicates" | "declines" | "client-updates" => {
                self.not_mapped(st, "no Leaseline equivalent")
            }
            _ => self.not_mapped(st, "no Leaseline equivalent"),
        }
    }

    /// A block statement in scope `at`.
    fn declaration(&mut self, st: &Statement, scope: &Scope, at: Where) {
        let body = st.body.as_deref().unwrap_or(&[]);
        match st.keyword().as_str() {
            "subnet" => self.subnet(st, body, scope),
            "shared-network" => {
                let first = self.subnets.len();
                let mut inner = scope.clone();
                self.scope_block(body, &mut inner, Where::SharedNetwork);
                // Ranges of pools written directly in the shared-network.
                for st in body.iter().filter(|s| s.keyword() == "range") {
                    self.range_into_loose(st);
                }
                self.place_loose(first);
                let n = self.subnets.len() - first;
                if n > 1 {
                    self.not_mapped(
                        st,
                        format!(
                            "a shared network of {n} subnets: Leaseline picks one subnet per relay address (giaddr), \
                             so each subnet is written on its own and a client gets an address from the subnet \
                             that holds its relay's giaddr (or lists it in relay_addresses) only"
                        ),
                    );
                }
            }
            "group" => {
                let mut inner = scope.clone();
                self.scope_block(body, &mut inner, Where::Group);
            }
            "host" => self.host(st, body),
            "pool" if at == Where::SharedNetwork => {
                // Its ranges are placed in their subnets when the
                // shared-network ends.
                if self.pool_is_open(st, body) {
                    for r in body.iter().filter(|s| s.keyword() == "range") {
                        self.range_into_loose(r);
                    }
                }
                self.pool_scope(body, scope);
            }
            "pool" => self.not_mapped(st, "a pool outside a subnet or shared-network"),
            "class" | "subclass" => self.not_mapped(
                st,
                "client classes do not map: Leaseline does not classify clients; members get the ordinary service of their subnet",
            ),
            "failover" => self.not_mapped(
                st,
                "dhcpd failover does not map: several Leaseline servers share one PostgreSQL store instead (docs/postgresql.md)",
            ),
            "on" => self.not_mapped(st, "event hooks (on commit/release/expiry) do not map"),
            "if" | "elsif" | "else" => self.not_mapped(
                st,
                "conditional statements do not map: Leaseline's configuration has no expressions",
            ),
            "key" | "zone" => self.not_mapped(st, "Leaseline does not update DNS (no DDNS)"),
            "subnet6" => self.not_mapped(st, "DHCPv6: Leaseline serves DHCPv4 only"),
            _ => self.not_mapped(st, "no Leaseline equivalent"),
        }
    }

    fn range_into_loose(&mut self, st: &Statement) {
        if let Some((a, b)) = self.range(st) {
            self.loose_ranges.push((st.line, a, b));
        }
    }

    /// Ranges written outside a subnet go to the subnet holding them.
    fn place_loose(&mut self, first: usize) {
        for (line, a, b) in std::mem::take(&mut self.loose_ranges) {
            match self.subnets[first..]
                .iter_mut()
                .find(|s| s.contains(a) && s.contains(b))
            {
                Some(s) => s.pools.push((a, b)),
                None => self.error(
                    line,
                    format!("range {a} {b} lies in no subnet of its shared-network"),
                ),
            }
        }
    }

    /// `range [dynamic-bootp] A [B];`
    fn range(&mut self, st: &Statement) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let mut i = 1;
        if st.word_lower(1).as_deref() == Some("dynamic-bootp") {
            self.not_mapped(
                st,
                "dynamic-bootp: Leaseline does not answer BOOTP (the range is written for DHCP)",
            );
            i = 2;
        }
        let a = st.words.get(i).and_then(Word::bare).map(str::to_owned);
        let b = st.words.get(i + 1).and_then(Word::bare).map(str::to_owned);
        let Some(a) = a else {
            self.error(st.line, "range: no address");
            return None;
        };
        let a = self.addr(st, &a)?;
        let b = match b {
            Some(b) => self.addr(st, &b)?,
            None => a,
        };
        if u32::from(a) > u32::from(b) {
            self.error(
                st.line,
                format!("range {a} {b}: the first address is above the last"),
            );
            return None;
        }
        Some((a, b))
    }

    /// A pool's permits: true when any client may use it (its ranges map).
    fn pool_is_open(&mut self, pool: &Statement, body: &[Statement]) -> bool {
        let mut open = true;
        for st in body {
            let kw = st.keyword();
            if !matches!(kw.as_str(), "allow" | "deny" | "ignore") {
                continue;
            }
            let what = st.word_lower(1).unwrap_or_default();
            let everyone = kw == "allow"
                && (what == "unknown-clients"
                    || (what == "all" && st.word_lower(2).as_deref() == Some("clients")));
            if what == "leasequery" || everyone {
                continue;
            }
            open = false;
            self.not_mapped(
                st,
                "pool permits do not map: Leaseline gives any pool address to any client, so this pool's ranges are not written (a client may still have a reservation)",
            );
        }
        if !open {
            for r in body.iter().filter(|s| s.keyword() == "range") {
                self.findings.push(Finding {
                    line: r.line,
                    what: r.head(),
                    reason: format!(
                        "not written: its pool (line {}) is restricted to some clients",
                        pool.line
                    ),
                });
            }
        }
        open
    }

    /// A pool's own parameters: reported where they differ from the scope
    /// around (Leaseline's options are per subnet).
    fn pool_scope(&mut self, body: &[Statement], outer: &Scope) {
        let mut inner = outer.clone();
        for st in body.iter().filter(|s| s.body.is_none()) {
            match st.keyword().as_str() {
                "range" | "allow" | "deny" | "ignore" => {}
                "failover" => self.not_mapped(
                    st,
                    "dhcpd failover does not map: several Leaseline servers share one PostgreSQL store instead (docs/postgresql.md)",
                ),
                _ => {
                    let before = inner.clone();
                    self.parameter(st, &mut inner, Where::Pool);
                    if format!("{before:?}") != format!("{inner:?}") {
                        self.not_mapped(
                            st,
                            "per-pool parameters do not map: Leaseline's options and lease times are per subnet",
                        );
                        inner = before;
                    }
                }
            }
        }
        for st in body.iter().filter(|s| s.body.is_some()) {
            self.not_mapped(st, "no Leaseline equivalent inside a pool");
        }
    }

    fn subnet(&mut self, st: &Statement, body: &[Statement], outer: &Scope) {
        let net = st.words.get(1).and_then(Word::bare).map(str::to_owned);
        let mask = if st.word_lower(2).as_deref() == Some("netmask") {
            st.words.get(3).and_then(Word::bare).map(str::to_owned)
        } else {
            None
        };
        let (Some(net), Some(mask)) = (net, mask) else {
            self.error(
                st.line,
                "subnet: expected `subnet A.B.C.D netmask M.M.M.M {`",
            );
            return;
        };
        let (Some(net), Some(mask)) = (self.addr(st, &net), self.addr(st, &mask)) else {
            return;
        };
        let m = u32::from(mask);
        let len = m.leading_ones() as u8;
        if prefix_mask(len) != m {
            self.error(st.line, format!("subnet: netmask {mask} is not contiguous"));
            return;
        }
        if u32::from(net) & !m != 0 {
            self.error(
                st.line,
                format!("subnet {net} has host bits set for netmask {mask}"),
            );
            return;
        }
        let mut scope = outer.clone();
        for p in body.iter().filter(|s| s.body.is_none()) {
            self.parameter(p, &mut scope, Where::Subnet);
        }
        let lease_time = self.lease_time(&scope);
        let mut sub = DraftSubnet::new(st.line, net, len, lease_time);
        sub.router = scope.router.clone().unwrap_or_default();
        sub.dns_servers = scope.dns.clone().unwrap_or_default();
        sub.domain_name = scope.domain.clone();
        sub.server_id = scope.server_id;
        (sub.renew_time, sub.rebind_time) = self.tee_times(st, &scope, lease_time);
        // dhcpd looks the permission up in the scope of the subnet holding
        // giaddr, or the root scope's for any other relay.
        if let (Some(line), None) = (scope.leasequery, self.global_lq) {
            self.allow_leasequery(line, format!("{net}/{len}"));
        }
        for r in body.iter().filter(|s| s.keyword() == "range") {
            if let Some((a, b)) = self.range(r) {
                if !sub.contains(a) || !sub.contains(b) {
                    self.error(
                        r.line,
                        format!("range {a} {b} lies outside subnet {net}/{len}"),
                    );
                } else {
                    sub.pools.push((a, b));
                }
            }
        }
        for p in body
            .iter()
            .filter(|s| s.keyword() == "pool" && s.body.is_some())
        {
            let pb = p.body.as_deref().unwrap_or(&[]);
            let open = self.pool_is_open(p, pb);
            for r in pb.iter().filter(|s| s.keyword() == "range") {
                if let Some((a, b)) = self.range(r) {
                    if !sub.contains(a) || !sub.contains(b) {
                        self.error(
                            r.line,
                            format!("range {a} {b} lies outside subnet {net}/{len}"),
                        );
                    } else if open {
                        sub.pools.push((a, b));
                    }
                }
            }
            self.pool_scope(pb, &scope);
        }
        self.subnets.push(sub);
        for d in body
            .iter()
            .filter(|s| s.body.is_some() && s.keyword() != "pool")
        {
            self.declaration(d, &scope, Where::Subnet);
        }
    }

    fn lease_time(&mut self, scope: &Scope) -> u32 {
        match scope.lease_time {
            None => DHCPD_DEFAULT_LEASE_TIME,
            Some((line, t)) if t < 60 => {
                self.findings.push(Finding {
                    line,
                    what: format!("lease time {t}"),
                    reason: "Leaseline grants at least 60 seconds: written as 60".into(),
                });
                60
            }
            Some((_, t)) => t,
        }
    }

    /// T1 / T2 when set and consistent (RFC 2131 §4.4.5: T1 < T2 < lease).
    fn tee_times(
        &mut self,
        st: &Statement,
        scope: &Scope,
        lease: u32,
    ) -> (Option<u32>, Option<u32>) {
        if scope.renew.is_none() && scope.rebind.is_none() {
            return (None, None);
        }
        let t1 = scope.renew.unwrap_or(lease / 2);
        let t2 = scope.rebind.unwrap_or((u64::from(lease) * 7 / 8) as u32);
        if t1 < t2 && t2 < lease {
            (scope.renew, scope.rebind)
        } else {
            self.not_mapped(
                st,
                format!("renewal {t1} s / rebinding {t2} s do not fit lease time {lease} s (T1 < T2 < lease): Leaseline's defaults (1/2, 7/8) are used"),
            );
            (None, None)
        }
    }

    fn allow_leasequery(&mut self, line: u64, cidr: String) {
        if !self.lq_allow.contains(&cidr) {
            self.lq_allow.push(cidr.clone());
            self.findings.push(Finding {
                line,
                what: "allow leasequery".into(),
                reason: format!(
                    "mapped to [leasequery] allow = \"{cidr}\" with UDP leasequery on; dhcpd checks the relay's giaddr, Leaseline the requestor's source address"
                ),
            });
        }
    }

    fn host(&mut self, st: &Statement, body: &[Statement]) {
        let name = st.words.get(1).map(|w| match w {
            Word::Bare(s) => s.clone(),
            Word::Quoted(b) => String::from_utf8_lossy(b).into_owned(),
        });
        let mut h = Host {
            line: st.line,
            name: name.clone().unwrap_or_default(),
            mac: None,
            client_id: None,
            hostname: None,
            fixed: Vec::new(),
        };
        for p in body {
            if p.body.is_some() {
                self.not_mapped(p, "no Leaseline equivalent inside a host");
                continue;
            }
            match (p.keyword().as_str(), p.word_lower(1).as_deref()) {
                ("hardware", Some("ethernet")) => {
                    let v = p.word_lower(2).unwrap_or_default();
                    match colon_hex(&v) {
                        Ok(mac) if mac.len() == 6 => h.mac = Some(mac),
                        _ => self.error(p.line, format!("hardware ethernet: `{v}` is not an Ethernet address")),
                    }
                }
                ("hardware", _) => self.not_mapped(p, "Leaseline reserves by Ethernet address or client-id only"),
                ("fixed-address", _) => {
                    let text = words_text(p, 1);
                    for a in text.split([',', ' ']).filter(|s| !s.is_empty()) {
                        match a.parse::<Ipv4Addr>() {
                            Ok(ip) => h.fixed.push((p.line, ip)),
                            Err(_) if a.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                                self.error(p.line, format!("fixed-address: `{a}` is not an IPv4 address"))
                            }
                            Err(_) => self.not_mapped(p, format!("`{a}` is a host name (dhcpd looks it up in DNS at start): write its address")),
                        }
                    }
                }
                ("option", Some("dhcp-client-identifier")) => match p.words.get(2) {
                    Some(Word::Quoted(b)) if !b.is_empty() && b.len() <= 255 => h.client_id = Some(b.clone()),
                    Some(Word::Bare(s)) => match colon_hex(s) {
                        Ok(v) if !v.is_empty() && v.len() <= 255 => h.client_id = Some(v),
                        _ => self.error(p.line, format!("dhcp-client-identifier: `{s}` is not colon-separated hex")),
                    },
                    _ => self.error(p.line, "dhcp-client-identifier: needs a quoted string or colon-separated hex"),
                },
                ("option", Some("host-name")) => match p.words.get(2) {
                    Some(Word::Quoted(b)) => h.hostname = Some(String::from_utf8_lossy(b).into_owned()),
                    _ => self.error(p.line, "option host-name: needs a quoted name"),
                },
                _ => self.not_mapped(p, "per-host parameters do not map: a Leaseline reservation holds an address and a name only"),
            }
        }
        if h.hostname.is_none() {
            h.hostname = name;
        }
        if h.fixed.is_empty() {
            self.not_mapped(
                st,
                "a host without fixed-address: Leaseline has no per-client permissions, so it is served from the pools like any client",
            );
            return;
        }
        if h.mac.is_none() && h.client_id.is_none() {
            self.not_mapped(st, "a host without hardware ethernet or dhcp-client-identifier: Leaseline reserves by one of those");
            return;
        }
        self.hosts.push(h);
    }

    /// Places hosts, checks overlaps and gathers the result.
    fn finish(mut self, global: Scope) -> Result<Conversion, Vec<ParseError>> {
        for h in std::mem::take(&mut self.hosts) {
            for (line, ip) in &h.fixed {
                let Some(sub) = self.subnets.iter_mut().find(|s| s.contains(*ip)) else {
                    self.findings.push(Finding {
                        line: *line,
                        what: format!("host {}: fixed-address {ip}", h.name),
                        reason:
                            "lies in no declared subnet: Leaseline keeps reservations per subnet"
                                .into(),
                    });
                    continue;
                };
                if let Some(r) = sub.reservations.iter().find(|r| r.ip == *ip) {
                    self.findings.push(Finding {
                        line: *line,
                        what: format!("host {}: fixed-address {ip}", h.name),
                        reason: format!(
                            "{ip} is already reserved (line {}): one reservation per address",
                            r.line
                        ),
                    });
                    continue;
                }
                sub.reservations.push(DraftReservation {
                    line: h.line,
                    ip: *ip,
                    mac: h.mac.clone(),
                    client_id: h.client_id.clone(),
                    hostname: h.hostname.clone(),
                });
            }
        }
        self.errors.extend(crate::config_draft::overlapping_ranges(
            &self.subnets,
            "range",
        ));
        if self.subnets.is_empty() && self.errors.is_empty() {
            self.errors
                .push(ParseError::new(1, "no subnet declared: nothing to serve"));
        }
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.line);
            return Err(self.errors);
        }
        if let Some(line) = self.global_lq {
            // dhcpd: the root scope answers relays outside every subnet too.
            self.allow_leasequery(line, "0.0.0.0/0".into());
        }
        self.findings.sort_by_key(|f| f.line);
        Ok(Conversion {
            draft: ConfigDraft {
                server_id: global.server_id,
                subnets: self.subnets,
                leasequery_allow: self.lq_allow,
            },
            unmapped: self.findings,
        })
    }
}

#[cfg(test)]
mod tests;
