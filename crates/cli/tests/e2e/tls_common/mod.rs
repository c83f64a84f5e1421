//! Shared by tests/tls_*.rs (secure mode, RFC 7724 §7.2, §8.1, §9).
//!
//! - [`TestPki`]: a CA, the server certificate and requestor certificates
//!   (allowed, not allowed, expired, from another CA), made with
//!   test-support's rcgen PKI, written as PEM files.
//! - [`server_config`]: a small loopback server (31 addresses) with the
//!   leasequery TCP listener in the mode asked for.
//! - [`dora`]: real bindings through a relay on 127.0.0.6x:67, so that "no
//!   lease data sent" is a meaningful assertion.
//! - A hand-built requestor ([`connect_tls`], [`send_and_collect`],
//!   [`read_to_close`]) that records every byte the server sends until it
//!   closes, and [`binding_frames`] to count lease data in them.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leaseline_requestor::active::active_query;
use leaseline_requestor::prl;
use leaseline_test_support::pki::{dns, Ca, ExtendedKeyUsagePurpose, SanType, Validity};
pub use leaseline_test_support::WatchProcess;
use leaseline_test_support::{Lease, RelayClient, ServerConfig, ServerProcess, Subnet, TestClient};
use leaseline_wire::{encode_frame, DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
/// The requestor name on the allowlist (as `certs init` makes it).
pub const REQUESTOR_NAME: &str = "requestor.leaseline.lab";
/// How long the server may take to close a refused connection.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(15);
/// Both TLS versions the server offers; refusals are checked under each.
pub static VERSIONS: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

// ---------------------------------------------------------------------------
// PKI

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn write_leaf(
    dir: &Path,
    stem: &str,
    ca: &Ca,
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
    validity: Validity,
) -> Identity {
    let leaf = ca.leaf(stem, sans, eku, validity);
    let id = Identity {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    };
    std::fs::write(&id.cert, leaf.pem).expect("write certificate");
    std::fs::write(&id.key, leaf.key_pem).expect("write key");
    set_mode_600(&id.key);
    id
}

fn set_mode_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// The certificates of every secure-mode test, in a temporary directory.
pub struct TestPki {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// The CA the server trusts for requestors (and that issued its certificate).
    pub ca: PathBuf,
    /// The server certificate: SANs 127.0.0.1 and localhost, EKU serverAuth.
    pub server: Identity,
    /// SAN requestor.leaseline.lab, from the CA: on the allowlist.
    pub requestor: Identity,
    /// SAN stranger.leaseline.lab, from the same CA: not on the allowlist.
    pub stranger: Identity,
    /// SAN requestor.leaseline.lab, from the CA, expired (valid 2001–2002).
    pub expired: Identity,
    /// SAN requestor.leaseline.lab, from another CA.
    pub foreign: Identity,
    /// That other CA (a requestor trusting it rejects our server).
    pub foreign_ca: PathBuf,
}

impl TestPki {
    pub fn new() -> TestPki {
        let tmp = tempfile::Builder::new()
            .prefix("leaseline-tls-pki-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let ca = Ca::new("Leaseline test CA");
        let other = Ca::new("Some other CA");
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, &ca.pem).expect("write ca.pem");
        let foreign_ca = dir.join("other-ca.pem");
        std::fs::write(&foreign_ca, &other.pem).expect("write other-ca.pem");
        let server = write_leaf(
            &dir,
            "server",
            &ca,
            vec![
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
            Validity::Current,
        );
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let requestor = write_leaf(
            &dir,
            "requestor",
            &ca,
            vec![dns(REQUESTOR_NAME)],
            client.clone(),
            Validity::Current,
        );
        let stranger = write_leaf(
            &dir,
            "stranger",
            &ca,
            vec![dns("stranger.leaseline.lab")],
            client.clone(),
            Validity::Current,
        );
        let expired = write_leaf(
            &dir,
            "expired",
            &ca,
            vec![dns(REQUESTOR_NAME)],
            client.clone(),
            Validity::Expired,
        );
        let foreign = write_leaf(
            &dir,
            "foreign",
            &other,
            vec![dns(REQUESTOR_NAME)],
            client,
            Validity::Current,
        );
        TestPki {
            _tmp: tmp,
            dir,
            ca: ca_path,
            server,
            requestor,
            stranger,
            expired,
            foreign,
            foreign_ca,
        }
    }

    /// `[leasequery.tls]` for this PKI, with absolute paths.
    pub fn tls_section(&self, allowed: &[&str]) -> String {
        let list = allowed
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[leasequery.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\nallowed_requestors = [{list}]\n",
            self.server.cert.display().to_string(),
            self.server.key.display().to_string(),
            self.ca.display().to_string(),
        )
    }
}

// ---------------------------------------------------------------------------
// Server

/// A TCP port on 127.0.0.1 no other caller in this process was given.
#[allow(unused_imports)] // not every test of this module uses it
pub use leaseline_test_support::free_tcp_port;

/// The leasequery TCP listener's mode.
pub enum Mode<'a> {
    /// `[leasequery.active] enabled = true` with `[leasequery.tls]`: secure only.
    Secure(&'a TestPki, &'a [&'a str]),
    /// `insecure = true` without `[leasequery.tls]`: plain TCP only; DHCPTLS
    /// is answered with TLSConnectionRefused.
    InsecureOnly,
}

/// A loopback server: DHCP on `dhcp` for relay `relay` (pool 10.0.0.10 to
/// 10.0.0.40), Bulk and Active Leasequery on `tcp` in `mode`.
pub fn server_config(dhcp: SocketAddr, tcp: SocketAddr, relay: Ipv4Addr, mode: Mode) -> String {
    server_config_allowing(dhcp, tcp, relay, mode, &["127.0.0.0/8"])
}

/// [`server_config`] with `[leasequery] allow` = `allow`.
pub fn server_config_allowing(
    dhcp: SocketAddr,
    tcp: SocketAddr,
    relay: Ipv4Addr,
    mode: Mode,
    allow: &[&str],
) -> String {
    let config = ServerConfig::new(dhcp)
        .subnet(Subnet::new("10.0.0.0/24", "10.0.0.10-10.0.0.40", &[relay]).router())
        .allow(allow)
        .bulk(tcp, "data_timeout = 10");
    match mode {
        Mode::Secure(pki, allowed) => config
            .active(false, "")
            .extra(&pki.tls_section(allowed))
            .build(),
        Mode::InsecureOnly => config.active(true, "").build(),
    }
}

/// Every address of the pool in [`server_config`].
pub const POOL_SIZE: usize = 31;

/// DORA relays bind giaddr:67; one test at a time per test binary may.
static RELAY_LOCK: Mutex<()> = Mutex::new(());

/// `n` clients (numbered from `first`) get a lease through a relay on
/// `relay`:67. Tests of one binary share `relay`; the lock serialises them.
pub fn dora(relay: Ipv4Addr, dhcp: SocketAddr, first: u32, n: u32) -> Vec<Lease> {
    let _g = RELAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = RelayClient::bind(relay, dhcp)
        .unwrap_or_else(|e| panic!("bind the relay on {relay}:67 (needs root): {e}"));
    (first..first + n)
        .map(|i| {
            r.dora(&TestClient::new(i))
                .unwrap_or_else(|e| panic!("DORA of client {i}: {e}"))
        })
        .collect()
}

/// A started server with `n` leases granted, for refusal tests.
pub struct Fixture {
    pub server: ServerProcess,
    pub tcp: SocketAddr,
    pub dhcp: SocketAddr,
    pub leases: Vec<Lease>,
    /// Before the leases (and not before the server started): an active
    /// query catching up from here gets them.
    pub since: u32,
}

impl Fixture {
    pub fn start(relay: Ipv4Addr, mode: Mode, first_client: u32) -> Fixture {
        Self::start_allowing(relay, mode, first_client, &["127.0.0.0/8"])
    }

    /// [`Fixture::start`] with `[leasequery] allow` = `allow`.
    pub fn start_allowing(
        relay: Ipv4Addr,
        mode: Mode,
        first_client: u32,
        allow: &[&str],
    ) -> Fixture {
        let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, leaseline_test_support::free_udp_port()));
        let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
        let config = server_config_allowing(dhcp, tcp, relay, mode, allow);
        // Debug for the listener: it logs each bulk query it starts.
        let server = ServerProcess::builder(BIN, &config)
            .env("RUST_LOG", "info,leaseline_server::listener=debug")
            .spawn();
        // The history starts when the server does: catching up from earlier
        // would get DataMissing instead of the bindings.
        let since = leaseline_test_support::unix_now();
        let leases = dora(relay, dhcp, first_client, 3);
        Fixture {
            server,
            tcp,
            dhcp,
            leases,
            since,
        }
    }

    /// The server logged nothing that means a leasequery session with
    /// `peer` started (no authentication, no active or bulk query).
    pub fn assert_no_session(&self, peer: SocketAddr) {
        let p = format!("peer={peer}");
        for needle in [
            "TLS requestor authenticated",
            "active query started",
            "bulk query",
        ] {
            let hits = self.server.logs_containing(&[&p, needle]);
            assert!(
                hits.is_empty(),
                "the server logged `{needle}` for {peer}: {hits:#?}"
            );
        }
    }

    /// Waits for the `leasequery connection closed` line of `peer` and
    /// returns it.
    pub fn closed_line(&self, peer: SocketAddr) -> String {
        let p = format!("peer={peer}");
        self.server
            .try_wait_for_line(0, CLOSE_WITHIN, |l| {
                l.contains("leasequery connection closed") && l.contains(&p)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `leasequery connection closed` line for {peer}\n--- server log ---\n{}",
                    self.server.log_tail(60)
                )
            })
    }
}

