use std::net::Ipv4Addr;
use std::sync::Arc;

use leaseline_proto::DhcpState;
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, SubOption};

use super::*;
use crate::config::Config;

const GIADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const T0: u32 = 1_700_000_000;

fn config(extra: &str) -> Arc<Config> {
    let text = format!(
        r#"
[server]
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:1067"
offer_hold = 30
decline_hold = 600
expired_grace = 100
[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.19"]
relay_addresses = ["127.0.0.1"]
lease_time = 300
{extra}
"#
    );
    Arc::new(Config::parse(&text, "test").expect("valid test config"))
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn msg(kind: MessageType, m: [u8; 6]) -> Message {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&m);
    Message {
        xid: u32::from(m[5]) + 1000,
        giaddr: GIADDR,
        chaddr,
        options: vec![DhcpOption::MessageType(kind)],
        ..Message::default()
    }
}

fn discover(e: &mut Engine, m: [u8; 6], now: u32) -> Ipv4Addr {
    let out = e
        .handle(&msg(MessageType::Discover, m), Ingress::Listen, now)
        .expect("offer");
    let r = out.reply.expect("an OFFER");
    assert_eq!(r.msg.message_type(), Some(MessageType::Offer));
    assert!(out.commit.is_none(), "an OFFER is not durable");
    r.msg.yiaddr
}

fn select(e: &mut Engine, m: [u8; 6], ip: Ipv4Addr, now: u32) -> Outcome {
    let mut q = msg(MessageType::Request, m);
    q.options.push(DhcpOption::ServerId(SID));
    q.options.push(DhcpOption::RequestedIp(ip));
    e.handle(&q, Ingress::Listen, now).expect("a reply")
}

fn dora(e: &mut Engine, m: [u8; 6], now: u32) -> Ipv4Addr {
    let ip = discover(e, m, now);
    let out = select(e, m, ip, now);
    assert_eq!(
        out.reply.as_ref().and_then(|r| r.msg.message_type()),
        Some(MessageType::Ack)
    );
    let b = out.commit.expect("an ACK commits its binding");
    assert_eq!(b.state, DhcpState::Active);
    ip
}

#[test]
fn dora_binds_distinct_addresses_and_replies_to_the_relay() {
    let mut e = Engine::new(config(""), vec![]);
    let mut seen = std::collections::HashSet::new();
    for n in 0..10 {
        let ip = dora(&mut e, mac(n), T0);
        assert!(seen.insert(ip), "{ip} given twice");
    }
    // Pool exhausted: the 11th client gets no offer.
    let d = e
        .handle(&msg(MessageType::Discover, mac(99)), Ingress::Listen, T0)
        .unwrap_err();
    assert_eq!(d.reason, "no free address in the subnet's pools");
}

#[test]
fn ack_carries_lease_options_and_goes_to_giaddr_port_67() {
    let mut e = Engine::new(
        config("router = [\"10.0.0.1\"]\ndomain_name = \"lab\""),
        vec![],
    );
    let ip = discover(&mut e, mac(1), T0);
    let r = select(&mut e, mac(1), ip, T0).reply.unwrap();
    assert_eq!(r.dest, std::net::SocketAddrV4::new(GIADDR, 67));
    assert_eq!(r.msg.option(51), Some(&DhcpOption::LeaseTime(300)));
    assert_eq!(r.msg.option(58), Some(&DhcpOption::RenewalTime(150)));
    assert_eq!(r.msg.option(54), Some(&DhcpOption::ServerId(SID)));
    assert_eq!(
        r.msg.option(3),
        Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1)]))
    );
    assert_eq!(
        r.msg.option(1),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
}

#[test]
fn offers_hold_addresses_from_other_clients_until_they_lapse() {
    let mut e = Engine::new(config(""), vec![]);
    let a = discover(&mut e, mac(1), T0);
    let b = discover(&mut e, mac(2), T0);
    assert_ne!(a, b);
    // Client 2 asks for client 1's offered address: NAK while the hold lasts.
    let out = select(&mut e, mac(2), a, T0 + 1);
    assert_eq!(
        out.reply.unwrap().msg.message_type(),
        Some(MessageType::Nak)
    );
    // After the hold, it is free again.
    e.tick(T0 + 31);
    let out = select(&mut e, mac(2), a, T0 + 31);
    assert_eq!(
        out.reply.unwrap().msg.message_type(),
        Some(MessageType::Ack)
    );
}

