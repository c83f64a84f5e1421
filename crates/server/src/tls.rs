//! Secure mode for Bulk and Active Leasequery (RFC 7724 §8.1, §9).
//!
//! The requestor sends DHCPTLS as its first message; the server answers
//! DHCPTLS without a status code and the TLS handshake follows on the same
//! TCP connection. Afterwards every DHCP message travels inside TLS with the
//! same 2-octet framing.
//!
//! This module holds the TLS building blocks:
//!
//! - [`TlsSettings`]: the server certificate chain and key, the CA bundle that
//!   requestor certificates must chain to, and the allowlist of requestor
//!   identities ([`Allowlist`], entries `san:…`, `sha256:…`, `spki-sha256:…`),
//!   loaded from files with errors that name the file.
//! - [`TlsSettings::server_config`]: a rustls `ServerConfig` with TLS 1.2 and
//!   1.3 only, rustls's default cipher suites (all ECDHE + AEAD, within RFC 7525's
//!   rules), client authentication required, the allowlist checked *inside*
//!   the handshake (an unlisted certificate aborts it with an `access_denied`
//!   alert), and session resumption off (no session cache, no tickets), so
//!   every connection's certificate is checked against the allowlist.
//! - [`accept`]: run the handshake and report who the requestor is, or why it
//!   was refused.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::text::{self, format_hex as hex};
use parking_lot::Mutex;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest wait for a TLS handshake to finish: BULK_LQ_DATA_TIMEOUT
/// (RFC 7724 §8.1: a connection blocked while being accepted is closed after it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);

/// Configuration keys, named in error messages.
pub(crate) const KEY_CERT: &str = "leasequery.tls.cert";
pub(crate) const KEY_KEY: &str = "leasequery.tls.key";
pub(crate) const KEY_CA: &str = "leasequery.tls.ca";
const KEY_ALLOW: &str = "leasequery.tls.allowed_requestors";

/// Why the TLS material could not be loaded. Every message names the
/// configuration key and the file.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    #[error("{key} = {path:?}: cannot read the file: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} = {path:?}: {reason}")]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{KEY_ALLOW}: entry `{entry}`: {reason}")]
    AllowEntry { entry: String, reason: String },
    #[error(
        "{KEY_ALLOW} is empty: no requestor could ever connect; list each allowed requestor \
         as `san:NAME`, `sha256:HEX` (certificate fingerprint) or `spki-sha256:HEX` (public key hash)"
    )]
    EmptyAllowlist,
    #[error("TLS setup: {0}")]
    Build(String),
}

// ---------------------------------------------------------------------------
// Allowlist

/// One allowed requestor identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowEntry {
    /// `san:NAME`: a dNSName subject alternative name, compared without
    /// regard to ASCII case and a trailing dot. Wildcards are not patterns.
    Dns(String),
    /// `san:SCHEME:…`: a uniformResourceIdentifier SAN, compared exactly
    /// (e.g. `san:spiffe://lab/requestor`, `san:urn:uuid:…`).
    Uri(String),
    /// `san:ADDR`: an iPAddress SAN.
    Ip(IpAddr),
    /// `sha256:HEX`: SHA-256 of the certificate (DER), as printed by
    /// `openssl x509 -noout -fingerprint -sha256` (colons optional).
    CertSha256([u8; 32]),
    /// `spki-sha256:HEX`: SHA-256 of the SubjectPublicKeyInfo (DER): stays
    /// the same when the certificate is renewed with the same key.
    SpkiSha256([u8; 32]),
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| "expected `san:NAME`, `sha256:HEX` or `spki-sha256:HEX`".to_string())?;
        match kind.to_ascii_lowercase().as_str() {
            "san" => parse_san(value),
            "sha256" => parse_sha256(value).map(AllowEntry::CertSha256),
            "spki-sha256" => parse_sha256(value).map(AllowEntry::SpkiSha256),
            other => Err(format!(
                "unknown kind `{other}`: expected `san:`, `sha256:` or `spki-sha256:`"
            )),
        }
    }
}

