//! Helpers for `crash_durability.rs`: [`Ledger`], what each client was
//! told on the wire (test-support's `read_dhcp_capture`, in wire order),
//! replayed in order and checked against the store.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use leaseline_test_support::{mac_string, Binding, CapturedDhcp, DhcpState};

pub const DHCPOFFER: u8 = 2;
pub const DHCPREQUEST: u8 = 3;
pub const DHCPACK: u8 = 5;
pub const DHCPNAK: u8 = 6;
pub const DHCPRELEASE: u8 = 7;

/// What a client was last told about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// ACKed, not released since: the store must hold it ACTIVE for the client.
    Bound(Ipv4Addr),
    /// ACKed, then released by the client: ACTIVE (the RELEASE was lost
    /// with a crash: a RELEASE gets no reply, so the client cannot tell)
    /// or RELEASED for the client, unless another client was ACKed it since.
    Released(Ipv4Addr),
}

/// The wire history of every client, replayed in capture order.
#[derive(Debug, Default)]
pub struct Ledger {
    pub clients: BTreeMap<String, Held>,
    /// The client an address was last ACKed to.
    pub holder: HashMap<Ipv4Addr, String>,
    pub acks: usize,
    pub naks: usize,
    pub releases: usize,
    /// RELEASEs naming an address the client did not hold (the server
    /// refuses them).
    pub stray_releases: usize,
    /// An address ACKed to a client after another client released it.
    pub handovers: usize,
    /// Breaches of "an address is never given to two clients" and "a
    /// client holds one address", seen on the wire itself.
    pub violations: Vec<String>,
    /// Each client's ACKs and RELEASEs as (frame, message type, address).
    pub history: HashMap<String, Vec<(u64, u8, Ipv4Addr)>>,
    /// ACKs answering a REQUEST the client followed with a RELEASE of that
    /// address before the ACK came (a renewal in flight, then a release:
    /// the server handled them in that order, so the client ends released).
    pub acks_before_release: usize,
    /// Each client's last REQUEST frame per xid.
    requests: HashMap<(String, u32), u64>,
    /// Each client's last RELEASE of each address: its frame.
    released: HashMap<(String, Ipv4Addr), u64>,
    /// Each address's last ACK: its frame.
    acked_at: HashMap<Ipv4Addr, u64>,
    /// Offers by (client, xid): the address offered.
    offers: HashMap<(String, u32), Ipv4Addr>,
    /// REQUESTs selecting an offered address, by address: (frame, client).
    selected: HashMap<Ipv4Addr, Vec<(u64, String)>>,
}

impl Ledger {
    pub fn replay(msgs: &[CapturedDhcp]) -> Ledger {
        let mut l = Ledger::default();
        for m in msgs {
            match m.msg_type {
                DHCPOFFER => {
                    l.offers.insert((m.chaddr.clone(), m.xid), m.yiaddr);
                }
                DHCPREQUEST => {
                    l.requests.insert((m.chaddr.clone(), m.xid), m.frame);
                    if let Some(&ip) = l.offers.get(&(m.chaddr.clone(), m.xid)) {
                        l.selected
                            .entry(ip)
                            .or_default()
                            .push((m.frame, m.chaddr.clone()));
                    }
                }
                DHCPACK => l.ack(m),
                DHCPNAK => {
                    // In the client's history only, for a violation's
                    // message: a NAK does not end what the ledger holds.
                    l.naks += 1;
                    l.history
                        .entry(m.chaddr.clone())
                        .or_default()
                        .push((m.frame, DHCPNAK, m.yiaddr));
                }
                DHCPRELEASE => l.release(m),
                _ => {}
            }
        }
        l
    }

