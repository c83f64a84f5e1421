//! A kea-dhcp4 configuration (Kea 2.x `Dhcp4`) → a [`ConfigDraft`] and the
//! list of what does not map, each with its line and why. Pure: the JSON
//! value in, the conversion out.
//!
//! Kea inherits parameters global → shared network → subnet; a value Kea
//! itself would refuse (a bad address, a wrong type) is an error; a feature
//! Leaseline does not have is a [`Finding`].

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use crate::config_draft::{
    prefix_mask, ConfigDraft, Conversion, DraftReservation, DraftSubnet, Finding,
};
use crate::kea_json::{self, Lines};
use crate::text::colon_hex;
use crate::ParseError;

/// Kea's valid-lifetime when the file sets none (Kea ARM, DHCPv4).
const KEA_DEFAULT_VALID_LIFETIME: u32 = 7_200;

/// Converts a kea-dhcp4 configuration; every error found (with its line)
/// when it is malformed.
pub fn convert_kea_config(bytes: &[u8]) -> Result<Conversion, Vec<ParseError>> {
    let doc = kea_json::read(bytes).map_err(|e| vec![e])?;
    let mut m = Mapper {
        lines: &doc.lines,
        subnets: Vec::new(),
        global_reservations: Vec::new(),
        server_id: None,
        lq_allow: Vec::new(),
        findings: Vec::new(),
        errors: Vec::new(),
    };
    let Some(top) = doc.value.as_object() else {
        return Err(vec![ParseError::new(
            1,
            "not a Kea configuration: the file is not a JSON object",
        )]);
    };
    let Some(d4) = top.get("Dhcp4").and_then(Value::as_object) else {
        return Err(vec![ParseError::new(
            1,
            "no \"Dhcp4\" object: not a kea-dhcp4 configuration",
        )]);
    };
    for k in top.keys().filter(|k| *k != "Dhcp4") {
        m.not_mapped(k, k, "only the Dhcp4 section is converted");
    }
    m.dhcp4(d4);
    m.finish()
}

/// Parameters inherited by inner scopes.
#[derive(Debug, Clone, Default)]
struct Scope {
    router: Option<Vec<Ipv4Addr>>,
    dns: Option<Vec<Ipv4Addr>>,
    domain: Option<String>,
    server_id: Option<Ipv4Addr>,
    lease_time: Option<(String, u32)>,
    renew: Option<u32>,
    rebind: Option<u32>,
    relay: Vec<Ipv4Addr>,
    interface: Option<String>,
}

struct Mapper<'a> {
    lines: &'a Lines,
    subnets: Vec<DraftSubnet>,
    global_reservations: Vec<(String, Map<String, Value>)>,
    server_id: Option<Ipv4Addr>,
    lq_allow: Vec<String>,
    findings: Vec<Finding>,
    errors: Vec<ParseError>,
}

