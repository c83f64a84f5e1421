//! The binding model shared by the engine, the store and the leasequery
//! replies.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// RFC 6926 §6.2.8 dhcp-state values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
#[serde(rename_all = "UPPERCASE")]
pub enum DhcpState {
    Available = 1,
    Active = 2,
    Expired = 3,
    Released = 4,
    Abandoned = 5,
    Reset = 6,
    Remote = 7,
    Transitioning = 8,
}

impl DhcpState {
    pub fn from_u8(v: u8) -> Option<Self> {
        use DhcpState::*;
        Some(match v {
            1 => Available,
            2 => Active,
            3 => Expired,
            4 => Released,
            5 => Abandoned,
            6 => Reset,
            7 => Remote,
            8 => Transitioning,
            _ => return None,
        })
    }
    pub fn as_u8(self) -> u8 {
        self as u8
    }
    pub fn name(self) -> &'static str {
        use DhcpState::*;
        match self {
            Available => "AVAILABLE",
            Active => "ACTIVE",
            Expired => "EXPIRED",
            Released => "RELEASED",
            Abandoned => "ABANDONED",
            Reset => "RESET",
            Remote => "REMOTE",
            Transitioning => "TRANSITIONING",
        }
    }
    /// True when the address is held by a client (answers DHCPLEASEACTIVE).
    pub fn is_leased(self) -> bool {
        matches!(self, DhcpState::Active)
    }
}

/// RFC 6926 §6.2.8 data-source REMOTE flag: the binding's latest change
/// was made by another server.
pub const DATA_SOURCE_REMOTE: u8 = 0x01;

/// One address's binding, as stored. All times are absolute u32 seconds of
/// the server clock (Unix epoch); the wire carries ages computed at build time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub ip: Ipv4Addr,
    pub state: DhcpState,
    pub htype: u8,
    /// Hardware address, `hlen` bytes (0..=16).
    pub chaddr: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    /// Absolute expiry of the lease (ACTIVE) or of the current state
    /// (e.g. ABANDONED hold, EXPIRED grace), 0 when none.
    pub expiry: u32,
    /// Absolute client-last-transaction-time (RFC 4388 §6.1, option 91 is its age).
    pub cltt: u32,
    /// Absolute time the current state started (option 153 is its age).
    pub state_since: u32,
    pub data_source: u8,
    /// Last option 82 as received (its payload, raw sub-options).
    pub relay_info: Option<Vec<u8>>,
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    pub relay_id: Option<Vec<u8>>,
    pub vendor_class_id: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
    /// Lease length granted at the last ACK, seconds (option 51 as sent).
    pub lease_time: u32,
    /// Renewal time (T1) granted at the last ACK (option 58 as sent), seconds
    /// after the grant start ([`Binding::grant_start`]). `None` when not
    /// known (a row stored before the grant was kept, or learned without
    /// it): then option 58 is not reported rather than guessed.
    #[serde(default)]
    pub renew_time: Option<u32>,
    /// Rebinding time (T2) granted at the last ACK (option 59 as sent), like
    /// `renew_time`.
    #[serde(default)]
    pub rebind_time: Option<u32>,
}

