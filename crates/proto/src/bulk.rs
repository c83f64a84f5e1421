//! DHCPBULKLEASEQUERY (RFC 6926): query validation (§7.2, §8.2) and reply
//! building (§8.3). Active Leasequery (RFC 7724 §8.2) reuses the replies.

use std::net::Ipv4Addr;

use leaseline_wire::{
    code, DhcpOption, Message, MessageType, RelayAgentInfo, StatusCode, BOOTREQUEST, MAGIC_COOKIE,
};

use crate::opts::{self, OptError};
use crate::Binding;

/// The primary query of a bulk leasequery (RFC 6926 §7.2): exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BulkPrimary {
    /// No primary query: every configured address.
    All,
    /// htype/hlen/chaddr; `chaddr` is `hlen` bytes.
    ByMac { htype: u8, chaddr: Vec<u8> },
    /// Option 61.
    ByClientId(Vec<u8>),
    /// Option 82 sub-option 2.
    ByRemoteId(Vec<u8>),
    /// Option 82 sub-option 12 (RFC 6925).
    ByRelayId(Vec<u8>),
}

impl BulkPrimary {
    /// Short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            BulkPrimary::All => "all",
            BulkPrimary::ByMac { .. } => "mac",
            BulkPrimary::ByClientId(_) => "client_id",
            BulkPrimary::ByRemoteId(_) => "remote_id",
            BulkPrimary::ByRelayId(_) => "relay_id",
        }
    }
}

/// A valid DHCPBULKLEASEQUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkQuery {
    pub xid: u32,
    pub primary: BulkPrimary,
    /// query-start-time (154), absolute, "on or after".
    pub start: Option<u32>,
    /// query-end-time (155), absolute, "on or before".
    pub end: Option<u32>,
    /// Option 55 as received; empty when absent.
    pub prl: Vec<u8>,
}

impl BulkQuery {
    /// RFC 6926 §8.2: a binding changed in the window when its CLTT or its
    /// start-time-of-state lies in `[start, end]` (both inclusive, either
    /// bound optional).
    pub fn matches_window(&self, b: &Binding) -> bool {
        in_window(self.start, self.end, b.cltt) || in_window(self.start, self.end, b.state_since)
    }
}

/// `t` in `[start, end]`, each bound inclusive and optional.
pub fn in_window(start: Option<u32>, end: Option<u32>, t: u32) -> bool {
    let after_start = match start {
        Some(s) => t >= s,
        None => true,
    };
    let before_end = match end {
        Some(e) => t <= e,
        None => true,
    };
    after_start && before_end
}

const MALFORMED: StatusCode = StatusCode::MalformedQuery;
const NOT_ALLOWED: StatusCode = StatusCode::NotAllowed;

fn opt_err(e: OptError) -> (StatusCode, &'static str) {
    match e {
        // RFC 6926 §7.2: each qualifier at most once; one primary query.
        OptError::Duplicate(code::QUERY_START_TIME) => (MALFORMED, "query-start-time repeated"),
        OptError::Duplicate(code::QUERY_END_TIME) => (MALFORMED, "query-end-time repeated"),
        OptError::Duplicate(code::CLIENT_ID) => (MALFORMED, "client-identifier repeated"),
        OptError::Duplicate(code::RELAY_AGENT_INFO) => {
            (MALFORMED, "relay-agent-information repeated")
        }
        OptError::Duplicate(_) => (MALFORMED, "option repeated"),
        OptError::BadValue(_) => (MALFORMED, "option in an unexpected form"),
    }
}

