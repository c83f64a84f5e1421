//! Message handling per RFC 2131 §4.3.

use std::net::Ipv4Addr;

use leaseline_proto::{Binding, DhcpState};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo};

use super::client::{ClientKey, Ident};
use super::reply::{self, relay_info, Reply};
use super::{Engine, Grant};

/// Where a datagram came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// The relay / unicast listen socket.
    Listen,
    /// A socket bound to a directly attached interface (index into the
    /// list of interface names the front end opened).
    Interface(usize),
}

/// What to do: commit `commit` (if any) durably, then send `reply` (if any).
/// If a shared store refuses the commit (another server bound the address
/// first), send `if_refused` instead (RFC 2131 §4.3.2: DHCPNAK), never `reply`.
/// `undo` puts the engine's copy back if the commit fails (a shared store
/// only: see [`Engine::undo`]).
#[derive(Debug, Default)]
pub struct Outcome {
    pub reply: Option<Reply>,
    pub commit: Option<Binding>,
    pub if_refused: Option<Reply>,
    pub undo: Option<Undo>,
    /// For a DHCPACK (renewals too): the subnet's first and last address.
    /// A shared store refuses the commit while the client holds another
    /// live lease there that this engine's copy had not seen (RFC 2131
    /// §4.3.1). None with a store only this server writes.
    pub network: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// What a change replaced in the engine's copy, to put back when its
/// commit fails: the engine's copy must not run ahead of the store it
/// shares with other servers, or it later decides from bindings that were
/// never stored (a client's stored lease looks free, and the client is
/// given a second address).
#[derive(Debug)]
pub struct Undo {
    ip: u32,
    previous: Option<Box<Binding>>,
    key: ClientKey,
    /// The client's entry before the change.
    held: Option<u32>,
    /// The change, as (state, expiry, cltt): put back only if still there.
    after: (DhcpState, u32, u32),
}

impl Undo {
    fn of(e: &Engine, ip: u32, change: &Binding) -> Option<Undo> {
        if !e.shared_store {
            return None;
        }
        let key = ClientKey::of_binding(change);
        Some(Undo {
            ip,
            previous: e.leases.get(&ip).cloned(),
            held: e.by_client.get(&key).copied(),
            key,
            after: (change.state, change.expiry, change.cltt),
        })
    }
}

impl Engine {
    /// The commit of a change failed (the store was unreachable): put back
    /// what it replaced, unless the address changed again since.
    pub fn undo(&mut self, u: Undo) {
        let still = self
            .leases
            .get(&u.ip)
            .is_some_and(|b| (b.state, b.expiry, b.cltt) == u.after && u.key.owns(b));
        if !still {
            return;
        }
        let entry = self.by_client.get(&u.key).copied();
        match u.previous {
            Some(p) => self.apply(*p),
            None => {
                self.leases.remove(&u.ip);
            }
        }
        // The client's entry goes back only if the failed change still
        // holds it: a later change of the client (a lease on another
        // address, committed) keeps the entry.
        match (entry, u.held) {
            (Some(now_held), _) if now_held != u.ip => {
                self.by_client.insert(u.key, now_held);
            }
            (_, Some(ip)) => {
                self.by_client.insert(u.key, ip);
            }
            (_, None) => {
                self.by_client.remove(&u.key);
            }
        }
    }

    /// A change was refused: the store holds these rows (None: nothing),
    /// and this engine's copy takes them.
    pub fn follow_stored(&mut self, stored: &[(Ipv4Addr, Option<Binding>)]) {
        for (ip, b) in stored {
            match b {
                Some(b) => self.apply(b.clone()),
                None => {
                    let ip = u32::from(*ip);
                    if let Some(old) = self.leases.remove(&ip) {
                        self.forget_owner(ip, &old);
                    }
                }
            }
        }
    }
}

/// Why a message gets no reply. `quiet` drops are normal protocol events
/// (RFC 2131 says to stay silent) rather than refusals worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoReply {
    pub reason: &'static str,
    pub quiet: bool,
}

impl NoReply {
    fn refuse(reason: &'static str) -> NoReply {
        NoReply {
            reason,
            quiet: false,
        }
    }
    fn silent(reason: &'static str) -> NoReply {
        NoReply {
            reason,
            quiet: true,
        }
    }
}

