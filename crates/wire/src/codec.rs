//! Option values: length rules, typing (bytes -> [`DhcpOption`]) and
//! serialisation ([`DhcpOption`] -> value bytes). Framing of options inside a
//! message (PAD, END, RFC 3396 fragments) lives in `message.rs`.

use std::net::Ipv4Addr;

use crate::option::code as c;
use crate::{DhcpOption, MessageType, RelayAgentInfo, StatusCode, SubOption, WireError};

/// The length rule of an option code, as named in [`WireError::BadOptionLength`].
#[derive(Clone, Copy)]
enum Rule {
    Exact(usize, &'static str),
    NonZeroMultipleOf4,
    AtLeast(usize, &'static str),
    Any,
}

fn rule(code: u8) -> Rule {
    match code {
        // RFC 2132 §3.3, §9.7, §9.8: one address.
        c::SUBNET_MASK | c::REQUESTED_IP | c::SERVER_ID => Rule::Exact(4, "expected 4"),
        // RFC 2132 §3.5, §3.8; RFC 4388 §6.1 (92): n >= 1 addresses.
        c::ROUTER | c::DNS_SERVERS | c::ASSOCIATED_IP => Rule::NonZeroMultipleOf4,
        // u32 times: RFC 2132 §9.2, §9.11, §9.12; RFC 4388 §6.1 (91);
        // RFC 6926 §6.2.3-6.2.6 (152-155).
        c::LEASE_TIME
        | c::RENEWAL_TIME
        | c::REBINDING_TIME
        | c::CLIENT_LAST_TRANSACTION_TIME
        | c::BASE_TIME
        | c::START_TIME_OF_STATE
        | c::QUERY_START_TIME
        | c::QUERY_END_TIME => Rule::Exact(4, "expected 4"),
        // RFC 2132 §9.6; RFC 6926 §6.2.7, §6.2.8.
        c::MESSAGE_TYPE | c::DHCP_STATE | c::DATA_SOURCE => Rule::Exact(1, "expected 1"),
        // RFC 2132 §3.14, §3.17, §9.8, §9.13 (minimum length 1);
        // RFC 6926 §6.2.2 (status code octet, text optional).
        c::HOSTNAME
        | c::DOMAIN_NAME
        | c::PARAMETER_REQUEST_LIST
        | c::VENDOR_CLASS_ID
        | c::STATUS_CODE => Rule::AtLeast(1, "expected at least 1"),
        // RFC 2132 §9.14: client-id minimum length 2 (type + data).
        c::CLIENT_ID => Rule::AtLeast(2, "expected at least 2"),
        // RFC 3046 §2.0: at least one sub-option header.
        c::RELAY_AGENT_INFO => Rule::AtLeast(2, "expected at least 2"),
        _ => Rule::Any,
    }
}

fn check_len(code: u8, len: usize) -> Result<(), WireError> {
    let bad = |expected| {
        Err(WireError::BadOptionLength {
            code,
            len,
            expected,
        })
    };
    match rule(code) {
        Rule::Exact(n, e) if len != n => bad(e),
        Rule::AtLeast(n, e) if len < n => bad(e),
        // `& 3`: `is_multiple_of` needs Rust 1.87, the workspace says 1.80.
        Rule::NonZeroMultipleOf4 if len == 0 || len & 3 != 0 => {
            bad("expected a non-zero multiple of 4")
        }
        _ => Ok(()),
    }
}

fn arr4(code: u8, data: &[u8]) -> Result<[u8; 4], WireError> {
    <[u8; 4]>::try_from(data).map_err(|_| WireError::BadOptionLength {
        code,
        len: data.len(),
        expected: "expected 4",
    })
}

fn addr(code: u8, data: &[u8]) -> Result<Ipv4Addr, WireError> {
    arr4(code, data).map(Ipv4Addr::from)
}

fn u32be(code: u8, data: &[u8]) -> Result<u32, WireError> {
    arr4(code, data).map(u32::from_be_bytes)
}

fn addrs(data: &[u8]) -> Vec<Ipv4Addr> {
    data.chunks_exact(4)
        .map(|q| Ipv4Addr::new(q[0], q[1], q[2], q[3]))
        .collect()
}

fn byte(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

fn message_type(v: u8) -> Result<MessageType, WireError> {
    MessageType::from_u8(v).ok_or(WireError::UnknownMessageType(v))
}

/// RFC 6926 §6.2.2: the text after the status octet is UTF-8.
fn status_text(data: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(data.get(1..).unwrap_or_default()).map_err(|_| WireError::BadOptionValue {
        code: c::STATUS_CODE,
        reason: "status message is not UTF-8",
    })
}

/// Walk the sub-options of option 82 (RFC 3046 §2.0: code, length, value),
/// each bounded by the option's value.
fn sub_options(data: &[u8], mut f: impl FnMut(u8, &[u8])) -> Result<(), WireError> {
    let mut rest = data;
    while let Some((&sub, tail)) = rest.split_first() {
        // A code without its length octet: the header itself overruns.
        let (&len, tail) = tail
            .split_first()
            .ok_or(WireError::SubOptionOverrun { sub, len: 0 })?;
        let len = usize::from(len);
        let value = tail
            .get(..len)
            .ok_or(WireError::SubOptionOverrun { sub, len })?;
        f(sub, value);
        rest = tail.get(len..).unwrap_or_default();
    }
    Ok(())
}

/// Check a raw value as [`parse`] would, without allocating. Used by the
/// encoder for [`DhcpOption::Unknown`] values that carry a typed code.
pub(crate) fn validate(code: u8, data: &[u8]) -> Result<(), WireError> {
    check_len(code, data.len())?;
    match code {
        c::MESSAGE_TYPE => message_type(byte(data)).map(drop),
        c::STATUS_CODE => status_text(data).map(drop),
        c::RELAY_AGENT_INFO => sub_options(data, |_, _| ()),
        _ => Ok(()),
    }
}

/// Type one (already RFC 3396-joined) option value.
pub(crate) fn parse(code: u8, data: &[u8]) -> Result<DhcpOption, WireError> {
    use DhcpOption as O;
    check_len(code, data.len())?;
    Ok(match code {
        c::SUBNET_MASK => O::SubnetMask(addr(code, data)?),
        c::ROUTER => O::Router(addrs(data)),
        c::DNS_SERVERS => O::DnsServers(addrs(data)),
        c::HOSTNAME => O::Hostname(data.to_vec()),
        c::DOMAIN_NAME => O::DomainName(data.to_vec()),
        c::REQUESTED_IP => O::RequestedIp(addr(code, data)?),
        c::LEASE_TIME => O::LeaseTime(u32be(code, data)?),
        c::MESSAGE_TYPE => O::MessageType(message_type(byte(data))?),
        c::SERVER_ID => O::ServerId(addr(code, data)?),
        c::PARAMETER_REQUEST_LIST => O::ParameterRequestList(data.to_vec()),
        c::RENEWAL_TIME => O::RenewalTime(u32be(code, data)?),
        c::REBINDING_TIME => O::RebindingTime(u32be(code, data)?),
        c::VENDOR_CLASS_ID => O::VendorClassId(data.to_vec()),
        c::CLIENT_ID => O::ClientId(data.to_vec()),
        c::RELAY_AGENT_INFO => {
            let mut n = 0;
            sub_options(data, |_, _| n += 1)?;
            let mut subs = Vec::with_capacity(n);
            sub_options(data, |code, v| {
                subs.push(SubOption {
                    code,
                    data: v.to_vec(),
                })
            })?;
            O::RelayAgentInfo(RelayAgentInfo { sub_options: subs })
        }
        c::CLIENT_LAST_TRANSACTION_TIME => O::ClientLastTransactionTime(u32be(code, data)?),
        c::ASSOCIATED_IP => O::AssociatedIp(addrs(data)),
        c::STATUS_CODE => O::StatusCode(
            StatusCode::from_u8(byte(data)),
            status_text(data)?.to_owned(),
        ),
        c::BASE_TIME => O::BaseTime(u32be(code, data)?),
        c::START_TIME_OF_STATE => O::StartTimeOfState(u32be(code, data)?),
        c::QUERY_START_TIME => O::QueryStartTime(u32be(code, data)?),
        c::QUERY_END_TIME => O::QueryEndTime(u32be(code, data)?),
        c::DHCP_STATE => O::DhcpState(byte(data)),
        c::DATA_SOURCE => O::DataSource(byte(data)),
        c::VSS => O::Vss(data.to_vec()),
        _ => O::Unknown {
            code,
            data: data.to_vec(),
        },
    })
}

fn put_addrs(v: &[Ipv4Addr], out: &mut Vec<u8>) {
    for a in v {
        out.extend_from_slice(&a.octets());
    }
}

/// Append the value of `opt` (no code, no length) to `out`, then check it
/// against the same rules the decoder applies, so that whatever we encode
/// decodes again.
pub(crate) fn write_value(opt: &DhcpOption, out: &mut Vec<u8>) -> Result<(), WireError> {
    use DhcpOption as O;
    let code = opt.code();
    let start = out.len();
    match opt {
        O::SubnetMask(a) | O::RequestedIp(a) | O::ServerId(a) => out.extend_from_slice(&a.octets()),
        O::Router(v) | O::DnsServers(v) | O::AssociatedIp(v) => put_addrs(v, out),
        O::Hostname(b)
        | O::DomainName(b)
        | O::ParameterRequestList(b)
        | O::VendorClassId(b)
        | O::ClientId(b)
        | O::Vss(b) => out.extend_from_slice(b),
        O::LeaseTime(t)
        | O::RenewalTime(t)
        | O::RebindingTime(t)
        | O::ClientLastTransactionTime(t)
        | O::BaseTime(t)
        | O::StartTimeOfState(t)
        | O::QueryStartTime(t)
        | O::QueryEndTime(t) => out.extend_from_slice(&t.to_be_bytes()),
        O::MessageType(t) => out.push(*t as u8),
        O::DhcpState(b) | O::DataSource(b) => out.push(*b),
        O::StatusCode(s, text) => {
            out.push(s.as_u8());
            out.extend_from_slice(text.as_bytes());
        }
        O::RelayAgentInfo(info) => {
            for s in &info.sub_options {
                let len = u8::try_from(s.data.len()).map_err(|_| WireError::BadOptionValue {
                    code,
                    reason: "sub-option value longer than 255 bytes",
                })?;
                out.push(s.code);
                out.push(len);
                out.extend_from_slice(&s.data);
            }
        }
        O::Unknown { code, data } => {
            match *code {
                c::PAD | c::END => {
                    return Err(WireError::BadOptionValue {
                        code: *code,
                        reason: "PAD and END carry no value",
                    })
                }
                c::OVERLOAD => return Err(WireError::OptionOverload),
                _ => {}
            }
            // A raw value under a typed code must still be valid for that type.
            validate(*code, data)?;
            out.extend_from_slice(data);
        }
    }
    check_len(code, out.len() - start)
}
