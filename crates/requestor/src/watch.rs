//! `leaseline watch`: one Active Leasequery kept alive across failures
//! (RFC 7724 §7): resume from the highest base-time seen after catch-up,
//! close after ACTIVE_LQ_RCV_TIMEOUT of silence, reconnect no more often
//! than ACTIVE_LQ_IDLE_TIMEOUT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use leaseline_wire::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::active::{active_query, classify, ActiveError, ActiveEvent, FramedConn};
use crate::record::Record;
use crate::resume::ResumeFile;

/// ACTIVE_LQ_RCV_TIMEOUT and ACTIVE_LQ_IDLE_TIMEOUT defaults (RFC 7724 §5.3).
pub const RCV_TIMEOUT: Duration = Duration::from_secs(120);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Any byte stream a leasequery connection can run over (TCP, TLS).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}
pub type BoxStream = Box<dyn ByteStream>;

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub server: SocketAddr,
    /// Catch up from this time on the first connection (query-start-time).
    pub since: Option<u32>,
    /// Keep the highest base-time seen after catch-up here, and start from it.
    pub resume: Option<PathBuf>,
    pub rcv_timeout: Duration,
    /// Least time between two connection attempts.
    pub retry_interval: Duration,
    /// Reconnect after a failure (else return).
    pub reconnect: bool,
    pub prl: Vec<u8>,
}

/// What happened, for the caller to print or apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Connected {
        since: Option<u32>,
    },
    Update(Record),
    /// Catch-up finished (RFC 7724 §7.4.1).
    CatchUpComplete {
        base_time: Option<u32>,
    },
    /// The server no longer had history back to `from`: changes between
    /// `from` and `until` may be missing (fill them with a bulk query).
    DataMissing {
        from: Option<u32>,
        until: Option<u32>,
    },
    KeepAlive {
        base_time: Option<u32>,
    },
    /// The server ended the query (shutdown).
    Terminated {
        base_time: Option<u32>,
    },
    /// A refusal (MalformedQuery, NotAllowed, TLSConnectionRefused, ...).
    Refused {
        code: StatusCode,
        text: String,
    },
    Disconnected {
        reason: String,
    },
}

/// Why the watch ended (when it does not reconnect).
#[derive(Debug)]
pub enum WatchEnd {
    Refused(StatusCode, String),
    Failed(String),
}

pub async fn connect_tcp(addr: SocketAddr) -> Result<BoxStream, ActiveError> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            ActiveError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })??;
    s.set_nodelay(true)?;
    Ok(Box::new(s))
}

/// Run the watch until a refusal, or a failure when `reconnect` is off.
/// `open` makes each connection's stream (TCP, or TLS after DHCPTLS).
pub async fn watch<F, Fut>(
    opts: &WatchOptions,
    open: F,
    sink: &mut (dyn FnMut(WatchEvent) + Send),
) -> WatchEnd
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<BoxStream, ActiveError>>,
{
    let mut resume = ResumeFile::new(opts.resume.clone());
    let mut saved = resume.load().or(opts.since);
    let mut last_attempt: Option<Instant> = None;
    let mut xid: u32 = std::process::id().wrapping_mul(2_654_435_761);
    loop {
        if let Some(t) = last_attempt {
            // RFC 7724 §7.1: retries no more often than ACTIVE_LQ_IDLE_TIMEOUT.
            let wait = opts.retry_interval.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        last_attempt = Some(Instant::now());
        xid = xid.wrapping_add(1);
        let outcome = session(opts, &open, xid, saved, &mut resume, sink).await;
        if let Some(t) = resume.highest() {
            saved = Some(t);
        }
        resume.flush();
        match outcome {
            Ok(end @ WatchEnd::Refused(..)) => return end,
            Ok(WatchEnd::Failed(reason)) | Err(reason) => {
                sink(WatchEvent::Disconnected {
                    reason: reason.clone(),
                });
                if !opts.reconnect {
                    return WatchEnd::Failed(reason);
                }
                info!(reason = %reason, retry_in = ?opts.retry_interval, "reconnecting");
            }
        }
    }
}

/// One connection: query, then events until it ends.
async fn session<F, Fut>(
    opts: &WatchOptions,
    open: &F,
    xid: u32,
    since: Option<u32>,
    resume: &mut ResumeFile,
    sink: &mut (dyn FnMut(WatchEvent) + Send),
) -> Result<WatchEnd, String>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<BoxStream, ActiveError>>,
{
    let stream = match open(opts.server).await {
        Ok(s) => s,
        // RFC 7724 §7.2: the server is insecure-only. Reported as a refusal
        // (no reconnect loop, no plaintext fallback).
        Err(ActiveError::TlsRefused) => {
            let text = "the server runs insecure mode only".to_string();
            sink(WatchEvent::Refused {
                code: StatusCode::TlsConnectionRefused,
                text: text.clone(),
            });
            return Ok(WatchEnd::Refused(StatusCode::TlsConnectionRefused, text));
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut conn = FramedConn::new(stream);
    conn.send(&active_query(xid, since, &opts.prl))
        .await
        .map_err(|e| e.to_string())?;
    sink(WatchEvent::Connected { since });
    // RFC 7724 §7.4.1: no base-time is kept until catch-up is over.
    let mut caught_up = since.is_none();
    loop {
        let m = conn
            .recv(opts.rcv_timeout)
            .await
            .map_err(|e| e.to_string())?;
        match classify(&m) {
            ActiveEvent::Update(r) => {
                if caught_up {
                    if let Some(t) = r.base_time {
                        resume.observe(t);
                    }
                }
                sink(WatchEvent::Update(r));
            }
            ActiveEvent::Status {
                code,
                text,
                base_time,
            } => match code {
                StatusCode::CatchUpComplete => {
                    caught_up = true;
                    if let Some(t) = base_time {
                        resume.observe(t);
                    }
                    sink(WatchEvent::CatchUpComplete { base_time });
                }
                StatusCode::DataMissing => {
                    // The catch-up phase ends here; the gap is reported, not hidden.
                    caught_up = true;
                    if let Some(t) = base_time {
                        resume.observe(t);
                    }
                    sink(WatchEvent::DataMissing {
                        from: since,
                        until: base_time,
                    });
                }
                StatusCode::ConnectionActive => {
                    if caught_up {
                        if let Some(t) = base_time {
                            resume.observe(t);
                        }
                    }
                    sink(WatchEvent::KeepAlive { base_time });
                }
                StatusCode::QueryTerminated => {
                    sink(WatchEvent::Terminated { base_time });
                    return Ok(WatchEnd::Failed("the server terminated the query".into()));
                }
                other => {
                    sink(WatchEvent::Refused {
                        code: other,
                        text: text.clone(),
                    });
                    return Ok(WatchEnd::Refused(other, text));
                }
            },
            ActiveEvent::TlsRefused => {
                sink(WatchEvent::Refused {
                    code: StatusCode::TlsConnectionRefused,
                    text: String::new(),
                });
                return Ok(WatchEnd::Refused(
                    StatusCode::TlsConnectionRefused,
                    String::new(),
                ));
            }
            ActiveEvent::Unexpected(t) => {
                warn!(
                    message_type = t,
                    "unexpected message on the active connection; closing"
                );
                return Err(format!("unexpected message type {t} from the server"));
            }
        }
        resume.maybe_flush();
    }
}
