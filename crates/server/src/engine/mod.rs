//! The DHCP engine (RFC 2131 §4.3): decides what each client message does
//! to the bindings. Synchronous and clock-free: the caller passes `now` and
//! commits the returned binding changes to the store before sending replies.

mod client;
mod handle;
mod offers;
mod pool;
mod reply;
mod usage;

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use leaseline_proto::{Binding, ClientOf, DhcpState, DATA_SOURCE_REMOTE};
use leaseline_wire::Message;

pub use crate::config::Grant;
pub use client::{ClientKey, Ident, Owner};
pub use handle::{Ingress, NoReply, Outcome};
pub use pool::Share;
pub use usage::PoolUsage;

use crate::config::{Config, StoreBackend};
use pool::PoolCursor;

/// Bindings the engine's tables are sized for at start, at most: the
/// addresses its pools and reservations can hold, up to this many. A table
/// that grows rehashes every binding at once on the DHCP thread: 8-40 ms
/// without an answer at 50,000 bindings, and the burst of replies after it
/// overflowed a requestor's receive buffer (issue 16 item 3). With bindings
/// boxed, the entries are 16 bytes (by address) and 32 (by client): at this
/// cap the two tables take 24 MiB once bindings are spread over them; a
/// larger pool grows past it, each doubling moving only those entries.
const PRESIZE_MAX: usize = 1 << 18;

/// Stale timer entries tolerated beyond twice the bindings before the heap
/// is rebuilt (a small engine does not rebuild on every other change).
const TIMER_SLACK: usize = 1024;

/// The hasher of the tables looked up on every message: foldhash, where
/// SipHash showed in profiles (a few lookups per DHCP message and per
/// change another server made); seeded per table, so keys a client chooses
/// (its client-id, its hardware address) stay unpredictable.
type Fast = foldhash::fast::RandomState;

pub struct Engine {
    cfg: Arc<Config>,
    /// Boxed: the table moves 16-byte entries when it grows, not whole
    /// bindings, and one sized for the pools stays small (see [`PRESIZE_MAX`]).
    leases: HashMap<u32, Box<Binding>, Fast>,
    /// Last address each client held (validated against `leases` on use).
    by_client: HashMap<ClientKey, u32, Fast>,
    offers: offers::Offers,
    /// Reserved address → owner; owner → address per subnet, by client-id and by MAC.
    reserved: HashMap<u32, Owner>,
    reserved_by_id: HashMap<(usize, Box<[u8]>), u32>,
    reserved_by_mac: HashMap<(usize, Box<[u8]>), u32>,
    cursors: Vec<PoolCursor>,
    /// (time, ip) when a binding's state runs out; stale entries are skipped,
    /// and dropped all at once when they outnumber the bindings (see
    /// [`Engine::compact_timers`]).
    timers: BinaryHeap<Reverse<(u32, u32)>>,
    /// giaddr (relay address) → subnet index.
    relays: HashMap<u32, usize>,
    /// Distinct interface names of directly attached subnets, in config order.
    interfaces: Vec<String>,
    /// This server's share of the pools, walked first (several servers on
    /// one database; the whole pool alone).
    share: Share,
    /// Several servers may share the store: a DHCPACK's commit can be
    /// refused (another server was first), and a DHCPNAK is ready for it.
    shared_store: bool,
}

impl Engine {
    /// Build the engine from the configuration and every stored binding.
    pub fn new(cfg: Arc<Config>, stored: Vec<Binding>) -> Engine {
        let Tables {
            reserved,
            reserved_by_id,
            reserved_by_mac,
            relays,
            interfaces,
        } = Tables::of(&cfg);
        let room = capacity(&cfg).min(PRESIZE_MAX).max(stored.len());
        let mut e = Engine {
            cursors: vec![PoolCursor::default(); cfg.subnets.len()],
            cfg,
            leases: HashMap::with_capacity_and_hasher(room, Fast::default()),
            by_client: HashMap::with_capacity_and_hasher(room, Fast::default()),
            offers: offers::Offers::default(),
            reserved,
            reserved_by_id,
            reserved_by_mac,
            timers: BinaryHeap::with_capacity(2 * room + TIMER_SLACK),
            relays,
            interfaces,
            share: Share::WHOLE,
            shared_store: false,
        };
        e.shared_store = matches!(e.cfg.store_backend, StoreBackend::Postgres { .. });
        for b in stored {
            e.apply(b);
        }
        e
    }

