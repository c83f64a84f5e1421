use thiserror::Error;

/// Why a datagram or framed message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("message is {len} bytes, shorter than the {min}-byte fixed header and cookie")]
    Truncated { len: usize, min: usize },
    #[error("bad magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    #[error("bad op {0} (want 1 BOOTREQUEST or 2 BOOTREPLY)")]
    BadOp(u8),
    #[error("hlen {0} exceeds 16")]
    BadHlen(u8),
    /// `offset` is the offset of the option's code octet in the message;
    /// `len` is 0 when the length octet itself is missing.
    #[error("option {code} at offset {offset}: length {len} runs past the end of the options")]
    OptionOverrun { code: u8, offset: usize, len: usize },
    #[error("option {code}: bad length {len} ({expected})")]
    BadOptionLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("option {code}: bad value: {reason}")]
    BadOptionValue { code: u8, reason: &'static str },
    /// `len` is 0 when the sub-option's length octet itself is missing.
    #[error("option 82 sub-option {sub}: length {len} runs past the end of the option")]
    SubOptionOverrun { sub: u8, len: usize },
    #[error("option 52 (overload) is not accepted")]
    OptionOverload,
    #[error("missing end option (255)")]
    MissingEnd,
    #[error("non-padding bytes after the end option")]
    DataAfterEnd,
    /// Not produced by `Message::decode` (BOOTP messages decode); see
    /// `Message::require_message_type`.
    #[error("no message type option (53)")]
    NoMessageType,
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("encoded message would be {0} bytes, over the 65535-byte limit")]
    TooLong(usize),
}
