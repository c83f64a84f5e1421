//! The parameter request lists (option 55) the requestor sends unless told
//! otherwise, defined once here.
//!
//! Bulk and Active Leasequery answer with the same binding messages (RFC
//! 7724 §4), so `bulk`, `watch` and `mirror` ask for the same options:
//! [`BINDINGS`]. A UDP Leasequery answer is another message (RFC 4388
//! §6.4.2: remaining T1/T2 and associated addresses, no base-time), so
//! `query` asks for [`UDP`].

use leaseline_wire::code;

/// Bulk and Active Leasequery (`bulk`, `watch`, `mirror`): what a replica
/// needs (RFC 6926 §6.2). Not 58/59: the server leaves a remaining T1/T2
/// out once it is reached, so a replica keeping them would see a later
/// answer about an unchanged binding differ.
pub const BINDINGS: &[u8] = &[
    code::LEASE_TIME,
    code::CLIENT_ID,
    code::RELAY_AGENT_INFO,
    code::CLIENT_LAST_TRANSACTION_TIME,
    code::BASE_TIME,
    code::START_TIME_OF_STATE,
    code::DHCP_STATE,
    code::DATA_SOURCE,
    code::HOSTNAME,
    code::VENDOR_CLASS_ID,
];

/// UDP Leasequery (`query`): lease, T1 and T2 remaining, client-id, relay
/// agent information, client-last-transaction-time and associated-ip
/// (RFC 4388 §6.2; RFC 6148 §4.1 requires 92 for by-remote-id).
pub const UDP: &[u8] = &[
    code::LEASE_TIME,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
    code::CLIENT_ID,
    code::RELAY_AGENT_INFO,
    code::CLIENT_LAST_TRANSACTION_TIME,
    code::ASSOCIATED_IP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_what_they_were() {
        assert_eq!(UDP, [51, 58, 59, 61, 82, 91, 92]);
        assert_eq!(BINDINGS, [51, 61, 82, 91, 152, 153, 156, 157, 12, 60]);
    }
}