#[test]
fn renewal_keeps_start_time_of_state_and_extends_expiry() {
    let mut e = Engine::new(config(""), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    let mut q = msg(MessageType::Request, mac(1));
    q.ciaddr = ip;
    let out = e.handle(&q, Ingress::Listen, T0 + 100).unwrap();
    assert_eq!(
        out.reply.unwrap().msg.message_type(),
        Some(MessageType::Ack)
    );
    let b = out.commit.unwrap();
    assert_eq!(b.state_since, T0);
    assert_eq!(b.cltt, T0 + 100);
    assert_eq!(b.expiry, T0 + 400);
}

fn times(
    m: &Message,
) -> (
    Option<&DhcpOption>,
    Option<&DhcpOption>,
    Option<&DhcpOption>,
) {
    (m.option(51), m.option(58), m.option(59))
}

/// The binding keeps the T1 / T2 its ACK sent (RFC 4388 §6.4.2 reports
/// them): configured ones, and across a configuration change until the
/// client's next ACK, which sends and stores the new ones.
#[test]
fn binding_keeps_the_grant_its_ack_sent() {
    let cfg = config("renew_time = 100\nrebind_time = 200");
    let mut e = Engine::new(cfg, vec![]);
    let ip = discover(&mut e, mac(1), T0);
    let out = select(&mut e, mac(1), ip, T0);
    let ack = out.reply.unwrap().msg;
    assert_eq!(
        times(&ack),
        (
            Some(&DhcpOption::LeaseTime(300)),
            Some(&DhcpOption::RenewalTime(100)),
            Some(&DhcpOption::RebindingTime(200))
        )
    );
    let b = out.commit.unwrap();
    assert_eq!(
        (b.cltt, b.expiry, b.lease_time, b.renew_time, b.rebind_time),
        (T0, T0 + 300, 300, Some(100), Some(200))
    );
    assert_eq!(
        (
            b.remaining_lease(T0),
            b.remaining_t1(T0),
            b.remaining_t2(T0)
        ),
        (Some(300), Some(100), Some(200))
    );

    // Restarted with the defaults (T1 150, T2 262): the stored grant stands.
    let mut e = Engine::new(config(""), vec![b]);
    let kept = e.binding(ip).unwrap();
    assert_eq!((kept.renew_time, kept.rebind_time), (Some(100), Some(200)));
    let mut q = msg(MessageType::Request, mac(1));
    q.ciaddr = ip;
    let out = e.handle(&q, Ingress::Listen, T0 + 120).unwrap();
    assert_eq!(
        times(&out.reply.unwrap().msg),
        (
            Some(&DhcpOption::LeaseTime(300)),
            Some(&DhcpOption::RenewalTime(150)),
            Some(&DhcpOption::RebindingTime(262))
        )
    );
    let b = out.commit.unwrap();
    assert_eq!(
        (b.expiry, b.renew_time, b.rebind_time),
        (T0 + 420, Some(150), Some(262))
    );
    assert_eq!(b.remaining_t1(T0 + 270), None);
    assert_eq!(b.remaining_t2(T0 + 270), Some(112));
}

#[test]
fn renewing_another_clients_address_is_naked() {
    let mut e = Engine::new(config(""), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    let mut q = msg(MessageType::Request, mac(2));
    q.ciaddr = ip;
    let out = e.handle(&q, Ingress::Listen, T0 + 1).unwrap();
    let r = out.reply.unwrap();
    assert_eq!(r.msg.message_type(), Some(MessageType::Nak));
    assert!(
        r.msg.broadcast(),
        "NAK through a relay sets the broadcast bit"
    );
    assert!(out.commit.is_none());
}

#[test]
fn init_reboot_from_unknown_client_is_silent() {
    let mut e = Engine::new(config(""), vec![]);
    let mut q = msg(MessageType::Request, mac(5));
    q.options
        .push(DhcpOption::RequestedIp(Ipv4Addr::new(10, 0, 0, 12)));
    let d = e.handle(&q, Ingress::Listen, T0).unwrap_err();
    assert!(d.quiet);
    // ...but a wrong network gets a NAK.
    let mut q = msg(MessageType::Request, mac(5));
    q.options
        .push(DhcpOption::RequestedIp(Ipv4Addr::new(192, 168, 9, 9)));
    let out = e.handle(&q, Ingress::Listen, T0).unwrap();
    assert_eq!(
        out.reply.unwrap().msg.message_type(),
        Some(MessageType::Nak)
    );
}

#[test]
fn release_then_expiry_to_available() {
    let mut e = Engine::new(config(""), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    let mut q = msg(MessageType::Release, mac(1));
    q.ciaddr = ip;
    let out = e.handle(&q, Ingress::Listen, T0 + 10).unwrap();
    assert!(out.reply.is_none());
    let b = out.commit.unwrap();
    assert_eq!((b.state, b.state_since), (DhcpState::Released, T0 + 10));
    let changed = e.tick(T0 + 110);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, DhcpState::Available);
}

#[test]
fn lease_expires_then_returns_to_available() {
    let mut e = Engine::new(config(""), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    assert!(e.tick(T0 + 299).is_empty());
    let c = e.tick(T0 + 300);
    assert_eq!(
        (c[0].ip, c[0].state, c[0].state_since),
        (ip, DhcpState::Expired, T0 + 300)
    );
    let c = e.tick(T0 + 400);
    assert_eq!(
        (c[0].state, c[0].state_since),
        (DhcpState::Available, T0 + 400)
    );
}

#[test]
fn decline_abandons_the_address_for_the_hold() {
    let mut e = Engine::new(config(""), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    let mut q = msg(MessageType::Decline, mac(1));
    q.options.push(DhcpOption::RequestedIp(ip));
    q.options.push(DhcpOption::ServerId(SID));
    let b = e
        .handle(&q, Ingress::Listen, T0 + 5)
        .unwrap()
        .commit
        .unwrap();
    assert_eq!((b.state, b.expiry), (DhcpState::Abandoned, T0 + 605));
    // The same client does not get it back while abandoned.
    let again = discover(&mut e, mac(1), T0 + 6);
    assert_ne!(again, ip);
    let c = e.tick(T0 + 605);
    assert!(c
        .iter()
        .any(|b| b.ip == ip && b.state == DhcpState::Available));
}

#[test]
fn reservation_by_mac_and_by_client_id() {
    let extra = r#"
[[subnet.reservation]]
ip = "10.0.0.5"
mac = "02:00:00:00:00:07"
[[subnet.reservation]]
ip = "10.0.0.6"
client_id = "01aabbccddeeff"
"#;
    let mut e = Engine::new(config(extra), vec![]);
    assert_eq!(dora(&mut e, mac(7), T0), Ipv4Addr::new(10, 0, 0, 5));
    let mut q = msg(MessageType::Discover, mac(8));
    q.options.push(DhcpOption::ClientId(vec![
        1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ]));
    let r = e.handle(&q, Ingress::Listen, T0).unwrap().reply.unwrap();
    assert_eq!(r.msg.yiaddr, Ipv4Addr::new(10, 0, 0, 6));
    // A reserved address is never handed to someone else.
    let mut q = msg(MessageType::Request, mac(9));
    q.options.push(DhcpOption::ServerId(SID));
    q.options
        .push(DhcpOption::RequestedIp(Ipv4Addr::new(10, 0, 0, 6)));
    let r = e.handle(&q, Ingress::Listen, T0).unwrap().reply.unwrap();
    assert_eq!(r.msg.message_type(), Some(MessageType::Nak));
}

#[test]
fn relay_agent_information_is_stored_and_echoed() {
    let mut e = Engine::new(config(""), vec![]);
    let rai = RelayAgentInfo {
        sub_options: vec![
            SubOption {
                code: 1,
                data: b"eth0/1".to_vec(),
            },
            SubOption {
                code: 2,
                data: b"remote-7".to_vec(),
            },
            SubOption {
                code: 9,
                data: vec![0, 0, 0, 9, 1, 0],
            },
        ],
    };
    let mut d = msg(MessageType::Discover, mac(3));
    d.options.push(DhcpOption::RelayAgentInfo(rai.clone()));
    let offer = e.handle(&d, Ingress::Listen, T0).unwrap().reply.unwrap();
    assert_eq!(
        offer.msg.options.last(),
        Some(&DhcpOption::RelayAgentInfo(rai.clone()))
    );
    let mut q = msg(MessageType::Request, mac(3));
    q.options.push(DhcpOption::ServerId(SID));
    q.options.push(DhcpOption::RequestedIp(offer.msg.yiaddr));
    q.options.push(DhcpOption::RelayAgentInfo(rai.clone()));
    let b = e.handle(&q, Ingress::Listen, T0).unwrap().commit.unwrap();
    assert_eq!(b.circuit_id.as_deref(), Some(&b"eth0/1"[..]));
    assert_eq!(b.remote_id.as_deref(), Some(&b"remote-7"[..]));
    assert_eq!(b.relay_info.as_deref(), Some(&handle_rai_bytes(&rai)[..]));
}

fn handle_rai_bytes(r: &RelayAgentInfo) -> Vec<u8> {
    super::handle::encode_rai(r)
}

#[test]
fn restart_from_stored_bindings_keeps_clients_addresses() {
    let cfg = config("");
    let mut e = Engine::new(Arc::clone(&cfg), vec![]);
    let mut stored = Vec::new();
    for n in 0..5 {
        let ip = discover(&mut e, mac(n), T0);
        stored.push(select(&mut e, mac(n), ip, T0).commit.unwrap());
    }
    let mut e2 = Engine::new(cfg, stored.clone());
    for (n, b) in stored.iter().enumerate() {
        assert_eq!(
            discover(&mut e2, mac(n as u8), T0 + 1),
            b.ip,
            "client keeps its address"
        );
    }
    // And a new client gets none of them.
    let fresh = discover(&mut e2, mac(50), T0 + 1);
    assert!(stored.iter().all(|b| b.ip != fresh));
}

/// Found by the crash-durability test: a client with an ACTIVE lease and an
/// older RELEASED binding at a higher address was, after a restart (bindings
/// replayed in address order) or once that binding returned to AVAILABLE,
/// offered the old address and ACKed it: two leases for one client.
#[test]
fn an_old_binding_never_takes_over_a_clients_active_lease() {
    let cfg = config("");
    let mut e = Engine::new(Arc::clone(&cfg), vec![]);
    let ip = discover(&mut e, mac(1), T0);
    let active = select(&mut e, mac(1), ip, T0).commit.unwrap();
    let mut released = active.clone();
    released.ip = Ipv4Addr::new(10, 0, 0, 19);
    released.state = DhcpState::Released;
    released.state_since = T0 - 50;
    released.cltt = T0 - 50;
    released.expiry = T0 + 60;
    assert!(released.ip > active.ip, "replayed after the active lease");

    let mut e = Engine::new(Arc::clone(&cfg), vec![active.clone(), released.clone()]);
    assert_eq!(
        discover(&mut e, mac(1), T0 + 1),
        active.ip,
        "after a restart"
    );

    let changed = e.tick(T0 + 61);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, DhcpState::Available);
    assert_eq!(
        discover(&mut e, mac(1), T0 + 62),
        active.ip,
        "after the old one's grace"
    );
}

#[test]
fn unrelayed_broadcast_on_listen_socket_is_refused() {
    let mut e = Engine::new(config(""), vec![]);
    let mut d = msg(MessageType::Discover, mac(1));
    d.giaddr = Ipv4Addr::UNSPECIFIED;
    let err = e.handle(&d, Ingress::Listen, T0).unwrap_err();
    assert!(!err.quiet);
}

/// Issue 16 item 0 (the soak's RSS): every renewal left its superseded timer
/// in the heap for a whole lease time, so memory grew by 8 bytes a renewal
/// for an hour (with one-hour leases) before the first entry left. The heap
/// stays within twice the bindings (plus slack), and the bindings still
/// expire when their last renewal says.
#[test]
fn renewals_do_not_pile_up_timers_and_leases_still_expire() {
    let mut e = Engine::new(config(""), vec![]);
    let a = dora(&mut e, mac(1), T0);
    let b = dora(&mut e, mac(2), T0);
    const RENEWALS: u32 = 10_000;
    let mut largest = 0;
    for n in 1..=RENEWALS {
        for (m, ip) in [(mac(1), a), (mac(2), b)] {
            let out = select(&mut e, m, ip, T0 + n / 100);
            assert_eq!(out.commit.map(|b| b.state), Some(DhcpState::Active));
        }
        largest = largest.max(e.timers.len());
    }
    assert!(
        largest <= 2 * e.leases.len() + TIMER_SLACK,
        "{largest} timers for {} bindings after {} renewals",
        e.leases.len(),
        2 * RENEWALS
    );
    // The last renewal was at T0 + 100 with a 300 s lease.
    let last = T0 + RENEWALS / 100;
    assert!(e.tick(last + 299).is_empty(), "nothing expires early");
    let expired: Vec<_> = e
        .tick(last + 300)
        .into_iter()
        .map(|b| (b.ip, b.state))
        .collect();
    assert_eq!(
        expired.len(),
        2,
        "both leases expire at their last expiry: {expired:?}"
    );
    assert!(expired.iter().all(|&(_, s)| s == DhcpState::Expired));
}

/// Filling every address of the pools never grows the binding tables: a
/// rehash of tens of thousands of bindings on the DHCP thread held every
/// answer for tens of ms (issue 16 item 3).
#[test]
fn a_full_pool_never_rehashes_the_binding_tables() {
    let extra = r#"
[[subnet.reservation]]
ip = "10.0.0.5"
mac = "02:00:00:00:00:f0"
"#;
    let mut e = Engine::new(config(extra), vec![]);
    let before = (e.leases.capacity(), e.by_client.capacity());
    assert!(
        before.0 >= 11,
        "sized for 10 pooled addresses and a reservation: {before:?}"
    );
    for n in 0..10 {
        dora(&mut e, mac(n), T0);
    }
    dora(&mut e, [2, 0, 0, 0, 0, 0xf0], T0);
    assert_eq!(e.leases.len(), 11);
    assert_eq!((e.leases.capacity(), e.by_client.capacity()), before);
}

/// Clients that come once (randomised hardware addresses) each leave a
/// binding that the next client's replaces: the client table keeps only
/// the clients whose binding it still is, not every client ever seen.
#[test]
fn clients_that_come_once_do_not_grow_the_client_table() {
    let mut e = Engine::new(config(""), vec![]);
    for round in 0..20u8 {
        let now = T0 + u32::from(round) * 1_000;
        for n in 0..10 {
            dora(&mut e, mac(round * 10 + n), now);
        }
        // Every lease expires, then its address is free again.
        assert_eq!(e.tick(now + 300).len(), 10);
        assert_eq!(e.tick(now + 400).len(), 10);
    }
    assert_eq!(e.leases.len(), 10);
    assert_eq!(
        e.by_client.len(),
        10,
        "200 clients came, 10 addresses name theirs"
    );
    // The last round's clients are still known: their INIT-REBOOT is
    // answered (an ACK, their address is free), not ignored.
    let last = mac(199);
    let ip = e.by_client[&ClientKey::of_binding(
        e.leases
            .values()
            .find(|b| b.chaddr == last)
            .expect("the last client's binding"),
    )];
    let mut q = msg(MessageType::Request, last);
    q.options.push(DhcpOption::RequestedIp(Ipv4Addr::from(ip)));
    let out = e.handle(&q, Ingress::Listen, T0 + 30_000).expect("a reply");
    assert_eq!(
        out.reply.and_then(|r| r.msg.message_type()),
        Some(MessageType::Ack)
    );
}

/// Another server's bindings, followed from the shared store, are the same:
/// a client whose address went to another client is forgotten here too,
/// and so is one whose binding the store no longer has.
#[test]
fn another_servers_clients_do_not_grow_the_client_table() {
    let mut e = Engine::new(shared_config(), vec![]);
    let mut theirs = Engine::new(config(""), vec![]);
    for round in 0..20u8 {
        let now = T0 + u32::from(round) * 1_000;
        let mut changes = Vec::new();
        for n in 0..10 {
            let m = mac(round * 10 + n);
            let ip = discover(&mut theirs, m, now);
            let mut b = select(&mut theirs, m, ip, now).commit.expect("binding");
            b.data_source = leaseline_proto::DATA_SOURCE_REMOTE;
            changes.push(b);
        }
        changes.extend(theirs.tick(now + 300));
        changes.extend(theirs.tick(now + 400));
        e.apply_remote(changes);
    }
    assert_eq!(e.by_client.len(), 10);
    let gone: Vec<_> = e.leases.values().map(|b| (b.ip, None)).collect();
    e.follow_stored(&gone);
    assert!(e.leases.is_empty());
    assert!(e.by_client.is_empty(), "{:?}", e.by_client);
}

// Several servers on one database (issue 17).

fn shared_config() -> Arc<Config> {
    // `[store]` after the subnet's keys (config's `extra` ends the table).
    config("[store]\nbackend = \"postgres\"\nurl = \"postgres://u@db/leases\"")
}

#[test]
fn each_server_offers_from_its_share_of_the_pool_first_then_the_rest() {
    let mut e = Engine::new(config(""), vec![]);
    e.set_share(Share { index: 1, of: 2 });
    // Pool 10.0.0.10-19: the second half is this server's.
    let first: Vec<u8> = (0..5)
        .map(|n| dora(&mut e, mac(n), T0).octets()[3])
        .collect();
    assert_eq!(first, vec![15, 16, 17, 18, 19]);
    // Its share full, it goes on in the other server's.
    assert_eq!(dora(&mut e, mac(5), T0).octets()[3], 10);
}

#[test]
fn another_servers_binding_withdraws_an_offer_and_takes_the_address() {
    let mut e = Engine::new(config(""), vec![]);
    let offered = discover(&mut e, mac(1), T0);
    // Another server bound that address to another client meanwhile.
    let mut theirs = select(&mut Engine::new(config(""), vec![]), mac(2), offered, T0)
        .commit
        .expect("their binding");
    theirs.data_source = leaseline_proto::DATA_SOURCE_REMOTE;
    e.apply_remote(vec![theirs]);
    let out = select(&mut e, mac(1), offered, T0 + 1);
    assert_eq!(
        out.reply.and_then(|r| r.msg.message_type()),
        Some(MessageType::Nak),
        "the address is another client's now"
    );
    assert_ne!(discover(&mut e, mac(1), T0 + 1), offered);
}

#[test]
fn a_shared_store_gets_a_nak_ready_for_a_refused_ack_and_local_changes_are_local() {
    let mut local = Engine::new(config(""), vec![]);
    assert!(!local.shared_store);
    let ip = discover(&mut local, mac(1), T0);
    let out = select(&mut local, mac(1), ip, T0);
    assert!(
        out.if_refused.is_none() && out.network.is_none(),
        "nothing to check alone"
    );
    let mut e = Engine::new(shared_config(), vec![]);
    assert!(e.shared_store);
    let ip = discover(&mut e, mac(1), T0);
    let out = select(&mut e, mac(1), ip, T0);
    let nak = out.if_refused.expect("a DHCPNAK for a refused commit");
    assert_eq!(nak.msg.message_type(), Some(MessageType::Nak));
    // A binding another server made, then expired here: changed by this
    // server, so not REMOTE.
    let mut b = out.commit.expect("binding");
    b.data_source = leaseline_proto::DATA_SOURCE_REMOTE;
    e.apply_remote(vec![b]);
    let expired = e.tick(T0 + 300);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].data_source, 0);
}

#[test]
fn a_failed_commit_is_undone_so_the_client_keeps_its_stored_lease() {
    let mut e = Engine::new(shared_config(), vec![]);
    let held = dora(&mut e, mac(1), T0);
    // The client releases; the store was away, so the RELEASE was not
    // stored: the engine puts the binding back.
    let mut rel = msg(MessageType::Release, mac(1));
    rel.ciaddr = held;
    let out = e.handle(&rel, Ingress::Listen, T0 + 1).expect("release");
    e.undo(out.undo.expect("an undo for a shared store"));
    assert_eq!(e.binding(held).map(|b| b.state), Some(DhcpState::Active));
    // Another client is not offered the address the store still holds.
    assert_ne!(discover(&mut e, mac(2), T0 + 2), held);
    // A first grant whose commit failed: forgotten, the client asks again.
    let ip = discover(&mut e, mac(3), T0 + 3);
    let out = select(&mut e, mac(3), ip, T0 + 3);
    e.undo(out.undo.expect("undo"));
    assert!(e.binding(ip).is_none());
}

#[test]
fn a_refused_change_leaves_the_engine_with_what_the_store_holds() {
    let mut e = Engine::new(shared_config(), vec![]);
    let ip = discover(&mut e, mac(1), T0);
    let mine = select(&mut e, mac(1), ip, T0).commit.expect("binding");
    // The store held another client's lease there.
    let mut theirs = mine.clone();
    theirs.chaddr = mac(2).to_vec();
    e.follow_stored(&[(ip, Some(theirs))]);
    assert_eq!(
        e.binding(ip).map(|b| b.chaddr.clone()),
        Some(mac(2).to_vec())
    );
    assert_ne!(discover(&mut e, mac(1), T0 + 1), ip);
}

#[test]
fn an_undone_release_keeps_the_lease_the_client_got_since() {
    let mut e = Engine::new(shared_config(), vec![]);
    let first = dora(&mut e, mac(1), T0);
    let mut rel = msg(MessageType::Release, mac(1));
    rel.ciaddr = first;
    let release = e.handle(&rel, Ingress::Listen, T0 + 1).expect("release");
    // The client then takes another address (committed); then the
    // RELEASE's commit fails, and the engine puts its lease back.
    let other = Ipv4Addr::new(10, 0, 0, 15);
    let second = select(&mut e, mac(1), other, T0 + 2);
    assert!(second.commit.is_some(), "a grant of {other}");
    e.undo(release.undo.expect("undo"));
    assert_eq!(e.binding(first).map(|b| b.state), Some(DhcpState::Active));
    // The client is offered the lease it got last, not the older one.
    assert_eq!(discover(&mut e, mac(1), T0 + 3), other);
}

#[test]
fn a_grant_refused_as_a_second_lease_sends_the_client_back_to_its_lease() {
    let mut e = Engine::new(shared_config(), vec![]);
    let ip = discover(&mut e, mac(1), T0);
    let out = select(&mut e, mac(1), ip, T0);
    let network = out.network.expect("a grant names its network");
    assert_eq!(
        network,
        (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255))
    );
    // The store refuses: through another server, the client holds another
    // address, which this engine had not seen.
    let mut held = out.commit.expect("binding");
    held.ip = Ipv4Addr::new(10, 0, 0, 15);
    held.data_source = leaseline_proto::DATA_SOURCE_REMOTE;
    e.follow_stored(&[(ip, None), (held.ip, Some(held.clone()))]);
    assert_eq!(discover(&mut e, mac(1), T0 + 1), held.ip);
    // A renewal names its network too: the store ends a second lease the
    // copy does not know of.
    let mut renew = msg(MessageType::Request, mac(1));
    renew.ciaddr = held.ip;
    let out = e.handle(&renew, Ingress::Listen, T0 + 2).expect("a reply");
    assert!(out.commit.is_some());
    assert_eq!(out.network, Some(network), "a renewal is checked too");
}