impl Mapper<'_> {
    fn not_mapped(&mut self, path: &str, what: &str, reason: impl Into<String>) {
        self.findings.push(Finding {
            line: self.lines.at(path),
            what: what.to_owned(),
            reason: reason.into(),
        });
    }

    fn error(&mut self, path: &str, reason: impl Into<String>) {
        self.errors
            .push(ParseError::new(self.lines.at(path), reason));
    }

    fn string<'v>(&mut self, path: &str, key: &str, v: &'v Value) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.error(path, format!("\"{key}\": expected a string"));
        }
        s
    }

    fn addr(&mut self, path: &str, key: &str, v: &Value) -> Option<Ipv4Addr> {
        let s = self.string(path, key, v)?;
        match s.trim().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(path, format!("\"{key}\": \"{s}\" is not an IPv4 address"));
                None
            }
        }
    }

    fn seconds(&mut self, path: &str, key: &str, v: &Value) -> Option<u32> {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                self.error(path, format!("\"{key}\": {v} is not a number of seconds"));
                None
            }
        }
    }

    /// A scope parameter common to global, shared network and subnet;
    /// false when `key` is not one.
    fn parameter(&mut self, path: &str, key: &str, v: &Value, scope: &mut Scope) -> bool {
        match key {
            "valid-lifetime" => {
                if let Some(n) = self.seconds(path, key, v) {
                    scope.lease_time = Some((path.to_owned(), n));
                }
            }
            "renew-timer" => scope.renew = self.seconds(path, key, v),
            "rebind-timer" => scope.rebind = self.seconds(path, key, v),
            "min-valid-lifetime" | "max-valid-lifetime" => self.not_mapped(
                path,
                key,
                "Leaseline grants lease_time (valid-lifetime) to every client and does not honour a requested lease time",
            ),
            "option-data" => self.option_data(path, v, scope),
            "relay" => {
                let Some(r) = v.as_object() else {
                    self.error(path, "\"relay\": expected an object");
                    return true;
                };
                let mut addrs = Vec::new();
                if let Some(a) = r.get("ip-address") {
                    addrs.extend(self.addr(&format!("{path}/ip-address"), "ip-address", a));
                }
                match r.get("ip-addresses").map(Value::as_array) {
                    Some(Some(list)) => {
                        for (i, a) in list.iter().enumerate() {
                            addrs.extend(self.addr(&format!("{path}/ip-addresses/{i}"), "ip-addresses", a));
                        }
                    }
                    Some(None) => self.error(path, "\"ip-addresses\": expected a list"),
                    None => {}
                }
                scope.relay = addrs;
            }
            "interface" => {
                scope.interface = self.string(path, key, v).map(str::to_owned);
            }
            "client-class" | "require-client-classes" | "evaluate-additional-classes" => self.not_mapped(
                path,
                &format!("{key} {v}"),
                "client classes do not map: Leaseline does not classify clients; the scope is written open to every client",
            ),
            "authoritative" if v.as_bool() == Some(true) => {}
            "authoritative" => self.not_mapped(
                path,
                key,
                "Leaseline is authoritative for its subnets: it NAKs a request for an address it does not hold for the client",
            ),
            "user-context" | "comment" => {}
            "next-server" | "server-hostname" | "boot-file-name" => self.not_mapped(
                path,
                key,
                "BOOTP / network boot fields are not served by Leaseline",
            ),
            k if k.starts_with("ddns-") || k.starts_with("hostname-char") => {
                self.not_mapped(path, key, "Leaseline does not update DNS (no DDNS)")
            }
            _ => return false,
        }
        true
    }

    fn option_data(&mut self, path: &str, v: &Value, scope: &mut Scope) {
        let Some(list) = v.as_array() else {
            self.error(path, "\"option-data\": expected a list");
            return;
        };
        for (i, o) in list.iter().enumerate() {
            let p = format!("{path}/{i}");
            let Some(o) = o.as_object() else {
                self.error(&p, "\"option-data\": each entry is an object");
                continue;
            };
            let name = o.get("name").and_then(Value::as_str).unwrap_or("");
            let code = o.get("code").and_then(Value::as_u64);
            let space = o.get("space").and_then(Value::as_str).unwrap_or("dhcp4");
            let data = o.get("data").and_then(Value::as_str).unwrap_or("");
            let csv = o.get("csv-format").and_then(Value::as_bool).unwrap_or(true);
            let shown = if name.is_empty() {
                format!("option {}", code.unwrap_or(0))
            } else {
                format!("option {name}")
            };
            let which = match (space, name, code) {
                ("dhcp4", "routers", _) | ("dhcp4", "", Some(3)) => 3,
                ("dhcp4", "domain-name-servers", _) | ("dhcp4", "", Some(6)) => 6,
                ("dhcp4", "domain-name", _) | ("dhcp4", "", Some(15)) => 15,
                ("dhcp4", "dhcp-server-identifier", _) | ("dhcp4", "", Some(54)) => 54,
                _ => 0,
            };
            if which == 0 {
                self.not_mapped(
                    &p,
                    &shown,
                    "Leaseline sends the subnet mask, routers, domain-name-servers, domain-name and the lease times (51, 58, 59) only",
                );
                continue;
            }
            if which == 15 {
                let name = if csv {
                    Some(data.to_owned())
                } else {
                    hex_bytes(data).and_then(|b| String::from_utf8(b).ok())
                };
                match name {
                    Some(n) if !n.is_empty() => scope.domain = Some(n),
                    _ => self.error(&p, format!("{shown}: \"{data}\" is not a domain name")),
                }
                continue;
            }
            let addrs: Option<Vec<Ipv4Addr>> = if csv {
                data.split(',').map(|a| a.trim().parse().ok()).collect()
            } else {
                hex_bytes(data)
                    .filter(|b| !b.is_empty() && b.len() % 4 == 0)
                    .map(|b| {
                        b.chunks(4)
                            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                            .collect()
                    })
            };
            let Some(addrs) = addrs.filter(|a| !a.is_empty()) else {
                self.error(
                    &p,
                    format!("{shown}: \"{data}\" is not a list of IPv4 addresses"),
                );
                continue;
            };
            match which {
                3 => scope.router = Some(addrs),
                6 => scope.dns = Some(addrs),
                _ => scope.server_id = addrs.first().copied(),
            }
        }
    }

    fn dhcp4(&mut self, d4: &Map<String, Value>) {
        let mut scope = Scope::default();
        for (k, v) in d4 {
            let path = format!("Dhcp4/{k}");
            if self.parameter(&path, k, v, &mut scope) {
                continue;
            }
            match k.as_str() {
                "subnet4" | "shared-networks" | "reservations" => {} // below
                "client-classes" => {
                    for (i, c) in v.as_array().into_iter().flatten().enumerate() {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                        self.not_mapped(
                            &format!("{path}/{i}"),
                            &format!("class \"{name}\""),
                            "client classes do not map: Leaseline does not classify clients; members get the ordinary service of their subnet",
                        );
                    }
                }
                "hooks-libraries" => self.hooks(&path, v),
                "interfaces-config" => self.not_mapped(
                    &path,
                    k,
                    "Leaseline listens on [dhcp] listen (set with --listen) for relayed clients, and per subnet `interface` for directly attached ones",
                ),
                "lease-database" => self.not_mapped(
                    &path,
                    k,
                    "Leaseline keeps leases in its own store ([store]); move them with `leaseline import leases --from kea-csv`",
                ),
                "hosts-database" | "hosts-databases" | "config-control" => self.not_mapped(
                    &path,
                    k,
                    "a database backend: only reservations in the file are converted",
                ),
                "control-socket" | "control-sockets" => self.not_mapped(
                    &path,
                    k,
                    "Leaseline's control API is HTTP ([http], `leaseline ctl`, docs/operations.md)",
                ),
                "loggers" => self.not_mapped(&path, k, "Leaseline logs to stderr; RUST_LOG sets the level"),
                "dhcp-ddns" => self.not_mapped(&path, k, "Leaseline does not update DNS (no DDNS)"),
                _ => self.not_mapped(&path, k, "no Leaseline equivalent"),
            }
        }
        self.server_id = scope.server_id;
        if let Some(v) = d4.get("reservations") {
            self.reservations_list("Dhcp4/reservations", v, None);
        }
        if let Some(v) = d4.get("shared-networks") {
            let Some(list) = v.as_array() else {
                self.error(
                    "Dhcp4/shared-networks",
                    "\"shared-networks\": expected a list",
                );
                return;
            };
            for (i, n) in list.iter().enumerate() {
                self.shared_network(&format!("Dhcp4/shared-networks/{i}"), n, &scope);
            }
        }
        if let Some(v) = d4.get("subnet4") {
            self.subnet_list("Dhcp4/subnet4", v, &scope);
        }
    }

    fn hooks(&mut self, path: &str, v: &Value) {
        for (i, h) in v.as_array().into_iter().flatten().enumerate() {
            let p = format!("{path}/{i}");
            let lib = h.get("library").and_then(Value::as_str).unwrap_or("");
            let short = lib.rsplit('/').next().unwrap_or(lib);
            if short.contains("lease_query") {
                let requesters = h
                    .get("parameters")
                    .and_then(|p| p.get("requesters"))
                    .and_then(Value::as_array);
                for (j, r) in requesters.into_iter().flatten().enumerate() {
                    let rp = format!("{p}/parameters/requesters/{j}");
                    if let Some(a) = self.addr(&rp, "requesters", r) {
                        self.lq_allow.push(a.to_string());
                    }
                }
                self.not_mapped(
                    &p,
                    short,
                    "mapped: its requesters become [leasequery] allow, with UDP leasequery on; Bulk Leasequery is [leasequery.bulk]",
                );
            } else {
                self.not_mapped(&p, short, "hook libraries do not map");
            }
        }
    }

    fn shared_network(&mut self, path: &str, n: &Value, outer: &Scope) {
        let Some(n) = n.as_object() else {
            self.error(path, "a shared network is an object");
            return;
        };
        let name = n
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let mut scope = outer.clone();
        for (k, v) in n {
            let p = format!("{path}/{k}");
            if !self.parameter(&p, k, v, &mut scope) && !matches!(k.as_str(), "name" | "subnet4") {
                self.not_mapped(&p, k, "no Leaseline equivalent");
            }
        }
        let before = self.subnets.len();
        if let Some(v) = n.get("subnet4") {
            self.subnet_list(&format!("{path}/subnet4"), v, &scope);
        }
        let count = self.subnets.len() - before;
        if count > 1 {
            self.not_mapped(
                path,
                &format!("shared network \"{name}\""),
                format!(
                    "a shared network of {count} subnets: Leaseline picks one subnet per relay address (giaddr), \
                     so each subnet is written on its own and a client gets an address from the selected subnet only"
                ),
            );
        }
    }

    fn subnet_list(&mut self, path: &str, v: &Value, scope: &Scope) {
        let Some(list) = v.as_array() else {
            self.error(path, "\"subnet4\": expected a list");
            return;
        };
        for (i, s) in list.iter().enumerate() {
            self.subnet(&format!("{path}/{i}"), s, scope);
        }
    }

    fn subnet(&mut self, path: &str, s: &Value, outer: &Scope) {
        let Some(s) = s.as_object() else {
            self.error(path, "a subnet is an object");
            return;
        };
        let Some(prefix) = s.get("subnet") else {
            self.error(path, "a subnet without \"subnet\"");
            return;
        };
        let sp = format!("{path}/subnet");
        let Some(text) = self.string(&sp, "subnet", prefix).map(str::to_owned) else {
            return;
        };
        let Some((net, len)) = parse_prefix(&text) else {
            self.error(
                &sp,
                format!("\"subnet\": \"{text}\" is not an IPv4 prefix (A.B.C.D/LEN)"),
            );
            return;
        };
        let mut scope = outer.clone();
        for (k, v) in s {
            let p = format!("{path}/{k}");
            if self.parameter(&p, k, v, &mut scope) {
                continue;
            }
            match k.as_str() {
                "subnet" | "id" | "pools" | "reservations" => {}
                "reservation-mode"
                | "reservations-global"
                | "reservations-in-subnet"
                | "reservations-out-of-pool" => {}
                _ => self.not_mapped(&p, k, "no Leaseline equivalent"),
            }
        }
        let lease_time = match &scope.lease_time {
            None => KEA_DEFAULT_VALID_LIFETIME,
            Some((p, t)) if *t < 60 => {
                let (p, t) = (p.clone(), *t);
                self.not_mapped(
                    &p,
                    &format!("valid-lifetime {t}"),
                    "Leaseline grants at least 60 seconds: written as 60",
                );
                60
            }
            Some((_, t)) => *t,
        };
        let mut sub = DraftSubnet::new(self.lines.at(path), net, len, lease_time);
        sub.router = scope.router.clone().unwrap_or_default();
        sub.dns_servers = scope.dns.clone().unwrap_or_default();
        sub.domain_name = scope.domain.clone();
        sub.server_id = scope.server_id;
        sub.relay_addresses = scope.relay.clone();
        sub.interface = scope.interface.clone();
        if scope.renew.is_some() || scope.rebind.is_some() {
            let t1 = scope.renew.unwrap_or(lease_time / 2);
            let t2 = scope
                .rebind
                .unwrap_or((u64::from(lease_time) * 7 / 8) as u32);
            if t1 < t2 && t2 < lease_time {
                sub.renew_time = scope.renew;
                sub.rebind_time = scope.rebind;
            } else {
                self.not_mapped(
                    path,
                    "renew-timer / rebind-timer",
                    format!("{t1} s / {t2} s do not fit valid-lifetime {lease_time} s (T1 < T2 < lease): Leaseline's defaults (1/2, 7/8) are used"),
                );
            }
        }
        if let Some(pools) = s.get("pools") {
            self.pools(&format!("{path}/pools"), pools, &mut sub);
        }
        let index = self.subnets.len();
        self.subnets.push(sub);
        if let Some(v) = s.get("reservations") {
            self.reservations_list(&format!("{path}/reservations"), v, Some(index));
        }
    }

    fn pools(&mut self, path: &str, v: &Value, sub: &mut DraftSubnet) {
        let Some(list) = v.as_array() else {
            self.error(path, "\"pools\": expected a list");
            return;
        };
        for (i, p) in list.iter().enumerate() {
            let pp = format!("{path}/{i}");
            let Some(p) = p.as_object() else {
                self.error(&pp, "a pool is an object");
                continue;
            };
            let Some(text) = p.get("pool").and_then(Value::as_str) else {
                self.error(&pp, "a pool without \"pool\"");
                continue;
            };
            let Some((a, b)) = parse_pool(text) else {
                self.error(
                    &format!("{pp}/pool"),
                    format!("\"pool\": \"{text}\" is not A - B or A.B.C.D/LEN"),
                );
                continue;
            };
            if !sub.contains(a) || !sub.contains(b) {
                self.error(
                    &format!("{pp}/pool"),
                    format!(
                        "pool {text} lies outside subnet {}/{}",
                        sub.network, sub.prefix_len
                    ),
                );
                continue;
            }
            let mut restricted = false;
            for (k, v) in p {
                let kp = format!("{pp}/{k}");
                match k.as_str() {
                    "pool" | "user-context" | "comment" | "pool-id" => {}
                    "client-class" | "require-client-classes" | "evaluate-additional-classes" => {
                        restricted |= k == "client-class";
                        self.not_mapped(
                            &kp,
                            &format!("{k} {v}"),
                            "pool client classes do not map: Leaseline gives any pool address to any client, so this pool is not written",
                        );
                    }
                    "option-data" => self.not_mapped(
                        &kp,
                        "pool option-data",
                        "per-pool options do not map: Leaseline's options are per subnet",
                    ),
                    _ => self.not_mapped(&kp, k, "no Leaseline equivalent in a pool"),
                }
            }
            if !restricted {
                sub.pools.push((a, b));
            }
        }
    }

    fn reservations_list(&mut self, path: &str, v: &Value, subnet: Option<usize>) {
        let Some(list) = v.as_array() else {
            self.error(path, "\"reservations\": expected a list");
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let rp = format!("{path}/{i}");
            let Some(r) = r.as_object() else {
                self.error(&rp, "a reservation is an object");
                continue;
            };
            match subnet {
                Some(s) => self.reservation(&rp, r, s),
                None => self.global_reservations.push((rp, r.clone())),
            }
        }
    }

    fn reservation(&mut self, path: &str, r: &Map<String, Value>, subnet: usize) {
        let mut res = DraftReservation {
            line: self.lines.at(path),
            ip: Ipv4Addr::UNSPECIFIED,
            mac: None,
            client_id: None,
            hostname: None,
        };
        let mut ip = None;
        for (k, v) in r {
            let p = format!("{path}/{k}");
            match k.as_str() {
                "ip-address" => ip = self.addr(&p, k, v),
                "hw-address" => match self.string(&p, k, v).map(|s| colon_hex(&s.to_ascii_lowercase())) {
                    Some(Ok(m)) if m.len() == 6 => res.mac = Some(m),
                    Some(_) => self.error(&p, format!("\"hw-address\": {v} is not an Ethernet address")),
                    None => {}
                },
                "client-id" => match self.string(&p, k, v).map(|s| colon_hex(&s.to_ascii_lowercase())) {
                    Some(Ok(c)) if !c.is_empty() && c.len() <= 255 => res.client_id = Some(c),
                    Some(_) => self.error(&p, format!("\"client-id\": {v} is not colon-separated hex")),
                    None => {}
                },
                "hostname" => res.hostname = self.string(&p, k, v).map(str::to_owned),
                "duid" | "circuit-id" | "flex-id" => self.not_mapped(
                    &p,
                    &format!("reservation by {k}"),
                    "Leaseline reserves by Ethernet address (hw-address) or client-id only",
                ),
                "user-context" | "comment" => {}
                "option-data" | "client-classes" | "next-server" | "server-hostname"
                | "boot-file-name" => self.not_mapped(
                    &p,
                    &format!("reservation {k}"),
                    "per-host parameters do not map: a Leaseline reservation holds an address and a name only",
                ),
                _ => self.not_mapped(&p, k, "no Leaseline equivalent in a reservation"),
            }
        }
        let Some(ip) = ip else {
            // A malformed ip-address is an error already.
            if !r.contains_key("ip-address") {
                self.not_mapped(
                    path,
                    "reservation without ip-address",
                    "Leaseline reserves addresses: a reservation of options or a hostname only does not map",
                );
            }
            return;
        };
        if res.mac.is_none() && res.client_id.is_none() {
            self.not_mapped(
                path,
                &format!("reservation of {ip}"),
                "no hw-address or client-id: Leaseline reserves by one of those",
            );
            return;
        }
        res.ip = ip;
        let sub = &mut self.subnets[subnet];
        if !sub.contains(ip) {
            let (net, len) = (sub.network, sub.prefix_len);
            self.error(
                &format!("{path}/ip-address"),
                format!("reserved address {ip} lies outside subnet {net}/{len}"),
            );
            return;
        }
        if let Some(other) = sub.reservations.iter().find(|o| o.ip == ip) {
            let line = other.line;
            self.not_mapped(
                path,
                &format!("reservation of {ip}"),
                format!("{ip} is already reserved (line {line})"),
            );
            return;
        }
        sub.reservations.push(res);
    }

    fn finish(mut self) -> Result<Conversion, Vec<ParseError>> {
        for (path, r) in std::mem::take(&mut self.global_reservations) {
            let ip = r
                .get("ip-address")
                .and_then(Value::as_str)
                .and_then(|s| s.trim().parse::<Ipv4Addr>().ok());
            match ip.and_then(|ip| self.subnets.iter().position(|s| s.contains(ip))) {
                Some(i) => self.reservation(&path, &r, i),
                None => self.not_mapped(
                    &path,
                    "global reservation",
                    "its ip-address lies in no subnet (or it has none): Leaseline keeps reservations per subnet",
                ),
            }
        }
        self.errors.extend(crate::config_draft::overlapping_ranges(
            &self.subnets,
            "pool",
        ));
        if self.subnets.is_empty() && self.errors.is_empty() {
            self.errors
                .push(ParseError::new(1, "no subnet4: nothing to serve"));
        }
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.line);
            return Err(self.errors);
        }
        self.findings.sort_by_key(|f| f.line);
        Ok(Conversion {
            draft: ConfigDraft {
                server_id: self.server_id,
                subnets: self.subnets,
                leasequery_allow: self.lq_allow,
            },
            unmapped: self.findings,
        })
    }
}

/// `A.B.C.D/LEN` with no host bits set.
fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.trim().split_once('/')?;
    let a: Ipv4Addr = a.trim().parse().ok()?;
    let l: u8 = l.trim().parse().ok().filter(|l| *l <= 32)?;
    (u32::from(a) & !prefix_mask(l) == 0).then_some((a, l))
}

/// Kea's pool syntaxes: `A - B` (spaces optional) or `A.B.C.D/LEN` (the
/// whole prefix).
fn parse_pool(s: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (u32::from(a) <= u32::from(b)).then_some((a, b));
    }
    let (a, l) = s.trim().split_once('/')?;
    let a: Ipv4Addr = a.trim().parse().ok()?;
    let l: u8 = l.trim().parse().ok().filter(|l| *l <= 32)?;
    let m = prefix_mask(l);
    let first = u32::from(a) & m;
    Some((Ipv4Addr::from(first), Ipv4Addr::from(first | !m)))
}

/// Kea's `csv-format: false` data: hex, optionally with `:` or spaces.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let t: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    let t = t.strip_prefix("0x").unwrap_or(&t);
    if t.len() % 2 != 0 {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
