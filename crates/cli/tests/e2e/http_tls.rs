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
//! 3. Live reload (SIGHUP): the certificate, key and client CA files are
//!    replaced by ones from another CA; new connections get the new server
//!    certificate and need a client certificate from the new CA, while a
//!    connection opened before keeps its handshake and is answered. A
//!    broken certificate file is refused (the error names the key and the
//!    file) and the certificates loaded last keep serving.

use crate::tls_common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use leaseline_test_support::pki::{Ca, Leaf};
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
            &[leaseline_test_support::loopback_relay()],
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

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `web`, its handshake done.
fn https_connect(web: SocketAddr, config: Arc<ClientConfig>) -> Result<Tls, String> {
    let mut tcp = TcpStream::connect(web).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// GET /metrics over TLS: the status, or the error that ended the exchange.
fn https_get(
    web: SocketAddr,
    config: Arc<ClientConfig>,
    token: Option<&str>,
) -> Result<u16, String> {
    get_on(https_connect(web, config)?, token)
}

/// GET /metrics on an open connection.
fn get_on(mut tls: Tls, token: Option<&str>) -> Result<u16, String> {
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

/// Writes `leaf` as the server's certificate and key (the same two files
/// each time, as a certificate renewal does).
fn install(leaf: &Leaf, id: &Identity) {
    std::fs::write(&id.cert, &leaf.pem).expect("write certificate");
    std::fs::write(&id.key, &leaf.key_pem).expect("write key");
}

/// SIGHUP, then the reload's outcome: its log line (`config_reloaded`,
/// "configuration reloaded", or `config_reload_failed`, "configuration
/// not reloaded").
fn sighup(server: &ServerProcess) -> String {
    let mark = server.log_mark();
    server.signal(libc::SIGHUP);
    server
        .try_wait_for_line(mark, Duration::from_secs(10), |l| {
            l.contains("configuration reloaded") || l.contains("configuration not reloaded")
        })
        .unwrap_or_else(|| panic!("no reload outcome logged\n{}", server.log_tail(50)))
}

#[test]
fn certificates_and_client_ca_change_on_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ca_a, ca_b) = (Ca::new("HTTP CA A"), Ca::new("HTTP CA B"));
    let (a_pem, b_pem) = (dir.join("ca-a.pem"), dir.join("ca-b.pem"));
    std::fs::write(&a_pem, &ca_a.pem).expect("write ca-a.pem");
    std::fs::write(&b_pem, &ca_b.pem).expect("write ca-b.pem");
    let client_ca = dir.join("client-ca.pem");
    std::fs::write(&client_ca, &ca_a.pem).expect("write client-ca.pem");
    let served = Identity {
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    let (leaf_a, leaf_b) = (ca_a.server_leaf(), ca_b.server_leaf());
    install(&leaf_a, &served);
    let client = |ca: &Ca, stem: &str| {
        let leaf = ca.requestor_leaf(REQUESTOR_NAME);
        let id = Identity {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
        };
        install(&leaf, &id);
        id
    };
    let (client_a, client_b) = (client(&ca_a, "client-a"), client(&ca_b, "client-b"));

    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let server = server(&format!(
        "\n[http]\nlisten = \"{web}\"\ntoken = \"{TOKEN}\"\ntls_cert = {}\ntls_key = {}\n\
         tls_client_ca = {}\ntls_allowed_clients = [\"san:{REQUESTOR_NAME}\"]\n",
        quoted(&served.cert),
        quoted(&served.key),
        quoted(&client_ca)
    ));
    let as_a = client_config(&a_pem, Some(&client_a));
    let as_b = client_config(&b_pem, Some(&client_b));
    assert_eq!(https_get(web, as_a.clone(), Some(TOKEN)), Ok(200));
    // Opened before the reload; its request comes after.
    let open = https_connect(web, as_a.clone()).expect("handshake under A");

    // Everything from CA B, under the same file names.
    install(&leaf_b, &served);
    std::fs::write(&client_ca, &ca_b.pem).expect("rewrite client-ca.pem");
    let line = sighup(&server);
    assert!(line.contains("configuration reloaded"), "{line}");
    assert!(
        !line.contains("restart"),
        "nothing waits for a restart: {line}"
    );

    let fresh = https_connect(web, as_b.clone()).expect("handshake under B");
    let presented = fresh
        .conn
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec();
    assert_eq!(presented, leaf_b.der, "the new certificate");
    assert_eq!(get_on(fresh, Some(TOKEN)), Ok(200));
    let old_trust = https_get(web, as_a.clone(), Some(TOKEN));
    assert!(
        matches!(&old_trust, Err(e) if e.contains("certificate")),
        "a client trusting only CA A: {old_trust:?}"
    );
    let old_client = https_get(web, client_config(&b_pem, Some(&client_a)), Some(TOKEN));
    assert!(
        old_client.is_err(),
        "a client certificate from CA A after the client CA became B: {old_client:?}"
    );
    let presented = open.conn.peer_certificates().expect("a server certificate")[0].to_vec();
    assert_eq!(presented, leaf_a.der);
    assert_eq!(
        get_on(open, Some(TOKEN)),
        Ok(200),
        "a connection opened before the reload is still served"
    );

    // A broken certificate file: refused, with the key and the file named;
    // B keeps serving.
    std::fs::write(&served.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n")
        .expect("break server.pem");
    let line = sighup(&server);
    assert!(line.contains("configuration not reloaded"), "{line}");
    assert!(line.contains("http.tls_cert"), "names the key: {line}");
    assert!(line.contains("server.pem"), "names the file: {line}");
    let still = https_connect(web, as_b).expect("handshake under B after the refused reload");
    let presented = still
        .conn
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec();
    assert_eq!(presented, leaf_b.der, "the certificate loaded last");
    assert_eq!(get_on(still, Some(TOKEN)), Ok(200));
}
