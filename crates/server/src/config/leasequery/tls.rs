//! `[leasequery.tls]`: the secure mode's files and allowed requestors.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{ConfigError, Validator};

/// Secure mode for the leasequery TCP listener (RFC 7724 §8.1, §9): the
/// server's certificate, the CA requestor certificates must chain to, and
/// the requestors allowed in (`san:NAME`, `sha256:HEX`, `spki-sha256:HEX`).
/// Relative paths are relative to the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    #[serde(default)]
    pub allowed_requestors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub allowed_requestors: Vec<String>,
}

impl Validator<'_> {
    /// The files (not read here: `crate::tls::TlsSettings::load` does).
    pub(super) fn leasequery_tls(
        &self,
        raw: Option<&TlsSection>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let Some(t) = raw else {
            return Ok(None);
        };
        if t.allowed_requestors.is_empty() {
            return Err(self.key_err(
                "leasequery.tls.allowed_requestors",
                "secure mode needs at least one allowed requestor identity (san:, sha256: or spki-sha256:)",
            ));
        }
        let base = Path::new(self.path).parent().unwrap_or(Path::new("."));
        let rel = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        Ok(Some(TlsFiles {
            cert: rel(&t.cert),
            key: rel(&t.key),
            ca: rel(&t.ca),
            allowed_requestors: t.allowed_requestors.clone(),
        }))
    }
}
