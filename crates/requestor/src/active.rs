//! Active Leasequery client (RFC 7724 §7): send one DHCPACTIVELEASEQUERY,
//! then read the stream of updates and status messages. Generic over the
//! byte stream so plain TCP and TLS share it.

use std::time::Duration;

use leaseline_wire::{encode_frame, DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::record::Record;

const MAX_MESSAGE: usize = 65_535;

#[derive(Debug, Error)]
pub enum ActiveError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("nothing received for {0:?} (ACTIVE_LQ_RCV_TIMEOUT)")]
    Timeout(Duration),
    #[error("bad framing from the server: {0}")]
    Framing(#[from] leaseline_wire::FrameError),
    #[error("undecodable message from the server: {0}")]
    Decode(#[from] leaseline_wire::WireError),
    /// DHCPTLS answered with TLSConnectionRefused (RFC 7724 §7.2): the server
    /// runs insecure mode only. Never followed by a plaintext attempt.
    #[error("the server refused TLS (DHCPTLS with TLSConnectionRefused)")]
    TlsRefused,
    /// Secure mode failed: no usable DHCPTLS answer, or the TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveEvent {
    /// A binding's current state.
    Update(Record),
    /// LEASEQUERYSTATUS: CatchUpComplete, DataMissing, ConnectionActive,
    /// QueryTerminated, MalformedQuery, NotAllowed, ... with its base-time.
    Status {
        code: StatusCode,
        text: String,
        base_time: Option<u32>,
    },
    /// DHCPTLS with TLSConnectionRefused (the server is insecure-only).
    TlsRefused,
    /// Any other message type: a protocol error by the server; we close.
    Unexpected(u8),
}

/// The DHCPACTIVELEASEQUERY (RFC 7724 §7.3): no ciaddr, chaddr or
/// client-id; query-start-time only when catching up.
pub fn active_query(xid: u32, since: Option<u32>, prl: &[u8]) -> Message {
    let mut m = Message {
        xid,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options
        .push(DhcpOption::MessageType(MessageType::ActiveLeaseQuery));
    m.options
        .push(DhcpOption::ParameterRequestList(prl.to_vec()));
    if let Some(t) = since {
        m.options.push(DhcpOption::QueryStartTime(t));
    }
    m
}

/// A DHCPTLS request (RFC 7724 §7.2: sent without options).
pub fn tls_request(xid: u32) -> Message {
    let mut m = Message {
        xid,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options.push(DhcpOption::MessageType(MessageType::Tls));
    m
}

/// Framed message reader/writer over any byte stream.
pub struct FramedConn<S> {
    io: S,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FramedConn<S> {
    pub fn new(io: S) -> Self {
        FramedConn {
            io,
            decoder: FrameDecoder::new(MAX_MESSAGE),
            buf: vec![0; 64 * 1024],
        }
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), ActiveError> {
        let body = m.to_bytes()?;
        let mut out = Vec::with_capacity(body.len() + 2);
        encode_frame(&body, &mut out)?;
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The next whole message, waiting at most `timeout` for bytes.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Message, ActiveError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Message::decode(frame)?);
            }
            let n = match tokio::time::timeout(timeout, self.io.read(&mut self.buf)).await {
                Err(_) => return Err(ActiveError::Timeout(timeout)),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(ActiveError::Closed);
            }
            self.decoder.extend(&self.buf[..n]);
        }
    }

    /// Bytes read but not yet returned as a message (must be none before TLS starts).
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    pub fn into_inner(self) -> S {
        self.io
    }
}

/// Classify a message received on an active connection.
pub fn classify(m: &Message) -> ActiveEvent {
    match m.message_type() {
        Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
            match Record::from_reply(m) {
                Some(r) => ActiveEvent::Update(r),
                None => ActiveEvent::Unexpected(0),
            }
        }
        Some(MessageType::LeaseQueryStatus | MessageType::LeaseQueryDone) => {
            let (code, text) = status_of(m).unwrap_or((StatusCode::Success, String::new()));
            ActiveEvent::Status {
                code,
                text,
                base_time: base_time_of(m),
            }
        }
        Some(MessageType::Tls)
            if status_of(m).is_some_and(|(c, _)| c == StatusCode::TlsConnectionRefused) =>
        {
            ActiveEvent::TlsRefused
        }
        Some(t) => ActiveEvent::Unexpected(t as u8),
        None => ActiveEvent::Unexpected(0),
    }
}

pub fn status_of(m: &Message) -> Option<(StatusCode, String)> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, t) => Some((*c, t.clone())),
        _ => None,
    })
}

pub fn base_time_of(m: &Message) -> Option<u32> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::BaseTime(t) => Some(*t),
        _ => None,
    })
}