pub(super) fn handle(
    e: &mut Engine,
    msg: &Message,
    ingress: Ingress,
    now: u32,
) -> Result<Outcome, NoReply> {
    if msg.op != leaseline_wire::BOOTREQUEST {
        return Err(NoReply::refuse("not a BOOTREQUEST"));
    }
    if msg.hlen > 16 {
        return Err(NoReply::refuse("hlen over 16"));
    }
    let kind = msg
        .message_type()
        .ok_or(NoReply::refuse("no message type (BOOTP is not served)"))?;
    let subnet = select_subnet(e, msg, ingress, kind)?;
    let who = Ident::of_message(msg);
    match kind {
        MessageType::Discover => discover(e, msg, subnet, &who, now),
        MessageType::Request => request(e, msg, subnet, &who, now),
        MessageType::Release => release(e, msg, &who, now),
        MessageType::Decline => decline(e, msg, subnet, &who, now),
        MessageType::Inform => Ok(Outcome {
            reply: Some(reply::inform(e, msg, subnet)),
            ..Outcome::default()
        }),
        _ => Err(NoReply::refuse("message type not served on the DHCP port")),
    }
}

/// RFC 2131 §4.3.1: the subnet comes from giaddr when relayed, else from the
/// interface (or, for a unicast renewal on the listen socket, from ciaddr).
fn select_subnet(
    e: &Engine,
    msg: &Message,
    ingress: Ingress,
    kind: MessageType,
) -> Result<usize, NoReply> {
    let subnets = &e.cfg.subnets;
    if !msg.giaddr.is_unspecified() {
        let g = u32::from(msg.giaddr);
        if let Some(&i) = e.relays.get(&g) {
            return Ok(i);
        }
        return subnets
            .iter()
            .position(|s| s.prefix.contains(&msg.giaddr))
            .ok_or(NoReply::refuse("giaddr matches no subnet"));
    }
    match ingress {
        Ingress::Interface(idx) => {
            let name = e.interface_name(idx);
            let mut on_iface = subnets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.interface.as_deref() == name);
            let first = on_iface.next().map(|(i, _)| i);
            if !msg.ciaddr.is_unspecified() {
                if let Some((i, _)) = on_iface.find(|(_, s)| s.prefix.contains(&msg.ciaddr)) {
                    return Ok(i);
                }
            }
            first.ok_or(NoReply::refuse("no subnet on this interface"))
        }
        Ingress::Listen => {
            // A renewing client unicasts to us with ciaddr set (RFC 2131 §4.3.2);
            // RELEASE and INFORM carry ciaddr too.
            let by_ciaddr = (!msg.ciaddr.is_unspecified())
                .then(|| e.subnet_of_ip(u32::from(msg.ciaddr)))
                .flatten();
            match (by_ciaddr, kind) {
                (Some(i), _) => Ok(i),
                _ => Err(NoReply::refuse(
                    "not relayed and not from a served interface",
                )),
            }
        }
    }
}

fn requested_ip(msg: &Message) -> Option<u32> {
    msg.options.iter().find_map(|o| match o {
        DhcpOption::RequestedIp(ip) => Some(u32::from(*ip)),
        _ => None,
    })
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    msg.options.iter().find_map(|o| match o {
        DhcpOption::ServerId(ip) => Some(*ip),
        _ => None,
    })
}

fn discover(
    e: &mut Engine,
    msg: &Message,
    subnet: usize,
    who: &Ident,
    now: u32,
) -> Result<Outcome, NoReply> {
    let ip = e
        .choose(subnet, who, requested_ip(msg), now)
        .ok_or(NoReply::refuse("no free address in the subnet's pools"))?;
    let until = now.saturating_add(e.cfg.offer_hold);
    e.offers.make(ip, &who.key, until);
    let grant = e.cfg.subnets[subnet].grant();
    let r = reply::lease(
        e,
        msg,
        subnet,
        MessageType::Offer,
        Ipv4Addr::from(ip),
        grant,
    );
    Ok(Outcome {
        reply: Some(r),
        ..Outcome::default()
    })
}

