//! Which limit a leasequery TCP connection counts against, sans IO.
//!
//! One listener takes bulk (RFC 6926) and active (RFC 7724) connections;
//! which one a connection is becomes known only from its first query. So a
//! connection is held in one of three budgets at a time:
//!
//! - **undecided**: accepted, no query yet (DHCPTLS and the TLS handshake
//!   included). Bounded on its own (by the bulk and active limits
//!   together), and each step of the opening by the data timeout, so idle
//!   connections starve neither kind.
//! - **bulk**: BULK_LQ_MAX_CONNS (`[leasequery.bulk] max_connections`).
//! - **active**: `[leasequery.active] max_connections` overall and
//!   `max_connections_per_requestor` per address.
//!
//! [`decide`] is the pure decision; [`Slots`] keeps the counts and hands
//! out a [`Slot`] that gives its place back when the connection ends. A
//! live reload changes the limits in place ([`Slots::set_limits`]): the
//! places held stay counted, and a connection over a lowered limit keeps
//! its place (new ones are refused until the count is below it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// What a connection is, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No query yet.
    Undecided,
    Bulk,
    Active,
}

/// The budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections without a query yet.
    pub undecided: usize,
    /// BULK_LQ_MAX_CONNS.
    pub bulk: usize,
    /// Active queries at once, overall.
    pub active: usize,
    /// Active queries at once from one address.
    pub active_each: usize,
}

impl Limits {
    /// From the configured limits; `active` is None when Active
    /// Leasequery is off. The undecided budget is as large as the two
    /// kinds together: every connection the listener would serve can be
    /// in its opening at once (a fleet of watchers reconnecting after a
    /// restart), and no more.
    pub fn new(bulk: usize, active: Option<(usize, usize)>) -> Limits {
        let (active, active_each) = active.unwrap_or((0, 0));
        Limits {
            undecided: bulk + active,
            bulk,
            active,
            active_each,
        }
    }
}

/// Connections held in each budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub undecided: usize,
    pub bulk: usize,
    pub active: usize,
    pub active_by: HashMap<IpAddr, usize>,
}

/// Why a connection may not take the place it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As many connections without a query as the listener takes.
    Undecided,
    /// BULK_LQ_MAX_CONNS bulk connections already.
    Bulk,
    /// `[leasequery.active] max_connections` active queries already.
    Active,
    /// `max_connections_per_requestor` active queries from this address.
    ActiveEach,
}

impl Refusal {
    /// For the log (the refusal throttle keys on it).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Undecided => "connection limit (connections without a query yet)",
            Refusal::Bulk => "connection limit",
            Refusal::Active => "active connection limit",
            Refusal::ActiveEach => "active connection limit per requestor",
        }
    }

    /// The limit that was reached.
    pub fn limit(self, l: &Limits) -> usize {
        match self {
            Refusal::Undecided => l.undecided,
            Refusal::Bulk => l.bulk,
            Refusal::Active => l.active,
            Refusal::ActiveEach => l.active_each,
        }
    }
}

/// May a connection from `who`, now held as `from` (None: just accepted),
/// be held as `to`?
pub fn decide(
    limits: &Limits,
    held: &Held,
    who: IpAddr,
    from: Option<Kind>,
    to: Kind,
) -> Result<(), Refusal> {
    if from == Some(to) {
        // A further bulk query on a bulk connection (RFC 6926 §7.7): the
        // place it has.
        return Ok(());
    }
    match to {
        // RFC 6926 §8.1: limit the connections concurrently accepted;
        // RFC 7724 §8.4: limit the connections maintained.
        Kind::Undecided if held.undecided >= limits.undecided => Err(Refusal::Undecided),
        // RFC 6926 §8.1: over BULK_LQ_MAX_CONNS, closed.
        Kind::Bulk if held.bulk >= limits.bulk => Err(Refusal::Bulk),
        // RFC 7724 §8.4: the server limits the connections it maintains.
        Kind::Active if held.active >= limits.active => Err(Refusal::Active),
        // RFC 7724 §8.3: simultaneous queries from any one requestor.
        Kind::Active if held.active_by.get(&who).copied().unwrap_or(0) >= limits.active_each => {
            Err(Refusal::ActiveEach)
        }
        _ => Ok(()),
    }
}

