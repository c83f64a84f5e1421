//! 2-octet big-endian length framing for leasequery over TCP
//! (RFC 6926 §6.3, RFC 7724 §5.1). Incremental: feed bytes as they arrive.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame length 0")]
    ZeroLength,
    #[error("frame length {len} exceeds the configured maximum {max}")]
    TooLong { len: usize, max: usize },
}

/// Incremental decoder. Push bytes with [`FrameDecoder::extend`], take whole
/// messages with [`FrameDecoder::next_frame`]. After an error the decoder is
/// poisoned (the stream can no longer be trusted) and returns the same error.
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    buf: Vec<u8>,
    start: usize,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// `max_len` is the largest message accepted (at most 65535).
    pub fn new(max_len: usize) -> Self {
        FrameDecoder { max_len: max_len.min(65535), buf: Vec::new(), start: 0, error: None }
    }
    pub fn extend(&mut self, _bytes: &[u8]) {
        todo!()
    }
    /// The next complete message body, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        todo!()
    }
    /// Bytes held that are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
    /// True when a message has started (some of its bytes arrived) but is not complete.
    pub fn mid_message(&self) -> bool {
        self.buffered() > 0
    }
}

/// Append `2-byte length || body` to `out`.
pub fn encode_frame(body: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if body.is_empty() {
        return Err(FrameError::ZeroLength);
    }
    if body.len() > 65535 {
        return Err(FrameError::TooLong { len: body.len(), max: 65535 });
    }
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}