// ---------------------------------------------------------------------------
// A hand-built requestor

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Framed bytes of `m` (2-octet length, RFC 6926 §6.3).
pub fn framed(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&m.to_bytes().expect("encode"), &mut out).expect("frame");
    out
}

/// DHCPTLS as a requestor sends it (RFC 7724 §7.2).
pub fn dhcptls(xid: u32) -> Message {
    leaseline_requestor::active::tls_request(xid)
}

/// An active query catching up from `since`: on an accepted connection the
/// server answers with every binding changed since then.
pub fn catch_up_query(xid: u32, since: u32) -> Message {
    active_query(xid, Some(since), prl::BINDINGS)
}

/// A DHCPBULKLEASEQUERY with no primary query: every configured address.
pub fn bulk_all_query(xid: u32) -> Message {
    let mut m = Message {
        xid,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    m.options
        .push(DhcpOption::ParameterRequestList(prl::BINDINGS.to_vec()));
    m
}

/// Splits `bytes` into framed messages. A trailing partial frame, or a
/// frame that does not decode, is returned as `Err` with its bytes.
pub fn frames(bytes: &[u8]) -> Vec<Result<Message, Vec<u8>>> {
    let mut d = FrameDecoder::new(65_535);
    d.extend(bytes);
    let mut out = Vec::new();
    while let Ok(Some(f)) = d.next_frame() {
        out.push(Message::decode(f).map_err(|_| f.to_vec()));
    }
    if d.buffered() > 0 {
        out.push(Err(vec![0; d.buffered()]));
    }
    out
}

/// `bytes` as framed messages, briefly: type and ciaddr, for failure messages.
pub fn summary(bytes: &[u8]) -> String {
    let parts: Vec<String> = frames(bytes)
        .iter()
        .map(|f| match f {
            Ok(m) => format!(
                "{}(xid {:#x}, ciaddr {}, status {:?})",
                m.message_type().map(|t| t.name()).unwrap_or("untyped"),
                m.xid,
                m.ciaddr,
                status(m)
            ),
            Err(b) => format!("{} undecodable bytes", b.len()),
        })
        .collect();
    format!("{} bytes: [{}]", bytes.len(), parts.join(", "))
}

/// How many DHCPLEASEACTIVE / DHCPLEASEUNASSIGNED messages are in `bytes`.
pub fn binding_frames(bytes: &[u8]) -> usize {
    frames(bytes)
        .iter()
        .filter(|f| {
            matches!(
                f.as_ref().ok().and_then(|m| m.message_type()),
                Some(MessageType::LeaseActive | MessageType::LeaseUnassigned)
            )
        })
        .count()
}

/// Asserts that `bytes` holds no lease data: no framed binding message and,
/// since the server sends none of them either, nothing that is not DHCPTLS.
pub fn assert_no_lease_data(what: &str, bytes: &[u8]) {
    assert_eq!(
        binding_frames(bytes),
        0,
        "{what}: lease data received: {}",
        summary(bytes)
    );
    for f in frames(bytes) {
        match f {
            Ok(m) if m.message_type() == Some(MessageType::Tls) => {}
            _ => panic!(
                "{what}: unexpected bytes from the server: {}",
                summary(bytes)
            ),
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// Orderly close (FIN, or TLS close_notify then FIN).
    Eof,
    /// A read error: RST, a TLS alert, ...
    Error(String),
}

/// Reads until the peer closes (or the connection fails); every byte read.
/// Panics when the server has not closed within [`CLOSE_WITHIN`].
pub async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + CLOSE_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the server did not close the connection within {CLOSE_WITHIN:?} ({})",
                summary(&got)
            ),
            Ok(Ok(0)) => return (got, End::Eof),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return (got, End::Error(e.to_string())),
        }
    }
}