impl Binding {
    /// A binding row for an address that has never been leased.
    pub fn available(ip: Ipv4Addr) -> Self {
        Binding {
            ip,
            state: DhcpState::Available,
            htype: 0,
            chaddr: Vec::new(),
            client_id: None,
            expiry: 0,
            cltt: 0,
            state_since: 0,
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
}

/// Derived values for replies. All take `now` and never underflow.
impl Binding {
    /// `hlen` for this binding's hardware address (at most 16).
    pub fn hlen(&self) -> u8 {
        self.chaddr.len().min(16) as u8
    }

    /// Seconds until the lease expires, when there is a currently valid
    /// lease (ACTIVE and expiry in the future). RFC 4388 §6.4.2 option 51.
    pub fn remaining_lease(&self, now: u32) -> Option<u32> {
        (self.state.is_leased() && self.expiry > now).then(|| self.expiry - now)
    }

    /// Seconds until the current state times out, whatever the state, when
    /// it has a timeout in the future. RFC 6926 §8.3 item 4 (option 51 "for
    /// any state that has a timeout value associated with it").
    pub fn remaining_state_time(&self, now: u32) -> Option<u32> {
        (self.expiry != 0 && self.expiry > now).then(|| self.expiry - now)
    }

    /// Start of the current grant, the instant the ACK's times count from:
    /// `expiry - lease_time` when both are known, else the CLTT (the engine
    /// sets both to the ACK's handling time).
    pub fn grant_start(&self) -> u32 {
        match self.expiry.checked_sub(self.lease_time) {
            Some(s) if self.lease_time != 0 && self.expiry != 0 => s,
            _ => self.cltt,
        }
    }

    /// Seconds from `now` until `grant_start + offset`, while the lease is
    /// valid and that instant is still ahead: at or after it the time has
    /// come and the option is left out (RFC 4388 §6.4.2 "MUST NOT return").
    fn remaining_after_grant(&self, now: u32, offset: Option<u32>) -> Option<u32> {
        let offset = offset?;
        self.remaining_lease(now)?;
        let at = u64::from(self.grant_start()) + u64::from(offset);
        let now = u64::from(now);
        // Only a grant start in the future could make this exceed u32; then
        // the option is left out rather than wrapped.
        (at > now).then(|| u32::try_from(at - now).ok()).flatten()
    }

    /// Option 58: seconds until renewal, the T1 granted to the client
    /// counted from the grant (RFC 4388 §6.4.2: the value the client's
    /// DHCPACK gave, less the time since). `None` when T1 is reached or
    /// past, the lease is not valid, or T1 is unknown.
    pub fn remaining_t1(&self, now: u32) -> Option<u32> {
        self.remaining_after_grant(now, self.renew_time)
    }

    /// Option 59: seconds until rebinding (the granted T2), as
    /// [`Binding::remaining_t1`].
    pub fn remaining_t2(&self, now: u32) -> Option<u32> {
        self.remaining_after_grant(now, self.rebind_time)
    }

    /// Option 91 value: seconds since the CLTT, when one is known (non-zero).
    pub fn cltt_age(&self, now: u32) -> Option<u32> {
        (self.cltt != 0).then(|| crate::time::age(now, self.cltt))
    }

    /// Option 153 value: seconds since the current state started.
    pub fn state_age(&self, now: u32) -> u32 {
        crate::time::age(now, self.state_since)
    }

    /// The stored option 82 payload, typed; `None` when absent or when the
    /// stored bytes do not parse.
    pub fn relay_agent_info(&self) -> Option<leaseline_wire::RelayAgentInfo> {
        self.relay_info
            .as_deref()
            .and_then(crate::relay::relay_info_from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u32 = 1_700_000_000;

    /// ACTIVE, granted at START: lease 60 s, T1 2 s, T2 4 s.
    fn granted() -> Binding {
        Binding {
            state: DhcpState::Active,
            expiry: START + 60,
            cltt: START,
            state_since: START,
            lease_time: 60,
            renew_time: Some(2),
            rebind_time: Some(4),
            ..Binding::available(Ipv4Addr::new(10, 0, 0, 1))
        }
    }

    fn times(b: &Binding, now: u32) -> (Option<u32>, Option<u32>, Option<u32>) {
        (
            b.remaining_lease(now),
            b.remaining_t1(now),
            b.remaining_t2(now),
        )
    }

    #[test]
    fn at_the_grant_the_values_sent() {
        assert_eq!(times(&granted(), START), (Some(60), Some(2), Some(4)));
    }

    #[test]
    fn t1_counts_down_then_is_omitted_at_and_after_it() {
        let b = granted();
        assert_eq!(times(&b, START + 1), (Some(59), Some(1), Some(3)));
        assert_eq!(times(&b, START + 2), (Some(58), None, Some(2)));
        assert_eq!(times(&b, START + 3), (Some(57), None, Some(1)));
    }

    #[test]
    fn t2_is_omitted_at_and_after_it() {
        let b = granted();
        assert_eq!(times(&b, START + 4), (Some(56), None, None));
        assert_eq!(times(&b, START + 5), (Some(55), None, None));
    }

    #[test]
    fn lease_is_omitted_at_and_after_expiry() {
        let b = granted();
        assert_eq!(times(&b, START + 59), (Some(1), None, None));
        assert_eq!(times(&b, START + 60), (None, None, None));
        assert_eq!(times(&b, START + 61), (None, None, None));
    }

    #[test]
    fn not_derived_from_the_lease_length() {
        // What was granted, not lease/2 and 7/8: T1 1000, T2 3000 of 3600.
        let mut b = granted();
        b.expiry = START + 3600;
        b.lease_time = 3600;
        b.renew_time = Some(1000);
        b.rebind_time = Some(3000);
        assert_eq!(times(&b, START + 600), (Some(3000), Some(400), Some(2400)));
        assert_eq!(times(&b, START + 1800), (Some(1800), None, Some(1200)));
    }

    #[test]
    fn unknown_grant_is_not_guessed() {
        // A row from before the grant was stored: the lease is still known.
        let mut b = granted();
        b.renew_time = None;
        b.rebind_time = None;
        assert_eq!(times(&b, START + 1), (Some(59), None, None));
    }

    #[test]
    fn counted_from_the_cltt_when_the_lease_length_is_unknown() {
        let mut b = granted();
        b.lease_time = 0;
        assert_eq!(times(&b, START + 1), (Some(59), Some(1), Some(3)));
    }

    #[test]
    fn not_leased_has_no_renewal_times() {
        for state in [
            DhcpState::Expired,
            DhcpState::Released,
            DhcpState::Abandoned,
        ] {
            let b = Binding { state, ..granted() };
            assert_eq!(times(&b, START + 1), (None, None, None), "{state:?}");
        }
    }
}