impl Held {
    fn add(&mut self, who: IpAddr, k: Kind) {
        match k {
            Kind::Undecided => self.undecided += 1,
            Kind::Bulk => self.bulk += 1,
            Kind::Active => {
                self.active += 1;
                *self.active_by.entry(who).or_insert(0) += 1;
            }
        }
    }

    fn remove(&mut self, who: IpAddr, k: Kind) {
        match k {
            Kind::Undecided => self.undecided = self.undecided.saturating_sub(1),
            Kind::Bulk => self.bulk = self.bulk.saturating_sub(1),
            Kind::Active => {
                self.active = self.active.saturating_sub(1);
                if let Some(n) = self.active_by.get_mut(&who) {
                    *n -= 1;
                    if *n == 0 {
                        self.active_by.remove(&who);
                    }
                }
            }
        }
    }
}

/// The listener's limits and counts.
pub struct Slots {
    state: Mutex<Counts>,
}

struct Counts {
    limits: Limits,
    held: Held,
}

/// A connection's place; given back on drop.
pub struct Slot {
    slots: Arc<Slots>,
    who: IpAddr,
    kind: Kind,
}

impl Slots {
    pub fn new(limits: Limits) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(Counts {
                limits,
                held: Held::default(),
            }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.state.lock().limits
    }

    /// New limits (a live reload); the places held stay counted.
    pub fn set_limits(&self, limits: Limits) {
        self.state.lock().limits = limits;
    }

    /// A place for a connection just accepted, held as `kind`.
    pub fn admit(self: &Arc<Self>, who: IpAddr, kind: Kind) -> Result<Slot, Refusal> {
        let mut st = self.state.lock();
        let Counts { limits, held: h } = &mut *st;
        decide(limits, h, who, None, kind)?;
        h.add(who, kind);
        Ok(Slot {
            slots: Arc::clone(self),
            who,
            kind,
        })
    }

    #[cfg(test)]
    fn held(&self) -> Held {
        self.state.lock().held.clone()
    }
}