/// Validate a DHCPBULKLEASEQUERY. The error is the status to put in the
/// DHCPLEASEQUERYDONE that ends the query (RFC 6926 §8.2) and a text.
///
/// - not type 14 → MalformedQuery (the connection should rather be closed,
///   RFC 7724 §8.1.1);
/// - ciaddr, yiaddr or siaddr non-zero → MalformedQuery (RFC 6926 §8.2);
/// - hlen > 16, or hlen 0 with a non-zero chaddr → MalformedQuery;
/// - a repeated option 61, 82, 154, 155, 221 or 55 → MalformedQuery (§7.2:
///   one of each qualifier);
/// - an empty client-id, remote-id or relay-id, an option 82 with no
///   sub-option, or a repeated sub-option → MalformedQuery;
/// - an option 82 sub-option other than remote-id / relay-id → NotAllowed
///   (Leaseline does not query by circuit-id);
/// - more than one primary query → NotAllowed (§8.2);
/// - a VPN other than the default → NotAllowed, by these rules:
///   accepted are no option 221, an empty one, type 255 with no data, and
///   type 254 (all VPNs — here, the default one only);
/// - query-end-time < query-start-time → MalformedQuery.
pub fn parse_bulk_query(msg: &Message) -> Result<BulkQuery, (StatusCode, &'static str)> {
    if opts::single_message_type(msg) != Some(MessageType::BulkLeaseQuery) {
        return Err((MALFORMED, "not a DHCPBULKLEASEQUERY"));
    }
    // RFC 6926 §8.2.
    if !opts::is_zero(msg.ciaddr) || !opts::is_zero(msg.yiaddr) || !opts::is_zero(msg.siaddr) {
        return Err((MALFORMED, "ciaddr, yiaddr or siaddr is not zero"));
    }
    if msg.hlen > 16 {
        return Err((MALFORMED, "hlen exceeds 16"));
    }
    let hw = msg.hw_addr();
    if msg.hlen == 0 && msg.chaddr.iter().any(|&b| b != 0) {
        return Err((MALFORMED, "chaddr set with hlen 0"));
    }
    let prl = opts::prl(msg).map_err(opt_err)?;
    let client_id = opts::single(msg, code::CLIENT_ID, |o| match o {
        DhcpOption::ClientId(v) => Some(v.clone()),
        _ => None,
    })
    .map_err(opt_err)?;
    let relay = opts::single(msg, code::RELAY_AGENT_INFO, |o| match o {
        DhcpOption::RelayAgentInfo(r) => Some(r),
        _ => None,
    })
    .map_err(opt_err)?;
    let start = opts::u32_opt(msg, code::QUERY_START_TIME, |o| match o {
        DhcpOption::QueryStartTime(t) => Some(*t),
        _ => None,
    })
    .map_err(opt_err)?;
    let end = opts::u32_opt(msg, code::QUERY_END_TIME, |o| match o {
        DhcpOption::QueryEndTime(t) => Some(*t),
        _ => None,
    })
    .map_err(opt_err)?;

    let mut primaries: Vec<BulkPrimary> = Vec::with_capacity(1);
    if hw.iter().any(|&b| b != 0) {
        primaries.push(BulkPrimary::ByMac {
            htype: msg.htype,
            chaddr: hw.to_vec(),
        });
    }
    if let Some(cid) = client_id {
        if cid.is_empty() {
            return Err((MALFORMED, "empty client-identifier"));
        }
        primaries.push(BulkPrimary::ByClientId(cid));
    }
    if let Some(ri) = relay {
        primaries.extend(relay_primaries(ri)?);
    }
    // RFC 6926 §8.2: more than one primary query → NotAllowed. Unlike a
    // UDP query (RFC 6148 §5), a remote-id sub-option in a bulk query is
    // always a primary query of its own (§7.2, "Query by Remote ID"), so a
    // MAC or client-id beside it is two primaries.
    if primaries.len() > 1 {
        return Err((NOT_ALLOWED, "more than one primary query"));
    }
    opts::check_vss(msg)?;
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            return Err((MALFORMED, "query-end-time before query-start-time"));
        }
    }
    Ok(BulkQuery {
        xid: msg.xid,
        primary: primaries.pop().unwrap_or(BulkPrimary::All),
        start,
        end,
        prl,
    })
}

/// A framed message that did not decode: the xid to answer with
/// DHCPLEASEQUERYDONE / MalformedQuery (RFC 6926 §8.2), when the bytes are a
/// DHCP request (BOOTREQUEST, a whole fixed header, the magic cookie) whose
/// options are broken, a malformed client-id say (Kea #4549: such a query
/// must be told so, not met with silence). Anything else is no DHCP message
/// at all and gets no answer.
pub fn malformed_query_xid(frame: &[u8]) -> Option<u32> {
    const COOKIE_AT: usize = 236;
    let cookie = frame.get(COOKIE_AT..COOKIE_AT + 4)?;
    if frame[0] != BOOTREQUEST || cookie != MAGIC_COOKIE.to_be_bytes() {
        return None;
    }
    let xid = frame.get(4..8)?;
    Some(u32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]))
}

/// The remote-id and relay-id primary queries in an option 82 (RFC 6926
/// §7.2).
fn relay_primaries(ri: &RelayAgentInfo) -> Result<Vec<BulkPrimary>, (StatusCode, &'static str)> {
    if ri.sub_options.is_empty() {
        return Err((MALFORMED, "relay-agent-information without sub-options"));
    }
    let mut out = Vec::new();
    let mut seen = [false; 256];
    for s in &ri.sub_options {
        if std::mem::replace(&mut seen[usize::from(s.code)], true) {
            return Err((MALFORMED, "relay-agent-information sub-option repeated"));
        }
        let p = match s.code {
            RelayAgentInfo::REMOTE_ID => BulkPrimary::ByRemoteId(s.data.clone()),
            RelayAgentInfo::RELAY_ID => BulkPrimary::ByRelayId(s.data.clone()),
            _ => {
                return Err((
                    NOT_ALLOWED,
                    "only remote-id and relay-id are supported in relay-agent-information",
                ))
            }
        };
        if s.data.is_empty() {
            return Err((MALFORMED, "empty remote-id or relay-id"));
        }
        out.push(p);
    }
    Ok(out)
}

fn allowed(denied: &[u8], c: u8) -> bool {
    !denied.contains(&c)
}

