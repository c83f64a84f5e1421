//! `[http]`: the metrics and control endpoint (docs/operations.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// As written: off unless `listen` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: Option<Spanned<SocketAddr>>,
    /// A bearer token every request must carry (`Authorization: Bearer …`).
    pub token: Option<String>,
    /// The same, read from a file (first line), kept out of the config.
    pub token_file: Option<PathBuf>,
    /// Also export the metric names of kea-exporter (docs/operations.md).
    #[serde(default)]
    pub kea_compat: bool,
    /// Open connections at most; more are closed at accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (slowloris).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: u32,
    /// HTTPS: the server's certificate chain and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Require client certificates from this CA bundle (PEM)...
    pub tls_client_ca: Option<PathBuf>,
    /// ... that these identities name (`san:`, `sha256:`, `spki-sha256:`).
    #[serde(default)]
    pub tls_allowed_clients: Vec<String>,
    /// Seconds a web view's event stream (`/ui/events`) may stay unread
    /// with changes waiting before the server closes it (default 10).
    pub ui_stall_timeout: Option<u64>,
}

pub use crate::tls::HttpTls;

fn default_max_connections() -> usize {
    256
}

fn default_header_timeout() -> u32 {
    10
}

/// Validated.
#[derive(Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub kea_compat: bool,
    pub max_connections: usize,
    pub header_timeout: std::time::Duration,
    pub tls: Option<HttpTls>,
    pub ui_stall_timeout: std::time::Duration,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("kea_compat", &self.kea_compat)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("tls", &self.tls)
            .field("ui_stall_timeout", &self.ui_stall_timeout)
            .finish()
    }
}

impl Validator<'_> {
    pub(super) fn http(&self, raw: HttpSection) -> Result<Option<HttpConfig>, ConfigError> {
        let Some(listen) = raw.listen else {
            return Ok(None);
        };
        let token = match (raw.token, raw.token_file) {
            (Some(_), Some(_)) => {
                return Err(self.key_err("http.token_file", "give token or token_file, not both"))
            }
            (Some(t), None) => Some(t),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.key_err(
                        "http.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(text.lines().next().unwrap_or("").trim().to_owned())
            }
            (None, None) => None,
        };
        if matches!(&token, Some(t) if t.len() < 16) {
            return Err(self.key_err(
                "http.token",
                "must be at least 16 characters (a random string: openssl rand -hex 32)",
            ));
        }
        if raw.ui_stall_timeout == Some(0) {
            return Err(self.key_err("http.ui_stall_timeout", "must be at least 1 second"));
        }
        let base = std::path::Path::new(self.path)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => {
                let client_ca = raw.tls_client_ca.map(rel);
                if client_ca.is_some() && raw.tls_allowed_clients.is_empty() {
                    return Err(self.key_err(
                        "http.tls_allowed_clients",
                        "client certificates need at least one allowed identity (san:, sha256: or spki-sha256:)",
                    ));
                }
                Some(HttpTls {
                    cert: rel(cert),
                    key: rel(key),
                    client_ca,
                    allowed_clients: raw.tls_allowed_clients,
                })
            }
            (None, None) if raw.tls_client_ca.is_none() => None,
            _ => {
                return Err(self.key_err(
                    "http.tls_cert",
                    "HTTPS needs both tls_cert and tls_key (and tls_client_ca only with them)",
                ))
            }
        };
        let client_certs = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if token.is_none() && !client_certs && !listen.get_ref().ip().is_loopback() {
            return Err(self.err(
                listen.span(),
                "http.listen",
                format!(
                    "{} is not a loopback address: set http.token (or token_file), or \
                     tls_client_ca, so that the metrics and control API are not open to the network",
                    listen.get_ref()
                ),
            ));
        }
        if raw.max_connections == 0 {
            return Err(self.key_err("http.max_connections", "must be at least 1"));
        }
        if raw.header_timeout == 0 {
            return Err(self.key_err("http.header_timeout", "must be at least 1 (seconds)"));
        }
        Ok(Some(HttpConfig {
            listen: *listen.get_ref(),
            token,
            kea_compat: raw.kea_compat,
            max_connections: raw.max_connections,
            header_timeout: std::time::Duration::from_secs(raw.header_timeout.into()),
            tls,
            ui_stall_timeout: std::time::Duration::from_secs(raw.ui_stall_timeout.unwrap_or(10)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(http: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!(
                "[dhcp]\nlisten = \"127.0.0.1:1067\"\n[[subnet]]\nprefix = \"10.0.0.0/24\"\n\
                 pools = [\"10.0.0.10-10.0.0.20\"]\nrelay_addresses = [\"127.0.0.1\"]\n{http}"
            ),
            "t.toml",
        )
    }

    #[test]
    fn off_unless_listen_is_set() {
        assert!(parse("").expect("valid").http.is_none());
        assert!(parse("[http]\nkea_compat = true\n")
            .expect("valid")
            .http
            .is_none());
    }

    #[test]
    fn loopback_needs_no_token_anything_else_does() {
        let h = parse("[http]\nlisten = \"127.0.0.1:8067\"\n").expect("valid");
        assert_eq!(h.http.expect("on").token, None);
        let e = parse("[http]\nlisten = \"0.0.0.0:8067\"\n")
            .expect_err("open to the network")
            .to_string();
        assert!(e.contains("t.toml:8: `http.listen`"), "{e}");
        assert!(e.contains("not a loopback address"), "{e}");
        let h = parse("[http]\nlisten = \"0.0.0.0:8067\"\ntoken = \"0123456789abcdef\"\n")
            .expect("valid with a token");
        assert_eq!(
            h.http.expect("on").token.as_deref(),
            Some("0123456789abcdef")
        );
        let e = parse("[http]\nlisten = \"0.0.0.0:8067\"\ntoken = \"short\"\n")
            .expect_err("short token")
            .to_string();
        assert!(e.contains("at least 16"), "{e}");
    }

    #[test]
    fn the_web_views_stall_timeout() {
        let h = parse("[http]\nlisten = \"127.0.0.1:8067\"\n").expect("valid");
        assert_eq!(h.http.expect("on").ui_stall_timeout.as_secs(), 10);
        let h =
            parse("[http]\nlisten = \"127.0.0.1:8067\"\nui_stall_timeout = 3\n").expect("valid");
        assert_eq!(h.http.expect("on").ui_stall_timeout.as_secs(), 3);
        let e = parse("[http]\nlisten = \"127.0.0.1:8067\"\nui_stall_timeout = 0\n")
            .expect_err("zero")
            .to_string();
        assert!(e.contains("`http.ui_stall_timeout`"), "{e}");
        assert!(e.contains("at least 1 second"), "{e}");
    }

    #[test]
    fn token_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("token");
        std::fs::write(&f, "fedcba9876543210fedcba\nignored\n").expect("write");
        let h = parse(&format!(
            "[http]\nlisten = \"10.0.0.1:8067\"\ntoken_file = \"{}\"\n",
            f.display()
        ))
        .expect("valid");
        assert_eq!(
            h.http.expect("on").token.as_deref(),
            Some("fedcba9876543210fedcba")
        );
        let e = parse("[http]\nlisten = \"127.0.0.1:8067\"\ntoken_file = \"/nonexistent/t\"\n")
            .expect_err("unreadable")
            .to_string();
        assert!(e.contains("cannot read /nonexistent/t"), "{e}");
    }
}