impl Slot {
    #[cfg(test)]
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Move to `to`'s budget; on a refusal the connection keeps its place.
    pub fn change(&mut self, to: Kind) -> Result<(), Refusal> {
        let mut st = self.slots.state.lock();
        let Counts { limits, held: h } = &mut *st;
        decide(limits, h, self.who, Some(self.kind), to)?;
        h.remove(self.who, self.kind);
        h.add(self.who, to);
        self.kind = to;
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.state.lock().held.remove(self.who, self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn limits() -> Limits {
        Limits {
            undecided: 3,
            bulk: 2,
            active: 3,
            active_each: 2,
        }
    }

    fn held(undecided: usize, bulk: usize, active: &[(IpAddr, usize)]) -> Held {
        Held {
            undecided,
            bulk,
            active: active.iter().map(|(_, n)| n).sum(),
            active_by: active.iter().copied().collect(),
        }
    }

    #[test]
    fn undecided_budget_is_its_own() {
        let l = limits();
        // Bulk and active full: a new connection is still let in to say what it is.
        let full = held(2, 2, &[(A, 2), (B, 1)]);
        assert_eq!(decide(&l, &full, A, None, Kind::Undecided), Ok(()));
        // RFC 6926 §8.1 / RFC 7724 §8.4: the undecided ones are bounded.
        let h = held(3, 0, &[]);
        assert_eq!(
            decide(&l, &h, A, None, Kind::Undecided),
            Err(Refusal::Undecided)
        );
    }

    #[test]
    fn bulk_counts_bulk_only() {
        let l = limits();
        // Undecided and active connections do not use bulk places.
        let h = held(3, 1, &[(A, 2), (B, 1)]);
        assert_eq!(decide(&l, &h, A, Some(Kind::Undecided), Kind::Bulk), Ok(()));
        // RFC 6926 §8.1: over BULK_LQ_MAX_CONNS.
        let h = held(0, 2, &[]);
        assert_eq!(
            decide(&l, &h, A, Some(Kind::Undecided), Kind::Bulk),
            Err(Refusal::Bulk)
        );
        // Active Leasequery off: the kind is known at accept.
        assert_eq!(decide(&l, &h, A, None, Kind::Bulk), Err(Refusal::Bulk));
    }

    #[test]
    fn a_further_bulk_query_keeps_its_place() {
        let l = limits();
        let h = held(0, 2, &[]);
        assert_eq!(decide(&l, &h, A, Some(Kind::Bulk), Kind::Bulk), Ok(()));
    }

    #[test]
    fn active_counts_active_only_overall_and_per_requestor() {
        let l = limits();
        let h = held(3, 2, &[(A, 1)]);
        assert_eq!(
            decide(&l, &h, A, Some(Kind::Undecided), Kind::Active),
            Ok(())
        );
        // RFC 7724 §8.3: per requestor.
        let h = held(0, 0, &[(A, 2)]);
        assert_eq!(
            decide(&l, &h, A, Some(Kind::Undecided), Kind::Active),
            Err(Refusal::ActiveEach)
        );
        assert_eq!(
            decide(&l, &h, B, Some(Kind::Undecided), Kind::Active),
            Ok(())
        );
        // RFC 7724 §8.4: overall.
        let h = held(0, 0, &[(A, 2), (B, 1)]);
        assert_eq!(
            decide(&l, &h, B, Some(Kind::Bulk), Kind::Active),
            Err(Refusal::Active)
        );
    }

    #[test]
    fn slots_move_and_give_back() {
        let s = Slots::new(limits());
        let mut a = s.admit(A, Kind::Undecided).unwrap();
        let mut b = s.admit(A, Kind::Undecided).unwrap();
        a.change(Kind::Bulk).unwrap();
        b.change(Kind::Bulk).unwrap();
        assert_eq!(s.held(), held(0, 2, &[]));
        let mut c = s.admit(B, Kind::Undecided).unwrap();
        assert_eq!(c.change(Kind::Bulk), Err(Refusal::Bulk));
        assert_eq!(c.kind(), Kind::Undecided, "a refusal keeps the place");
        // Bulk, then active on the same connection (RFC 7724 §8.3): the
        // bulk place is given back.
        a.change(Kind::Active).unwrap();
        assert_eq!(s.held(), held(1, 1, &[(A, 1)]));
        c.change(Kind::Bulk).unwrap();
        drop((a, b, c));
        assert_eq!(s.held(), Held::default());
    }

    #[test]
    fn new_limits_apply_to_new_places_and_keep_the_held_ones() {
        let s = Slots::new(limits());
        let mut a = s.admit(A, Kind::Undecided).unwrap();
        let mut b = s.admit(B, Kind::Undecided).unwrap();
        a.change(Kind::Bulk).unwrap();
        b.change(Kind::Bulk).unwrap();
        s.set_limits(Limits::new(1, None));
        assert_eq!(s.limits().bulk, 1);
        // Both stay; a third cannot get a bulk place until both are gone.
        assert_eq!(s.held(), held(0, 2, &[]));
        let mut c = s.admit(A, Kind::Undecided).unwrap();
        assert_eq!(c.change(Kind::Bulk), Err(Refusal::Bulk));
        drop((a, b));
        c.change(Kind::Bulk).unwrap();
        s.set_limits(Limits::new(3, None));
        let mut d = s.admit(B, Kind::Undecided).unwrap();
        d.change(Kind::Bulk).unwrap();
    }

    #[test]
    fn limits_from_the_config() {
        let l = Limits::new(10, Some((100, 4)));
        assert_eq!(
            (l.undecided, l.bulk, l.active, l.active_each),
            (110, 10, 100, 4)
        );
        let l = Limits::new(10, None);
        assert_eq!((l.undecided, l.active), (10, 0));
    }
}
