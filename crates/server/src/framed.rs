//! One leasequery connection's bytes, plain or TLS: what it reads, and the
//! session's output written as the socket takes it. When to read, how long
//! a write may go without progress and when to close are the session's
//! rules (`leaseline_proto::session`); this only moves bytes.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read at a time.
const READ: usize = 4096;

pub struct Framed<R, W> {
    rd: R,
    wr: W,
    rbuf: Box<[u8]>,
    out: Vec<u8>,
    /// Where the unwritten output starts.
    at: usize,
    /// Everything written was flushed too (TLS buffers records).
    flushed: bool,
}

/// What [`Framed::next`] saw.
#[derive(Debug)]
pub enum Io {
    /// This many bytes read: [`Framed::read_bytes`].
    Read(usize),
    Eof,
    /// Output went out; this many bytes are still to write (0: all written
    /// and flushed).
    Written(usize),
    Failed(String),
}

impl<R, W> Framed<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    pub fn new(rd: R, wr: W) -> Self {
        Framed {
            rd,
            wr,
            rbuf: vec![0; READ].into_boxed_slice(),
            out: Vec::with_capacity(64 * 1024),
            at: 0,
            flushed: true,
        }
    }

    /// The output buffer, to append to (what is unwritten stays first).
    pub fn out(&mut self) -> &mut Vec<u8> {
        if self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
        }
        &mut self.out
    }

    pub fn unwritten(&self) -> usize {
        self.out.len() - self.at
    }

    pub fn read_bytes(&self, n: usize) -> &[u8] {
        &self.rbuf[..n]
    }

    /// Read (when `reading`) or write, whichever is ready first; pending
    /// forever when there is neither. Cancel-safe: a read or write that
    /// did not complete did not happen.
    pub async fn next(&mut self, reading: bool) -> Io {
        let Framed {
            rd,
            wr,
            rbuf,
            out,
            at,
            flushed,
        } = self;
        let writing = *at < out.len() || !*flushed;
        tokio::select! {
            r = rd.read(rbuf), if reading => match r {
                Ok(0) => Io::Eof,
                Ok(n) => Io::Read(n),
                Err(e) => Io::Failed(format!("read: {e}")),
            },
            w = write_some(wr, out, at, flushed), if writing => w,
            else => std::future::pending().await,
        }
    }

    /// Write what is left and close our side, giving up after `linger`.
    pub async fn finish(&mut self, linger: Duration) {
        if linger.is_zero() {
            return;
        }
        let rest = &self.out[self.at..];
        let wr = &mut self.wr;
        let _ = tokio::time::timeout(linger, async {
            wr.write_all(rest).await?;
            wr.flush().await?;
            wr.shutdown().await
        })
        .await;
        self.at = self.out.len();
    }

    pub fn into_parts(self) -> (R, W) {
        (self.rd, self.wr)
    }
}

async fn write_some<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &[u8],
    at: &mut usize,
    flushed: &mut bool,
) -> Io {
    if *at < out.len() {
        match wr.write(&out[*at..]).await {
            Ok(0) => return Io::Failed("write: connection closed while writing".into()),
            Ok(n) => {
                *at += n;
                *flushed = false;
            }
            Err(e) => return Io::Failed(format!("write: {e}")),
        }
        if *at < out.len() {
            return Io::Written(out.len() - *at);
        }
    }
    match wr.flush().await {
        Ok(()) => {
            *flushed = true;
            Io::Written(0)
        }
        Err(e) => Io::Failed(format!("write: {e}")),
    }
}
