//! The read side of a leasequery connection: framing (RFC 6926 §6.3) and
//! the data timeout. RFC 6926 §8.1 and RFC 7724 §8.1: a connection that
//! blocks while the server reads a query is closed after
//! BULK_LQ_DATA_TIMEOUT. The timeout bounds each whole message from its
//! first byte, so a requestor trickling bytes is closed as surely as a
//! silent one; time the server itself stops reading (at the query limit,
//! RFC 6926 §8.4) is not counted against the requestor.

use std::time::{Duration, Instant};

use leaseline_wire::{FrameDecoder, FrameError};

pub(crate) struct Reading {
    decoder: FrameDecoder,
    limit: Duration,
    /// When the message now partly read began: its first byte, or the end
    /// of a pause of ours.
    started: Option<Instant>,
    last_read: Instant,
    paused: bool,
    eof: bool,
}

impl Reading {
    /// `decoder` may hold bytes read already (they count from `now`).
    pub(crate) fn new(decoder: FrameDecoder, limit: Duration, now: Instant) -> Self {
        Reading {
            started: decoder.mid_message().then_some(now),
            decoder,
            limit,
            last_read: now,
            paused: false,
            eof: false,
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        if !self.decoder.mid_message() {
            self.started = Some(now);
        }
        self.last_read = now;
        self.decoder.extend(bytes);
    }

    pub(crate) fn eof(&mut self) {
        self.eof = true;
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.eof
    }

    /// The next whole message. A message begun in the same read as this
    /// one ended started with that read.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let frame = self.decoder.next_frame()?.map(<[u8]>::to_vec);
        if frame.is_some() {
            self.started = self.decoder.mid_message().then_some(self.last_read);
        }
        Ok(frame)
    }

    /// The server stops (or resumes) reading. A pause is ours, not the
    /// requestor's: a message it interrupted counts again from `now`.
    pub(crate) fn pause(&mut self, paused: bool, now: Instant) {
        if self.paused && !paused && self.decoder.mid_message() {
            self.started = Some(now);
        }
        self.paused = paused;
    }

    /// When the message now partly read is overdue (None: none is, or
    /// reading is paused or over).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.paused || self.eof || !self.decoder.mid_message() {
            return None;
        }
        Some(self.started.unwrap_or(self.last_read) + self.limit)
    }

    /// Bytes held past the messages taken.
    pub(crate) fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    pub(crate) fn into_decoder(self) -> FrameDecoder {
        self.decoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_message_is_timed_from_its_first_byte_not_its_last() {
        let t0 = Instant::now();
        let mut r = Reading::new(FrameDecoder::new(100), LIMIT, t0);
        assert_eq!(r.deadline(), None, "nothing begun");
        r.bytes(&[0], secs(t0, 1));
        r.bytes(&[3], secs(t0, 5));
        r.bytes(&[1], secs(t0, 9));
        assert_eq!(r.deadline(), Some(secs(t0, 11)));
        r.bytes(&[2, 3, 0], secs(t0, 10));
        assert_eq!(r.next_frame().unwrap(), Some(vec![1, 2, 3]));
        // The next one began in the read that ended this one.
        assert_eq!(r.deadline(), Some(secs(t0, 20)));
    }

    #[test]
    fn a_pause_of_ours_is_not_counted() {
        let t0 = Instant::now();
        let mut r = Reading::new(FrameDecoder::new(100), LIMIT, t0);
        r.bytes(&[0, 2, 1], t0);
        r.pause(true, secs(t0, 1));
        assert_eq!(r.deadline(), None);
        r.pause(false, secs(t0, 50));
        assert_eq!(r.deadline(), Some(secs(t0, 60)));
        r.eof();
        assert_eq!(r.deadline(), None, "nothing more can come");
    }

    #[test]
    fn bytes_held_at_the_start_count_from_then() {
        let t0 = Instant::now();
        let mut d = FrameDecoder::new(100);
        d.extend(&[0]);
        let r = Reading::new(d, LIMIT, t0);
        assert_eq!(r.deadline(), Some(secs(t0, 10)));
    }
}
