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
//! - [`https_acceptor`]: the HTTP endpoint's acceptor (`[http] tls_*`).

//!
//! One concern per file under `tls/`: the allowlist grammar, certificate
//! identities, the error of loading, the settings loaded from PEM files,
//! the verifier, the verdict's task-local side channel, the refusal
//! classes and the handshake itself.

mod accept;
mod allowlist;
mod error;
mod https;
mod identity;
mod refusal;
mod settings;
mod verdict;
mod verifier;

pub use accept::{accept, accept_with_timeout, HANDSHAKE_TIMEOUT};
pub use allowlist::{AllowEntry, Allowlist};
pub use error::TlsConfigError;
pub(crate) use error::{KEY_CA, KEY_CERT, KEY_KEY};
pub use https::{https_acceptor, HttpTls};
pub use identity::{CertIdentity, PeerIdentity};
pub use refusal::{RefusalKind, TlsRefusal};
pub use settings::{cipher_suite_names, TlsSettings};

#[cfg(test)]
mod tests;
