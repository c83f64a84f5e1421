//! Small helpers shared by the query parsers and reply builders.

use std::net::Ipv4Addr;

use leaseline_wire::{DhcpOption, Message, MessageType, BOOTREPLY};

/// Why a single option could not be taken from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptError {
    /// The option appears more than once.
    Duplicate(u8),
    /// The option is present but not in its typed form.
    BadValue(u8),
}

/// The option with `code`, which must appear at most once and in the form
/// `pick` accepts.
pub(crate) fn single<'m, T>(
    msg: &'m Message,
    code: u8,
    pick: impl Fn(&'m DhcpOption) -> Option<T>,
) -> Result<Option<T>, OptError> {
    let mut it = msg.options.iter().filter(|o| o.code() == code);
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(OptError::Duplicate(code));
    }
    pick(first).map(Some).ok_or(OptError::BadValue(code))
}

/// The message type, which must be present exactly once.
pub(crate) fn single_message_type(msg: &Message) -> Option<MessageType> {
    single(msg, leaseline_wire::code::MESSAGE_TYPE, |o| match o {
        DhcpOption::MessageType(t) => Some(*t),
        _ => None,
    })
    .ok()
    .flatten()
}

pub(crate) fn prl(msg: &Message) -> Result<Vec<u8>, OptError> {
    Ok(single(
        msg,
        leaseline_wire::code::PARAMETER_REQUEST_LIST,
        |o| match o {
            DhcpOption::ParameterRequestList(v) => Some(v.clone()),
            _ => None,
        },
    )?
    .unwrap_or_default())
}

pub(crate) fn u32_opt(
    msg: &Message,
    code: u8,
    pick: fn(&DhcpOption) -> Option<u32>,
) -> Result<Option<u32>, OptError> {
    single(msg, code, pick)
}

/// PRL codes in order, each once.
pub(crate) fn dedup_codes(codes: &[u8]) -> Vec<u8> {
    let mut seen = [false; 256];
    let mut out = Vec::with_capacity(codes.len());
    for &c in codes {
        if !seen[usize::from(c)] {
            seen[usize::from(c)] = true;
            out.push(c);
        }
    }
    out
}

/// An empty reply header: BOOTREPLY, no hardware address, all addresses zero.
pub(crate) fn reply_header(xid: u32, mt: MessageType) -> Message {
    Message {
        op: BOOTREPLY,
        htype: 0,
        hlen: 0,
        xid,
        options: vec![DhcpOption::MessageType(mt)],
        ..Message::default()
    }
}

/// `chaddr` as the 16-byte field plus its hlen (truncated to 16).
pub(crate) fn chaddr_field(hw: &[u8]) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    let n = hw.len().min(16);
    out[..n].copy_from_slice(&hw[..n]);
    // n <= 16, so the cast cannot truncate.
    (out, n as u8)
}

pub(crate) fn is_zero(a: Ipv4Addr) -> bool {
    a.is_unspecified()
}

/// RFC 6926 §6.2.2: the status message must not contain NUL characters; keep
/// it within one option fragment (254 bytes of text, cut at a char boundary).
pub(crate) fn status_text(text: &str) -> String {
    let mut s: String = text.chars().filter(|&c| c != '\0').collect();
    if s.len() > 254 {
        let mut cut = 254;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// RFC 6926 §6.2.9 / §8.2 VPN-ID qualifier (option 221, RFC 6607 payload:
/// type octet + VSS information). Leaseline serves only the default (global)
/// VPN, so it accepts: no option 221; an empty option 221; type 255
/// ("global, default VPN") with empty information; type 254 ("all VPNs",
/// which here is just the default one). Types 0 and 1 name a specific VPN
/// we do not have: NotAllowed. Types 2–253 are unassigned, and 255 with
/// information is not what RFC 6607 §3.3 defines: MalformedQuery.
pub(crate) fn check_vss(msg: &Message) -> Result<(), (leaseline_wire::StatusCode, &'static str)> {
    use leaseline_wire::StatusCode;
    let vss = single(msg, leaseline_wire::code::VSS, |o| match o {
        DhcpOption::Vss(v) => Some(v.as_slice()),
        _ => None,
    })
    .map_err(|_| {
        (
            StatusCode::MalformedQuery,
            "bad or repeated VPN-ID option 221",
        )
    })?;
    match vss {
        None | Some([]) | Some([255]) | Some([254, ..]) => Ok(()),
        Some([0 | 1, ..]) => Err((StatusCode::NotAllowed, "only the default VPN is served")),
        Some([255, ..]) => Err((
            StatusCode::MalformedQuery,
            "VSS type 255 (default VPN) must carry no information",
        )),
        Some(_) => Err((StatusCode::MalformedQuery, "unassigned VSS type")),
    }
}