fn parse_san(value: &str) -> Result<AllowEntry, String> {
    if value.is_empty() {
        return Err("empty name".into());
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(AllowEntry::Ip(ip));
    }
    // DNS names never contain ':'; anything with a scheme is a URI.
    if value.contains(':') {
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("URI contains whitespace".into());
        }
        return Ok(AllowEntry::Uri(value.to_string()));
    }
    if value.contains('*') {
        return Err("wildcards are not supported: list each requestor name".into());
    }
    let name = normalize_dns(value);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(format!("`{value}` is not a DNS name, IP address or URI"));
    }
    Ok(AllowEntry::Dns(name))
}

fn normalize_dns(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

/// A SHA-256 as hex octets ([`text::parse_hex`]: bare, or with `:` as
/// `openssl x509 -fingerprint` prints it).
fn parse_sha256(value: &str) -> Result<[u8; 32], String> {
    let octets = text::parse_hex(value).map_err(|e| format!("{e}; expected 64 hex digits"))?;
    <[u8; 32]>::try_from(octets.as_slice()).map_err(|_| {
        format!(
            "expected 64 hex digits (32 octets, colons allowed), got {} octets",
            octets.len()
        )
    })
}

impl fmt::Display for AllowEntry {
    /// The canonical form, which parses back to the same entry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Dns(n) => write!(f, "san:{n}"),
            AllowEntry::Uri(u) => write!(f, "san:{u}"),
            AllowEntry::Ip(ip) => write!(f, "san:{ip}"),
            AllowEntry::CertSha256(h) => write!(f, "sha256:{}", hex(h)),
            AllowEntry::SpkiSha256(h) => write!(f, "spki-sha256:{}", hex(h)),
        }
    }
}

/// The identities a certificate offers, in allowlist form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject DN (for logs only: never matched).
    pub subject: String,
    /// The issuer DN (for logs only).
    pub issuer: String,
    /// dNSName, URI and iPAddress subject alternative names.
    pub sans: Vec<AllowEntry>,
    /// SHA-256 of the certificate DER.
    pub sha256: [u8; 32],
    /// SHA-256 of the SubjectPublicKeyInfo DER (None when unparsable).
    pub spki_sha256: Option<[u8; 32]>,
}

impl CertIdentity {
    /// Read a DER certificate. Never fails: an unparsable certificate only
    /// offers its fingerprint.
    pub fn from_der(der: &[u8]) -> CertIdentity {
        let sha256: [u8; 32] = Sha256::digest(der).into();
        let mut id = CertIdentity {
            subject: String::new(),
            issuer: String::new(),
            sans: Vec::new(),
            sha256,
            spki_sha256: None,
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            id.subject = "(unparsable certificate)".into();
            return id;
        };
        id.subject = cert.subject().to_string();
        id.issuer = cert.issuer().to_string();
        id.spki_sha256 = Some(Sha256::digest(cert.public_key().raw).into());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => id.sans.push(AllowEntry::Dns(normalize_dns(n))),
                    GeneralName::URI(u) => id.sans.push(AllowEntry::Uri((*u).to_string())),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            id.sans.push(AllowEntry::Ip(IpAddr::from(a)));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            id.sans.push(AllowEntry::Ip(IpAddr::from(a)));
                        }
                    }
                    _ => {}
                }
            }
        }
        id
    }

    /// Every allowlist entry this certificate satisfies.
    pub fn candidates(&self) -> impl Iterator<Item = AllowEntry> + '_ {
        self.sans
            .iter()
            .cloned()
            .chain(std::iter::once(AllowEntry::CertSha256(self.sha256)))
            .chain(self.spki_sha256.map(AllowEntry::SpkiSha256))
    }
}

impl fmt::Display for CertIdentity {
    /// Subject, issuer and every identity in allowlist form, ready to be
    /// copied into `allowed_requestors`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", issuer \"{}\", identities [",
            self.subject, self.issuer
        )?;
        for (i, c) in self.candidates().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("]")
    }
}

