#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Secure mode end to end (RFC 7724 §7.2, §8.1, §9), against the real
//! server binary: the happy path (watch and bulk over TLS), then every way a
//! secure connection is refused. Each refusal ends with the connection
//! closed and no lease data sent, although the server holds leases an
//! accepted requestor gets with the very same query (checked as a control).
//!
//! Relay: `loopback_relay` (DORA runs one test at a time through it).

use crate::tls_common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_requestor::active::FramedConn;
use leaseline_requestor::record::Record;
use leaseline_requestor::tls::{connect, TlsClient, TlsClientSettings, TlsError};
use leaseline_test_support::loopback_relay;
use leaseline_wire::{MessageType, StatusCode};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, NamedGroup, SupportedProtocolVersion};
use tls_common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const ALLOWED: &[&str] = &["san:requestor.leaseline.lab"];

fn secure(pki: &TestPki, first_client: u32) -> Fixture {
    Fixture::start(*RELAY, Mode::Secure(pki, ALLOWED), first_client)
}

fn version_name(v: &SupportedProtocolVersion) -> String {
    format!("{:?}", v.version)
}

/// Reads an accepted active query's catch-up: the binding messages before
/// CatchUpComplete.
async fn catch_up<S>(s: &mut S) -> Vec<Record>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut got = Vec::new();
    loop {
        let m = read_message(s, Duration::from_secs(10)).await;
        match m.message_type() {
            Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
                got.push(Record::from_reply(&m).expect("binding record"))
            }
            Some(MessageType::LeaseQueryStatus)
                if status(&m) == Some(StatusCode::CatchUpComplete) =>
            {
                return got
            }
            other => panic!("unexpected {other:?} during catch-up: {m:?}"),
        }
    }
}

fn lease_ips(fx: &Fixture) -> BTreeSet<Ipv4Addr> {
    fx.leases.iter().map(|l| l.ip).collect()
}

#[test]
fn watch_over_tls_catches_up_then_streams_live_updates() {
    let pki = TestPki::new();
    let fx = secure(&pki, 100);
    let mut args = vec![
        "--server".to_string(),
        fx.tcp.to_string(),
        "--since".into(),
        fx.since.to_string(),
        "--json".into(),
        "--no-reconnect".into(),
    ];
    args.extend(tls_flags(&pki.ca, &pki.requestor));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut watch = spawn_watch(&args, None);

    let mut want = lease_ips(&fx);
    while !want.is_empty() {
        let line = watch.wait_line("with a caught-up lease", Duration::from_secs(20), |l| {
            update_ip(l).is_some_and(|ip| want.contains(&ip))
        });
        want.remove(&update_ip(&line).unwrap());
    }
    watch.wait_line("catch-up-complete", Duration::from_secs(10), |l| {
        l.contains("\"catch-up-complete\"")
    });

    // A live change after catch-up reaches the watcher over TLS.
    let live = dora(*RELAY, fx.dhcp, 200, 1).remove(0);
    let line = watch.wait_line("with the live lease", Duration::from_secs(20), |l| {
        update_ip(l) == Some(live.ip)
    });
    assert!(line.contains("DHCPLEASEACTIVE"), "{line}");

    let auth = fx
        .server
        .wait_for_log("TLS requestor authenticated", Duration::from_secs(5));
    assert!(
        auth.contains("requestor=san:requestor.leaseline.lab"),
        "{auth}"
    );
    assert!(fx.server.logs_containing(&["plaintext"]).is_empty());
}