#[test]
fn with_a_shared_store_a_renewal_the_copy_would_nak_is_left_to_the_store() {
    let mut e = Engine::new(shared_config(), vec![]);
    let ip = dora(&mut e, mac(1), T0);
    // The copy says another client holds the address (a row it had not
    // yet seen change again, say).
    let mut theirs = select(&mut Engine::new(config(""), vec![]), mac(2), ip, T0)
        .commit
        .expect("their binding");
    theirs.data_source = leaseline_proto::DATA_SOURCE_REMOTE;
    e.apply_remote(vec![theirs]);
    let mut renew = msg(MessageType::Request, mac(1));
    renew.ciaddr = ip;
    let out = e.handle(&renew, Ingress::Listen, T0 + 10).expect("a reply");
    // Committed for the store to decide: a DHCPACK if the store holds the
    // client's lease, the DHCPNAK if it refuses.
    assert_eq!(out.commit.map(|b| b.chaddr), Some(mac(1).to_vec()));
    assert_eq!(
        out.if_refused.and_then(|r| r.msg.message_type()),
        Some(MessageType::Nak)
    );
    // Outside the pools, the copy's DHCPNAK stands.
    let mut stray = msg(MessageType::Request, mac(1));
    stray.ciaddr = Ipv4Addr::new(10, 0, 0, 200);
    let out = e.handle(&stray, Ingress::Listen, T0 + 10).expect("a reply");
    assert!(out.commit.is_none());
    assert_eq!(
        out.reply.and_then(|r| r.msg.message_type()),
        Some(MessageType::Nak)
    );
}

