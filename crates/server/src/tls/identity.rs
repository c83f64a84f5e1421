//! Who a certificate says it is, in allowlist form.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::allowlist::normalize_dns;
use super::AllowEntry;

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