#[test]
fn bulk_all_over_tls_returns_every_address() {
    let pki = TestPki::new();
    let fx = secure(&pki, 300);
    let client = TlsClient::new(&TlsClientSettings {
        ca: pki.ca.clone(),
        cert: pki.requestor.cert.clone(),
        key: pki.requestor.key.clone(),
        server_name: None,
    })
    .expect("requestor TLS settings")
    .with_timeout(Duration::from_secs(10));

    let records = runtime().block_on(async {
        let stream = connect(fx.tcp, &client).await.expect("secure connection");
        let mut conn = FramedConn::new(stream);
        conn.send(&bulk_all_query(0xb01c)).await.expect("send");
        let mut records = Vec::new();
        loop {
            let m = conn.recv(Duration::from_secs(10)).await.expect("recv");
            assert_eq!(m.xid, 0xb01c);
            match m.message_type() {
                Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
                    records.push(Record::from_reply(&m).expect("record"))
                }
                Some(MessageType::LeaseQueryDone) => {
                    assert_eq!(status(&m), None, "DONE with a status: {m:?}");
                    break records;
                }
                other => panic!("unexpected {other:?}: {m:?}"),
            }
        }
    });

    assert_eq!(records.len(), POOL_SIZE, "one reply per configured address");
    let leased = lease_ips(&fx);
    for r in &records {
        let want = if leased.contains(&r.ip) {
            "DHCPLEASEACTIVE"
        } else {
            "DHCPLEASEUNASSIGNED"
        };
        assert_eq!(r.kind, want, "{r:?}");
    }
    for l in &fx.leases {
        let r = records.iter().find(|r| r.ip == l.ip).unwrap();
        let mac = leaseline_test_support::mac_string(&l.ack.chaddr[..6]);
        assert_eq!(r.mac.as_deref(), Some(mac.as_str()), "{r:?}");
    }
    fx.server
        .wait_for_log("TLS requestor authenticated", Duration::from_secs(5));
}

#[test]
fn bulk_cli_all_over_tls() {
    let pki = TestPki::new();
    let fx = secure(&pki, 350);
    let (code, lines, stderr) = bulk_cli(fx.tcp, &pki.ca, &pki.requestor);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), POOL_SIZE, "{stderr}");
    let leased = lease_ips(&fx);
    let mut active = BTreeSet::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON record");
        let ip: Ipv4Addr = v["ip"].as_str().unwrap().parse().unwrap();
        if v["type"] == "DHCPLEASEACTIVE" {
            active.insert(ip);
        }
    }
    assert_eq!(active, leased);
}

/// The control for every refusal below: the same queries from the allowed
/// requestor get lease data, under TLS 1.3 and TLS 1.2.
#[test]
fn allowed_requestor_gets_lease_data_under_both_versions() {
    let pki = TestPki::new();
    let fx = secure(&pki, 400);
    let rt = runtime();
    for version in VERSIONS {
        let config = client_config(&pki.ca, Some(&pki.requestor), version, false);
        let (_, tls) = rt.block_on(connect_tls(fx.tcp, config));
        let mut tls = tls.unwrap_or_else(|e| panic!("{}: {e}", version_name(version)));
        let got = rt.block_on(async {
            tls.write_all(&framed(&catch_up_query(1, fx.since)))
                .await
                .unwrap();
            catch_up(&mut tls).await
        });
        let ips: BTreeSet<Ipv4Addr> = got.iter().map(|r| r.ip).collect();
        assert_eq!(ips, lease_ips(&fx), "{}", version_name(version));
        let negotiated = tls.get_ref().1.protocol_version().unwrap();
        assert_eq!(negotiated, version.version);
    }
}

/// Connects as `identity` under each TLS version, sends a catch-up active
/// query and (on another connection) a bulk query for everything, and
/// checks that each connection is closed with no lease data, for the
/// reason `reason` in the server log. Then `leaseline bulk --all --tls` as
/// `identity` must fail (exit 3) without printing a record.
fn assert_refused(fx: &Fixture, pki: &TestPki, identity: Option<&Identity>, reason: &str) {
    let rt = runtime();
    for version in VERSIONS {
        for query in [catch_up_query(7, fx.since), bulk_all_query(8)] {
            let what = format!("{} {:?}", version_name(version), query.message_type());
            let config = client_config(&pki.ca, identity, version, false);
            let (local, tls) = rt.block_on(connect_tls(fx.tcp, config));
            let (bytes, end) = match tls {
                // TLS 1.3: the requestor's side of the handshake is complete
                // before the server has seen its certificate.
                Ok(mut s) => rt.block_on(send_and_collect(&mut s, &framed(&query))),
                Err(e) => (Vec::new(), End::Error(e)),
            };
            assert!(
                bytes.is_empty(),
                "{what}: plaintext from a refused connection: {} ({end:?})",
                summary(&bytes)
            );
            assert_no_lease_data(&what, &bytes);
            let line = fx.closed_line(local);
            assert!(
                line.contains("TLS handshake refused") && line.contains(reason),
                "{what}: expected `{reason}`: {line}"
            );
            fx.assert_no_session(local);
        }
    }
    // `leaseline bulk --tls` (it needs a certificate, so not the no-certificate case).
    if let Some(id) = identity {
        let (code, lines, stderr) = bulk_cli(fx.tcp, &pki.ca, id);
        assert_eq!(code, Some(4), "leaseline bulk: {lines:?}\n{stderr}");
        assert!(
            lines.is_empty(),
            "leaseline bulk printed records: {lines:?}"
        );
    }
}

