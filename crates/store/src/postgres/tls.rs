//! TLS to the database with rustls, libpq's way (docs/postgresql.md, "TLS
//! to the database"): `sslmode` disable / allow / prefer / require /
//! verify-ca / verify-full, `sslrootcert` (a PEM file of CA certificates,
//! or `system`), and a client certificate (`sslcert`, `sslkey`, PEM).
//! `tokio-postgres-rustls` bridges the client library to rustls; the
//! certificate checks each mode does are the verifiers below.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::connect::{check_key_permissions, Source};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The CA certificates a server's certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Roots {
    None,
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted CAs.
    System,
}

/// What the server's certificate is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// Nothing (encryption only: prefer, allow, require without a CA).
    Nothing,
    /// Signed by a CA of `sslrootcert` (verify-ca; require with a CA file).
    Chain,
    /// That, and valid for the host name connected to (verify-full).
    ChainAndName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub mode: SslMode,
    pub roots: Roots,
    /// Client certificate chain and key (PEM).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The system's CA bundle (Debian's `ca-certificates`), unless
/// `SSL_CERT_FILE` names another.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl TlsSettings {
    /// No TLS.
    pub(super) fn disabled() -> TlsSettings {
        TlsSettings {
            mode: SslMode::Disable,
            roots: Roots::None,
            client: None,
        }
    }

    /// libpq's rules: defaults under `~/.postgresql/` (`root.crt`,
    /// `postgresql.crt`, `postgresql.key`) used when they exist; verify-ca
    /// and verify-full need a CA; `sslrootcert=system` needs verify-full
    /// (its default); a client certificate needs its key.
    pub(super) fn resolve(
        mode: Option<(&str, Source)>,
        rootcert: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
        home: Option<&Path>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TlsSettings, String> {
        let dot = home.map(|h| h.join(".postgresql"));
        let default = |name: &str| dot.as_ref().map(|d| d.join(name)).filter(|p| p.exists());
        let mode = match mode {
            None if rootcert == Some("system") => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some((m, src)) => SslMode::parse(m).ok_or_else(|| {
                let what = match src {
                    Source::Env(var) => format!("bad {var} in the environment"),
                    _ => "bad PostgreSQL url".to_owned(),
                };
                format!(
                    "{what}: invalid sslmode {m:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
                )
            })?,
        };
        if mode == SslMode::Disable {
            return Ok(TlsSettings::disabled());
        }
        let roots = match rootcert {
            Some("system") => {
                if mode != SslMode::VerifyFull {
                    return Err(format!(
                        "sslmode={} may not be used with sslrootcert=system (use verify-full)",
                        mode.name()
                    ));
                }
                match var("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
                    Some(f) => Roots::File(PathBuf::from(f)),
                    None => Roots::System,
                }
            }
            Some(path) => Roots::File(PathBuf::from(path)),
            None => default("root.crt").map_or(Roots::None, Roots::File),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots == Roots::None {
            return Err(format!(
                "sslmode={} needs the CA certificate of the server's certificate: set sslrootcert (a PEM file, or system) or put it in ~/.postgresql/root.crt",
                mode.name()
            ));
        }
        let cert = match cert {
            Some(c) => Some(PathBuf::from(c)),
            None => default("postgresql.crt"),
        };
        let client = match cert {
            None => None,
            Some(cert) => {
                let key = match key {
                    Some(k) => PathBuf::from(k),
                    None => dot
                        .as_ref()
                        .map(|d| d.join("postgresql.key"))
                        .filter(|p| p.exists())
                        .ok_or_else(|| {
                            format!(
                                "client certificate {} given without its key (sslkey)",
                                cert.display()
                            )
                        })?,
                };
                Some((cert, key))
            }
        };
        Ok(TlsSettings {
            mode,
            roots,
            client,
        })
    }

    /// Whether the files can be read and used (checked at start, so that
    /// they fail the start rather than the first connection).
    pub(super) fn check(&self) -> Result<(), String> {
        if self.mode == SslMode::Disable {
            return Ok(());
        }
        self.connector().map(drop)
    }

    fn verify(&self) -> Verify {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Verify::ChainAndName,
            (SslMode::VerifyCa, _) => Verify::Chain,
            // libpq: require with a CA file behaves as verify-ca.
            (SslMode::Require, Roots::File(_) | Roots::System) => Verify::Chain,
            _ => Verify::Nothing,
        }
    }

    /// "the CA of sslrootcert FILE", for errors.
    pub(super) fn roots_description(&self) -> String {
        match &self.roots {
            Roots::None => "a trusted CA".to_owned(),
            Roots::File(p) => format!("a CA of sslrootcert {}", p.display()),
            Roots::System => format!("a CA of the system ({SYSTEM_CA_FILE})"),
        }
    }

    /// The TLS connector for the client library; reads the files again
    /// at each connection (certificates may be replaced while running).
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.verify() {
            Verify::Nothing => Arc::new(EncryptionOnly(Arc::clone(&provider))),
            Verify::Chain => Arc::new(ChainOnly(self.webpki(&provider)?)),
            Verify::ChainAndName => self.webpki(&provider)?,
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert, "sslcert")?;
                check_key_permissions(key)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {}: {}", key.display(), pem_error(e)))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| format!("sslcert/sslkey {}: {e}", cert.display()))?
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn webpki(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<WebPkiServerVerifier>, String> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Roots::None => return Err("no CA certificate (sslrootcert)".into()),
            Roots::File(path) => {
                for cert in read_certs(path, "sslrootcert")? {
                    store
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                }
            }
            Roots::System => {
                let path = Path::new(SYSTEM_CA_FILE);
                let certs = read_certs(path, "sslrootcert=system")?;
                store.add_parsable_certificates(certs);
            }
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(provider))
            .build()
            .map_err(|e| format!("sslrootcert: {e}"))
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {}", path.display(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of that kind in it".into(),
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("{other:?}"),
    }
}

