//! DHCPACTIVELEASEQUERY validation (RFC 7724 §7.3, §8.2). Replies are built
//! with [`crate::bulk::build_bulk_reply`] (RFC 7724 §8.2: the same contents
//! as bulk replies, base-time in every message) and
//! [`crate::bulk::build_status`].

use leaseline_wire::{code, DhcpOption, Message, MessageType, StatusCode};
use thiserror::Error;

use crate::opts::{self, OptError};

/// A valid DHCPACTIVELEASEQUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveQuery {
    pub xid: u32,
    /// query-start-time (154): catch up on changes at or after it.
    pub start: Option<u32>,
    /// Option 55 as received; empty when absent.
    pub prl: Vec<u8>,
}

/// Why an active query is refused. [`ActiveRefusal::status`] is the code for
/// the DHCPLEASEQUERYSTATUS to send before closing (RFC 7724 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ActiveRefusal {
    /// Not type 16. On the TCP connection, an unsupported message type
    /// means closing it (RFC 7724 §8.1.1) rather than answering.
    #[error("message type is not DHCPACTIVELEASEQUERY")]
    NotAnActiveQuery,
    #[error("ciaddr is not zero (RFC 7724 §7.3)")]
    CiaddrSet,
    #[error("chaddr is not zero (RFC 7724 §7.3)")]
    ChaddrSet,
    #[error("client-identifier present (RFC 7724 §7.3)")]
    ClientIdPresent,
    #[error("query-end-time present (RFC 7724 §8.2)")]
    QueryEndTime,
    #[error("option {0} appears more than once")]
    DuplicateOption(u8),
    #[error("option {0} has an unexpected form")]
    BadOption(u8),
    #[error("VPN-ID: {0}")]
    Vpn(&'static str, StatusCode),
}

impl ActiveRefusal {
    /// Status code for the DHCPLEASEQUERYSTATUS.
    pub fn status(&self) -> StatusCode {
        match self {
            ActiveRefusal::Vpn(_, code) => *code,
            _ => StatusCode::MalformedQuery,
        }
    }

    /// Stable snake_case label for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ActiveRefusal::NotAnActiveQuery => "not_an_active_query",
            ActiveRefusal::CiaddrSet => "ciaddr_set",
            ActiveRefusal::ChaddrSet => "chaddr_set",
            ActiveRefusal::ClientIdPresent => "client_id_present",
            ActiveRefusal::QueryEndTime => "query_end_time",
            ActiveRefusal::DuplicateOption(_) => "duplicate_option",
            ActiveRefusal::BadOption(_) => "bad_option",
            ActiveRefusal::Vpn(..) => "vpn_not_served",
        }
    }
}

impl From<OptError> for ActiveRefusal {
    fn from(e: OptError) -> Self {
        match e {
            OptError::Duplicate(c) => ActiveRefusal::DuplicateOption(c),
            OptError::BadValue(c) => ActiveRefusal::BadOption(c),
        }
    }
}

/// Validate a DHCPACTIVELEASEQUERY (RFC 7724 §7.3, §8.2).
///
/// Refused with MalformedQuery: a non-zero ciaddr; any non-zero byte in
/// the 16-byte chaddr (htype and hlen are not looked at, so htype=1/hlen=6
/// with a zero chaddr passes); a client-identifier option; a query-end-time
/// option; a repeated option 154 or 55. The VPN-ID option follows the bulk
/// rules (only the default VPN; see [`crate::bulk::parse_bulk_query`]):
/// NotAllowed for a specific VPN.
pub fn parse_active_query(msg: &Message) -> Result<ActiveQuery, ActiveRefusal> {
    if opts::single_message_type(msg) != Some(MessageType::ActiveLeaseQuery) {
        return Err(ActiveRefusal::NotAnActiveQuery);
    }
    // RFC 7724 §7.3: no ciaddr, no chaddr, no client-identifier.
    if !opts::is_zero(msg.ciaddr) {
        return Err(ActiveRefusal::CiaddrSet);
    }
    if msg.chaddr.iter().any(|&b| b != 0) {
        return Err(ActiveRefusal::ChaddrSet);
    }
    if msg.has_option(code::CLIENT_ID) {
        return Err(ActiveRefusal::ClientIdPresent);
    }
    // RFC 7724 §8.2: query-end-time → MalformedQuery and close.
    if msg.has_option(code::QUERY_END_TIME) {
        return Err(ActiveRefusal::QueryEndTime);
    }
    let prl = opts::prl(msg)?;
    let start = opts::u32_opt(msg, code::QUERY_START_TIME, |o| match o {
        DhcpOption::QueryStartTime(t) => Some(*t),
        _ => None,
    })?;
    opts::check_vss(msg).map_err(|(code, text)| ActiveRefusal::Vpn(text, code))?;
    Ok(ActiveQuery {
        xid: msg.xid,
        start,
        prl,
    })
}