    /// A new configuration (live reload): subnets, pools, options,
    /// reservations and lease times from now on; every binding, offer and
    /// timer stays (a binding outside the new pools keeps its lease until
    /// it runs out). The caller checked that the interfaces are the same:
    /// sockets are opened at start only.
    pub fn reconfigure(&mut self, cfg: Arc<Config>) {
        let t = Tables::of(&cfg);
        self.reserved = t.reserved;
        self.reserved_by_id = t.reserved_by_id;
        self.reserved_by_mac = t.reserved_by_mac;
        self.relays = t.relays;
        self.interfaces = t.interfaces;
        self.cursors = vec![PoolCursor::default(); cfg.subnets.len()];
        self.shared_store = matches!(cfg.store_backend, StoreBackend::Postgres { .. });
        self.cfg = cfg;
    }

    /// Interfaces the front end must open a socket on, in this order
    /// ([`Ingress::Interface`] indexes into it).
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    fn interface_name(&self, idx: usize) -> Option<&str> {
        self.interfaces.get(idx).map(String::as_str)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The configuration the engine runs, to share with what answers from
    /// it without taking the engine's lock (UDP Leasequery).
    pub fn config_arc(&self) -> Arc<Config> {
        Arc::clone(&self.cfg)
    }

    /// The binding held in memory for an address (None: never leased).
    pub fn binding(&self, ip: Ipv4Addr) -> Option<&Binding> {
        self.leases.get(&u32::from(ip)).map(|b| &**b)
    }

    /// Number of stored bindings per state.
    pub fn count_by_state(&self) -> HashMap<DhcpState, usize> {
        let mut m = HashMap::new();
        for b in self.leases.values() {
            *m.entry(b.state).or_insert(0) += 1;
        }
        m
    }

    /// Handle one client message. See [`Outcome`].
    pub fn handle(
        &mut self,
        msg: &Message,
        ingress: Ingress,
        now: u32,
    ) -> Result<Outcome, NoReply> {
        handle::handle(self, msg, ingress, now)
    }

    /// Time-driven transitions (RFC 6926 §6.2.8 states): ACTIVE → EXPIRED at
    /// expiry, EXPIRED / RELEASED → AVAILABLE after the grace period,
    /// ABANDONED → AVAILABLE after the decline hold. Returns the changed
    /// bindings for the caller to commit.
    pub fn tick(&mut self, now: u32) -> Vec<Binding> {
        self.offers.expire(now);
        let mut changed = Vec::new();
        while let Some(&Reverse((t, ip))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(b) = self.leases.get(&ip) else {
                continue;
            };
            if b.expiry != t {
                continue; // superseded by a later change
            }
            let mut nb = Binding::clone(b);
            // This server makes the change, whoever made the last one.
            nb.data_source &= !DATA_SOURCE_REMOTE;
            match b.state {
                DhcpState::Active => {
                    nb.state = DhcpState::Expired;
                    nb.state_since = t;
                    nb.expiry = t.saturating_add(self.cfg.expired_grace);
                }
                DhcpState::Expired | DhcpState::Released | DhcpState::Abandoned => {
                    nb.state = DhcpState::Available;
                    nb.state_since = t;
                    nb.expiry = 0;
                }
                _ => continue,
            }
            self.apply(nb.clone());
            changed.push(nb);
        }
        changed
    }

    /// An operator frees an address (the control API's `lease4-del`): its
    /// binding becomes AVAILABLE now, whoever held it. The caller commits
    /// the returned change as given (an administrative change, not one of
    /// the RFC 2131 decisions `proto::overwrite` checks). None when the
    /// address has no binding or is already free.
    pub fn free(&mut self, ip: Ipv4Addr, now: u32) -> Option<Binding> {
        let b = self.leases.get(&u32::from(ip))?;
        if b.state == DhcpState::Available {
            return None;
        }
        let mut nb = Binding::clone(b);
        nb.data_source &= !DATA_SOURCE_REMOTE;
        nb.state = DhcpState::Available;
        nb.state_since = now;
        nb.expiry = 0;
        self.apply(nb.clone());
        Some(nb)
    }

    /// Changes another server committed to the shared store (in commit
    /// order): this engine's copy follows them. An offer this engine made
    /// of one of those addresses is withdrawn.
    pub fn apply_remote(&mut self, bindings: Vec<Binding>) {
        for b in bindings {
            self.apply(b);
        }
    }

    /// The live servers on the shared store changed: prefer this share of
    /// every pool (another server's share is used only when this one is full).
    pub fn set_share(&mut self, share: Share) {
        self.share = share;
    }

    /// Record a binding change in memory (the caller commits it).
    fn apply(&mut self, b: Binding) {
        let ip = u32::from(b.ip);
        if b.expiry != 0 && b.state != DhcpState::Available {
            self.timers.push(Reverse((b.expiry, ip)));
        }
        if has_owner(&b) {
            // A client's entry is its live lease: an older binding of the
            // same client that is not active (replayed after it at start-up,
            // which goes in address order, or returning to AVAILABLE after
            // its grace) must not take the entry over, or the client would
            // be offered that address and hold two leases.
            let key = ClientKey::of_binding(&b);
            let holds_other = self.active_entry(&key).is_some_and(|(cur, _)| cur != ip);
            if b.state == DhcpState::Active || !holds_other {
                self.by_client.insert(key, ip);
            }
        }
        self.offers.withdraw(ip);
        match self.leases.entry(ip) {
            Entry::Occupied(mut slot) => {
                let owner_changed = ClientOf::of(slot.get()) != ClientOf::of(&b);
                let old = slot.insert(Box::new(b));
                if owner_changed {
                    self.forget_owner(ip, &old);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(Box::new(b));
            }
        }
        if self.timers.len() > 2 * self.leases.len() + TIMER_SLACK {
            self.compact_timers();
        }
    }

    /// `old`, the binding `ip` had, is no longer its client's: that
    /// client's entry goes when it still points here. Without this the
    /// entries of every client ever seen would stay, and clients that come
    /// once (randomised hardware addresses) would grow the table for as
    /// long as the server runs.
    fn forget_owner(&mut self, ip: u32, old: &Binding) {
        if !has_owner(old) {
            return;
        }
        let key = ClientKey::of_binding(old);
        if self.by_client.get(&key) == Some(&ip) {
            self.by_client.remove(&key);
        }
    }

    /// Every renewal pushes a timer and leaves the one it superseded in the
    /// heap until that time comes: one stale entry per renewal for a whole
    /// lease time (5,000 renewals/s with one-hour leases: 18 million, 144 MB,
    /// an hour of steady growth). Rebuilt from the bindings (O(n), one entry
    /// each) once the heap holds more than twice as many entries as there
    /// are bindings: amortised O(1) per change, memory bounded by the
    /// bindings. Entries only need to be valid, not minimal: a binding
    /// changed after this keeps its new entry as before.
    fn compact_timers(&mut self) {
        self.timers = self
            .leases
            .iter()
            .filter(|(_, b)| b.expiry != 0 && b.state != DhcpState::Available)
            .map(|(&ip, b)| Reverse((b.expiry, ip)))
            .collect();
    }

    fn subnet_of_ip(&self, ip: u32) -> Option<usize> {
        self.cfg
            .subnets
            .iter()
            .position(|s| s.prefix.contains(&Ipv4Addr::from(ip)))
    }

    /// May `key` be given `ip` now? Reservations, holds and live leases of
    /// other clients say no.
    fn free_for(&self, ip: u32, who: &Ident, now: u32) -> bool {
        let key = &who.key;
        if let Some(owner) = self.reserved.get(&ip) {
            if !owner.matches(who) {
                return false;
            }
        }
        if self.offers.held_from(ip, key, now) {
            return false;
        }
        match self.leases.get(&ip) {
            None => true,
            Some(b) => match b.state {
                DhcpState::Active => key.owns(b) || b.expiry <= now,
                DhcpState::Abandoned => b.expiry <= now,
                DhcpState::Available | DhcpState::Released | DhcpState::Expired => true,
                DhcpState::Reset | DhcpState::Remote | DhcpState::Transitioning => key.owns(b),
            },
        }
    }

    /// The address to offer: reservation, then the client's previous address,
    /// then the one it was offered, then the one it asks for, then the next
    /// free one in the pools.
    fn choose(
        &mut self,
        subnet: usize,
        who: &Ident,
        requested: Option<u32>,
        now: u32,
    ) -> Option<u32> {
        let key = &who.key;
        if let Some(ip) = self.reservation(subnet, who) {
            return self.free_for(ip, who, now).then_some(ip);
        }
        let s = &self.cfg.subnets[subnet];
        if let Some(&ip) = self.by_client.get(key) {
            let owned = self.leases.get(&ip).is_some_and(|b| key.owns(b));
            if owned && s.pool_contains(ip) && self.free_for(ip, who, now) {
                return Some(ip);
            }
        }
        // Offered already (a DHCPDISCOVER again before the DHCPREQUEST):
        // the same address, never a second one.
        if let Some(ip) = self.offers.of_client(key, now) {
            if s.pool_contains(ip) && self.free_for(ip, who, now) {
                return Some(ip);
            }
        }
        if let Some(ip) = requested {
            if s.pool_contains(ip) && self.free_for(ip, who, now) {
                return Some(ip);
            }
        }
        let cfg = Arc::clone(&self.cfg);
        let s = &cfg.subnets[subnet];
        let mut cursor = std::mem::take(&mut self.cursors[subnet]);
        // This server's share first, then (full) the others' (a lost race
        // there is refused by the shared store).
        let mut shares = vec![self.share];
        if self.share != Share::WHOLE {
            shares.push(Share::WHOLE);
        }
        let mut found = None;
        for share in shares {
            // Prefer addresses no one holds, so a released lease can come back to its client.
            found = cursor
                .find(s, share, |ip| {
                    self.free_for(ip, who, now)
                        && self
                            .leases
                            .get(&ip)
                            .is_none_or(|b| key.owns(b) || b.state == DhcpState::Available)
                })
                .or_else(|| cursor.find(s, share, |ip| self.free_for(ip, who, now)));
            if found.is_some() {
                break;
            }
        }
        self.cursors[subnet] = cursor;
        found
    }

    /// May `key` hold `ip` in `subnet` (for a REQUEST)?
    /// This copy shows the client holding a live lease at another address
    /// of `subnet`'s network than `ip`.
    fn holds_another(&self, subnet: usize, ip: u32, who: &Ident, now: u32) -> bool {
        let prefix = self.cfg.subnets[subnet].prefix;
        self.active_entry(&who.key).is_some_and(|(cur, b)| {
            cur != ip && prefix.contains(&Ipv4Addr::from(cur)) && b.expiry > now
        })
    }

    /// The client's entry, when its binding is active and still the
    /// client's.
    fn active_entry(&self, key: &ClientKey) -> Option<(u32, &Binding)> {
        let &cur = self.by_client.get(key)?;
        let b = self.leases.get(&cur)?;
        (b.state == DhcpState::Active && key.owns(b)).then_some((cur, &**b))
    }

    fn acceptable(&self, subnet: usize, ip: u32, who: &Ident, now: u32) -> bool {
        self.configured_for(subnet, ip, who) && self.free_for(ip, who, now)
    }

    /// May the configuration give `ip` to this client (its subnet, its
    /// reservation or a pool, nobody else's reservation), whoever holds it?
    fn configured_for(&self, subnet: usize, ip: u32, who: &Ident) -> bool {
        let s = &self.cfg.subnets[subnet];
        if !s.prefix.contains(&Ipv4Addr::from(ip)) {
            return false;
        }
        if let Some(res) = self.reservation(subnet, who) {
            return res == ip;
        }
        s.pool_contains(ip)
            && self
                .reserved
                .get(&ip)
                .is_none_or(|owner| owner.matches(who))
    }

    /// The address reserved for this client in this subnet, by client-id first.
    fn reservation(&self, subnet: usize, who: &Ident) -> Option<u32> {
        if let Some(id) = &who.client_id {
            if let Some(&ip) = self.reserved_by_id.get(&(subnet, id.clone())) {
                return Some(ip);
            }
        }
        if who.htype == 1 {
            return self
                .reserved_by_mac
                .get(&(subnet, who.mac.clone()))
                .copied();
        }
        None
    }
}

/// A binding that names its client (a hardware address or a client-id).
fn has_owner(b: &Binding) -> bool {
    !b.chaddr.is_empty() || b.client_id.is_some()
}

/// Addresses the configuration can bind: every pool's and every
/// reservation's (a reservation may lie outside the pools).
/// What the engine derives from the configuration alone.
struct Tables {
    reserved: HashMap<u32, Owner>,
    reserved_by_id: HashMap<(usize, Box<[u8]>), u32>,
    reserved_by_mac: HashMap<(usize, Box<[u8]>), u32>,
    relays: HashMap<u32, usize>,
    interfaces: Vec<String>,
}

impl Tables {
    fn of(cfg: &Config) -> Tables {
        let mut reserved = HashMap::new();
        let mut reserved_by_id = HashMap::new();
        let mut reserved_by_mac = HashMap::new();
        let mut relays = HashMap::new();
        for (i, s) in cfg.subnets.iter().enumerate() {
            for r in &s.reservations {
                let ip = u32::from(r.ip);
                let owner = Owner {
                    client_id: r.client_id.as_deref().map(Into::into),
                    mac: r.mac.as_deref().map(Into::into),
                };
                if let Some(id) = &owner.client_id {
                    reserved_by_id.insert((i, id.clone()), ip);
                }
                if let Some(mac) = &owner.mac {
                    reserved_by_mac.insert((i, mac.clone()), ip);
                }
                reserved.insert(ip, owner);
            }
            for ra in &s.relay_addresses {
                relays.insert(u32::from(*ra), i);
            }
        }
        let cfg_interfaces: Vec<Option<String>> =
            cfg.subnets.iter().map(|s| s.interface.clone()).collect();
        Tables {
            reserved,
            reserved_by_id,
            reserved_by_mac,
            relays,
            interfaces: interface_names(&cfg_interfaces),
        }
    }
}

fn capacity(cfg: &Config) -> usize {
    cfg.subnets
        .iter()
        .map(|s| {
            let pooled: u64 = s
                .pools
                .iter()
                .map(|&(lo, hi)| u64::from(hi.saturating_sub(lo)) + 1)
                .sum();
            pooled + s.reservations.len() as u64
        })
        .fold(0usize, |acc, n| {
            acc.saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
        })
}

fn interface_names(of: &[Option<String>]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for name in of.iter().flatten() {
        if !v.contains(name) {
            v.push(name.clone());
        }
    }
    v
}

#[cfg(test)]
mod tests;
