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
        FrameDecoder {
            max_len: max_len.min(65535),
            buf: Vec::new(),
            start: 0,
            error: None,
        }
    }
    /// Append bytes read from the stream. Bytes given after an error are dropped.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // Compact once the consumed prefix is over half the buffer, so the
        // buffer stays bounded by about two messages plus one read.
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message body, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(&[hi, lo]) = pending.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        // Checked as soon as the length arrives, before waiting for the body.
        let err = if len == 0 {
            Some(FrameError::ZeroLength)
        } else if len > self.max_len {
            Some(FrameError::TooLong {
                len,
                max: self.max_len,
            })
        } else {
            None
        };
        if let Some(e) = err {
            self.error = Some(e.clone());
            return Err(e);
        }
        let body_start = self.start + 2;
        let body_end = body_start + len;
        if self.buf.len() < body_end {
            return Ok(None);
        }
        self.start = body_end;
        Ok(self.buf.get(body_start..body_end))
    }

    /// True once an error was returned; the connection should be closed.
    pub fn is_poisoned(&self) -> bool {
        self.error.is_some()
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
        return Err(FrameError::TooLong {
            len: body.len(),
            max: 65535,
        });
    }
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_stays_bounded_when_frames_straddle_reads() {
        let mut stream = Vec::new();
        for i in 0..2000u32 {
            encode_frame(&[i as u8; 100], &mut stream).unwrap();
        }
        let mut d = FrameDecoder::new(65535);
        let mut seen = 0u32;
        // 150-byte reads: every read ends mid-frame, so the buffer never empties.
        for chunk in stream.chunks(150) {
            d.extend(chunk);
            while let Some(f) = d.next_frame().unwrap() {
                assert_eq!(f, &[seen as u8; 100][..]);
                seen += 1;
            }
            assert!(
                d.buf.len() <= 2 * 102 + 150,
                "buffer grew to {}",
                d.buf.len()
            );
        }
        assert_eq!(seen, 2000);
    }
}
