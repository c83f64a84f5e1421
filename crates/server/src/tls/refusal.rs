//! Why a secure-mode connection was refused, in classes an operator can act on.

use std::fmt;

use rustls::CertificateError;
use thiserror::Error;

use super::verdict::Verdict;

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

pub(super) fn classify(e: &std::io::Error, verdict: Option<Verdict>) -> TlsRefusal {
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
mod tests {
    use super::*;

    #[test]
    fn early_data_refusal_reads_well() {
        let r = TlsRefusal::early_data(12);
        assert_eq!(r.kind, RefusalKind::EarlyData);
        assert!(r.to_string().contains("12 byte(s)"), "{r}");
    }
}