#[test]
fn no_client_certificate_is_refused() {
    let pki = TestPki::new();
    let fx = secure(&pki, 500);
    assert_refused(&fx, &pki, None, "the requestor presented no certificate");
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let pki = TestPki::new();
    let fx = secure(&pki, 600);
    assert_refused(
        &fx,
        &pki,
        Some(&pki.foreign),
        "does not chain to the configured CA",
    );
}

#[test]
fn certificate_from_the_ca_but_not_on_the_allowlist_is_refused() {
    let pki = TestPki::new();
    let fx = secure(&pki, 700);
    assert_refused(&fx, &pki, Some(&pki.stranger), "not in allowed_requestors");
    // The log names what the certificate offers, ready for the allowlist.
    let lines = fx
        .server
        .logs_containing(&["not in allowed_requestors", "san:stranger.leaseline.lab"]);
    assert!(!lines.is_empty(), "{}", fx.server.log_tail(20));
}

#[test]
fn expired_certificate_is_refused() {
    let pki = TestPki::new();
    let fx = secure(&pki, 800);
    assert_refused(&fx, &pki, Some(&pki.expired), "expired or not yet valid");
}

/// RFC 7724 §8.1: in secure mode a connection not secured with TLS is closed
/// without any data sent.
#[test]
fn plaintext_queries_to_a_secure_only_server_get_nothing() {
    let pki = TestPki::new();
    let fx = secure(&pki, 900);
    let rt = runtime();
    for query in [catch_up_query(9, fx.since), bulk_all_query(10)] {
        let (local, bytes, end) = rt.block_on(async {
            let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
            let local = tcp.local_addr().unwrap();
            let (bytes, end) = send_and_collect(&mut tcp, &framed(&query)).await;
            (local, bytes, end)
        });
        assert!(
            bytes.is_empty(),
            "{:?}: the server sent {} bytes ({end:?})",
            query.message_type(),
            bytes.len()
        );
        let line = fx.closed_line(local);
        assert!(
            line.contains("plaintext message on a secure-only listener"),
            "{line}"
        );
        fx.assert_no_session(local);
    }
}

/// STARTTLS injection (hostile input): a plaintext query sent together with
/// DHCPTLS is never read as DHCP; the connection is closed before the
/// server even answers DHCPTLS.
#[test]
fn query_sent_with_dhcptls_is_never_read() {
    let pki = TestPki::new();
    let fx = secure(&pki, 1000);
    let rt = runtime();
    for query in [catch_up_query(11, fx.since), bulk_all_query(12)] {
        let mut both = framed(&dhcptls(0x5eed_0002));
        both.extend(framed(&query));
        let (local, bytes, end) = rt.block_on(async {
            let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let local = tcp.local_addr().unwrap();
            let (bytes, end) = send_and_collect(&mut tcp, &both).await; // one write
            (local, bytes, end)
        });
        // At most the DHCPTLS answer; in fact the server closes before it.
        assert_no_lease_data("DHCPTLS + query in one write", &bytes);
        assert!(bytes.is_empty(), "{} ({end:?})", summary(&bytes));
        let line = fx.closed_line(local);
        assert!(line.contains("bytes followed DHCPTLS"), "{line}");
        fx.assert_no_session(local);
    }
}