/// The configured requestor identities. A certificate is allowed when any
/// one of its identities is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

impl Allowlist {
    /// Parse `allowed_requestors`. An empty list is an error (nobody could connect).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allowlist, TlsConfigError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref();
            let parsed = e.parse().map_err(|reason| TlsConfigError::AllowEntry {
                entry: e.to_string(),
                reason,
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        if out.is_empty() {
            return Err(TlsConfigError::EmptyAllowlist);
        }
        Ok(Allowlist { entries: out })
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.entries
    }

    /// Whether a certificate already read (a connected requestor's) is
    /// still admitted: a live reload checks connected requestors again.
    pub fn admits(&self, cert: &CertIdentity) -> bool {
        cert.candidates().any(|c| self.entries.contains(&c))
    }

    /// The first configured entry the certificate satisfies, or the
    /// certificate's identities for the refusal message.
    pub fn check(&self, cert_der: &[u8]) -> Result<PeerIdentity, Box<CertIdentity>> {
        let id = CertIdentity::from_der(cert_der);
        let offered: Vec<AllowEntry> = id.candidates().collect();
        match self.entries.iter().find(|e| offered.contains(e)) {
            Some(e) => Ok(PeerIdentity {
                matched: e.clone(),
                cert: id,
            }),
            None => Err(Box::new(id)),
        }
    }
}

/// An authenticated, allowed requestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The allowlist entry that admitted it.
    pub matched: AllowEntry,
    /// What its certificate says.
    pub cert: CertIdentity,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.matched)
    }
}

// ---------------------------------------------------------------------------
// Settings and the rustls configuration

