//! May a binding change replace what the shared store holds? Several
//! servers on one database each decide from their own copy of the
//! bindings; the store checks each change against the row it holds, in the
//! writing transaction, with the rule the deciding engine applied
//! (RFC 2131 §4.3). A change made from a stale copy is refused, never
//! stored and never answered with a DHCPACK.

use crate::{Binding, DhcpState};

/// The store's verdict on one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Store it.
    Write,
    /// Another server changed the row first; the change is not stored.
    Refuse(&'static str),
}

/// `stored`: the row as committed (None: never leased); `change`: the new
/// binding, whose own times say when it was decided (`cltt` for a grant,
/// `state_since` for a state change).
pub fn overwrite(stored: Option<&Binding>, change: &Binding) -> Overwrite {
    let Some(stored) = stored else {
        // Never leased: nobody else can hold it.
        return Overwrite::Write;
    };
    let same_client = same_client(stored, change);
    match change.state {
        // RFC 2131 §4.3.1/§4.3.2: an address goes to a client when it is
        // that client's, or free: no live lease of another client.
        DhcpState::Active => {
            if same_client {
                return Overwrite::Write;
            }
            match stored.state {
                DhcpState::Available | DhcpState::Released | DhcpState::Expired => Overwrite::Write,
                DhcpState::Active | DhcpState::Abandoned if stored.expiry <= change.cltt => {
                    Overwrite::Write
                }
                DhcpState::Active => Overwrite::Refuse("leased to another client"),
                DhcpState::Abandoned => Overwrite::Refuse("declined, still on hold"),
                DhcpState::Reset | DhcpState::Remote | DhcpState::Transitioning => {
                    Overwrite::Refuse("held for another client")
                }
            }
        }
        // RFC 2131 §4.3.4 (RELEASE), §4.3.3 (DECLINE): only the client
        // holding the address gives it up.
        DhcpState::Released | DhcpState::Abandoned => {
            let held = matches!(stored.state, DhcpState::Active | DhcpState::Expired);
            if same_client && held {
                Overwrite::Write
            } else {
                Overwrite::Refuse("not bound to this client any more")
            }
        }
        // A lease running out (RFC 2131 §4.4.5 on the client's side): only
        // if nobody renewed it meanwhile.
        DhcpState::Expired => {
            let lapsed = stored.state == DhcpState::Active && stored.expiry <= change.state_since;
            if same_client && lapsed {
                Overwrite::Write
            } else {
                Overwrite::Refuse("renewed or changed by another server")
            }
        }
        // The end of a grace or hold period, back to the pool.
        DhcpState::Available => {
            let waiting = matches!(
                stored.state,
                DhcpState::Expired | DhcpState::Released | DhcpState::Abandoned
            );
            if same_client && waiting && stored.expiry <= change.state_since {
                Overwrite::Write
            } else {
                Overwrite::Refuse("leased again by another server")
            }
        }
        // Not made by the DHCP engine: an operator's change wins.
        DhcpState::Reset | DhcpState::Remote | DhcpState::Transitioning => Overwrite::Write,
    }
}

/// Both bindings name the same client: by client-identifier when the
/// binding has one, else by hardware address (RFC 2131 §4.2).
pub fn same_client(a: &Binding, b: &Binding) -> bool {
    ClientOf::of(a) == ClientOf::of(b)
}

