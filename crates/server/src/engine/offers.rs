//! Outstanding DHCPOFFERs (RFC 2131 §4.3.1): by address, an offer holds
//! the address from other clients until it runs out; by client, a client
//! that sends DHCPDISCOVER again before its DHCPREQUEST (a retransmission,
//! or a second exchange of the same client) is offered the same address,
//! not a second one.

use std::collections::HashMap;

use super::client::ClientKey;

/// An address offered to a client: held in memory only, never durably
/// (RFC 2131 §4.3.1 lets the server reserve it briefly).
struct Offer {
    key: ClientKey,
    until: u32,
}

/// At most one offer per client and per address.
#[derive(Default)]
pub(super) struct Offers {
    by_ip: HashMap<u32, Offer, super::Fast>,
    by_client: HashMap<ClientKey, u32, super::Fast>,
}

impl Offers {
    /// Offer `ip` to `key` until `until`; the client's earlier offer of
    /// another address, and another client's offer of this one, end.
    pub(super) fn make(&mut self, ip: u32, key: &ClientKey, until: u32) {
        if let Some(old) = self.by_client.insert(key.clone(), ip) {
            if old != ip && self.by_ip.get(&old).is_some_and(|o| &o.key == key) {
                self.by_ip.remove(&old);
            }
        }
        let offer = Offer {
            key: key.clone(),
            until,
        };
        if let Some(prev) = self.by_ip.insert(ip, offer) {
            if &prev.key != key && self.by_client.get(&prev.key) == Some(&ip) {
                self.by_client.remove(&prev.key);
            }
        }
    }

    /// The offer of `ip` ends (the address was bound).
    pub(super) fn withdraw(&mut self, ip: u32) {
        if let Some(o) = self.by_ip.remove(&ip) {
            if self.by_client.get(&o.key) == Some(&ip) {
                self.by_client.remove(&o.key);
            }
        }
    }

    /// The client's offer ends (it chose another server).
    pub(super) fn withdraw_client(&mut self, key: &ClientKey) {
        if let Some(ip) = self.by_client.remove(key) {
            if self.by_ip.get(&ip).is_some_and(|o| &o.key == key) {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Offers that ran out by `now` end.
    pub(super) fn expire(&mut self, now: u32) {
        self.by_ip.retain(|_, o| o.until > now);
        let by_ip = &self.by_ip;
        self.by_client
            .retain(|k, ip| by_ip.get(ip).is_some_and(|o| &o.key == k));
    }

    /// Whether `ip` is offered to a client other than `key` at `now`.
    pub(super) fn held_from(&self, ip: u32, key: &ClientKey, now: u32) -> bool {
        self.by_ip
            .get(&ip)
            .is_some_and(|o| o.until > now && &o.key != key)
    }

    /// The address offered to `key`, if its offer still runs at `now`.
    pub(super) fn of_client(&self, key: &ClientKey, now: u32) -> Option<u32> {
        let ip = *self.by_client.get(key)?;
        self.by_ip
            .get(&ip)
            .is_some_and(|o| o.until > now && &o.key == key)
            .then_some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ClientKey {
        ClientKey::Hw {
            htype: 1,
            addr: vec![2, 0, 0, 0, 0, n].into(),
        }
    }

    #[test]
    fn a_client_has_one_offer_and_an_address_one_client() {
        let mut o = Offers::default();
        o.make(10, &key(1), 100);
        assert_eq!(o.of_client(&key(1), 50), Some(10));
        assert!(o.held_from(10, &key(2), 50));
        assert!(!o.held_from(10, &key(1), 50));
        // Offered another address: the first is free again.
        o.make(11, &key(1), 100);
        assert!(!o.held_from(10, &key(2), 50));
        assert_eq!(o.of_client(&key(1), 50), Some(11));
        // Another client offered that address: the first client's ends.
        o.make(11, &key(2), 100);
        assert_eq!(o.of_client(&key(1), 50), None);
        assert_eq!(o.of_client(&key(2), 50), Some(11));
    }

    #[test]
    fn offers_end_when_bound_withdrawn_or_run_out() {
        let mut o = Offers::default();
        o.make(10, &key(1), 100);
        o.make(11, &key(2), 100);
        o.make(12, &key(3), 200);
        o.withdraw(10);
        assert_eq!(o.of_client(&key(1), 50), None);
        o.withdraw_client(&key(2));
        assert!(!o.held_from(11, &key(9), 50));
        assert_eq!(o.of_client(&key(3), 100), Some(12));
        o.expire(200);
        assert_eq!(o.of_client(&key(3), 150), None);
        assert!(o.by_client.is_empty() && o.by_ip.is_empty());
    }
}