/// A requestor that, once DHCPTLS is answered, sends a plaintext query
/// instead of a ClientHello: the bytes go to TLS, the handshake fails, and
/// nothing but a TLS alert comes back.
#[test]
fn plaintext_query_instead_of_the_handshake_gets_nothing() {
    let pki = TestPki::new();
    let fx = secure(&pki, 1100);
    let rt = runtime();
    let (local, bytes, end) = rt.block_on(async {
        let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
        let local = tcp.local_addr().unwrap();
        tcp.write_all(&framed(&dhcptls(3))).await.unwrap();
        let answer = read_message(&mut tcp, Duration::from_secs(10)).await;
        assert_eq!(answer.message_type(), Some(MessageType::Tls));
        assert_eq!(status(&answer), None);
        let (bytes, end) = send_and_collect(&mut tcp, &framed(&catch_up_query(4, fx.since))).await;
        (local, bytes, end)
    });
    assert_eq!(binding_frames(&bytes), 0);
    assert_only_tls_alerts(&bytes, &format!("{end:?}"));
    let line = fx.closed_line(local);
    assert!(line.contains("TLS handshake refused"), "{line}");
    fx.assert_no_session(local);
}

/// `bytes` is nothing, or whole TLS alert records (content type 21).
fn assert_only_tls_alerts(bytes: &[u8], end: &str) {
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(
            rest.len() >= 5 && rest[0] == 21,
            "not a TLS alert record: {bytes:02x?} ({end})"
        );
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(rest.len() >= 5 + len, "truncated record: {bytes:02x?}");
        rest = &rest[5 + len..];
    }
}

/// The requestor checks the server's name: `leaseline watch` with a name the
/// server certificate does not carry stops at the handshake, prints no
/// update, and the server never authenticates it.
#[test]
fn server_certificate_with_the_wrong_name_is_refused_by_the_requestor() {
    let pki = TestPki::new();
    let fx = secure(&pki, 1200);
    let mut args = vec![
        "--server".to_string(),
        fx.tcp.to_string(),
        "--server-name".into(),
        "dhcp.elsewhere.example".into(),
        "--since".into(),
        fx.since.to_string(),
        "--json".into(),
        "--no-reconnect".into(),
    ];
    args.extend(tls_flags(&pki.ca, &pki.requestor));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exit = spawn_watch(&args, None).wait_exit(Duration::from_secs(30));
    let (code, stdout, stderr) = (exit.code(), exit.stdout, exit.stderr);
    assert_eq!(code, Some(4), "stdout: {stdout:?}\nstderr: {stderr}");
    assert!(
        stdout.iter().all(|l| update_ip(l).is_none()),
        "lease data printed: {stdout:?}"
    );
    assert!(
        stderr.contains("not valid for name") || stderr.contains("NotValidForName"),
        "{stderr}"
    );

    // The library says the same, and no byte of lease data arrives.
    let client = TlsClient::new(&TlsClientSettings {
        ca: pki.ca.clone(),
        cert: pki.requestor.cert.clone(),
        key: pki.requestor.key.clone(),
        server_name: Some("dhcp.elsewhere.example".into()),
    })
    .unwrap()
    .with_timeout(Duration::from_secs(10));
    match runtime().block_on(connect(fx.tcp, &client)) {
        Err(TlsError::Handshake { reason, .. }) => {
            assert!(reason.contains("not valid for name"), "{reason}")
        }
        Err(e) => panic!("expected a handshake failure, got {e}"),
        Ok(_) => panic!("the requestor accepted a server certificate for another name"),
    }

    // Server side: both handshakes failed on the requestor's alert; no
    // session ever started.
    fx.server.wait_for_log_count(
        0,
        &["leasequery connection closed", "TLS handshake refused"],
        2,
        CLOSE_WITHIN,
    );
    for needle in [
        "TLS requestor authenticated",
        "active query started",
        "bulk query",
    ] {
        assert!(
            fx.server.logs_containing(&[needle]).is_empty(),
            "{needle}: {}",
            fx.server.log_tail(30)
        );
    }
}

