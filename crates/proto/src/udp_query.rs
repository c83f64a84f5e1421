//! DHCPLEASEQUERY over UDP: RFC 4388 §6.3 validation and RFC 6148 query by
//! remote-id. "Parse, don't validate": a [`UdpQuery`] is a query we answer.

use std::net::Ipv4Addr;

use leaseline_wire::{code, DhcpOption, Message, MessageType, RelayAgentInfo, BOOTREQUEST};
use thiserror::Error;

use crate::opts::{self, OptError};

/// What a DHCPLEASEQUERY asks about (RFC 4388 §6.2, RFC 6148 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// Non-zero ciaddr.
    ByIp(Ipv4Addr),
    /// Non-zero htype/hlen/chaddr; `chaddr` is `hlen` bytes.
    ByMac { htype: u8, chaddr: Vec<u8> },
    /// Option 61.
    ByClientId(Vec<u8>),
    /// Option 82 holding only a remote-id sub-option (RFC 6148 §4.1).
    ByRemoteId(Vec<u8>),
}

impl QueryKind {
    /// Short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            QueryKind::ByIp(_) => "ip",
            QueryKind::ByMac { .. } => "mac",
            QueryKind::ByClientId(_) => "client_id",
            QueryKind::ByRemoteId(_) => "remote_id",
        }
    }

    /// True for the client-based queries whose LEASEACTIVE carries option 92
    /// whether requested or not (RFC 4388 §6.4.2, RFC 6148 §4.3).
    pub fn is_client_query(&self) -> bool {
        !matches!(self, QueryKind::ByIp(_))
    }
}

/// A valid DHCPLEASEQUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpQuery {
    pub kind: QueryKind,
    /// Where the reply goes (RFC 4388 §6.4.3); never zero here.
    pub giaddr: Ipv4Addr,
    pub xid: u32,
    /// Option 55 as received; empty when absent.
    pub prl: Vec<u8>,
    /// The option 82 received in the query, whatever it holds; echoed in
    /// DHCPLEASEUNKNOWN (RFC 6148 §4.3).
    pub relay_info: Option<RelayAgentInfo>,
}

/// Why a datagram is not answered. Every refusal means: send nothing
/// (RFC 4388 §6.4.3 for a zero giaddr; the others are not leasequeries we
/// can answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum QueryRefusal {
    #[error("message type is not DHCPLEASEQUERY")]
    NotALeaseQuery,
    #[error("op is not BOOTREQUEST")]
    NotABootRequest,
    #[error("giaddr is zero (RFC 4388 §6.4.3: no reply)")]
    ZeroGiaddr,
    #[error("no query key: ciaddr, chaddr, client-id and remote-id all absent")]
    NoQueryKey,
    #[error("more than one query key (RFC 4388 §6.3)")]
    SeveralQueryKeys,
    #[error("hlen {0} exceeds 16")]
    BadHlen(u8),
    #[error("client-identifier option is empty")]
    EmptyClientId,
    #[error("remote-id sub-option is empty")]
    EmptyRemoteId,
    #[error("option 82 holds several remote-id sub-options")]
    SeveralRemoteIds,
    #[error("option {0} appears more than once")]
    DuplicateOption(u8),
    #[error("option {0} has an unexpected form")]
    BadOption(u8),
}

impl QueryRefusal {
    /// Stable snake_case label for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryRefusal::NotALeaseQuery => "not_a_leasequery",
            QueryRefusal::NotABootRequest => "not_a_bootrequest",
            QueryRefusal::ZeroGiaddr => "zero_giaddr",
            QueryRefusal::NoQueryKey => "no_query_key",
            QueryRefusal::SeveralQueryKeys => "several_query_keys",
            QueryRefusal::BadHlen(_) => "bad_hlen",
            QueryRefusal::EmptyClientId => "empty_client_id",
            QueryRefusal::EmptyRemoteId => "empty_remote_id",
            QueryRefusal::SeveralRemoteIds => "several_remote_ids",
            QueryRefusal::DuplicateOption(_) => "duplicate_option",
            QueryRefusal::BadOption(_) => "bad_option",
        }
    }
}

