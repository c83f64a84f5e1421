//! The server's TLS material loaded from PEM files, and the rustls
//! configuration built from it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::error::{KEY_CA, KEY_CERT, KEY_KEY};
use super::verifier::AllowlistVerifier;
use super::{Allowlist, TlsConfigError};

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