/// The server's TLS material, loaded and checked.
pub struct TlsSettings {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    allowlist: Arc<Allowlist>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert", &self.cert_path)
            .field("chain_len", &self.cert_chain.len())
            .field("key", &self.key_path)
            .field("roots", &self.roots.len())
            .field("allowlist", &self.allowlist)
            .finish()
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn file_err(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsConfigError {
    TlsConfigError::File {
        key,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn parse_certs(
    key: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(pem).is_ok() {
            " (it holds a private key: are cert and key swapped?)"
        } else {
            ""
        };
        return Err(file_err(
            key,
            path,
            format!("no `-----BEGIN CERTIFICATE-----` block found{hint}"),
        ));
    }
    for (i, c) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(c.as_ref()) {
            return Err(file_err(
                key,
                path,
                format!(
                    "certificate #{} is not a valid X.509 certificate: {e}",
                    i + 1
                ),
            ));
        }
    }
    Ok(certs)
}

impl TlsSettings {
    /// Load `cert` (server certificate chain, leaf first), `key` (its private
    /// key: PKCS#8, PKCS#1 or SEC1 PEM), `ca` (PEM bundle of the CAs that
    /// requestor certificates must chain to) and the allowlist.
    pub fn load<S: AsRef<str>>(
        cert: &Path,
        key: &Path,
        ca: &Path,
        allowed_requestors: &[S],
    ) -> Result<TlsSettings, TlsConfigError> {
        let cert_pem = read(KEY_CERT, cert)?;
        let key_pem = read(KEY_KEY, key)?;
        let ca_pem = read(KEY_CA, ca)?;
        warn_if_key_readable(key);
        Self::from_pem_files(
            (cert, &cert_pem),
            (key, &key_pem),
            (ca, &ca_pem),
            allowed_requestors,
        )
    }

    /// Same as [`TlsSettings::load`] from PEM bytes (tests, embedded material).
    pub fn from_pem<S: AsRef<str>>(
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
        allowed_requestors: &[S],
    ) -> Result<TlsSettings, TlsConfigError> {
        Self::from_pem_files(
            (Path::new("<cert>"), cert_pem),
            (Path::new("<key>"), key_pem),
            (Path::new("<ca>"), ca_pem),
            allowed_requestors,
        )
    }

    fn from_pem_files<S: AsRef<str>>(
        (cert_path, cert_pem): (&Path, &[u8]),
        (key_path, key_pem): (&Path, &[u8]),
        (ca_path, ca_pem): (&Path, &[u8]),
        allowed_requestors: &[S],
    ) -> Result<TlsSettings, TlsConfigError> {
        let cert_chain = parse_certs(KEY_CERT, cert_path, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            use rustls::pki_types::pem::Error as PemError;
            let reason = match e {
                PemError::NoItemsFound => {
                    "no private key found (expected `-----BEGIN PRIVATE KEY-----`, \
                     `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)"
                        .to_string()
                }
                other => format!("invalid PEM: {other}"),
            };
            file_err(KEY_KEY, key_path, reason)
        })?;
        let ca_certs = parse_certs(KEY_CA, ca_path, ca_pem)?;
        let mut roots = RootCertStore::empty();
        for (i, c) in ca_certs.into_iter().enumerate() {
            roots.add(c).map_err(|e| {
                file_err(
                    KEY_CA,
                    ca_path,
                    format!("certificate #{} cannot be a trust anchor: {e}", i + 1),
                )
            })?;
        }
        let allowlist = Allowlist::parse(allowed_requestors)?;
        warn_if_not_current(cert_path, &cert_chain[0]);
        let settings = TlsSettings {
            cert_chain,
            key,
            roots: Arc::new(roots),
            allowlist: Arc::new(allowlist),
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
        };
        // Catch a key that does not match the certificate at load time.
        settings.server_config()?;
        Ok(settings)
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// The rustls configuration: TLS 1.2 and 1.3, rustls's default (ring)
    /// cipher suites, client certificates required and checked against the CA
    /// bundle then the allowlist during the handshake, no session resumption.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsConfigError::Build(format!("{KEY_CA}: {e}")))?;
        let verifier = Arc::new(AllowlistVerifier {
            inner: webpki,
            allowlist: self.allowlist.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsConfigError::Build(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => file_err(
                    KEY_KEY,
                    &self.key_path,
                    format!(
                        "this private key does not belong to the certificate in {:?}",
                        self.cert_path
                    ),
                ),
                other => file_err(KEY_KEY, &self.key_path, format!("unusable key: {other}")),
            })?;
        // Resumption off: every connection runs a full handshake, so every
        // connection's certificate goes through the allowlist.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.max_early_data_size = 0;
        Ok(Arc::new(config))
    }

    /// A tokio acceptor over [`TlsSettings::server_config`].
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsConfigError> {
        Ok(TlsAcceptor::from(self.server_config()?))
    }
}

/// The cipher suites the server offers (rustls's defaults for the ring
/// provider), by IANA name: for docs and start-up logs.
pub fn cipher_suite_names() -> Vec<String> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

fn warn_if_key_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    key = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    event = "tls_key_readable",
                    "the TLS private key is readable by group or others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn warn_if_not_current(path: &Path, leaf: &CertificateDer<'_>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return;
    };
    let now = UnixTime::now().as_secs() as i64;
    let validity = cert.validity();
    if validity.not_after.timestamp() < now {
        tracing::warn!(cert = %path.display(), not_after = %validity.not_after,
        event = "tls_cert_expired",
            "the server certificate has expired: requestors will refuse it");
    } else if validity.not_before.timestamp() > now {
        tracing::warn!(cert = %path.display(), not_before = %validity.not_before,
        event = "tls_cert_not_yet_valid",
            "the server certificate is not valid yet: requestors will refuse it");
    }
}

// ---------------------------------------------------------------------------
// The verifier: CA chain first, then the allowlist, inside the handshake.

/// What the verifier decided, for [`accept`] to report. Set through a
/// task-local because rustls calls the verifier synchronously while the
/// accept future is polled.
#[derive(Debug, Clone)]
enum Verdict {
    Allowed(PeerIdentity),
    Refused(Box<CertIdentity>),
}

tokio::task_local! {
    static VERDICT: Arc<Mutex<Option<Verdict>>>;
}

fn note(v: Verdict) {
    let _ = VERDICT.try_with(|slot| *slot.lock() = Some(v));
}

