//! Secure mode, requestor side (RFC 7724 §7.2): send DHCPTLS as the first
//! message, and on a DHCPTLS answer without a status code run the TLS
//! handshake on the same connection. The server's certificate is validated
//! against the configured CA and the server name; our certificate is
//! presented for mutual authentication. Any failure closes the connection:
//! there is never a fallback to plaintext.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use leaseline_wire::{MessageType, StatusCode};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::active::{status_of, tls_request, ActiveError, FramedConn};
use crate::failover::Server;
use crate::random::random_u32;
use crate::watch::BoxStream;

/// How long to wait for the TCP connection, the DHCPTLS answer, and the TLS
/// handshake, each.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the requestor's TLS material is (`--ca`, `--cert`, `--key`,
/// `--server-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientSettings {
    /// PEM bundle of the CA(s) the server certificate must chain to.
    pub ca: PathBuf,
    /// Our certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Our private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The name the server certificate must carry (DNS name or IP address).
    /// None: the server's IP address.
    pub server_name: Option<String>,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{what} {path:?}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("--server-name `{0}` is neither a DNS name nor an IP address")]
    ServerName(String),
    #[error("TLS setup: {0}")]
    Config(String),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// RFC 7724 §7.2 case 3: the server runs insecure mode only.
    #[error("the server refused TLS (DHCPTLS with TLSConnectionRefused)")]
    Refused,
    /// RFC 7724 §7.2 case 2: the server does not support TLS.
    #[error("the server closed the connection after DHCPTLS (no TLS support?)")]
    Closed,
    /// RFC 7724 §7.2 case 1 (or a handshake that stalls).
    #[error("{what}: nothing within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("unexpected answer to DHCPTLS: {0}")]
    Unexpected(String),
    #[error("TLS handshake with {server} failed: {reason}")]
    Handshake { server: String, reason: String },
}

impl From<TlsError> for ActiveError {
    fn from(e: TlsError) -> ActiveError {
        match e {
            TlsError::Refused => ActiveError::TlsRefused,
            other => ActiveError::Tls(other.to_string()),
        }
    }
}

/// A loaded, ready client configuration.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    timeout: Duration,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })
}

fn file_err(what: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn certs(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(
            what,
            path,
            "no `-----BEGIN CERTIFICATE-----` block found",
        ));
    }
    Ok(certs)
}

/// Parse `--server-name`: an IP address or a DNS name.
pub fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
}

/// The name to check the server certificate against when `--server-name`
/// is not given: the host part of `--server` when it is a name (not an IP
/// literal), else None (the server's IP address is checked).
pub fn default_server_name(server_arg: &str) -> Option<String> {
    if server_arg.parse::<SocketAddr>().is_ok() || server_arg.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = match server_arg.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => server_arg,
    };
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_string())
}

impl TlsClient {
    /// Load the files named by the settings.
    pub fn new(settings: &TlsClientSettings) -> Result<TlsClient, TlsError> {
        let ca = read("--ca", &settings.ca)?;
        let cert = read("--cert", &settings.cert)?;
        let key = read("--key", &settings.key)?;
        Self::build(
            (&settings.ca, &ca),
            (&settings.cert, &cert),
            (&settings.key, &key),
            settings.server_name.as_deref(),
        )
    }

    /// Same from PEM bytes.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        server_name: Option<&str>,
    ) -> Result<TlsClient, TlsError> {
        Self::build(
            (Path::new("<ca>"), ca_pem),
            (Path::new("<cert>"), cert_pem),
            (Path::new("<key>"), key_pem),
            server_name,
        )
    }

    fn build(
        (ca_path, ca_pem): (&Path, &[u8]),
        (cert_path, cert_pem): (&Path, &[u8]),
        (key_path, key_pem): (&Path, &[u8]),
        server_name: Option<&str>,
    ) -> Result<TlsClient, TlsError> {
        let mut roots = RootCertStore::empty();
        for (i, c) in certs("--ca", ca_path, ca_pem)?.into_iter().enumerate() {
            roots.add(c).map_err(|e| {
                file_err(
                    "--ca",
                    ca_path,
                    format!("certificate #{} cannot be a trust anchor: {e}", i + 1),
                )
            })?;
        }
        let chain = certs("--cert", cert_path, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            file_err(
                "--key",
                key_path,
                match e {
                    rustls::pki_types::pem::Error::NoItemsFound => "no private key found".into(),
                    other => format!("invalid PEM: {other}"),
                },
            )
        })?;
        let server_name = server_name.map(parse_server_name).transpose()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => file_err(
                    "--key",
                    key_path,
                    format!("does not belong to the certificate in {cert_path:?}"),
                ),
                other => file_err("--key", key_path, format!("unusable key: {other}")),
            })?;
        // The server checks every connection's certificate; no resumption.
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Change the connect / DHCPTLS / handshake timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> TlsClient {
        self.timeout = timeout;
        self
    }

    /// The rustls configuration (TLS 1.2 and 1.3, rustls's default suites).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    fn name_for(&self, server: IpAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or(ServerName::IpAddress(server.into()))
    }

    /// This client for one server of a list: its own name is checked
    /// unless a name was configured for every server (`--server-name`).
    fn for_server(&self, name: Option<&str>) -> Result<TlsClient, TlsError> {
        if self.server_name.is_some() {
            return Ok(self.clone());
        }
        let mut c = self.clone();
        c.server_name = name.map(parse_server_name).transpose()?;
        Ok(c)
    }
}