fn request(
    e: &mut Engine,
    msg: &Message,
    subnet: usize,
    who: &Ident,
    now: u32,
) -> Result<Outcome, NoReply> {
    let sid = e.cfg.subnets[subnet].server_id;
    if let Some(chosen) = server_id(msg) {
        // SELECTING (RFC 2131 §4.3.2).
        if chosen != sid {
            e.offers.withdraw_client(&who.key);
            return Err(NoReply::silent("client chose another server"));
        }
        let ip = requested_ip(msg).ok_or(NoReply::refuse(
            "REQUEST (selecting) without requested address",
        ))?;
        return ack_or_nak(e, msg, subnet, who, ip, now);
    }
    if let Some(ip) = requested_ip(msg) {
        // INIT-REBOOT: ciaddr must be zero.
        if !msg.ciaddr.is_unspecified() {
            return Err(NoReply::refuse(
                "REQUEST with both ciaddr and requested address",
            ));
        }
        let s = &e.cfg.subnets[subnet];
        if !s.prefix.contains(&Ipv4Addr::from(ip)) {
            return Ok(nak(
                e,
                msg,
                subnet,
                "requested address is not on this network",
            ));
        }
        let known = e.by_client.contains_key(&who.key) || e.reservation(subnet, who).is_some();
        let held_by_other = e
            .leases
            .get(&ip)
            .is_some_and(|b| b.state == DhcpState::Active && !who.key.owns(b) && b.expiry > now);
        if !known && !held_by_other {
            // RFC 2131 §4.3.2: no record of this client: remain silent.
            return Err(NoReply::silent(
                "INIT-REBOOT from a client we have no record of",
            ));
        }
        return ack_or_nak(e, msg, subnet, who, ip, now);
    }
    if !msg.ciaddr.is_unspecified() {
        // RENEWING / REBINDING: extend the lease on ciaddr.
        let ip = u32::from(msg.ciaddr);
        return ack_or_nak(e, msg, subnet, who, ip, now);
    }
    Err(NoReply::refuse(
        "REQUEST without requested address or ciaddr",
    ))
}

fn ack_or_nak(
    e: &mut Engine,
    msg: &Message,
    subnet: usize,
    who: &Ident,
    ip: u32,
    now: u32,
) -> Result<Outcome, NoReply> {
    // One lease per client in a network (RFC 2131 §4.3.1: a client is
    // given its current address): a REQUEST for another address while the
    // client holds a live lease here (a late one, after an OFFER made
    // before that lease, or a renewal of a lease it holds besides its
    // current one) is NAKed, and its next DHCPDISCOVER is offered the
    // lease it holds (RFC 2131 §4.3.2: the client's notion of its address
    // is not correct).
    if e.holds_another(subnet, ip, who, now) {
        return Ok(nak(e, msg, subnet, "the client holds another address here"));
    }
    if !e.acceptable(subnet, ip, who, now) {
        // With a store shared by several servers this copy may be behind
        // (the client renewed through another server since, or an offer was
        // made from a stale row): when only who holds the address stands in
        // the way, the store decides in the commit, and its refusal is the
        // DHCPNAK (RFC 2131 §4.3.2), so a client's lease is never NAKed
        // from a stale copy.
        if !(e.shared_store && e.configured_for(subnet, ip, who)) {
            return Ok(nak(e, msg, subnet, "address not available to this client"));
        }
    }
    // One grant for the ACK and the binding: a leasequery then reports
    // what this client was told (RFC 4388 §6.4.2).
    let grant = e.cfg.subnets[subnet].grant();
    let b = new_binding(e, msg, who, ip, now, grant);
    let undo = Undo::of(e, ip, &b);
    e.apply(b.clone());
    let r = reply::lease(e, msg, subnet, MessageType::Ack, Ipv4Addr::from(ip), grant);
    let if_refused = e
        .shared_store
        .then(|| reply::nak(e, msg, subnet, "address taken by another server"));
    let prefix = e.cfg.subnets[subnet].prefix;
    Ok(Outcome {
        reply: Some(r),
        commit: Some(b),
        if_refused,
        undo,
        // A shared store checks every grant for a second lease, renewals
        // too: this copy may be behind on the client's leases (made, or
        // renewed, through another server).
        network: e
            .shared_store
            .then(|| (prefix.network(), prefix.broadcast())),
    })
}

fn nak(e: &Engine, msg: &Message, subnet: usize, why: &'static str) -> Outcome {
    Outcome {
        reply: Some(reply::nak(e, msg, subnet, why)),
        ..Outcome::default()
    }
}