#[test]
fn a_second_discover_before_the_request_is_offered_the_same_address() {
    let mut e = Engine::new(config(""), vec![]);
    let first = discover(&mut e, mac(1), T0);
    // Another client in between moves the pool's cursor on.
    let other = discover(&mut e, mac(2), T0);
    assert_ne!(other, first);
    assert_eq!(discover(&mut e, mac(1), T0 + 1), first);
    // Both exchanges' REQUESTs: one address for the client.
    assert_eq!(dora(&mut e, mac(1), T0 + 2), first);
    assert_eq!(discover(&mut e, mac(1), T0 + 3), first);
}

fn kind(out: &Outcome) -> Option<MessageType> {
    out.reply.as_ref().and_then(|r| r.msg.message_type())
}

/// Found by the instances test under heavy load: perfdhcp runs overlapping
/// exchanges for one MAC, and a DHCPREQUEST for an address offered before
/// the client got its lease came after: ACKed, the client held two.
#[test]
fn a_request_for_another_address_while_the_client_holds_a_lease_is_naked() {
    let mut e = Engine::new(config(""), vec![]);
    let held = dora(&mut e, mac(1), T0);
    let other = Ipv4Addr::new(10, 0, 0, 15);
    assert_ne!(held, other);
    // SELECTING for another (free) address.
    let out = select(&mut e, mac(1), other, T0 + 1);
    assert_eq!(kind(&out), Some(MessageType::Nak));
    assert!(out.commit.is_none());
    // INIT-REBOOT for it.
    let mut q = msg(MessageType::Request, mac(1));
    q.options.push(DhcpOption::RequestedIp(other));
    let out = e.handle(&q, Ingress::Listen, T0 + 1).expect("a reply");
    assert_eq!(kind(&out), Some(MessageType::Nak));
    // Back to DISCOVER: the lease it holds.
    assert_eq!(discover(&mut e, mac(1), T0 + 2), held);
    // The address is still free for another client.
    assert_eq!(
        select(&mut e, mac(2), other, T0 + 2).commit.map(|b| b.ip),
        Some(other)
    );
    // Once the lease has lapsed the client may take another.
    let later = T0 + 301;
    let out = select(&mut e, mac(1), Ipv4Addr::new(10, 0, 0, 16), later);
    assert_eq!(kind(&out), Some(MessageType::Ack));
}

