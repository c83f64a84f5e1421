//! TLS on the HTTP endpoint (`[http] tls_cert`, `tls_key`, and optionally
//! `tls_client_ca` with `tls_allowed_clients`). With a client CA it is the
//! leasequery listener's set-up (`crate::tls::TlsSettings`): a certificate
//! from that CA is required, checked during the handshake against the
//! allowlist (same grammar: `san:`, `sha256:`, `spki-sha256:`). Without,
//! server authentication only, on the same rustls (ring) provider and
//! protocol versions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::tls::{TlsConfigError, TlsSettings};

/// `[http]`'s TLS files, paths resolved (the configuration's, read here).
#[derive(Debug, Clone)]
pub struct HttpTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub allowed_clients: Vec<String>,
}

/// The HTTP endpoint's acceptor for `tls`; every failure names the key
/// and the file.
pub fn https_acceptor(tls: &HttpTls) -> Result<TlsAcceptor, TlsConfigError> {
    if let Some(ca) = &tls.client_ca {
        let settings =
            TlsSettings::load(&tls.cert, &tls.key, ca, &tls.allowed_clients).map_err(http_keys)?;
        return settings.acceptor();
    }
    let chain = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err("http.tls_cert", &tls.cert, e))?;
    if chain.is_empty() {
        return Err(file_err(
            "http.tls_cert",
            &tls.cert,
            "no `-----BEGIN CERTIFICATE-----` block found",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| file_err("http.tls_key", &tls.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsConfigError::Build(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            file_err(
                "http.tls_key",
                &tls.key,
                format!("unusable with the certificate: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// `TlsSettings` names the leasequery listener's keys; these files are
/// `[http]`'s.
fn http_keys(e: TlsConfigError) -> TlsConfigError {
    let http_key = |key: &'static str| match key {
        crate::tls::KEY_CERT => "http.tls_cert",
        crate::tls::KEY_KEY => "http.tls_key",
        crate::tls::KEY_CA => "http.tls_client_ca",
        other => other,
    };
    match e {
        TlsConfigError::Read { key, path, source } => TlsConfigError::Read {
            key: http_key(key),
            path,
            source,
        },
        TlsConfigError::File { key, path, reason } => TlsConfigError::File {
            key: http_key(key),
            path,
            reason,
        },
        TlsConfigError::AllowEntry { entry, reason } => TlsConfigError::Build(format!(
            "http.tls_allowed_clients: entry `{entry}`: {reason}"
        )),
        other => TlsConfigError::Build(format!("[http] client certificates: {other}")),
    }
}

fn file_err(key: &'static str, path: &Path, reason: impl ToString) -> TlsConfigError {
    TlsConfigError::File {
        key,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
