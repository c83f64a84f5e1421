//! Parsers of single values the file writes as strings.

use leaseline_proto::text;

/// `A-B` (inclusive) or a single address, as numbers.
pub(super) fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = text::parse_ipv4_range(s).map_err(|e| e.to_string())?;
    Ok((u32::from(a), u32::from(b)))
}

/// A requestor network: CIDR, or a single address.
pub(super) fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not a network (CIDR) or address"))
}
