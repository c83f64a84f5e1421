//! Why the TLS material could not be loaded, naming the configuration key.

use std::path::PathBuf;

use thiserror::Error;

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
