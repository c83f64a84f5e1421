//! `leaseline watch`: one Active Leasequery kept alive across failures
//! (RFC 7724 §7): resume from the highest base-time seen after catch-up,
//! close after ACTIVE_LQ_RCV_TIMEOUT of silence, reconnect no more often
//! than ACTIVE_LQ_IDLE_TIMEOUT, and with several servers fail over to the
//! next one (the loop is [`crate::failover::run`]).

use std::path::PathBuf;
use std::time::Duration;

use leaseline_wire::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::warn;

use crate::active::{active_query, classify, ActiveError, ActiveEvent, FramedConn};
use crate::failover::{self, Ended, Loss, Policy, Server, Sessions};
use crate::random::random_u32;
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
    /// Tried in this order; a lost connection moves to the next one.
    pub servers: Vec<Server>,
    /// Catch up from this time on the first connection (query-start-time).
    pub since: Option<u32>,
    /// Keep the highest base-time seen after catch-up here, and start from it.
    pub resume: Option<PathBuf>,
    pub rcv_timeout: Duration,
    /// Least time between two connection attempts to one server.
    pub retry_interval: Duration,
    /// Reconnect after a failure (else return).
    pub reconnect: bool,
    pub prl: Vec<u8>,
}

/// What happened, for the caller to print or apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Connected {
        /// The server this session runs on.
        server: String,
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

/// The plaintext `open` function of watch and mirror.
pub async fn connect_tcp(server: Server) -> Result<BoxStream, ActiveError> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server.addr))
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
/// `open` makes each connection's stream (TCP, or TLS after DHCPTLS). With
/// several servers, a lost connection moves to the next one
/// ([`crate::failover`]), which resumes from the same base-time.
pub async fn watch<F, Fut>(
    opts: &WatchOptions,
    open: F,
    sink: &mut (dyn FnMut(WatchEvent) + Send),
) -> WatchEnd
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = Result<BoxStream, ActiveError>>,
{
    if opts.servers.is_empty() {
        return WatchEnd::Failed("no server given".into());
    }
    let mut resume = ResumeFile::new(opts.resume.clone());
    let saved = resume.load().or(opts.since);
    let mut run = WatchRun {
        opts,
        open,
        resume,
        saved,
        xid: random_u32(),
        sink,
    };
    failover::run(&opts.servers, Policy::new(opts.retry_interval), &mut run).await
}

/// The watch's side of the connection loop: what is kept from one session
/// to the next (the resume point), whichever server it runs on.
struct WatchRun<'a, F> {
    opts: &'a WatchOptions,
    open: F,
    resume: ResumeFile,
    /// The query-start-time of the next session.
    saved: Option<u32>,
    xid: u32,
    sink: &'a mut (dyn FnMut(WatchEvent) + Send),
}

impl<F, Fut> Sessions for WatchRun<'_, F>
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = Result<BoxStream, ActiveError>>,
{
    type Stop = WatchEnd;
    const NAME: &'static str = "watch";

    async fn session(&mut self, server: &Server) -> Ended<WatchEnd> {
        self.xid = self.xid.wrapping_add(1);
        let mut established = false;
        let outcome = session(
            self.opts,
            &self.open,
            server,
            self.xid,
            self.saved,
            &mut self.resume,
            self.sink,
            &mut established,
        )
        .await;
        if let Some(t) = self.resume.highest() {
            self.saved = Some(t);
        }
        self.resume.flush();
        match outcome {
            Ok(end @ WatchEnd::Refused(..)) => Ended::Stop(end),
            Ok(WatchEnd::Failed(reason)) | Err(reason) => Ended::Lost {
                reason,
                established,
            },
        }
    }

    fn lost(&mut self, loss: Loss<'_>) -> Option<WatchEnd> {
        (self.sink)(WatchEvent::Disconnected {
            reason: loss.reason.to_string(),
        });
        // Without reconnecting: the first server that answers is the
        // session; once it is lost (or no server answered), the watch ends.
        (!self.opts.reconnect && (loss.established || loss.all_failed))
            .then(|| WatchEnd::Failed(loss.reason.to_string()))
    }
}

/// One connection: query, then events until it ends.
#[allow(clippy::too_many_arguments)]
async fn session<F, Fut>(
    opts: &WatchOptions,
    open: &F,
    server: &Server,
    xid: u32,
    since: Option<u32>,
    resume: &mut ResumeFile,
    sink: &mut (dyn FnMut(WatchEvent) + Send),
    established: &mut bool,
) -> Result<WatchEnd, String>
where
    F: Fn(Server) -> Fut,
    Fut: std::future::Future<Output = Result<BoxStream, ActiveError>>,
{
    let stream = match open(server.clone()).await {
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
    sink(WatchEvent::Connected {
        server: server.to_string(),
        since,
    });
    // RFC 7724 §7.4.1: no base-time is kept until catch-up is over.
    let mut caught_up = since.is_none();
    loop {
        let m = conn
            .recv(opts.rcv_timeout)
            .await
            .map_err(|e| e.to_string())?;
        *established = true;
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
                    event = "watch_unexpected_message",
                    message_type = t,
                    "unexpected message on the active connection; closing"
                );
                return Err(format!("unexpected message type {t} from the server"));
            }
        }
        resume.maybe_flush();
    }
}