/// RFC 7724 §7.2 on a fresh TCP connection: DHCPTLS, its answer, then the TLS
/// handshake. The server name checked is `--server-name` or the peer's IP.
pub async fn start_tls(
    tcp: TcpStream,
    client: &TlsClient,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let ip = tcp.peer_addr()?.ip();
    start_tls_on(tcp, client, ip).await
}

/// [`start_tls`] over any byte stream; `server_ip` is checked when no
/// server name is configured.
///
/// On any error the stream is dropped (closed): a refusal is never followed
/// by a plaintext query. Bytes that arrive after the DHCPTLS answer and
/// before the handshake are an error too (STARTTLS injection), never read.
pub async fn start_tls_on<S>(
    io: S,
    client: &TlsClient,
    server_ip: IpAddr,
) -> Result<TlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = FramedConn::new(io);
    let xid = random_u32();
    conn.send(&tls_request(xid)).await.map_err(exchange_err)?;
    let answer = conn.recv(client.timeout).await.map_err(exchange_err)?;
    match answer.message_type() {
        Some(MessageType::Tls) => match status_of(&answer) {
            None => {}
            Some((StatusCode::TlsConnectionRefused, _)) => return Err(TlsError::Refused),
            Some((code, text)) => {
                return Err(TlsError::Unexpected(format!(
                    "DHCPTLS with status {} ({}) {text}",
                    code.name(),
                    code.as_u8()
                )))
            }
        },
        Some(other) => return Err(TlsError::Unexpected(other.name().to_string())),
        None => return Err(TlsError::Unexpected("a message without a type".into())),
    }
    if conn.buffered() > 0 {
        return Err(TlsError::Unexpected(format!(
            "{} byte(s) followed the DHCPTLS answer before the TLS handshake",
            conn.buffered()
        )));
    }
    let name = client.name_for(server_ip);
    let shown = name.to_str().into_owned();
    let connector = TlsConnector::from(client.config.clone());
    match tokio::time::timeout(client.timeout, connector.connect(name, conn.into_inner())).await {
        Err(_) => Err(TlsError::Timeout {
            what: "TLS handshake",
            after: client.timeout,
        }),
        Ok(Err(e)) => Err(TlsError::Handshake {
            server: shown,
            reason: e.to_string(),
        }),
        Ok(Ok(stream)) => Ok(stream),
    }
}

fn exchange_err(e: ActiveError) -> TlsError {
    match e {
        ActiveError::Closed => TlsError::Closed,
        ActiveError::Timeout(after) => TlsError::Timeout {
            what: "answer to DHCPTLS",
            after,
        },
        ActiveError::Io(e) => TlsError::Io(e),
        other => TlsError::Unexpected(other.to_string()),
    }
}

/// Connect over TCP, then [`start_tls`].
pub async fn connect(
    addr: SocketAddr,
    client: &TlsClient,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let tcp = tokio::time::timeout(client.timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| TlsError::Timeout {
            what: "TCP connect",
            after: client.timeout,
        })??;
    tcp.set_nodelay(true)?;
    start_tls_on(tcp, client, addr.ip()).await
}

/// The future a connector returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<BoxStream, ActiveError>> + Send>>;

/// An `open` function for [`crate::watch::watch`] and the mirror: each call
/// connects, runs DHCPTLS and the handshake, and yields the TLS stream. A
/// TLSConnectionRefused answer becomes [`ActiveError::TlsRefused`]; every
/// other failure [`ActiveError::Tls`]. The name checked is the client's
/// server name when it has one, else the server's own
/// ([`Server::tls_name`]: the host typed), else its IP address.
pub fn tls_connector(
    client: TlsClient,
) -> impl Fn(Server) -> OpenFuture + Clone + Send + Sync + 'static {
    let client = Arc::new(client);
    move |server: Server| -> OpenFuture {
        let client = client.clone();
        Box::pin(async move {
            let client = client.for_server(server.tls_name.as_deref())?;
            let stream = connect(server.addr, &client).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

#[cfg(test)]
mod tests;
