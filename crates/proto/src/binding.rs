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

/// RFC 6926 §6.2.9 data-source flag: the binding was learned from another server.
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
    /// Lease length granted at the last ACK, seconds (for T1/T2 and option 51).
    pub lease_time: u32,
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

    /// Start of the current grant: `expiry - lease_time` when both are known,
    /// else the CLTT.
    fn grant_start(&self) -> u32 {
        match self.expiry.checked_sub(self.lease_time) {
            Some(s) if self.lease_time != 0 && self.expiry != 0 => s,
            _ => self.cltt,
        }
    }

    /// Remaining time until `grant_start + lease_time * num / den`, if the
    /// lease is valid and that point is still in the future.
    fn remaining_fraction(&self, now: u32, num: u64, den: u64) -> Option<u32> {
        self.remaining_lease(now)?;
        if self.lease_time == 0 {
            return None;
        }
        let at = u64::from(self.grant_start()) + u64::from(self.lease_time) * num / den;
        let now = u64::from(now);
        // Only a grant start in the future could make this exceed u32; then
        // the option is left out rather than wrapped.
        (at > now).then(|| u32::try_from(at - now).ok()).flatten()
    }

    /// Remaining time until renewal (T1 = lease/2 after the grant), RFC 4388
    /// §6.4.2: only while the lease is valid and T1 is not yet past.
    pub fn remaining_t1(&self, now: u32) -> Option<u32> {
        self.remaining_fraction(now, 1, 2)
    }

    /// Remaining time until rebinding (T2 = lease*7/8 after the grant),
    /// RFC 4388 §6.4.2.
    pub fn remaining_t2(&self, now: u32) -> Option<u32> {
        self.remaining_fraction(now, 7, 8)
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
