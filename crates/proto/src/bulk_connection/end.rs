//! Why a leasequery connection ended before (or without) an active query:
//! each reason as the server logs it.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkEnd {
    /// The requestor closed its side and every query is answered.
    RequestorClosed,
    /// The connection would go over a limit (RFC 6926 §8.1): closed with
    /// no answer. The driver logged the refusal when it claimed the place.
    OverLimit,
    /// The server is shutting down (RFC 6926 §8.5).
    Shutdown,
    /// A reload no longer allows the requestor.
    Revoked,
    /// The requestor closed before its first message was complete.
    ClosedBeforeMessage,
    /// No complete first message within BULK_LQ_DATA_TIMEOUT (RFC 6926 §8.1).
    OpeningTimeout(Duration),
    /// A message begun and not completed within BULK_LQ_DATA_TIMEOUT.
    MessageTimeout(Duration),
    /// No query outstanding for BULK_LQ_DATA_TIMEOUT (RFC 6926 §8.5).
    Idle(Duration),
    /// Writes made no progress for BULK_LQ_DATA_TIMEOUT (RFC 6926 §8.2).
    NotReading(Duration),
    /// The DHCPTLS answer could not be written within BULK_LQ_DATA_TIMEOUT.
    BlockedTlsAnswer,
    /// A length prefix of 0 or over the limit: the stream cannot be trusted.
    BadFraming(String),
    /// A plaintext message on a listener that takes TLS only (RFC 7724 §8.1).
    PlainOnSecure,
    /// DHCPTLS on a listener without TLS (RFC 7724 §7.2).
    TlsRefused,
    /// Bytes after DHCPTLS, before the handshake (STARTTLS injection).
    EarlyData(usize),
    /// A frame that does not decode as a DHCP message.
    Undecodable(String),
    /// A bulk query reusing the xid of one in flight (RFC 6926 §7.7).
    DuplicateXid(u32),
    /// An active query with bulk queries in flight (RFC 7724 §8.3).
    ActiveWithBulk,
    /// An active query refused (RFC 7724 §8.2), with the refusal's label.
    ActiveRefused(&'static str),
    /// An active query over the active limits (RFC 7724 §8.3, §8.4); the
    /// driver's description of the limit.
    ActiveOverLimit(String),
    /// DHCPTLS other than as the first message.
    TlsNotFirst,
    /// A message type not served over TCP (RFC 7724 §8.1.1).
    NotAllowedType(&'static str),
}

impl fmt::Display for BulkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkEnd::RequestorClosed => f.write_str("requestor closed the connection"),
            BulkEnd::OverLimit => f.write_str("over the connection limit"),
            BulkEnd::Shutdown => f.write_str("server shutting down"),
            BulkEnd::Revoked => f.write_str("requestor no longer allowed (configuration reloaded)"),
            BulkEnd::ClosedBeforeMessage => {
                f.write_str("closed by the requestor before a complete message")
            }
            BulkEnd::OpeningTimeout(t) => {
                write!(f, "no complete message within {t:?} (BULK_LQ_DATA_TIMEOUT)")
            }
            BulkEnd::MessageTimeout(t) => write!(
                f,
                "message not completed within {t:?} (BULK_LQ_DATA_TIMEOUT)"
            ),
            BulkEnd::Idle(t) => write!(f, "idle for {t:?} (BULK_LQ_DATA_TIMEOUT)"),
            BulkEnd::NotReading(t) => {
                write!(f, "requestor not reading for {t:?} (BULK_LQ_DATA_TIMEOUT)")
            }
            BulkEnd::BlockedTlsAnswer => f.write_str("blocked writing the DHCPTLS answer"),
            BulkEnd::BadFraming(e) => write!(f, "bad framing: {e}"),
            BulkEnd::PlainOnSecure => f.write_str("plaintext message on a secure-only listener"),
            BulkEnd::TlsRefused => {
                f.write_str("DHCPTLS on an insecure-only listener: answered TLSConnectionRefused")
            }
            BulkEnd::EarlyData(n) => write!(
                f,
                "{n} byte(s) arrived after DHCPTLS; closing without reading them"
            ),
            BulkEnd::Undecodable(e) => write!(f, "undecodable message: {e}"),
            BulkEnd::DuplicateXid(xid) => {
                write!(f, "duplicate xid {xid:#010x} on one connection")
            }
            BulkEnd::ActiveWithBulk => {
                f.write_str("active query on a connection with bulk queries")
            }
            BulkEnd::ActiveRefused(reason) => write!(f, "active query refused: {reason}"),
            BulkEnd::ActiveOverLimit(limit) => {
                write!(f, "active query over the connection limit ({limit})")
            }
            BulkEnd::TlsNotFirst => f.write_str("DHCPTLS is only allowed as the first message"),
            BulkEnd::NotAllowedType(name) => write!(
                f,
                "message type {name} not allowed on a leasequery connection"
            ),
        }
    }
}