#[test]
fn of_two_leases_a_client_holds_only_its_current_one_renews() {
    let cfg = config("");
    let mut e = Engine::new(Arc::clone(&cfg), vec![]);
    let a = dora(&mut e, mac(1), T0);
    let first = e.leases.get(&u32::from(a)).map(|b| (**b).clone()).unwrap();
    // Two active bindings of one client (an older build, or a database
    // written by several servers): the later one is its current lease.
    let mut second = first.clone();
    second.ip = Ipv4Addr::new(10, 0, 0, 18);
    let mut e = Engine::new(cfg, vec![first, second.clone()]);
    let renew = |e: &mut Engine, ip: Ipv4Addr| {
        let mut q = msg(MessageType::Request, mac(1));
        q.ciaddr = ip;
        kind(&e.handle(&q, Ingress::Listen, T0 + 10).expect("a reply"))
    };
    assert_eq!(renew(&mut e, a), Some(MessageType::Nak));
    assert_eq!(renew(&mut e, second.ip), Some(MessageType::Ack));
}

#[test]
fn a_lease_in_another_network_does_not_count() {
    let mut e = Engine::new(
        config(
            "[[subnet]]\nprefix = \"10.0.1.0/24\"\npools = [\"10.0.1.10-10.0.1.19\"]\n\
             relay_addresses = [\"127.0.0.2\"]\nlease_time = 300",
        ),
        vec![],
    );
    let here = dora(&mut e, mac(1), T0);
    let mut d = msg(MessageType::Discover, mac(1));
    d.giaddr = Ipv4Addr::new(127, 0, 0, 2);
    let there = e
        .handle(&d, Ingress::Listen, T0)
        .expect("an offer")
        .reply
        .unwrap()
        .msg
        .yiaddr;
    let mut q = msg(MessageType::Request, mac(1));
    q.giaddr = Ipv4Addr::new(127, 0, 0, 2);
    q.options.push(DhcpOption::ServerId(SID));
    q.options.push(DhcpOption::RequestedIp(there));
    let out = e.handle(&q, Ingress::Listen, T0).expect("a reply");
    assert_eq!(
        kind(&out),
        Some(MessageType::Ack),
        "{here} is in another network"
    );
}