/// Writes `bytes` (a failure is fine: the server may have closed already),
/// then [`read_to_close`].
pub async fn send_and_collect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> (Vec<u8>, End) {
    let _ = s.write_all(bytes).await;
    let _ = s.flush().await;
    read_to_close(s).await
}

/// Reads one framed message within `limit`.
pub async fn read_message<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Message {
    let mut d = FrameDecoder::new(65_535);
    let mut buf = [0u8; 1]; // one byte at a time: nothing past the message is consumed
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(f) = d.next_frame().expect("framing") {
            return Message::decode(f).expect("decode");
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("no message within {limit:?}"),
            Ok(Ok(0)) => panic!("closed before a whole message"),
            Ok(Ok(n)) => d.extend(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
        }
    }
}

/// The status code of a message, if any.
pub fn status(m: &Message) -> Option<StatusCode> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, _) => Some(*c),
        _ => None,
    })
}

/// A rustls client configuration trusting `ca`, presenting `identity`
/// (None: no certificate), offering only `version`, without resumption
/// unless `resumption`.
pub fn client_config(
    ca: &Path,
    identity: Option<&Identity>,
    version: &'static SupportedProtocolVersion,
    resumption: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(c.expect("CA PEM")).expect("trust anchor");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .expect("protocol version")
            .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            let chain = CertificateDer::pem_file_iter(&id.cert)
                .expect("read certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate PEM");
            let key = PrivateKeyDer::from_pem_file(&id.key).expect("read key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// TCP connect to `addr`, DHCPTLS, the server's answer (asserted to be
/// DHCPTLS without a status code), then the handshake. Returns the local
/// address (the server logs it as `peer=`) and the handshake's outcome.
pub async fn connect_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> (SocketAddr, Result<TlsStream<TcpStream>, String>) {
    let mut tcp = TcpStream::connect(addr).await.expect("TCP connect");
    tcp.set_nodelay(true).unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(&framed(&dhcptls(0x5eed_0001))).await.unwrap();
    let answer = read_message(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(answer.message_type(), Some(MessageType::Tls), "{answer:?}");
    assert_eq!(status(&answer), None, "DHCPTLS answered with a status");
    let name = ServerName::IpAddress(addr.ip().into());
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("the handshake neither finished nor failed within 10 s")
    .map_err(|e| e.to_string());
    (local, r)
}

// ---------------------------------------------------------------------------
// `leaseline watch` as a child process

/// `leaseline watch ARGS`, in `cwd` when given.
pub fn spawn_watch(args: &[&str], cwd: Option<&Path>) -> WatchProcess {
    let builder = WatchProcess::builder(BIN).args(args);
    match cwd {
        Some(dir) => builder.current_dir(dir).spawn(),
        None => builder.spawn(),
    }
}

/// `--tls --ca .. --cert .. --key ..` for `identity`.
pub fn tls_flags(ca: &Path, id: &Identity) -> Vec<String> {
    vec![
        "--tls".into(),
        "--ca".into(),
        ca.display().to_string(),
        "--cert".into(),
        id.cert.display().to_string(),
        "--key".into(),
        id.key.display().to_string(),
    ]
}

/// `leaseline bulk --server TCP --all --json --tls ...` as `identity`:
/// (exit code, stdout lines, stderr).
pub fn bulk_cli(
    tcp: SocketAddr,
    ca: &Path,
    identity: &Identity,
) -> (Option<i32>, Vec<String>, String) {
    let mut args = vec![
        "bulk".to_string(),
        "--server".into(),
        tcp.to_string(),
        "--all".into(),
        "--json".into(),
        "--timeout".into(),
        "20".into(),
    ];
    args.extend(tls_flags(ca, identity));
    let o = Command::new(BIN)
        .args(&args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run leaseline bulk");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The `ip` of a `--json` update line, if it is one.
pub fn update_ip(line: &str) -> Option<Ipv4Addr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["event"] != "update" {
        return None;
    }
    v["ip"].as_str()?.parse().ok()
}