fn new_binding(e: &Engine, msg: &Message, who: &Ident, ip: u32, now: u32, grant: Grant) -> Binding {
    let prev = e.leases.get(&ip);
    // start-time-of-state only moves when the state (or the client) changes.
    let state_since = match prev {
        Some(b) if b.state == DhcpState::Active && who.key.owns(b) && b.expiry > now => {
            b.state_since
        }
        _ => now,
    };
    let rai = relay_info(msg);
    let mut b = Binding {
        ip: Ipv4Addr::from(ip),
        state: DhcpState::Active,
        htype: msg.htype,
        chaddr: msg.hw_addr().to_vec(),
        client_id: who.client_id.as_deref().map(<[u8]>::to_vec),
        expiry: 0,
        cltt: now,
        state_since,
        data_source: 0,
        relay_info: rai.map(encode_rai),
        circuit_id: rai.and_then(|r| r.circuit_id()).map(<[u8]>::to_vec),
        remote_id: rai.and_then(|r| r.remote_id()).map(<[u8]>::to_vec),
        relay_id: rai.and_then(|r| r.relay_id()).map(<[u8]>::to_vec),
        vendor_class_id: msg.options.iter().find_map(|o| match o {
            DhcpOption::VendorClassId(v) => Some(v.clone()),
            _ => None,
        }),
        hostname: msg.options.iter().find_map(|o| match o {
            DhcpOption::Hostname(v) => Some(v.clone()),
            _ => None,
        }),
        lease_time: 0,
        renew_time: None,
        rebind_time: None,
    };
    grant.record(&mut b, now);
    b
}

/// Option 82's payload as it travels: sub-options in their order (RFC 3046 §2.0).
pub fn encode_rai(r: &RelayAgentInfo) -> Vec<u8> {
    let mut v = Vec::with_capacity(r.sub_options.iter().map(|s| s.data.len() + 2).sum());
    for s in &r.sub_options {
        v.push(s.code);
        v.push(s.data.len().min(255) as u8);
        v.extend_from_slice(&s.data[..s.data.len().min(255)]);
    }
    v
}

/// Owned by this client and currently held (ACTIVE, or a lapsed lease not yet reaped).
fn owned_binding<'a>(e: &'a Engine, key: &ClientKey, ip: u32) -> Option<&'a Binding> {
    e.leases
        .get(&ip)
        .map(|b| &**b)
        .filter(|b| key.owns(b) && matches!(b.state, DhcpState::Active | DhcpState::Expired))
}

/// The client gives its binding up: it enters `state` until `now + hold`.
fn give_up(
    e: &mut Engine,
    who: &Ident,
    ip: u32,
    state: DhcpState,
    hold: u32,
    now: u32,
    not_bound: &'static str,
) -> Result<Outcome, NoReply> {
    let mut b = owned_binding(e, &who.key, ip)
        .ok_or(NoReply::refuse(not_bound))?
        .clone();
    b.state = state;
    b.state_since = now;
    b.cltt = now;
    b.expiry = now.saturating_add(hold);
    b.data_source &= !leaseline_proto::DATA_SOURCE_REMOTE;
    let undo = Undo::of(e, ip, &b);
    e.apply(b.clone());
    Ok(Outcome {
        commit: Some(b),
        undo,
        ..Outcome::default()
    })
}

fn release(e: &mut Engine, msg: &Message, who: &Ident, now: u32) -> Result<Outcome, NoReply> {
    let hold = e.cfg.expired_grace;
    let why = "RELEASE for an address not bound to this client";
    give_up(
        e,
        who,
        u32::from(msg.ciaddr),
        DhcpState::Released,
        hold,
        now,
        why,
    )
}

fn decline(
    e: &mut Engine,
    msg: &Message,
    subnet: usize,
    who: &Ident,
    now: u32,
) -> Result<Outcome, NoReply> {
    if server_id(msg).is_some_and(|s| s != e.cfg.subnets[subnet].server_id) {
        return Err(NoReply::silent("DECLINE addressed to another server"));
    }
    let ip = requested_ip(msg).ok_or(NoReply::refuse("DECLINE without requested address"))?;
    // RFC 2131 §4.3.3: mark the address as not available; RFC 6926 calls it ABANDONED.
    let (hold, why) = (
        e.cfg.decline_hold,
        "DECLINE for an address not bound to this client",
    );
    give_up(e, who, ip, DhcpState::Abandoned, hold, now, why)
}
