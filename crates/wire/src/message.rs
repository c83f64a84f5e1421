//! The BOOTP/DHCP message (RFC 2131 §2) with its options in wire order.

use std::net::Ipv4Addr;

use crate::{DhcpOption, MessageType, WireError};

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
    pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
        crate::message::decode_impl(buf)
    }

    /// Append the encoded message to `out` (options in `self.options` order,
    /// long options split per RFC 3396, then END).
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

fn decode_impl(_buf: &[u8]) -> Result<Message, WireError> {
    todo!("wire helper implements this")
}

fn encode_impl(_m: &Message, _out: &mut Vec<u8>) -> Result<(), WireError> {
    todo!("wire helper implements this")
}
