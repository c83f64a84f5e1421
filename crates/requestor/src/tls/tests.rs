//! The requestor's DHCPTLS exchange and handshake against a scripted server
//! on loopback TCP, with certificates made by rcgen in each test.

use std::sync::Arc;
use std::time::Duration;

use leaseline_test_support::pki::{Ca, Leaf};
use leaseline_wire::{DhcpOption, Message};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::watch::{watch, WatchEnd, WatchEvent, WatchOptions};

/// A CA, a server certificate for `localhost` and 127.0.0.1, a requestor certificate.
struct Pki {
    ca: Ca,
    server: Leaf,
    requestor: Leaf,
}

fn pki() -> Pki {
    let ca = Ca::new("Lab CA");
    let server = ca.server_leaf();
    let requestor = ca.requestor_leaf("requestor.leaseline.lab");
    Pki {
        ca,
        server,
        requestor,
    }
}

fn server_config(ca: &Ca, server: &Leaf) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(server.pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

fn client(p: &Pki, server_name: Option<&str>) -> TlsClient {
    TlsClient::from_pem(
        p.ca.pem.as_bytes(),
        p.requestor.pem.as_bytes(),
        p.requestor.key_pem.as_bytes(),
        server_name,
    )
    .unwrap()
    .with_timeout(Duration::from_secs(5))
}

fn message(t: MessageType, status: Option<StatusCode>) -> Message {
    let mut m = Message {
        op: 2,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options.push(DhcpOption::MessageType(t));
    if let Some(c) = status {
        m.options.push(DhcpOption::StatusCode(c, String::new()));
    }
    m
}

#[derive(Clone, Copy)]
enum Script {
    /// DHCPTLS answer, handshake, then a keepalive and QueryTerminated over TLS.
    Accept,
    /// DHCPTLS + TLSConnectionRefused.
    Refuse,
    /// Close right after reading DHCPTLS.
    Close,
    /// Read DHCPTLS and say nothing.
    Silent,
    /// DHCPTLS answer immediately followed by a plaintext DHCP message.
    Inject,
    /// Answer DHCPTLS with something else.
    WrongType,
}

/// What the scripted server saw.
#[derive(Debug)]
struct Saw {
    /// The first message's type was DHCPTLS.
    got_dhcptls: bool,
    /// Bytes the requestor sent after DHCPTLS outside TLS (must be none).
    plaintext_after: usize,
    /// The TLS handshake result, when one was attempted.
    handshake: Option<Result<(), String>>,
    /// The message type received over TLS.
    over_tls: Option<MessageType>,
}

async fn serve(script: Script, config: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<Saw>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = FramedConn::new(tcp);
        let first = conn.recv(Duration::from_secs(5)).await.unwrap();
        let mut saw = Saw {
            got_dhcptls: first.message_type() == Some(MessageType::Tls),
            plaintext_after: 0,
            handshake: None,
            over_tls: None,
        };
        let drain = |tcp: tokio::net::TcpStream| async move {
            let mut tcp = tcp;
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
            rest.len()
        };
        match script {
            Script::Refuse => {
                conn.send(&message(
                    MessageType::Tls,
                    Some(StatusCode::TlsConnectionRefused),
                ))
                .await
                .unwrap();
                saw.plaintext_after = conn.buffered() + drain(conn.into_inner()).await;
            }
            Script::Close => {}
            Script::Silent => {
                saw.plaintext_after = drain(conn.into_inner()).await;
            }
            Script::WrongType => {
                conn.send(&message(MessageType::LeaseQueryStatus, None))
                    .await
                    .unwrap();
                saw.plaintext_after = drain(conn.into_inner()).await;
            }
            Script::Inject => {
                // Answer and a forged status in the same write.
                let mut out = Vec::new();
                for m in [
                    message(MessageType::Tls, None),
                    message(
                        MessageType::LeaseQueryStatus,
                        Some(StatusCode::CatchUpComplete),
                    ),
                ] {
                    leaseline_wire::encode_frame(&m.to_bytes().unwrap(), &mut out).unwrap();
                }
                let mut tcp = conn.into_inner();
                tokio::io::AsyncWriteExt::write_all(&mut tcp, &out)
                    .await
                    .unwrap();
                saw.plaintext_after = drain(tcp).await;
            }
            Script::Accept => {
                conn.send(&message(MessageType::Tls, None)).await.unwrap();
                assert_eq!(conn.buffered(), 0);
                match TlsAcceptor::from(config).accept(conn.into_inner()).await {
                    Err(e) => saw.handshake = Some(Err(e.to_string())),
                    Ok(tls) => {
                        saw.handshake = Some(Ok(()));
                        let mut conn = FramedConn::new(tls);
                        if let Ok(q) = conn.recv(Duration::from_secs(5)).await {
                            saw.over_tls = q.message_type();
                            let mut keepalive = message(
                                MessageType::LeaseQueryStatus,
                                Some(StatusCode::ConnectionActive),
                            );
                            keepalive.options.push(DhcpOption::BaseTime(1000));
                            let mut end = message(
                                MessageType::LeaseQueryStatus,
                                Some(StatusCode::QueryTerminated),
                            );
                            end.options.push(DhcpOption::BaseTime(1001));
                            conn.send(&keepalive).await.unwrap();
                            conn.send(&end).await.unwrap();
                        }
                    }
                }
            }
        }
        saw
    });
    (addr, task)
}

