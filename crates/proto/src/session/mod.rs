//! What the leasequery TCP sessions share, sans IO: the read side (framing
//! and the data timeout) and the write side (the no-progress deadline and
//! when all is written). [`crate::BulkConnection`] and
//! [`crate::ActiveSession`] are built from these; a driver feeds them and
//! drains them, quinn-proto style:
//!
//! ```text
//! read bytes ───► session.handle_bytes(buf, now)      (EOF: handle_eof)
//! wrote bytes ──► session.handle_written(now, left)
//! timer fires ──► session.handle_timeout(now)
//! shutdown ─────► session.handle_shutdown(now)
//! store answer ─► session.handle_store / handle_history / handle_updates
//! then:  while let Some(ev) = session.poll_event() { start a read, log, close }
//!        session.poll_transmit(now, &mut out)     (when `out` is written)
//!        sleep until session.poll_timeout()
//! ```
//!
//! Time is passed in, never read: `now` is the driver's monotonic clock for
//! every timer, and a wall-clock reading (u32 Unix seconds) for base-times.
//! So every timing rule is unit-tested on a virtual clock.

mod reading;
mod sending;

pub(crate) use reading::Reading;
pub(crate) use sending::Sending;

/// How long the last bytes of a connection that is being closed may take
/// to go out (a status before a close, QueryTerminated, the DONEs of a
/// shutdown): the close does not wait on a requestor that stopped reading.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A moment, as the driver read its clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock: every timer.
    pub mono: std::time::Instant,
    /// The wall clock, u32 Unix seconds: base-times (RFC 6926 §6.2.3). For
    /// an active session, the feed's time (never behind a change already
    /// published).
    pub unix: u32,
}

/// A close: why, and how long the output already queued may take to be
/// written before the connection is dropped (zero: drop it now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close<E> {
    pub end: E,
    pub linger: std::time::Duration,
}
