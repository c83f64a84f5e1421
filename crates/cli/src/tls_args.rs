//! The secure-mode flags shared by `watch`, `bulk` and `mirror`
//! (RFC 7724 §7.2): `--tls --ca FILE --cert FILE --key FILE [--server-name NAME]`.

// Used once watch, bulk and mirror flatten `TlsArgs` (the lead wires them).

use std::path::PathBuf;

use anyhow::Context;
use leaseline_requestor::failover::Server;
use leaseline_requestor::tls::{
    default_server_name, parse_server_name, TlsClient, TlsClientSettings,
};

/// Flatten into a requestor command with `#[command(flatten)] tls: TlsArgs`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// Secure mode: send DHCPTLS, then mutually authenticated TLS (1.2 or 1.3).
    /// Any failure closes the connection; there is no fallback to plaintext.
    #[arg(long, requires_all = ["tls_ca", "tls_cert", "tls_key"])]
    pub tls: bool,
    /// CA bundle (PEM) the server certificate must chain to.
    #[arg(long = "ca", id = "tls_ca", value_name = "FILE", requires = "tls")]
    pub ca: Option<PathBuf>,
    /// This requestor's certificate chain (PEM), presented to the server.
    #[arg(long = "cert", id = "tls_cert", value_name = "FILE", requires = "tls")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long = "key", id = "tls_key", value_name = "FILE", requires = "tls")]
    pub key: Option<PathBuf>,
    /// Name the server certificate must carry (DNS name or IP address).
    /// Default: the host given in --server, or the server's IP address.
    #[arg(
        long = "server-name",
        id = "tls_server_name",
        value_name = "NAME",
        requires = "tls"
    )]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// None without `--tls`; the settings with it (an error when --ca,
    /// --cert or --key is missing). `server_arg` is the `--server` value,
    /// whose host part is the default server name.
    pub fn settings(&self, server_arg: &str) -> anyhow::Result<Option<TlsClientSettings>> {
        self.settings_with(default_server_name(server_arg))
    }

    /// The settings for a list of servers (watch, mirror): the name checked
    /// is `--server-name` for every server when given; otherwise each
    /// server's own (the connector takes it from the server's address).
    pub fn settings_for_servers(&self) -> anyhow::Result<Option<TlsClientSettings>> {
        self.settings_with(None)
    }

    fn settings_with(
        &self,
        default_name: Option<String>,
    ) -> anyhow::Result<Option<TlsClientSettings>> {
        if !self.tls {
            if self.ca.is_some()
                || self.cert.is_some()
                || self.key.is_some()
                || self.server_name.is_some()
            {
                anyhow::bail!("--ca, --cert, --key and --server-name need --tls");
            }
            return Ok(None);
        }
        let need = |v: &Option<PathBuf>, flag: &str| {
            v.clone()
                .with_context(|| format!("--tls needs {flag} FILE (and --ca, --cert, --key)"))
        };
        Ok(Some(TlsClientSettings {
            ca: need(&self.ca, "--ca")?,
            cert: need(&self.cert, "--cert")?,
            key: need(&self.key, "--key")?,
            server_name: self.server_name.clone().or(default_name),
        }))
    }

    /// [`TlsArgs::settings`] with the files loaded: None without `--tls`.
    /// Use with `leaseline_requestor::tls::tls_connector(client)` as the
    /// `open` function of watch / mirror.
    pub fn client(&self, server_arg: &str) -> anyhow::Result<Option<TlsClient>> {
        match self.settings(server_arg)? {
            None => Ok(None),
            Some(s) => Ok(Some(TlsClient::new(&s)?)),
        }
    }

    /// [`TlsArgs::settings_for_servers`] with the files loaded, for
    /// `tls_connector(client)` over a list of servers. Each server's own
    /// name is checked to be usable now, not at its first connection.
    pub fn client_for_servers(&self, servers: &[Server]) -> anyhow::Result<Option<TlsClient>> {
        let Some(s) = self.settings_for_servers()? else {
            return Ok(None);
        };
        if s.server_name.is_none() {
            for name in servers.iter().filter_map(|s| s.tls_name.as_deref()) {
                parse_server_name(name)?;
            }
        }
        Ok(Some(TlsClient::new(&s)?))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        tls: TlsArgs,
    }

    fn parse(args: &[&str]) -> Result<TlsArgs, clap::Error> {
        let mut v = vec!["cmd"];
        v.extend_from_slice(args);
        Cmd::try_parse_from(v).map(|c| c.tls)
    }

    #[test]
    fn plaintext_without_flags() {
        assert_eq!(parse(&[]).unwrap().settings("127.0.0.1").unwrap(), None);
    }

    #[test]
    fn tls_needs_all_three_files() {
        assert!(parse(&["--tls"]).is_err());
        assert!(parse(&["--tls", "--ca", "a", "--cert", "b"]).is_err());
        // And the files need --tls: no silent plaintext with certificates given.
        assert!(parse(&["--ca", "a", "--cert", "b", "--key", "c"]).is_err());
        assert!(parse(&["--server-name", "x"]).is_err());
        // Built by hand (not through clap): still checked.
        let half = TlsArgs {
            tls: true,
            ca: Some("a".into()),
            ..TlsArgs::default()
        };
        assert!(half.settings("127.0.0.1").is_err());
        let no_tls = TlsArgs {
            ca: Some("a".into()),
            ..TlsArgs::default()
        };
        assert!(no_tls.settings("127.0.0.1").is_err());
    }

    #[test]
    fn server_name_defaults_to_the_host_typed() {
        let a = parse(&["--tls", "--ca", "a", "--cert", "b", "--key", "c"]).unwrap();
        let s = a.settings("dhcp.lab:67").unwrap().unwrap();
        assert_eq!(s.server_name.as_deref(), Some("dhcp.lab"));
        assert_eq!(s.ca, PathBuf::from("a"));
        assert_eq!(s.cert, PathBuf::from("b"));
        assert_eq!(s.key, PathBuf::from("c"));
        assert_eq!(a.settings("127.0.0.1").unwrap().unwrap().server_name, None);
        let a = parse(&[
            "--tls",
            "--ca",
            "a",
            "--cert",
            "b",
            "--key",
            "c",
            "--server-name",
            "other.lab",
        ])
        .unwrap();
        let s = a.settings("dhcp.lab").unwrap().unwrap();
        assert_eq!(s.server_name.as_deref(), Some("other.lab"));
    }

    #[test]
    fn a_list_of_servers_checks_each_ones_name_unless_one_is_given() {
        let a = parse(&["--tls", "--ca", "a", "--cert", "b", "--key", "c"]).unwrap();
        assert_eq!(a.settings_for_servers().unwrap().unwrap().server_name, None);
        let a = parse(&[
            "--tls",
            "--ca",
            "a",
            "--cert",
            "b",
            "--key",
            "c",
            "--server-name",
            "all.lab",
        ])
        .unwrap();
        assert_eq!(
            a.settings_for_servers()
                .unwrap()
                .unwrap()
                .server_name
                .as_deref(),
            Some("all.lab")
        );
    }

    #[test]
    fn missing_files_are_named() {
        let a = parse(&[
            "--tls",
            "--ca",
            "/nonexistent/ca.pem",
            "--cert",
            "b",
            "--key",
            "c",
        ])
        .unwrap();
        let e = a.client("127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
