#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! HTTPS on the HTTP endpoint (`[http] tls_cert`, `tls_key`,
//! `tls_client_ca`, `tls_allowed_clients`), with a real rustls client:
//!
//! 1. Server certificate only (and the token): a client trusting the CA
//!    gets `/metrics`; plain HTTP to the port gets no HTTP answer; a client
//!    trusting another CA fails the handshake.
//! 2. Client certificates required, on 0.0.0.0 without a token (allowed:
//!    the certificate is the authentication): the allowed client's request
//!    is answered; none, one the allowlist does not name, or one from
//!    another CA are refused in the handshake.

mod tls_common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use leaseline_test_support::{free_tcp_port, free_udp_port, ServerConfig, ServerProcess, Subnet};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tls_common::{Identity, TestPki, BIN, REQUESTOR_NAME};

const TOKEN: &str = "0123456789abcdef-https-token";

fn server(http: &str) -> ServerProcess {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let cfg = ServerConfig::new(dhcp)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.200",
            &[Ipv4Addr::new(127, 0, 0, 122)],
        ))
        .extra(http)
        .build();
    ServerProcess::spawn(BIN, &cfg)
}

fn client_config(ca: &Path, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(&id.cert)
                .expect("cert")
                .map(|c| c.expect("cert"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(&id.key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    };
    Arc::new(config)
}

/// GET /metrics over TLS: the status, or the error that ended the exchange.
fn https_get(
    web: SocketAddr,
    config: Arc<ClientConfig>,
    token: Option<&str>,
) -> Result<u16, String> {
    let tcp = TcpStream::connect(web).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    tls.read_to_end(&mut text).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

/// A plain-HTTP request to the port: the answer's bytes (none from a TLS
/// endpoint: it closes after a failed handshake).
fn plain_get(web: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(web).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n"
    )
    .expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[test]
fn https_with_the_servers_certificate() {
    let pki = TestPki::new();
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let _server = server(&format!(
        "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\ntls_cert = {}\ntls_key = {}\n",
        quoted(&pki.server.cert),
        quoted(&pki.server.key)
    ));
    let trusting = client_config(&pki.ca, None);
    assert_eq!(https_get(web, trusting.clone(), Some(TOKEN)), Ok(200));
    assert_eq!(
        https_get(web, trusting, None),
        Ok(401),
        "the token still counts"
    );
    let plain = plain_get(web);
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP answered: {}",
        String::from_utf8_lossy(&plain)
    );
    let other = https_get(web, client_config(&pki.foreign_ca, None), Some(TOKEN));
    assert!(
        matches!(&other, Err(e) if e.contains("certificate")),
        "a client trusting another CA: {other:?}"
    );
}

#[test]
fn client_certificates_required_on_a_non_loopback_listen() {
    let pki = TestPki::new();
    let port = free_tcp_port();
    let _server = server(&format!(
        "\n[http]\nlisten = \"0.0.0.0:{port}\"\ntls_cert = {}\ntls_key = {}\n\
         tls_client_ca = {}\ntls_allowed_clients = [\"san:{REQUESTOR_NAME}\"]\n",
        quoted(&pki.server.cert),
        quoted(&pki.server.key),
        quoted(&pki.ca)
    ));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(
        https_get(web, client_config(&pki.ca, Some(&pki.requestor)), None),
        Ok(200),
        "the allowed client, no token needed"
    );
    for (what, id) in [
        ("no client certificate", None),
        (
            "a certificate the allowlist does not name",
            Some(&pki.stranger),
        ),
        ("a certificate from another CA", Some(&pki.foreign)),
    ] {
        let r = https_get(web, client_config(&pki.ca, id), None);
        assert!(r.is_err(), "{what}: answered {r:?}");
    }
}