/// A client session store that counts what the server hands out for
/// resumption (TLS 1.2 sessions, TLS 1.3 tickets).
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    tls12: AtomicUsize,
    tls13: AtomicUsize,
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, n: ServerName<'static>, g: NamedGroup) {
        self.inner.set_kx_hint(n, g)
    }
    fn kx_hint(&self, n: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(n)
    }
    fn set_tls12_session(
        &self,
        n: ServerName<'static>,
        v: rustls::client::Tls12ClientSessionValue,
    ) {
        self.tls12.fetch_add(1, Ordering::SeqCst);
        self.inner.set_tls12_session(n, v)
    }
    fn tls12_session(&self, n: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(n)
    }
    fn remove_tls12_session(&self, n: &ServerName<'static>) {
        self.inner.remove_tls12_session(n)
    }
    fn insert_tls13_ticket(
        &self,
        n: ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tls13.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(n, v)
    }
    fn take_tls13_ticket(
        &self,
        n: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(n)
    }
}

/// Hostile-input rule: no session resumption, so every connection's
/// certificate goes through the allowlist. A requestor that asks for
/// resumption gets no ticket or session, and its second connection runs a
/// full handshake that the server authenticates again.
#[test]
fn no_session_resumption_every_connection_is_checked() {
    let pki = TestPki::new();
    let fx = secure(&pki, 1300);
    let rt = runtime();
    let mut peers: Vec<SocketAddr> = Vec::new();
    for version in VERSIONS {
        let store = Arc::new(CountingStore {
            inner: ClientSessionMemoryCache::new(16),
            tls12: AtomicUsize::new(0),
            tls13: AtomicUsize::new(0),
        });
        let mut config = (*client_config(&pki.ca, Some(&pki.requestor), version, true)).clone();
        config.resumption = Resumption::store(store.clone());
        let config = Arc::new(config);
        for round in 0..2 {
            let (local, tls) = rt.block_on(connect_tls(fx.tcp, config.clone()));
            let mut tls = tls.unwrap_or_else(|e| panic!("{}: {e}", version_name(version)));
            assert_eq!(
                tls.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Full),
                "{} connection {round}",
                version_name(version)
            );
            // Read past any post-handshake message (a TLS 1.3 ticket would come first).
            rt.block_on(async {
                tls.write_all(&framed(&catch_up_query(20 + round, fx.since)))
                    .await
                    .unwrap();
                assert_eq!(catch_up(&mut tls).await.len(), fx.leases.len());
            });
            peers.push(local);
        }
        assert_eq!(
            (
                store.tls12.load(Ordering::SeqCst),
                store.tls13.load(Ordering::SeqCst)
            ),
            (0, 0),
            "{}: the server offered resumption",
            version_name(version)
        );
    }
    for p in peers {
        fx.server.wait_for_log_count(
            0,
            &["TLS requestor authenticated", &format!("peer={p}")],
            1,
            Duration::from_secs(5),
        );
    }
}

/// Kea #4531 (issue 16 item 5): every path into leasequery passes the same
/// `[leasequery] allow`. A requestor whose certificate is on the TLS
/// allowlist, connecting from an address outside `leasequery.allow`, gets no
/// lease data over TLS either: the connection is closed before the DHCPTLS
/// exchange and logged with its peer (as plain TCP and UDP are; see
/// bulk_connection and lq_udp_leaseline). `bulk_cli_all_over_tls` is the
/// control: the same command from an allowed address gets every binding.
#[test]
fn a_certified_requestor_outside_leasequery_allow_gets_nothing_over_tls() {
    let pki = TestPki::new();
    let fx = Fixture::start_allowing(
        *RELAY,
        Mode::Secure(&pki, ALLOWED),
        1400,
        &["127.0.0.77/32"],
    );
    let (code, lines, stderr) = bulk_cli(fx.tcp, &pki.ca, &pki.requestor);
    assert_eq!(code, Some(4), "a connection failure: {stderr}");
    assert!(lines.is_empty(), "records printed: {lines:?}");
    let l = fx
        .server
        .wait_for_log("requestor not in leasequery.allow", Duration::from_secs(10));
    assert!(l.contains("peer=127.0.0.1:"), "{l}");
    assert!(
        fx.server
            .logs_containing(&["TLS requestor authenticated"])
            .is_empty(),
        "{}",
        fx.server.log_tail(30)
    );
}
