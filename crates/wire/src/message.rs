//! The BOOTP/DHCP message (RFC 2131 §2) with its options in wire order.

use std::net::Ipv4Addr;

use crate::option::code;
use crate::{codec, DhcpOption, MessageType, WireError};

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// 236-byte fixed header plus the 4-byte cookie.
pub const MIN_MESSAGE_LEN: usize = 240;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub sname: [u8; 64],
    pub file: [u8; 128],
    /// Options in wire order; fragments of one long option (RFC 3396) are
    /// joined into one entry.
    pub options: Vec<DhcpOption>,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: [0; 64],
            file: [0; 128],
            options: Vec::new(),
        }
    }
}

impl Message {
    pub const BROADCAST_FLAG: u16 = 0x8000;

    /// Decode a whole DHCP message strictly. See [`WireError`] for what is refused.
    ///
    /// Options are kept in wire order; several instances of one code are
    /// joined into one value at the first one's position (RFC 3396 §7).
    /// Option 52 (overload) is refused. A message without option 53 (BOOTP)
    /// decodes; [`Message::message_type`] is then `None`.
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        crate::message::decode_impl(buf)
    }

    /// Append the encoded message to `out` (options in `self.options` order,
    /// long options split per RFC 3396, then END). No padding: see
    /// [`pad_to_bootp_minimum`]. Values the decoder would refuse (bad lengths,
    /// `Unknown` with code 0/52/255, op/hlen) are refused here, and `out` is
    /// left as it was. Two entries with one code are both written, and so
    /// would be joined by a decoder (RFC 3396).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        crate::message::encode_impl(self, out)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut v = Vec::with_capacity(300);
        self.encode(&mut v)?;
        Ok(v)
    }

    /// The client hardware address, `hlen` bytes of `chaddr`.
    pub fn hw_addr(&self) -> &[u8] {
        &self.chaddr[..(self.hlen as usize).min(16)]
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.options.iter().find_map(|o| match o {
            DhcpOption::MessageType(t) => Some(*t),
            _ => None,
        })
    }

    /// The message type, or [`WireError::NoMessageType`] for a BOOTP message
    /// (decode accepts those; callers that need DHCP use this).
    pub fn require_message_type(&self) -> Result<MessageType, WireError> {
        self.message_type().ok_or(WireError::NoMessageType)
    }

    /// The first option with this code.
    pub fn option(&self, code: u8) -> Option<&DhcpOption> {
        self.options.iter().find(|o| o.code() == code)
    }

    pub fn has_option(&self, code: u8) -> bool {
        self.option(code).is_some()
    }

    /// Replace the option with the same code, or append it.
    pub fn set_option(&mut self, opt: DhcpOption) {
        let c = opt.code();
        if let Some(slot) = self.options.iter_mut().find(|o| o.code() == c) {
            *slot = opt;
        } else {
            self.options.push(opt);
        }
    }

    pub fn broadcast(&self) -> bool {
        self.flags & Self::BROADCAST_FLAG != 0
    }
}

/// RFC 2131 §2 / RFC 1542 §2.1: BOOTP relay agents may drop messages
/// shorter than 300 octets.
pub const BOOTP_MIN_LEN: usize = 300;

/// Pad an encoded message with zeros to [`BOOTP_MIN_LEN`] bytes (zeros after
/// END are PAD, RFC 2132 §3.1). `buf` must hold exactly one message.
pub fn pad_to_bootp_minimum(buf: &mut Vec<u8>) {
    if buf.len() < BOOTP_MIN_LEN {
        buf.resize(BOOTP_MIN_LEN, 0);
    }
}

/// Most an encoded message may be: the 2-octet TCP framing (RFC 6926 §6.3)
/// and the IPv4 datagram both cap it.
const MAX_ENCODED_LEN: usize = 65535;

/// `(code, offset of the code octet, value)` or why the options area is bad.
type RawItem<'a> = Result<(u8, usize, &'a [u8]), WireError>;