#[test]
fn pool_usage_counts_each_pools_leased_and_declined_addresses() {
    let text = r#"
[server]
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:1067"
[[subnet]]
prefix = "10.0.0.0/24"
pools = ["10.0.0.10-10.0.0.11", "10.0.0.100-10.0.0.109"]
relay_addresses = ["127.0.0.1"]
"#;
    let cfg = Arc::new(Config::parse(text, "test").expect("valid"));
    let mut e = Engine::new(cfg, Vec::new());
    let empty = e.pool_usage();
    assert_eq!(empty.len(), 2);
    assert_eq!((empty[0].total, empty[1].total), (2, 10));
    assert!(empty.iter().all(|p| p.assigned == 0 && p.declined == 0));
    // Three clients: the first pool fills, the third goes to the second.
    let ips: Vec<Ipv4Addr> = (1..=3).map(|n| dora(&mut e, mac(n), T0)).collect();
    // The third declines its address (RFC 2131 §4.3.3): held back, not leased.
    let mut d = msg(MessageType::Decline, mac(3));
    d.options.push(DhcpOption::ServerId(SID));
    d.options.push(DhcpOption::RequestedIp(ips[2]));
    e.handle(&d, Ingress::Listen, T0 + 1)
        .expect("decline handled");
    let used = e.pool_usage();
    assert_eq!(
        (used[0].first, used[0].assigned, used[0].declined),
        (Ipv4Addr::new(10, 0, 0, 10), 2, 0)
    );
    assert_eq!(
        (used[1].first, used[1].assigned, used[1].declined),
        (Ipv4Addr::new(10, 0, 0, 100), 0, 1)
    );
}

#[test]
fn free_makes_a_held_address_available_and_only_once() {
    let mut e = Engine::new(config(""), Vec::new());
    let ip = dora(&mut e, mac(1), T0);
    let freed = e.free(ip, T0 + 5).expect("a binding to free");
    assert_eq!(
        (freed.state, freed.state_since, freed.expiry),
        (DhcpState::Available, T0 + 5, 0)
    );
    assert_eq!(e.binding(ip).map(|b| b.state), Some(DhcpState::Available));
    assert!(e.free(ip, T0 + 6).is_none(), "already free");
    assert!(
        e.free(Ipv4Addr::new(10, 0, 0, 19), T0).is_none(),
        "never leased"
    );
    // Nothing of it is left to expire.
    assert!(e.tick(T0 + 10_000).is_empty());
}
