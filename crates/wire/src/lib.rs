//! Strict DHCPv4 wire codec (RFC 2131, 2132, 3396) and the 2-byte length
//! framing used on leasequery TCP connections (RFC 6926 §6.3, RFC 7724 §5.1).
//!
//! No I/O, no clocks, no knowledge of leases. Every option is read from a
//! bounded sub-slice; malformed input yields a [`WireError`] naming what was
//! wrong and never panics.

#![forbid(unsafe_code)]

mod codec;
mod error;
pub mod framing;
mod message;
mod option;

pub use error::WireError;
pub use framing::{encode_frame, FrameDecoder, FrameError};
pub use message::{
    pad_to_bootp_minimum, Message, BOOTP_MIN_LEN, BOOTREPLY, BOOTREQUEST, MAGIC_COOKIE,
    MIN_MESSAGE_LEN,
};
pub use option::{code, DhcpOption, MessageType, RelayAgentInfo, StatusCode, SubOption};