#[derive(Debug)]
struct AllowlistVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowlist: Arc<Allowlist>,
}

impl ClientCertVerifier for AllowlistVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            let presented = CertIdentity::from_der(end_entity.as_ref());
            note(Verdict::Refused(Box::new(presented)));
            return Err(e);
        }
        match self.allowlist.check(end_entity.as_ref()) {
            Ok(peer) => {
                note(Verdict::Allowed(peer));
                Ok(ClientCertVerified::assertion())
            }
            Err(id) => {
                note(Verdict::Refused(id));
                // Sends the `access_denied` alert (RFC 8446 §6.2).
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// ---------------------------------------------------------------------------
// Accepting

/// Why a secure-mode connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The requestor sent no certificate.
    NoCertificate,
    /// Its certificate does not chain to the configured CA bundle.
    UnknownCa,
    /// Its certificate (or one in its chain) is expired or not yet valid.
    Expired,
    /// Its certificate is unusable otherwise (bad signature, wrong key usage, …).
    BadCertificate,
    /// Its certificate chains to the CA but matches no allowlist entry.
    NotAllowed,
    /// The TLS protocol failed (not TLS, no common version or suite, an
    /// alert from the requestor, e.g. it rejected our certificate).
    Handshake,
    /// The handshake did not finish in time.
    Timeout,
    /// The connection broke or closed during the handshake.
    Io,
    /// Bytes followed DHCPTLS before the server's answer: they must never be
    /// read as DHCP (the STARTTLS injection flaw); the connection is closed.
    EarlyData,
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalKind::NoCertificate => "the requestor presented no certificate",
            RefusalKind::UnknownCa => {
                "the requestor certificate does not chain to the configured CA"
            }
            RefusalKind::Expired => "the requestor certificate is expired or not yet valid",
            RefusalKind::BadCertificate => "the requestor certificate is invalid",
            RefusalKind::NotAllowed => "the requestor certificate is not in allowed_requestors",
            RefusalKind::Handshake => "the TLS handshake failed",
            RefusalKind::Timeout => "the TLS handshake timed out",
            RefusalKind::Io => "the connection failed during the TLS handshake",
            RefusalKind::EarlyData => "bytes followed DHCPTLS before the TLS handshake",
        })
    }
}

/// A refused or failed secure-mode connection: log it (`%refusal`) and drop
/// the stream. Nothing has been sent beyond TLS alerts.
#[derive(Debug, Clone, Error)]
#[error("{kind}: {detail}")]
pub struct TlsRefusal {
    pub kind: RefusalKind,
    /// The TLS error and, when a certificate was presented, its subject,
    /// issuer and identities in allowlist form.
    pub detail: String,
}

impl TlsRefusal {
    /// For the connection path: `buffered` bytes were already read after the
    /// DHCPTLS message.
    pub fn early_data(buffered: usize) -> TlsRefusal {
        TlsRefusal {
            kind: RefusalKind::EarlyData,
            detail: format!(
                "{buffered} byte(s) arrived after DHCPTLS; closing without reading them"
            ),
        }
    }
}

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

fn classify(e: &std::io::Error, verdict: Option<Verdict>) -> TlsRefusal {
    let presented = match verdict {
        Some(Verdict::Refused(id)) => format!(" ({id})"),
        _ => String::new(),
    };
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(tls) = tls else {
        return TlsRefusal {
            kind: RefusalKind::Io,
            detail: e.to_string(),
        };
    };
    let kind = match tls {
        rustls::Error::NoCertificatesPresented => RefusalKind::NoCertificate,
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer => RefusalKind::UnknownCa,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => RefusalKind::Expired,
            CertificateError::ApplicationVerificationFailure => RefusalKind::NotAllowed,
            _ => RefusalKind::BadCertificate,
        },
        _ => RefusalKind::Handshake,
    };
    let detail = match kind {
        RefusalKind::NotAllowed => format!("no allowlist entry matches{presented}"),
        _ => format!("{tls}{presented}"),
    };
    TlsRefusal { kind, detail }
}

#[cfg(test)]
mod tests;