impl From<OptError> for QueryRefusal {
    fn from(e: OptError) -> Self {
        match e {
            OptError::Duplicate(c) => QueryRefusal::DuplicateOption(c),
            OptError::BadValue(c) => QueryRefusal::BadOption(c),
        }
    }
}

/// Validate a DHCPLEASEQUERY (RFC 4388 §6.3, RFC 6148 §4.1).
///
/// Exactly one key must be present: a non-zero ciaddr; a hardware address
/// (hlen > 0 and a non-zero byte among chaddr's first hlen bytes — so
/// htype=1/hlen=6 with an all-zero chaddr is "no MAC"); option 61; or, when
/// none of those is present, option 82 holding exactly one sub-option, a
/// remote-id (RFC 6148 §5). An option 82 that is not the key is the
/// requestor's own relay information; it is still kept in
/// [`UdpQuery::relay_info`] for the echo.
pub fn parse_leasequery(msg: &Message) -> Result<UdpQuery, QueryRefusal> {
    if opts::single_message_type(msg) != Some(MessageType::LeaseQuery) {
        return Err(QueryRefusal::NotALeaseQuery);
    }
    if msg.op != BOOTREQUEST {
        return Err(QueryRefusal::NotABootRequest);
    }
    // RFC 4388 §6.3 / §6.4.3: a zero giaddr gets no reply at all.
    if opts::is_zero(msg.giaddr) {
        return Err(QueryRefusal::ZeroGiaddr);
    }
    if msg.hlen > 16 {
        return Err(QueryRefusal::BadHlen(msg.hlen));
    }
    let prl = opts::prl(msg)?;
    let client_id = opts::single(msg, code::CLIENT_ID, |o| match o {
        DhcpOption::ClientId(v) => Some(v.clone()),
        _ => None,
    })?;
    let relay_info = opts::single(msg, code::RELAY_AGENT_INFO, |o| match o {
        DhcpOption::RelayAgentInfo(r) => Some(r.clone()),
        _ => None,
    })?;

    let mut keys: Vec<QueryKind> = Vec::with_capacity(1);
    if !opts::is_zero(msg.ciaddr) {
        keys.push(QueryKind::ByIp(msg.ciaddr));
    }
    let hw = msg.hw_addr();
    if hw.iter().any(|&b| b != 0) {
        keys.push(QueryKind::ByMac {
            htype: msg.htype,
            chaddr: hw.to_vec(),
        });
    }
    if let Some(cid) = client_id {
        if cid.is_empty() {
            return Err(QueryRefusal::EmptyClientId);
        }
        keys.push(QueryKind::ByClientId(cid));
    }
    // RFC 6148 §5: a query by IP address, MAC address or client-id that also
    // carries an option 82 holding a remote-id is still that query; only a
    // query with none of those keys is a query by remote-id.
    let remote_id_query = if keys.is_empty() {
        relay_info.as_ref()
    } else {
        None
    };
    if let Some(ri) = remote_id_query {
        // RFC 6148 §4.1: option 82 with only a remote-id sub-option.
        let subs = &ri.sub_options;
        if !subs.is_empty() && subs.iter().all(|s| s.code == RelayAgentInfo::REMOTE_ID) {
            if subs.len() > 1 {
                return Err(QueryRefusal::SeveralRemoteIds);
            }
            if subs[0].data.is_empty() {
                return Err(QueryRefusal::EmptyRemoteId);
            }
            keys.push(QueryKind::ByRemoteId(subs[0].data.clone()));
        }
    }
    // RFC 4388 §6.3: exactly one of ciaddr, htype/hlen/chaddr, client-id
    // (RFC 6148 adds remote-id).
    if keys.len() > 1 {
        return Err(QueryRefusal::SeveralQueryKeys);
    }
    let kind = keys.pop().ok_or(QueryRefusal::NoQueryKey)?;
    Ok(UdpQuery {
        kind,
        giaddr: msg.giaddr,
        xid: msg.xid,
        prl,
        relay_info,
    })
}