fn opts(server: SocketAddr) -> WatchOptions {
    WatchOptions {
        servers: vec![server.into()],
        since: None,
        resume: None,
        rcv_timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(10),
        reconnect: false,
        prl: crate::prl::BINDINGS.to_vec(),
    }
}

#[tokio::test]
async fn watch_runs_over_tls() {
    let p = pki();
    for name in [None, Some("localhost"), Some("127.0.0.1")] {
        let (addr, server) = serve(Script::Accept, server_config(&p.ca, &p.server)).await;
        let mut events = Vec::new();
        let mut sink = |e: WatchEvent| events.push(e);
        let end = watch(&opts(addr), tls_connector(client(&p, name)), &mut sink).await;
        assert!(
            matches!(end, WatchEnd::Failed(ref r) if r.contains("terminated")),
            "{end:?}"
        );
        assert!(events.contains(&WatchEvent::KeepAlive {
            base_time: Some(1000)
        }));
        assert!(events.contains(&WatchEvent::Terminated {
            base_time: Some(1001)
        }));
        let saw = server.await.unwrap();
        assert!(saw.got_dhcptls);
        assert_eq!(saw.handshake, Some(Ok(())));
        assert_eq!(saw.over_tls, Some(MessageType::ActiveLeaseQuery));
    }
}

#[tokio::test]
async fn refusal_is_reported_and_nothing_follows_in_plaintext() {
    let p = pki();
    let (addr, server) = serve(Script::Refuse, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &client(&p, None))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(r, TlsError::Refused), "{r}");
    assert!(matches!(ActiveError::from(r), ActiveError::TlsRefused));
    let saw = server.await.unwrap();
    assert!(saw.got_dhcptls);
    assert_eq!(
        saw.plaintext_after, 0,
        "the requestor sent plaintext after the refusal"
    );

    // Through the connector used by watch and the mirror.
    let (addr, server) = serve(Script::Refuse, server_config(&p.ca, &p.server)).await;
    let open = tls_connector(client(&p, None));
    let r = open(addr.into()).await.map(|_| ()).unwrap_err();
    assert!(matches!(r, ActiveError::TlsRefused), "{r}");
    assert_eq!(server.await.unwrap().plaintext_after, 0);
}

#[tokio::test]
async fn close_silence_and_other_answers_fail_without_plaintext() {
    let p = pki();
    let c = client(&p, None).with_timeout(Duration::from_millis(300));
    let (addr, server) = serve(Script::Close, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &c).await.map(|_| ()).unwrap_err();
    assert!(matches!(r, TlsError::Closed), "{r}");
    server.await.unwrap();

    let (addr, server) = serve(Script::Silent, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &c).await.map(|_| ()).unwrap_err();
    assert!(matches!(r, TlsError::Timeout { .. }), "{r}");
    assert_eq!(server.await.unwrap().plaintext_after, 0);

    let (addr, server) = serve(Script::WrongType, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &c).await.map(|_| ()).unwrap_err();
    assert!(matches!(r, TlsError::Unexpected(_)), "{r}");
    assert_eq!(server.await.unwrap().plaintext_after, 0);
}