    /// The last few ACKs and RELEASEs of `client`, for a violation message.
    fn recent(&self, client: &str) -> String {
        let h = self.history.get(client).map(Vec::as_slice).unwrap_or(&[]);
        let from = h.len().saturating_sub(10);
        h[from..]
            .iter()
            .map(|(f, t, ip)| match *t {
                DHCPACK => format!("#{f} ACK {ip}"),
                DHCPNAK => format!("#{f} NAK"),
                _ => format!("#{f} RELEASE {ip}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn ack(&mut self, m: &CapturedDhcp) {
        self.acks += 1;
        let ip = m.yiaddr;
        self.acked_at.insert(ip, m.frame);
        let client = &m.chaddr;
        let asked = self.requests.get(&(client.clone(), m.xid));
        let released = self.released.get(&(client.clone(), ip));
        if let (Some(&asked), Some(&at)) = (asked, released) {
            if asked < at {
                self.acks_before_release += 1;
                self.holder.insert(ip, client.clone());
                self.history
                    .entry(client.clone())
                    .or_default()
                    .push((m.frame, DHCPACK, ip));
                return;
            }
        }
        if let Some(other) = self.holder.get(&ip).filter(|o| *o != client) {
            match self.clients.get(other) {
                Some(Held::Bound(x)) if *x == ip => {
                    let v = format!(
                        "frame {}: {ip} ACKed to {client} while {other} holds it (ACKed, never \
                         released); {other}: {}; {client}: {}",
                        m.frame,
                        self.recent(other),
                        self.recent(client)
                    );
                    self.violations.push(v);
                }
                _ => self.handovers += 1,
            }
        }
        if let Some(Held::Bound(x)) = self.clients.get(client) {
            if *x != ip {
                let v = format!(
                    "frame {}: {client} ACKed {ip} while it holds {x} (ACKed, never released): \
                     a client given two addresses, or an ACK forgotten; {client}: {}",
                    m.frame,
                    self.recent(client)
                );
                self.violations.push(v);
            }
        }
        self.clients.insert(client.clone(), Held::Bound(ip));
        self.holder.insert(ip, client.clone());
        self.history
            .entry(client.clone())
            .or_default()
            .push((m.frame, DHCPACK, ip));
    }

    fn release(&mut self, m: &CapturedDhcp) {
        self.releases += 1;
        self.history
            .entry(m.chaddr.clone())
            .or_default()
            .push((m.frame, DHCPRELEASE, m.ciaddr));
        self.released.insert((m.chaddr.clone(), m.ciaddr), m.frame);
        match self.clients.get(&m.chaddr) {
            Some(Held::Bound(x)) if *x == m.ciaddr => {
                self.clients
                    .insert(m.chaddr.clone(), Held::Released(m.ciaddr));
            }
            _ => self.stray_releases += 1,
        }
    }

    /// Each client's last word on the wire against the store: one line per
    /// difference (empty: all ACKed leases are where they must be).
    pub fn check_store(&self, store: &[Binding]) -> Vec<String> {
        let by_ip: HashMap<Ipv4Addr, &Binding> = store.iter().map(|b| (b.ip, b)).collect();
        let row = |ip: &Ipv4Addr| {
            by_ip
                .get(ip)
                .map(|b| (b.state.name(), mac_string(&b.chaddr)))
        };
        let mut out = Vec::new();
        for (client, held) in &self.clients {
            match *held {
                Held::Bound(ip) => {
                    let ok = by_ip.get(&ip).is_some_and(|b| {
                        b.state == DhcpState::Active && mac_string(&b.chaddr) == *client
                    });
                    if !ok {
                        out.push(format!(
                            "{ip} was ACKed to {client} (its last ACK, not released): store has {:?}",
                            row(&ip)
                        ));
                    }
                }
                Held::Released(ip) => {
                    if self.holder.get(&ip) != Some(client) {
                        continue; // ACKed to another client since; checked there
                    }
                    let ok = by_ip.get(&ip).is_some_and(|b| {
                        matches!(b.state, DhcpState::Active | DhcpState::Released)
                            && mac_string(&b.chaddr) == *client
                            || b.state == DhcpState::Active
                                && self.selected_since_ack(ip, &mac_string(&b.chaddr))
                    });
                    if !ok {
                        out.push(format!(
                            "{ip} was ACKed to {client}, then released: store has {:?} \
                             (want ACTIVE or RELEASED for {client})",
                            row(&ip)
                        ));
                    }
                }
            }
        }
        out
    }

    /// `client` selected `ip` (a REQUEST for it offered) after its last
    /// ACK: the server may have committed the grant and been killed before
    /// its ACK left (an ACK leaves only after its commit, not every commit
    /// gets its ACK out).
    fn selected_since_ack(&self, ip: Ipv4Addr, client: &str) -> bool {
        let since = self.acked_at.get(&ip).copied().unwrap_or(0);
        self.selected
            .get(&ip)
            .is_some_and(|s| s.iter().any(|(f, c)| *f > since && c == client))
    }

    pub fn bound(&self) -> usize {
        self.clients
            .values()
            .filter(|h| matches!(h, Held::Bound(_)))
            .count()
    }
}

/// The first `n` lines of `v`, for assertion messages.
pub fn first_lines(v: &[String], n: usize) -> String {
    let mut s = format!("{} in all", v.len());
    for l in v.iter().take(n) {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

/// The end of a churn run, checked on the wire and in the store: the
/// capture holds at least the `acked` ACKs perfdhcp counted, no address
/// was ACKed to a client while another held it, no client holds two
/// ACTIVE rows, and every client's last word on the wire is in `store`.
/// Returns the ledger, for the run's summary.
pub fn assert_wire_matches_store(wire: &[CapturedDhcp], acked: u64, store: &[Binding]) -> Ledger {
    let ledger = Ledger::replay(wire);
    assert!(
        ledger.acks as u64 >= acked,
        "{} ACKs captured, perfdhcp counted {acked}",
        ledger.acks
    );
    assert!(
        ledger.violations.is_empty(),
        "on the wire: {}",
        first_lines(&ledger.violations, 20)
    );
    leaseline_test_support::assert_no_double_allocation(store);
    let missing = ledger.check_store(store);
    assert!(
        missing.is_empty(),
        "ACKed leases not in the store for their client: {}",
        first_lines(&missing, 20)
    );
    ledger
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(frame: u64, t: u8, ip: [u8; 4], mac: &str) -> CapturedDhcp {
        msg_xid(frame, t, ip, mac, 0)
    }

    fn msg_xid(frame: u64, t: u8, ip: [u8; 4], mac: &str, xid: u32) -> CapturedDhcp {
        let ip = Ipv4Addr::from(ip);
        CapturedDhcp {
            frame,
            msg_type: t,
            yiaddr: if t == DHCPACK || t == DHCPOFFER {
                ip
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            ciaddr: if t == DHCPRELEASE {
                ip
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            chaddr: mac.into(),
            xid,
        }
    }

    #[test]
    fn an_ack_for_a_renewal_the_client_then_released_leaves_it_released() {
        let a = "02:00:00:00:00:0a";
        let b = "02:00:00:00:00:0b";
        // a renews (xid 7), releases before the ACK arrives; the server
        // handled the release last, and gives the address to b.
        let l = Ledger::replay(&[
            msg_xid(1, DHCPACK, [10, 0, 0, 1], a, 6),
            msg_xid(2, DHCPREQUEST, [0, 0, 0, 0], a, 7),
            msg_xid(3, DHCPRELEASE, [10, 0, 0, 1], a, 8),
            msg_xid(4, DHCPACK, [10, 0, 0, 1], a, 7),
            msg_xid(5, DHCPACK, [10, 0, 0, 1], b, 9),
        ]);
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        assert_eq!(l.acks_before_release, 1);
        assert_eq!(l.handovers, 1);
        // The same, with a RELEASE of another address (one it no longer
        // holds) between the release and the late ACK.
        let l = Ledger::replay(&[
            msg_xid(1, DHCPACK, [10, 0, 0, 1], a, 6),
            msg_xid(2, DHCPREQUEST, [0, 0, 0, 0], a, 7),
            msg_xid(3, DHCPRELEASE, [10, 0, 0, 1], a, 8),
            msg_xid(4, DHCPRELEASE, [10, 0, 0, 9], a, 9),
            msg_xid(5, DHCPACK, [10, 0, 0, 1], a, 7),
            msg_xid(6, DHCPACK, [10, 0, 0, 1], b, 10),
        ]);
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        assert_eq!(l.acks_before_release, 1);
        // A REQUEST after the release: the ACK binds again.
        let l = Ledger::replay(&[
            msg_xid(1, DHCPACK, [10, 0, 0, 1], a, 6),
            msg_xid(2, DHCPRELEASE, [10, 0, 0, 1], a, 8),
            msg_xid(3, DHCPREQUEST, [0, 0, 0, 0], a, 9),
            msg_xid(4, DHCPACK, [10, 0, 0, 1], a, 9),
            msg_xid(5, DHCPACK, [10, 0, 0, 1], b, 10),
        ]);
        assert_eq!(l.violations.len(), 1, "{:?}", l.violations);
    }

    #[test]
    fn ledger_rules() {
        let a = "02:00:00:00:00:0a";
        let b = "02:00:00:00:00:0b";
        // b may have a's address once a released it.
        let l = Ledger::replay(&[
            msg(1, DHCPACK, [10, 0, 0, 1], a),
            msg(2, DHCPRELEASE, [10, 0, 0, 1], a),
            msg(3, DHCPACK, [10, 0, 0, 1], b),
            msg(4, DHCPACK, [10, 0, 0, 2], a),
        ]);
        assert!(l.violations.is_empty(), "{:?}", l.violations);
        assert_eq!(l.handovers, 1);
        // Not while a holds it.
        let l = Ledger::replay(&[
            msg(1, DHCPACK, [10, 0, 0, 1], a),
            msg(2, DHCPACK, [10, 0, 0, 1], b),
        ]);
        assert_eq!(l.violations.len(), 1, "{:?}", l.violations);
        // A client moved without releasing: an ACK was forgotten.
        let l = Ledger::replay(&[
            msg(1, DHCPACK, [10, 0, 0, 1], a),
            msg(2, DHCPACK, [10, 0, 0, 2], a),
        ]);
        assert_eq!(l.violations.len(), 1, "{:?}", l.violations);

        let l = Ledger::replay(&[
            msg(1, DHCPACK, [10, 0, 0, 1], a),
            msg(2, DHCPACK, [10, 0, 0, 2], b),
            msg(3, DHCPRELEASE, [10, 0, 0, 2], b),
        ]);
        let bind = |ip: [u8; 4], st, mac: &str| Binding {
            state: st,
            chaddr: parse(mac),
            ..Binding::available(Ipv4Addr::from(ip))
        };
        fn parse(mac: &str) -> Vec<u8> {
            leaseline_test_support::parse_mac(mac).unwrap()
        }
        let good = [
            bind([10, 0, 0, 1], DhcpState::Active, a),
            bind([10, 0, 0, 2], DhcpState::Released, b),
        ];
        assert!(l.check_store(&good).is_empty());
        let lost_release = [
            bind([10, 0, 0, 1], DhcpState::Active, a),
            bind([10, 0, 0, 2], DhcpState::Active, b),
        ];
        assert!(l.check_store(&lost_release).is_empty());
        let lost_ack = [bind([10, 0, 0, 2], DhcpState::Released, b)];
        assert_eq!(l.check_store(&lost_ack).len(), 1);
        let wrong_client = [
            bind([10, 0, 0, 1], DhcpState::Active, b),
            bind([10, 0, 0, 2], DhcpState::Released, b),
        ];
        assert_eq!(l.check_store(&wrong_client).len(), 1);

        // b released 10.0.0.2; c was offered it and selected it, and the
        // server was killed after the commit, before the ACK left: the
        // store may hold it for c. Not for a client that never asked.
        let c = "02:00:00:00:00:0c";
        let l = Ledger::replay(&[
            msg(1, DHCPACK, [10, 0, 0, 2], b),
            msg(2, DHCPRELEASE, [10, 0, 0, 2], b),
            msg_xid(3, DHCPOFFER, [10, 0, 0, 2], c, 5),
            msg_xid(4, DHCPREQUEST, [0, 0, 0, 0], c, 5),
        ]);
        let committed_unacked = [bind([10, 0, 0, 2], DhcpState::Active, c)];
        assert!(l.check_store(&committed_unacked).is_empty());
        let never_asked = [bind([10, 0, 0, 2], DhcpState::Active, a)];
        assert_eq!(l.check_store(&never_asked).len(), 1);
    }
}
