//! Handshakes over loopback TCP between the server configuration and a plain
//! rustls client, with certificates made by rcgen in each test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use leaseline_proto::text::format_hex as hex;
use leaseline_test_support::pki::{dns, Ca, ExtendedKeyUsagePurpose, Leaf, SanType, Validity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn ca(name: &str) -> Ca {
    Ca::new(name)
}

fn leaf(ca: &Ca, sans: Vec<SanType>, eku: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
    let validity = if expired {
        Validity::Expired
    } else {
        Validity::Current
    };
    ca.leaf("leaf", sans, eku, validity)
}

fn server_leaf(ca: &Ca) -> Leaf {
    ca.server_leaf()
}

fn requestor(ca: &Ca, name: &str) -> Leaf {
    ca.requestor_leaf(name)
}

fn settings(ca: &Ca, server: &Leaf, allowed: &[&str]) -> TlsSettings {
    TlsSettings::from_pem(
        server.pem.as_bytes(),
        server.key_pem.as_bytes(),
        ca.pem.as_bytes(),
        allowed,
    )
    .unwrap()
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum Version {
    Any,
    Tls12,
}

fn client_config(ca: &Ca, who: Option<&Leaf>, version: Version) -> Arc<ClientConfig> {
    client_config_pem(
        &ca.pem,
        who.map(|l| (l.pem.as_str(), l.key_pem.as_str())),
        version,
    )
}

fn client_config_pem(
    ca_pem: &str,
    who: Option<(&str, &str)>,
    version: Version,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem) {
        roots.add(c).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Version::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Version::Tls12 => &[&rustls::version::TLS12],
    };
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match who {
        Some((cert_pem, key_pem)) => b
            .with_client_auth_cert(
                certs(cert_pem),
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// What the client saw.
#[derive(Debug)]
enum ClientSide {
    /// Handshake done; the bytes read until EOF or error.
    Read(Vec<u8>, Option<String>),
    HandshakeFailed(String),
}

/// One connection: the server accepts and, on success, writes `secret`.
async fn run(
    acceptor: &TlsAcceptor,
    client: Arc<ClientConfig>,
) -> (Result<PeerIdentity, TlsRefusal>, ClientSide) {
    run_as(acceptor, client, "localhost").await
}

async fn run_as(
    acceptor: &TlsAcceptor,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> (Result<PeerIdentity, TlsRefusal>, ClientSide) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acc = acceptor.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match accept_with_timeout(&acc, tcp, Duration::from_secs(10)).await {
            Ok((mut s, peer)) => {
                s.write_all(b"secret").await.unwrap();
                s.shutdown().await.unwrap();
                Ok(peer)
            }
            Err(r) => Err(r),
        }
    });
    let client_side = connect(addr, client, server_name).await;
    (server.await.unwrap(), client_side)
}

async fn connect(addr: SocketAddr, client: Arc<ClientConfig>, server_name: &str) -> ClientSide {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    match TlsConnector::from(client).connect(name, tcp).await {
        Err(e) => ClientSide::HandshakeFailed(e.to_string()),
        Ok(mut s) => {
            let mut got = Vec::new();
            let err = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
                .await
                .expect("client read timed out")
                .err()
                .map(|e| e.to_string());
            ClientSide::Read(got, err)
        }
    }
}

fn assert_no_data(c: &ClientSide) {
    match c {
        ClientSide::Read(got, _) => assert!(got.is_empty(), "client received {got:?}"),
        ClientSide::HandshakeFailed(e) => assert!(!e.is_empty()),
    }
}

#[tokio::test]
async fn allowed_san_gets_data_tls13_and_tls12() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = requestor(&ca, "requestor.leaseline.lab");
    let acc = settings(
        &ca,
        &srv,
        &["san:other.lab", "san:Requestor.Leaseline.Lab."],
    )
    .acceptor()
    .unwrap();
    for v in [Version::Any, Version::Tls12] {
        let (peer, client) = run(&acc, client_config(&ca, Some(&req), v)).await;
        let peer = peer.unwrap();
        assert_eq!(
            peer.matched,
            AllowEntry::Dns("requestor.leaseline.lab".into())
        );
        assert_eq!(peer.to_string(), "san:requestor.leaseline.lab");
        match client {
            ClientSide::Read(got, None) => assert_eq!(got, b"secret"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn every_connection_is_a_full_handshake() {
    // The client keeps a session cache; the server must not resume, so the
    // verifier (and the allowlist) runs on every connection.
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = requestor(&ca, "requestor.leaseline.lab");
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    for v in [Version::Any, Version::Tls12] {
        let client = client_config(&ca, Some(&req), v);
        for _ in 0..3 {
            let (peer, side) = run(&acc, client.clone()).await;
            assert!(peer.is_ok(), "{peer:?}");
            assert!(matches!(side, ClientSide::Read(ref g, None) if g == b"secret"));
        }
    }
    let cfg = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .server_config()
        .unwrap();
    assert_eq!(cfg.send_tls13_tickets, 0);
    assert!(!cfg.session_storage.can_cache());
    assert!(!cfg.ticketer.enabled());
}

#[tokio::test]
async fn unlisted_certificate_is_refused() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = requestor(&ca, "intruder.leaseline.lab");
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    for v in [Version::Any, Version::Tls12] {
        let (peer, client) = run(&acc, client_config(&ca, Some(&req), v)).await;
        let r = peer.unwrap_err();
        assert_eq!(r.kind, RefusalKind::NotAllowed, "{r}");
        // The refusal names what the certificate offers, ready to be listed.
        assert!(r.detail.contains("san:intruder.leaseline.lab"), "{r}");
        assert!(
            r.detail
                .contains(&format!("sha256:{}", hex(&Sha256::digest(&req.der)))),
            "{r}"
        );
        assert_no_data(&client);
        let text = format!("{client:?}");
        assert!(text.contains("AccessDenied"), "client saw {text}");
    }
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let ca1 = ca("Lab CA");
    let ca2 = ca("Other CA");
    let srv = server_leaf(&ca1);
    let req = requestor(&ca2, "requestor.leaseline.lab");
    let acc = settings(&ca1, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    let (peer, client) = run(&acc, client_config(&ca1, Some(&req), Version::Any)).await;
    let r = peer.unwrap_err();
    assert_eq!(r.kind, RefusalKind::UnknownCa, "{r}");
    assert!(r.detail.contains("Other CA"), "{r}");
    assert_no_data(&client);
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    for v in [Version::Any, Version::Tls12] {
        let (peer, client) = run(&acc, client_config(&ca, None, v)).await;
        let r = peer.unwrap_err();
        assert_eq!(r.kind, RefusalKind::NoCertificate, "{r}");
        assert_no_data(&client);
    }
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = leaf(
        &ca,
        vec![dns("requestor.leaseline.lab")],
        ExtendedKeyUsagePurpose::ClientAuth,
        true,
    );
    // Listed by fingerprint too: expiry is checked before the allowlist.
    let fp = format!("sha256:{}", hex(&Sha256::digest(&req.der)));
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab", &fp])
        .acceptor()
        .unwrap();
    let (peer, client) = run(&acc, client_config(&ca, Some(&req), Version::Any)).await;
    let r = peer.unwrap_err();
    assert_eq!(r.kind, RefusalKind::Expired, "{r}");
    assert_no_data(&client);
}

#[tokio::test]
async fn server_auth_only_certificate_is_refused_as_client() {
    // A certificate without the clientAuth purpose (e.g. another server's).
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let other_server = leaf(
        &ca,
        vec![dns("requestor.leaseline.lab")],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    let (peer, client) = run(&acc, client_config(&ca, Some(&other_server), Version::Any)).await;
    assert_eq!(peer.unwrap_err().kind, RefusalKind::BadCertificate);
    assert_no_data(&client);
}

#[tokio::test]
async fn fingerprint_and_spki_entries_admit() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = requestor(&ca, "unlisted-name.lab");
    let id = CertIdentity::from_der(&req.der);
    let spki = id.spki_sha256.unwrap();

    // openssl's colon-separated upper-case form.
    let openssl_form = Sha256::digest(&req.der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let acc = settings(&ca, &srv, &[&format!("sha256:{openssl_form}")])
        .acceptor()
        .unwrap();
    let (peer, client) = run(&acc, client_config(&ca, Some(&req), Version::Any)).await;
    assert_eq!(peer.unwrap().matched, AllowEntry::CertSha256(id.sha256));
    assert!(matches!(client, ClientSide::Read(ref g, None) if g == b"secret"));

    let acc = settings(&ca, &srv, &[&format!("spki-sha256:{}", hex(&spki))])
        .acceptor()
        .unwrap();
    let (peer, _) = run(&acc, client_config(&ca, Some(&req), Version::Tls12)).await;
    assert_eq!(peer.unwrap().matched, AllowEntry::SpkiSha256(spki));

    // Another certificate with the same name but another key: not admitted.
    let other = requestor(&ca, "unlisted-name.lab");
    let (peer, client) = run(&acc, client_config(&ca, Some(&other), Version::Any)).await;
    assert_eq!(peer.unwrap_err().kind, RefusalKind::NotAllowed);
    assert_no_data(&client);
}

#[tokio::test]
async fn uri_and_ip_san_entries_admit() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let req = leaf(
        &ca,
        vec![
            SanType::URI("spiffe://lab/requestor".try_into().unwrap()),
            SanType::IpAddress("192.0.2.7".parse().unwrap()),
        ],
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    for (entry, want) in [
        (
            "san:spiffe://lab/requestor",
            AllowEntry::Uri("spiffe://lab/requestor".into()),
        ),
        (
            "san:192.0.2.7",
            AllowEntry::Ip("192.0.2.7".parse().unwrap()),
        ),
    ] {
        let acc = settings(&ca, &srv, &[entry]).acceptor().unwrap();
        let (peer, _) = run(&acc, client_config(&ca, Some(&req), Version::Any)).await;
        assert_eq!(peer.unwrap().matched, want);
    }
    let acc = settings(&ca, &srv, &["san:spiffe://lab/other", "san:192.0.2.8"])
        .acceptor()
        .unwrap();
    let (peer, _) = run(&acc, client_config(&ca, Some(&req), Version::Any)).await;
    assert_eq!(peer.unwrap_err().kind, RefusalKind::NotAllowed);
}

#[tokio::test]
async fn plaintext_after_dhcptls_fails_the_handshake() {
    // A requestor that, after DHCPTLS, sends a DHCP message in the clear:
    // rustls reads it as a TLS record and fails; nothing is read as DHCP.
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept_with_timeout(&acc, tcp, Duration::from_secs(10))
            .await
            .map(|_| ())
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // A framed DHCPACTIVELEASEQUERY-looking message (length 300, BOOTREQUEST).
    let mut msg = vec![0x01, 0x2c, 1, 1, 6, 0];
    msg.resize(302, 0);
    tcp.write_all(&msg).await.unwrap();
    let r = server.await.unwrap().unwrap_err();
    assert_eq!(r.kind, RefusalKind::Handshake, "{r}");
    // Whatever came back is at most a TLS alert record (content type 21), never DHCP.
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
}

#[tokio::test]
async fn silent_requestor_times_out() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _tcp = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let r = accept_with_timeout(&acc, tcp, Duration::from_millis(200))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(r.kind, RefusalKind::Timeout);
}

#[tokio::test]
async fn closed_connection_is_io() {
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let acc = settings(&ca, &srv, &["san:requestor.leaseline.lab"])
        .acceptor()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(TcpStream::connect(addr).await.unwrap());
    let (tcp, _) = listener.accept().await.unwrap();
    let r = accept(&acc, tcp).await.map(|_| ()).unwrap_err();
    assert_eq!(r.kind, RefusalKind::Io, "{r}");
}

// --- loading files ----------------------------------------------------------

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Lab CA");
    let srv = server_leaf(&ca);
    let other = server_leaf(&ca);
    let w = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let cert = w("server.pem", &srv.pem);
    let key = w("server-key.pem", &srv.key_pem);
    let other_key = w("other-key.pem", &other.key_pem);
    let ca_file = w("ca.pem", &ca.pem);
    let garbage = w("garbage.pem", "hello\n");
    let missing = dir.path().join("missing.pem");
    let allowed = ["san:requestor.leaseline.lab"];

    let ok = TlsSettings::load(&cert, &key, &ca_file, &allowed).unwrap();
    assert_eq!(ok.allowlist().entries().len(), 1);

    let cases: Vec<(TlsConfigError, &str, &std::path::Path)> = vec![
        (
            TlsSettings::load(&missing, &key, &ca_file, &allowed).unwrap_err(),
            "leasequery.tls.cert",
            &missing,
        ),
        (
            TlsSettings::load(&cert, &missing, &ca_file, &allowed).unwrap_err(),
            "leasequery.tls.key",
            &missing,
        ),
        (
            TlsSettings::load(&cert, &key, &missing, &allowed).unwrap_err(),
            "leasequery.tls.ca",
            &missing,
        ),
        (
            TlsSettings::load(&key, &cert, &ca_file, &allowed).unwrap_err(),
            "swapped",
            &key,
        ),
        (
            TlsSettings::load(&cert, &garbage, &ca_file, &allowed).unwrap_err(),
            "no private key",
            &garbage,
        ),
        (
            TlsSettings::load(&cert, &key, &garbage, &allowed).unwrap_err(),
            "leasequery.tls.ca",
            &garbage,
        ),
        (
            TlsSettings::load(&cert, &other_key, &ca_file, &allowed).unwrap_err(),
            "does not belong",
            &other_key,
        ),
    ];
    for (err, needle, path) in cases {
        let text = err.to_string();
        assert!(text.contains(needle), "{text} lacks {needle}");
        assert!(
            text.contains(&path.display().to_string()),
            "{text} lacks {path:?}"
        );
    }
}

#[test]
fn only_tls12_and_tls13_with_ecdhe_aead_suites() {
    let names = cipher_suite_names();
    assert!(!names.is_empty());
    for n in &names {
        let ok = (n.starts_with("TLS13_") || n.starts_with("TLS_ECDHE_"))
            && (n.contains("_GCM_") || n.contains("CHACHA20_POLY1305"));
        assert!(ok, "unexpected suite {n}");
    }
    // The two RFC 7525 §4.2 ECDHE suites are offered.
    for want in [
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

// --- the OpenSSL commands of docs/tls.md ---------------------------------------

/// The shell block between `<!-- NAME-begin -->` and `<!-- NAME-end -->`.
fn doc_block(doc: &str, name: &str) -> String {
    let begin = format!("<!-- {name}-begin -->");
    let end = format!("<!-- {name}-end -->");
    let start = doc.find(&begin).expect("begin marker") + begin.len();
    let stop = doc[start..].find(&end).expect("end marker") + start;
    doc[start..stop]
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sh(dir: &std::path::Path, script: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The PKI made with the documented OpenSSL commands loads, and the hashes
/// printed by the documented commands admit the requestor.
#[tokio::test]
async fn docs_openssl_commands_make_a_working_pki() {
    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tls.md");
    let Ok(doc) = std::fs::read_to_string(&doc_path) else {
        eprintln!("{} not found; skipped", doc_path.display());
        return;
    };
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(dir, &doc_block(&doc, "openssl-pki"));
    let hashes = sh(dir, &doc_block(&doc, "openssl-hashes"));
    let fingerprint = hashes
        .lines()
        .find_map(|l| {
            l.split_once("Fingerprint=")
                .map(|(_, h)| h.trim().to_string())
        })
        .expect("fingerprint line");
    let spki = hashes
        .lines()
        .find(|l| l.ends_with("*stdin"))
        .and_then(|l| l.split_whitespace().next())
        .expect("spki line")
        .to_string();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let (ca_pem, req_pem, req_key) = (
        read("ca.pem"),
        read("requestor.pem"),
        read("requestor-key.pem"),
    );
    for entry in [
        "san:requestor1.example.net".to_string(),
        format!("sha256:{fingerprint}"),
        format!("spki-sha256:{spki}"),
    ] {
        let settings = TlsSettings::load(
            &dir.join("server.pem"),
            &dir.join("server-key.pem"),
            &dir.join("ca.pem"),
            &[entry.as_str()],
        )
        .unwrap();
        let acc = settings.acceptor().unwrap();
        for v in [Version::Any, Version::Tls12] {
            let client = client_config_pem(&ca_pem, Some((&req_pem, &req_key)), v);
            let (peer, side) = run_as(&acc, client, "dhcp1.example.net").await;
            let peer = peer.unwrap_or_else(|r| panic!("{entry}: {r}"));
            assert_eq!(peer.matched, entry.parse::<AllowEntry>().unwrap());
            assert!(
                matches!(side, ClientSide::Read(ref g, None) if g == b"secret"),
                "{side:?}"
            );
        }
    }
}