#[tokio::test]
async fn bytes_after_the_dhcptls_answer_are_never_read() {
    let p = pki();
    let (addr, server) = serve(Script::Inject, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &client(&p, None))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(r, TlsError::Unexpected(ref t) if t.contains("followed")),
        "{r}"
    );
    assert_eq!(server.await.unwrap().plaintext_after, 0);
}

#[tokio::test]
async fn wrong_server_name_fails_the_handshake() {
    let p = pki();
    let (addr, server) = serve(Script::Accept, server_config(&p.ca, &p.server)).await;
    let r = connect(addr, &client(&p, Some("dhcp.example.net")))
        .await
        .map(|_| ())
        .unwrap_err();
    match &r {
        TlsError::Handshake { server, reason } => {
            assert_eq!(server, "dhcp.example.net");
            assert!(reason.contains("not valid for name"), "{reason}");
        }
        other => panic!("{other}"),
    }
    let saw = server.await.unwrap();
    assert!(matches!(saw.handshake, Some(Err(_))), "{saw:?}");
    assert_eq!(saw.over_tls, None);
}

#[tokio::test]
async fn server_certificate_from_another_ca_fails_the_handshake() {
    let p = pki();
    let impostor = Ca::new("Other CA").server_leaf();
    let (addr, server) = serve(Script::Accept, server_config(&p.ca, &impostor)).await;
    let r = connect(addr, &client(&p, None))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(r, TlsError::Handshake { ref reason, .. } if reason.contains("UnknownIssuer")),
        "{r}"
    );
    let saw = server.await.unwrap();
    assert_eq!(saw.over_tls, None);
}

#[test]
fn settings_errors_name_the_file() {
    let dir = tempfile_dir();
    let p = pki();
    let w = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let ca_f = w("ca.pem", &p.ca.pem);
    let cert_f = w("requestor.pem", &p.requestor.pem);
    let key_f = w("requestor-key.pem", &p.requestor.key_pem);
    let other_key = w("other-key.pem", &p.server.key_pem);
    let missing = dir.join("nope.pem");
    let s = |ca: &Path, cert: &Path, key: &Path, name: Option<&str>| TlsClientSettings {
        ca: ca.to_path_buf(),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        server_name: name.map(str::to_string),
    };
    TlsClient::new(&s(&ca_f, &cert_f, &key_f, Some("dhcp.lab"))).unwrap();
    for (settings, needle) in [
        (s(&missing, &cert_f, &key_f, None), "--ca"),
        (s(&ca_f, &missing, &key_f, None), "--cert"),
        (s(&ca_f, &cert_f, &missing, None), "--key"),
        (s(&ca_f, &key_f, &key_f, None), "--cert"),
        (s(&ca_f, &cert_f, &cert_f, None), "no private key"),
        (s(&ca_f, &cert_f, &other_key, None), "does not belong"),
        (
            s(&ca_f, &cert_f, &key_f, Some("not a name!")),
            "--server-name",
        ),
    ] {
        let e = TlsClient::new(&settings).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} lacks {needle}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "leaseline-tls-{}-{}",
        std::process::id(),
        crate::random::random_u32()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn default_server_name_is_the_host_typed() {
    assert_eq!(default_server_name("dhcp.lab"), Some("dhcp.lab".into()));
    assert_eq!(
        default_server_name("dhcp.lab:6767"),
        Some("dhcp.lab".into())
    );
    assert_eq!(default_server_name("127.0.0.1"), None);
    assert_eq!(default_server_name("127.0.0.1:67"), None);
    assert_eq!(default_server_name("[::1]:67"), None);
    assert_eq!(default_server_name("::1"), None);
}