/// Walks the options area up to END, yielding `(code, offset, value)` for each
/// option other than PAD; `offset` is the code's offset in the message.
/// Checks the trailer after END. Does not allocate.
struct RawOptions<'a> {
    area: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> RawOptions<'a> {
    fn new(area: &'a [u8]) -> Self {
        RawOptions {
            area,
            pos: 0,
            done: false,
        }
    }
    fn fail(&mut self, e: WireError) -> Option<RawItem<'a>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = RawItem<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let offset = MIN_MESSAGE_LEN + self.pos;
            match self.area.get(self.pos).copied() {
                // RFC 2131 §4.1: the options field ends with END.
                None => return self.fail(WireError::MissingEnd),
                // RFC 2132 §3.1: PAD has no length octet.
                Some(code::PAD) => self.pos += 1,
                // RFC 2132 §3.2: END; only PAD may follow.
                Some(code::END) => {
                    self.done = true;
                    let tail = self.area.get(self.pos + 1..).unwrap_or_default();
                    if tail.iter().any(|&b| b != code::PAD) {
                        return Some(Err(WireError::DataAfterEnd));
                    }
                    return None;
                }
                Some(code) => {
                    let Some(&len) = self.area.get(self.pos + 1) else {
                        return self.fail(WireError::OptionOverrun {
                            code,
                            offset,
                            len: 0,
                        });
                    };
                    let len = usize::from(len);
                    let Some(value) = self.area.get(self.pos + 2..self.pos + 2 + len) else {
                        return self.fail(WireError::OptionOverrun { code, offset, len });
                    };
                    self.pos += 2 + len;
                    return Some(Ok((code, offset, value)));
                }
            }
        }
    }
}

/// An option seen more than once (RFC 3396 §7): its fragments are joined
/// here, then typed into `options[index]`.
struct Join {
    index: usize,
    left: u16,
    value: Vec<u8>,
}

fn be16(b: &[u8; MIN_MESSAGE_LEN], at: usize) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(b.get(at..at + 2).unwrap_or(&[0; 2]));
    u16::from_be_bytes(a)
}