/// prefer / allow / require without a CA: any certificate, as libpq (the
/// handshake's signatures are still checked).
#[derive(Debug)]
struct EncryptionOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain to a CA of `sslrootcert`, whatever the host name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name: a name error means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn modes_and_their_checks() {
        let r =
            |m: &str| TlsSettings::resolve(Some((m, Source::Url)), None, None, None, None, &no_env);
        assert_eq!(r("disable").unwrap(), TlsSettings::disabled());
        assert_eq!(r("prefer").unwrap().verify(), Verify::Nothing);
        assert_eq!(r("allow").unwrap().verify(), Verify::Nothing);
        assert_eq!(r("require").unwrap().verify(), Verify::Nothing);
        let e = r("verify-full").unwrap_err();
        assert!(e.contains("needs the CA certificate"), "{e}");
        assert!(r("verify-ca").is_err());
        let e = r("always").unwrap_err();
        assert!(
            e.starts_with("bad PostgreSQL url: invalid sslmode \"always\""),
            "{e}"
        );
        let e = TlsSettings::resolve(
            Some(("require", Source::Url)),
            Some("system"),
            None,
            None,
            None,
            &no_env,
        )
        .unwrap_err();
        assert!(e.contains("sslrootcert=system"), "{e}");
        let e = TlsSettings::resolve(
            Some(("require", Source::Url)),
            Some("/nonexistent/ca.pem"),
            None,
            None,
            None,
            &no_env,
        )
        .and_then(|s| s.check())
        .unwrap_err();
        assert!(e.starts_with("sslrootcert /nonexistent/ca.pem: "), "{e}");
    }

    #[test]
    fn defaults_under_dot_postgresql() {
        let home = tempfile::tempdir().unwrap();
        let dot = home.path().join(".postgresql");
        std::fs::create_dir(&dot).unwrap();
        let ca = rcgen_free_ca_pem();
        std::fs::write(dot.join("root.crt"), ca).unwrap();
        let s = TlsSettings::resolve(
            Some(("require", Source::Url)),
            None,
            None,
            None,
            Some(home.path()),
            &no_env,
        )
        .unwrap();
        assert_eq!(s.roots, Roots::File(dot.join("root.crt")));
        assert_eq!(s.verify(), Verify::Chain, "require + a CA file = verify-ca");
        // A certificate without a key.
        std::fs::write(dot.join("postgresql.crt"), rcgen_free_ca_pem()).unwrap();
        let e =
            TlsSettings::resolve(None, None, None, None, Some(home.path()), &no_env).unwrap_err();
        assert!(e.contains("without its key"), "{e}");
    }

    /// A CA certificate (PEM) for the tests above.
    fn rcgen_free_ca_pem() -> String {
        leaseline_test_support::pki::Ca::new("test CA").pem
    }
}