/// One bulk (or active) reply about `b` (RFC 6926 §8.3, RFC 7724 §8.2).
///
/// DHCPLEASEACTIVE when `b.state.is_leased()`, else DHCPLEASEUNASSIGNED
/// (never DHCPLEASEUNKNOWN, never option 92: RFC 6926 §7.3). Header: BOOTREPLY,
/// `xid`, ciaddr = `b.ip`, htype/hlen/chaddr = the binding's (also for
/// UNASSIGNED: "information about the last client", §7.3). Options, in order:
/// - 53;
/// - 54 server-id only when `first` (§8.3: first reply of the query only);
/// - 152 base-time = `now`, always (RFC 7724 §7.3: every message);
/// - 153 start-time-of-state = `now - state_since` (saturating), always;
/// - 156 dhcp-state, always;
/// - 157 data-source only when non-zero (§8.3 item 5);
/// - 91 CLTT age when the CLTT is known (non-zero);
/// - 51 time until the state times out, when it has one in the future, for
///   any state (§8.3 item 4; for ACTIVE, the remaining lease);
/// - 58 / 59 remaining T1 / T2 as granted in the client's DHCPACK, when
///   requested, the lease is valid and that time is not reached;
/// - 61 client-id and 82 relay information, when stored and requested.
///
/// Codes in `denied` (the operator's sensitive-option list, RFC 7724 §8.2)
/// are left out, except 53, 54 and 152, which frame the protocol rather
/// than carry binding data.
pub fn build_bulk_reply(
    xid: u32,
    b: &Binding,
    now: u32,
    first: bool,
    server_id: Ipv4Addr,
    prl: &[u8],
    denied: &[u8],
) -> Message {
    let mt = if b.state.is_leased() {
        MessageType::LeaseActive
    } else {
        MessageType::LeaseUnassigned
    };
    let mut m = opts::reply_header(xid, mt);
    m.ciaddr = b.ip;
    let (chaddr, hlen) = opts::chaddr_field(&b.chaddr);
    m.htype = b.htype;
    m.hlen = hlen;
    m.chaddr = chaddr;

    let requested = |c: u8| prl.contains(&c);
    let o = &mut m.options;
    if first {
        o.push(DhcpOption::ServerId(server_id));
    }
    o.push(DhcpOption::BaseTime(now));
    if allowed(denied, code::START_TIME_OF_STATE) {
        o.push(DhcpOption::StartTimeOfState(b.state_age(now)));
    }
    if allowed(denied, code::DHCP_STATE) {
        o.push(DhcpOption::DhcpState(b.state.as_u8()));
    }
    if b.data_source != 0 && allowed(denied, code::DATA_SOURCE) {
        o.push(DhcpOption::DataSource(b.data_source));
    }
    if allowed(denied, code::CLIENT_LAST_TRANSACTION_TIME) {
        if let Some(age) = b.cltt_age(now) {
            o.push(DhcpOption::ClientLastTransactionTime(age));
        }
    }
    if allowed(denied, code::LEASE_TIME) {
        if let Some(rem) = b.remaining_state_time(now) {
            o.push(DhcpOption::LeaseTime(rem));
        }
    }
    if requested(code::RENEWAL_TIME) && allowed(denied, code::RENEWAL_TIME) {
        if let Some(t1) = b.remaining_t1(now) {
            o.push(DhcpOption::RenewalTime(t1));
        }
    }
    if requested(code::REBINDING_TIME) && allowed(denied, code::REBINDING_TIME) {
        if let Some(t2) = b.remaining_t2(now) {
            o.push(DhcpOption::RebindingTime(t2));
        }
    }
    if requested(code::CLIENT_ID) && allowed(denied, code::CLIENT_ID) {
        if let Some(cid) = &b.client_id {
            o.push(DhcpOption::ClientId(cid.clone()));
        }
    }
    if requested(code::RELAY_AGENT_INFO) && allowed(denied, code::RELAY_AGENT_INFO) {
        if let Some(ri) = b.relay_agent_info() {
            o.push(DhcpOption::RelayAgentInfo(ri));
        }
    }
    m
}

/// DHCPLEASEQUERYDONE ending a bulk query (RFC 6926 §8.2): status-code only
/// on failure (`None` = success), base-time = `now`. Pass `server_id` when
/// no reply preceded it (§8.3: the first message of a query carries 54).
pub fn build_done(
    xid: u32,
    status: Option<(StatusCode, &str)>,
    now: u32,
    server_id: Option<Ipv4Addr>,
) -> Message {
    let mut m = opts::reply_header(xid, MessageType::LeaseQueryDone);
    if let Some(sid) = server_id {
        m.options.push(DhcpOption::ServerId(sid));
    }
    if let Some((code, text)) = status {
        m.options
            .push(DhcpOption::StatusCode(code, opts::status_text(text)));
    }
    m.options.push(DhcpOption::BaseTime(now));
    m
}

/// DHCPLEASEQUERYSTATUS (RFC 7724 §5.2.2, §8.2): status-code and base-time.
/// Used for ConnectionActive, CatchUpComplete, DataMissing, QueryTerminated
/// and MalformedQuery / NotAllowed on an active query.
pub fn build_status(xid: u32, code: StatusCode, text: &str, now: u32) -> Message {
    let mut m = opts::reply_header(xid, MessageType::LeaseQueryStatus);
    m.options
        .push(DhcpOption::StatusCode(code, opts::status_text(text)));
    m.options.push(DhcpOption::BaseTime(now));
    m
}