fn be32(b: &[u8; MIN_MESSAGE_LEN], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(b.get(at..at + 4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(a)
}

fn copy_field<const N: usize>(b: &[u8; MIN_MESSAGE_LEN], at: usize) -> [u8; N] {
    let mut a = [0; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}

fn decode_impl(buf: &[u8]) -> Result<Message, WireError> {
    // RFC 2131 §2: fixed header (236 octets) then the magic cookie (§3).
    let h: &[u8; MIN_MESSAGE_LEN] = buf
        .get(..MIN_MESSAGE_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated {
            len: buf.len(),
            min: MIN_MESSAGE_LEN,
        })?;
    let cookie = be32(h, 236);
    if cookie != MAGIC_COOKIE {
        return Err(WireError::BadMagicCookie(cookie));
    }
    let [op, htype, hlen, hops] = copy_field::<4>(h, 0);
    if op != BOOTREQUEST && op != BOOTREPLY {
        return Err(WireError::BadOp(op));
    }
    if hlen > 16 {
        return Err(WireError::BadHlen(hlen));
    }
    let area = buf.get(MIN_MESSAGE_LEN..).unwrap_or_default();

    // Pass 1: structure only (bounds, END, trailer, overload), and how many
    // instances and bytes each code has, so pass 2 allocates exactly.
    let mut count = [0u16; 256];
    let mut bytes = [0u32; 256];
    let mut distinct = 0usize;
    for r in RawOptions::new(area) {
        let (code, _, value) = r?;
        if code == code::OVERLOAD {
            // RFC 2132 §9.3: we do not read options from sname/file.
            return Err(WireError::OptionOverload);
        }
        let i = usize::from(code);
        if let (Some(n), Some(b)) = (count.get_mut(i), bytes.get_mut(i)) {
            if *n == 0 {
                distinct += 1;
            }
            *n = n.saturating_add(1);
            *b = b.saturating_add(value.len() as u32);
        }
    }

    // Pass 2: type each option. RFC 3396 §7: all instances of one code are
    // concatenated, in order, into one value that takes the place of the first.
    let mut options = Vec::with_capacity(distinct);
    let mut join_of = [0u8; 256]; // code -> index into `joins` + 1; 0 = none
    let mut joins: Vec<Join> = Vec::new();
    for r in RawOptions::new(area) {
        let (code, _, value) = r?;
        let i = usize::from(code);
        let n = count.get(i).copied().unwrap_or(0);
        if n <= 1 {
            options.push(codec::parse(code, value)?);
            continue;
        }
        let slot = join_of.get(i).copied().unwrap_or(0);
        let j = if slot == 0 {
            let mut v = Vec::with_capacity(bytes.get(i).copied().unwrap_or(0) as usize);
            v.extend_from_slice(value);
            joins.push(Join {
                index: options.len(),
                left: n - 1,
                value: v,
            });
            // A placeholder that does not allocate; replaced below.
            options.push(DhcpOption::Unknown {
                code,
                data: Vec::new(),
            });
            if let Some(s) = join_of.get_mut(i) {
                // At most 253 codes (not PAD, END, overload) can repeat.
                *s = u8::try_from(joins.len()).unwrap_or(u8::MAX);
            }
            match joins.last_mut() {
                Some(j) => j,
                None => continue,
            }
        } else {
            match joins.get_mut(usize::from(slot) - 1) {
                Some(j) => {
                    j.value.extend_from_slice(value);
                    j.left = j.left.saturating_sub(1);
                    j
                }
                None => continue,
            }
        };
        if j.left == 0 {
            let typed = codec::parse(code, &j.value)?;
            if let Some(o) = options.get_mut(j.index) {
                *o = typed;
            }
        }
    }

    Ok(Message {
        op,
        htype,
        hlen,
        hops,
        xid: be32(h, 4),
        secs: be16(h, 8),
        flags: be16(h, 10),
        ciaddr: Ipv4Addr::from(be32(h, 12)),
        yiaddr: Ipv4Addr::from(be32(h, 16)),
        siaddr: Ipv4Addr::from(be32(h, 20)),
        giaddr: Ipv4Addr::from(be32(h, 24)),
        chaddr: copy_field(h, 28),
        sname: copy_field(h, 44),
        file: copy_field(h, 108),
        options,
    })
}

/// Append one option: code, length, value; a value over 255 octets is split
/// into consecutive fragments of the same code (RFC 3396 §5).
fn write_option(opt: &DhcpOption, out: &mut Vec<u8>) -> Result<(), WireError> {
    let code = opt.code();
    let hdr = out.len();
    out.push(code);
    out.push(0);
    codec::write_value(opt, out)?;
    let vlen = out.len() - hdr - 2;
    if let Ok(len) = u8::try_from(vlen) {
        if let Some(l) = out.get_mut(hdr + 1) {
            *l = len;
        }
        return Ok(());
    }
    let value = out.split_off(hdr + 2);
    out.truncate(hdr);
    out.reserve(value.len() + 2 * value.len().div_ceil(255));
    for frag in value.chunks(255) {
        out.push(code);
        out.push(frag.len() as u8);
        out.extend_from_slice(frag);
    }
    Ok(())
}

fn encode_header(m: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(&[m.op, m.htype, m.hlen, m.hops]);
    out.extend_from_slice(&m.xid.to_be_bytes());
    out.extend_from_slice(&m.secs.to_be_bytes());
    out.extend_from_slice(&m.flags.to_be_bytes());
    for a in [m.ciaddr, m.yiaddr, m.siaddr, m.giaddr] {
        out.extend_from_slice(&a.octets());
    }
    out.extend_from_slice(&m.chaddr);
    out.extend_from_slice(&m.sname);
    out.extend_from_slice(&m.file);
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
}

fn encode_impl(m: &Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    // Refuse what decode would refuse, so every encoding decodes again.
    if m.op != BOOTREQUEST && m.op != BOOTREPLY {
        return Err(WireError::BadOp(m.op));
    }
    if m.hlen > 16 {
        return Err(WireError::BadHlen(m.hlen));
    }
    let start = out.len();
    out.reserve(BOOTP_MIN_LEN);
    encode_header(m, out);
    for opt in &m.options {
        if let Err(e) = write_option(opt, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    out.push(code::END);
    let len = out.len() - start;
    if len > MAX_ENCODED_LEN {
        out.truncate(start);
        return Err(WireError::TooLong(len));
    }
    Ok(())
}
