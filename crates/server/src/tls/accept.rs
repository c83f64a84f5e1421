//! The server side of the handshake, after DHCPTLS has been answered.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::refusal::classify;
use super::verdict::{Verdict, VERDICT};
use super::{CertIdentity, PeerIdentity, RefusalKind, TlsRefusal};

/// Longest wait for a TLS handshake to finish: BULK_LQ_DATA_TIMEOUT
/// (RFC 7724 §8.1: a connection blocked while being accepted is closed after it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);

/// Run the server side of the TLS handshake on a connection whose DHCPTLS
/// request has been answered with DHCPTLS (no status code), waiting at most
/// [`HANDSHAKE_TIMEOUT`]. On success returns the TLS stream and the allowed
/// requestor's identity; on failure the reason (the caller logs it with the
/// peer address and drops the connection; rustls has already sent the alert).
///
/// **STARTTLS injection (hostile-input rule):** hand over the raw stream only
/// when the frame decoder that read DHCPTLS holds no byte beyond that message
/// (`FrameDecoder::buffered() == 0`). Bytes a requestor sent after DHCPTLS and
/// before our answer must never be read as DHCP: when there are some, close
/// the connection instead (see [`TlsRefusal::early_data`]). Bytes still in the
/// kernel socket buffer are safe: they go to rustls as TLS records, and
/// anything that is not a ClientHello fails the handshake.
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    io: S,
) -> Result<(TlsStream<S>, PeerIdentity), TlsRefusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with_timeout(acceptor, io, HANDSHAKE_TIMEOUT).await
}

/// [`accept`] with an explicit handshake timeout.
pub async fn accept_with_timeout<S>(
    acceptor: &TlsAcceptor,
    io: S,
    timeout: Duration,
) -> Result<(TlsStream<S>, PeerIdentity), TlsRefusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let slot: Arc<Mutex<Option<Verdict>>> = Arc::new(Mutex::new(None));
    let handshake = VERDICT.scope(slot.clone(), acceptor.accept(io));
    let result = tokio::time::timeout(timeout, handshake).await;
    let verdict = slot.lock().take();
    match result {
        Err(_) => Err(TlsRefusal {
            kind: RefusalKind::Timeout,
            detail: format!("no complete handshake within {timeout:?}"),
        }),
        Ok(Err(e)) => Err(classify(&e, verdict)),
        Ok(Ok(stream)) => match verdict {
            Some(Verdict::Allowed(peer)) => Ok((stream, peer)),
            // Fail closed: a handshake that never went through our verifier
            // (an acceptor not built by `server_config`) is not trusted.
            _ => {
                let presented = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| CertIdentity::from_der(c.as_ref()).to_string())
                    .unwrap_or_else(|| "no certificate".into());
                Err(TlsRefusal {
                    kind: RefusalKind::NotAllowed,
                    detail: format!(
                        "the handshake did not go through the allowlist verifier ({presented})"
                    ),
                })
            }
        },
    }
}
