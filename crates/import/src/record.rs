//! What a lease file says about one address, whatever the server that
//! wrote it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The state a record gives its address, in the writing server's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// dhcpd `active`, Kea state 0 (default).
    Active,
    /// dhcpd `free`: the address is available.
    Free,
    /// dhcpd `backup`: available, owned by the failover secondary.
    Backup,
    /// dhcpd `expired`, Kea state 2 (expired-reclaimed).
    Expired,
    /// dhcpd `released`.
    Released,
    /// dhcpd `abandoned`, Kea state 1 (declined).
    Abandoned,
    /// Kea: a record with valid_lifetime 0, written when a lease is deleted;
    /// Kea's loader drops the address's lease on reading it.
    Removed,
}

impl RecordState {
    pub fn name(self) -> &'static str {
        match self {
            RecordState::Active => "active",
            RecordState::Free => "free",
            RecordState::Backup => "backup",
            RecordState::Expired => "expired",
            RecordState::Released => "released",
            RecordState::Abandoned => "abandoned",
            RecordState::Removed => "removed",
        }
    }
}

/// One lease record. Times are Unix seconds (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Line the record starts on (1-based).
    pub line: u64,
    pub ip: Ipv4Addr,
    pub state: RecordState,
    /// Start of the lease (dhcpd `starts`; Kea: expire - valid_lifetime).
    pub starts: Option<u32>,
    /// End of the lease (dhcpd `ends`, Kea `expire`); `None`: never ends
    /// (dhcpd `ends never`) or not recorded.
    pub ends: Option<u32>,
    /// Client last transaction time (dhcpd `cltt`; Kea: the lease start).
    pub cltt: Option<u32>,
    /// Lease length granted (Kea valid_lifetime; dhcpd ends - starts).
    pub lease_time: Option<u32>,
    /// Hardware type (1 Ethernet) and address.
    pub hardware: Option<(u8, Vec<u8>)>,
    pub client_id: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
    pub vendor_class_id: Option<Vec<u8>>,
    /// Relay agent information sub-options as the server recorded them.
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
}

impl LeaseRecord {
    pub(crate) fn new(line: u64, ip: Ipv4Addr) -> Self {
        LeaseRecord {
            line,
            ip,
            state: RecordState::Free,
            starts: None,
            ends: None,
            cltt: None,
            lease_time: None,
            hardware: None,
            client_id: None,
            hostname: None,
            vendor_class_id: None,
            circuit_id: None,
            remote_id: None,
        }
    }
}

/// A record (or line) that cannot be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: u64,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(line: u64, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            reason: reason.into(),
        }
    }
}

/// Statements read but not mapped to a binding (failover state, server
/// DUID, `set` variables, …): how often, and the first few lines of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unmapped {
    pub by_statement: BTreeMap<String, (u64, Vec<u64>)>,
}

/// Lines kept per unmapped statement kind.
const LINES_KEPT: usize = 5;

impl Unmapped {
    pub(crate) fn note(&mut self, statement: &str, line: u64) {
        // Looked up before inserting: most statements were seen before,
        // and their key need not be allocated again.
        let e = match self.by_statement.get_mut(statement) {
            Some(e) => e,
            None => self
                .by_statement
                .entry(statement.to_owned())
                .or_insert((0, Vec::new())),
        };
        e.0 += 1;
        if e.1.len() < LINES_KEPT {
            e.1.push(line);
        }
    }
}