/// Who a binding's client is, as [`same_client`] tells clients apart: its
/// client-id, or the hardware address of a client without one (a key to
/// index bindings by client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientOf<'a> {
    Id(&'a [u8]),
    Hardware(u8, &'a [u8]),
}

impl<'a> ClientOf<'a> {
    pub fn of(b: &'a Binding) -> Self {
        match &b.client_id {
            Some(id) => ClientOf::Id(id),
            None => ClientOf::Hardware(b.htype, &b.chaddr),
        }
    }
}

/// A new lease for a client in a network (first and last address) while
/// it holds another there? `change` is the grant; `stored` the store's rows
/// of that client's live leases in the network (as committed, or as changed
/// earlier in the same commit). A copy that had not yet seen the client's
/// lease made through another server offers the client a second address;
/// RFC 2131 §4.3.1 gives a client its current address, so the store refuses
/// the grant and returns the lease the client holds (its DHCPNAK sends the
/// client back to DISCOVER, and the deciding server now offers that lease).
/// A renewal of the address the client holds is never a second lease.
pub fn second_lease<'a>(
    change: &Binding,
    network: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    stored: impl IntoIterator<Item = &'a Binding>,
) -> Option<&'a Binding> {
    if change.state != DhcpState::Active {
        return None;
    }
    stored.into_iter().find(|held| {
        held.ip != change.ip
            && (network.0..=network.1).contains(&held.ip)
            && held.state == DhcpState::Active
            && held.expiry > change.cltt
            && same_client(held, change)
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn binding(mac: u8, state: DhcpState, expiry: u32) -> Binding {
        Binding {
            ip: Ipv4Addr::new(10, 0, 0, 10),
            state,
            htype: 1,
            chaddr: vec![2, 0, 0, 0, 0, mac],
            client_id: None,
            expiry,
            cltt: 100,
            state_since: 100,
            data_source: 0,
            relay_info: None,
            circuit_id: None,
            remote_id: None,
            relay_id: None,
            vendor_class_id: None,
            hostname: None,
            lease_time: 0,
            renew_time: None,
            rebind_time: None,
        }
    }

    fn at(mut b: Binding, t: u32) -> Binding {
        b.cltt = t;
        b.state_since = t;
        b
    }

    #[test]
    fn a_never_leased_address_is_written() {
        let ack = at(binding(1, DhcpState::Active, 1000), 200);
        assert_eq!(overwrite(None, &ack), Overwrite::Write);
    }

    #[test]
    fn a_grant_to_the_holder_is_written() {
        let stored = binding(1, DhcpState::Active, 1000);
        let renew = at(binding(1, DhcpState::Active, 2000), 500);
        assert_eq!(overwrite(Some(&stored), &renew), Overwrite::Write);
    }

    #[test]
    fn a_grant_over_a_free_state_is_written() {
        for state in [
            DhcpState::Available,
            DhcpState::Released,
            DhcpState::Expired,
        ] {
            let stored = binding(1, state, 1000);
            let ack = at(binding(2, DhcpState::Active, 2000), 500);
            assert_eq!(
                overwrite(Some(&stored), &ack),
                Overwrite::Write,
                "{state:?}"
            );
        }
    }

    #[test]
    fn a_grant_over_another_clients_live_lease_is_refused() {
        let stored = binding(1, DhcpState::Active, 1000);
        let ack = at(binding(2, DhcpState::Active, 2000), 500);
        assert_eq!(
            overwrite(Some(&stored), &ack),
            Overwrite::Refuse("leased to another client")
        );
    }

    #[test]
    fn a_grant_over_a_lapsed_lease_or_hold_is_written() {
        for state in [DhcpState::Active, DhcpState::Abandoned] {
            let stored = binding(1, state, 1000);
            let ack = at(binding(2, DhcpState::Active, 2000), 1000);
            assert_eq!(
                overwrite(Some(&stored), &ack),
                Overwrite::Write,
                "{state:?}"
            );
        }
    }

    #[test]
    fn a_grant_over_a_declined_address_on_hold_is_refused() {
        let stored = binding(1, DhcpState::Abandoned, 1000);
        let ack = at(binding(2, DhcpState::Active, 2000), 999);
        assert_eq!(
            overwrite(Some(&stored), &ack),
            Overwrite::Refuse("declined, still on hold")
        );
    }

    #[test]
    fn a_grant_over_an_operators_hold_is_refused() {
        let stored = binding(1, DhcpState::Reset, 0);
        let ack = at(binding(2, DhcpState::Active, 2000), 500);
        assert_eq!(
            overwrite(Some(&stored), &ack),
            Overwrite::Refuse("held for another client")
        );
    }

    #[test]
    fn a_client_id_decides_over_the_hardware_address() {
        let mut stored = binding(1, DhcpState::Active, 1000);
        stored.client_id = Some(b"\x01client".to_vec());
        // Same MAC, another client-id: another client.
        let mut ack = at(binding(1, DhcpState::Active, 2000), 500);
        ack.client_id = Some(b"\x01other".to_vec());
        assert!(matches!(
            overwrite(Some(&stored), &ack),
            Overwrite::Refuse(_)
        ));
        // Same client-id from another MAC: the same client.
        let mut moved = at(binding(9, DhcpState::Active, 2000), 500);
        moved.client_id = stored.client_id.clone();
        assert_eq!(overwrite(Some(&stored), &moved), Overwrite::Write);
    }

    #[test]
    fn a_release_or_decline_by_the_holder_is_written() {
        for held in [DhcpState::Active, DhcpState::Expired] {
            let stored = binding(1, held, 1000);
            for give_up in [DhcpState::Released, DhcpState::Abandoned] {
                let change = at(binding(1, give_up, 1600), 500);
                assert_eq!(overwrite(Some(&stored), &change), Overwrite::Write);
            }
        }
    }

    #[test]
    fn a_release_by_a_former_holder_is_refused() {
        let stored = binding(2, DhcpState::Active, 1000);
        let release = at(binding(1, DhcpState::Released, 1600), 500);
        assert!(matches!(
            overwrite(Some(&stored), &release),
            Overwrite::Refuse(_)
        ));
        let stored = binding(1, DhcpState::Released, 1000);
        assert!(matches!(
            overwrite(Some(&stored), &release),
            Overwrite::Refuse(_)
        ));
    }

    #[test]
    fn expiry_of_a_lease_nobody_renewed_is_written() {
        let stored = binding(1, DhcpState::Active, 1000);
        let expired = at(binding(1, DhcpState::Expired, 1600), 1000);
        assert_eq!(overwrite(Some(&stored), &expired), Overwrite::Write);
    }

    #[test]
    fn expiry_of_a_lease_renewed_elsewhere_is_refused() {
        let stored = binding(1, DhcpState::Active, 5000);
        let expired = at(binding(1, DhcpState::Expired, 1600), 1000);
        assert!(matches!(
            overwrite(Some(&stored), &expired),
            Overwrite::Refuse(_)
        ));
        let taken = binding(2, DhcpState::Active, 900);
        assert!(matches!(
            overwrite(Some(&taken), &expired),
            Overwrite::Refuse(_)
        ));
    }

    #[test]
    fn return_to_the_pool_after_the_grace_is_written() {
        for state in [
            DhcpState::Expired,
            DhcpState::Released,
            DhcpState::Abandoned,
        ] {
            let stored = binding(1, state, 1600);
            let freed = at(binding(1, DhcpState::Available, 0), 1600);
            assert_eq!(overwrite(Some(&stored), &freed), Overwrite::Write);
        }
    }

    #[test]
    fn return_to_the_pool_of_a_leased_again_address_is_refused() {
        let stored = binding(2, DhcpState::Active, 5000);
        let freed = at(binding(1, DhcpState::Available, 0), 1600);
        assert!(matches!(
            overwrite(Some(&stored), &freed),
            Overwrite::Refuse(_)
        ));
        let renewed_grace = binding(1, DhcpState::Expired, 3000);
        assert!(matches!(
            overwrite(Some(&renewed_grace), &freed),
            Overwrite::Refuse(_)
        ));
    }

    #[test]
    fn an_operators_change_is_written() {
        let stored = binding(2, DhcpState::Active, 5000);
        let reset = at(binding(1, DhcpState::Reset, 0), 1600);
        assert_eq!(overwrite(Some(&stored), &reset), Overwrite::Write);
    }

    fn on(b: Binding, ip: [u8; 4]) -> Binding {
        Binding {
            ip: Ipv4Addr::from(ip),
            ..b
        }
    }

    const NET: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(10, 0, 0, 255));

    #[test]
    fn a_grant_while_the_client_holds_another_live_lease_there_is_a_second_lease() {
        let held = on(binding(1, DhcpState::Active, 1000), [10, 0, 0, 20]);
        let ack = at(binding(1, DhcpState::Active, 2000), 500);
        assert_eq!(second_lease(&ack, NET, [&held]), Some(&held));
    }

    #[test]
    fn a_renewal_of_the_held_address_is_not_a_second_lease() {
        let held = binding(1, DhcpState::Active, 1000);
        let renew = at(binding(1, DhcpState::Active, 2000), 500);
        assert_eq!(second_lease(&renew, NET, [&held]), None);
    }

    #[test]
    fn another_clients_lease_a_lapsed_one_or_one_elsewhere_is_not_a_second_lease() {
        let ack = at(binding(1, DhcpState::Active, 2000), 500);
        let other_client = on(binding(2, DhcpState::Active, 1000), [10, 0, 0, 20]);
        let lapsed = on(binding(1, DhcpState::Active, 500), [10, 0, 0, 21]);
        let released = on(binding(1, DhcpState::Released, 1000), [10, 0, 0, 22]);
        let other_network = on(binding(1, DhcpState::Active, 1000), [10, 0, 1, 20]);
        assert_eq!(
            second_lease(
                &ack,
                NET,
                [&other_client, &lapsed, &released, &other_network]
            ),
            None
        );
    }

    #[test]
    fn a_state_change_is_never_a_second_lease() {
        let held = on(binding(1, DhcpState::Active, 1000), [10, 0, 0, 20]);
        let release = at(binding(1, DhcpState::Released, 1000), 500);
        assert_eq!(second_lease(&release, NET, [&held]), None);
    }
}
