//! The allowlist grammar: `san:NAME`, `sha256:HEX`, `spki-sha256:HEX`, and
//! the check of a certificate against the configured entries.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use leaseline_proto::text::{self, format_hex as hex};

use super::{CertIdentity, PeerIdentity, TlsConfigError};

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

pub(super) fn normalize_dns(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_parse_and_print_canonically() {
        let h = "AB".repeat(32);
        for (input, canonical) in [
            ("san:Requestor.Lab.", "san:requestor.lab"),
            ("SAN:10.0.0.1", "san:10.0.0.1"),
            ("san:2001:db8::1", "san:2001:db8::1"),
            ("san:spiffe://lab/x", "san:spiffe://lab/x"),
            ("san:urn:uuid:1234", "san:urn:uuid:1234"),
            (
                &format!("sha256:{h}"),
                &format!("sha256:{}", "ab".repeat(32)),
            ),
            (
                &format!("spki-sha256:{}", vec!["ab"; 32].join(":")),
                &format!("spki-sha256:{}", "ab".repeat(32)),
            ),
        ] {
            let e: AllowEntry = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(e.to_string(), canonical);
            assert_eq!(canonical.parse::<AllowEntry>().unwrap(), e);
        }
        for bad in [
            "requestor.lab",
            "cn:requestor",
            "san:",
            "san:*.lab",
            "san:bad name",
            "sha256:abcd",
            "sha256:zz".to_string().leak(),
            "spki-sha256:",
        ] {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn allowlist_errors_name_the_key_and_entry() {
        let e = Allowlist::parse::<&str>(&[]).unwrap_err();
        assert!(e.to_string().contains("allowed_requestors is empty"), "{e}");
        let e = Allowlist::parse(&["san:ok.lab", "sha256:1234"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("allowed_requestors") && text.contains("sha256:1234"),
            "{text}"
        );
    }
}
