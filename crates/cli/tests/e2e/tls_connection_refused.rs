#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! A server in insecure mode only (`[leasequery.active] insecure = true`, no
//! `[leasequery.tls]`) answers DHCPTLS with TLSConnectionRefused (RFC 7724
//! §7.2, §8.1). The requestor reports the refusal and never falls back to
//! plaintext; a requestor that tries plaintext on the refused connection
//! anyway gets nothing. The server holds leases a plaintext requestor on a
//! fresh connection does get (the control).
//!
//! Relay: `loopback_relay` (test-support).

use crate::tls_common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_test_support::loopback_relay;
use leaseline_wire::{MessageType, StatusCode};
use tls_common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

#[test]
fn watch_with_tls_reports_tls_connection_refused_and_never_falls_back() {
    let pki = TestPki::new(); // the requestor's files; the server has no TLS
    let fx = Fixture::start(*RELAY, Mode::InsecureOnly, 100);
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
    let exit = spawn_watch(&args, None).wait_exit(Duration::from_secs(30));
    let (code, stdout, stderr) = (exit.code(), exit.stdout, exit.stderr);

    assert_eq!(code, Some(3), "stdout: {stdout:?}\nstderr: {stderr}");
    assert!(stderr.contains("TLSConnectionRefused"), "{stderr}");
    let refused: Vec<&String> = stdout
        .iter()
        .filter(|l| l.contains("\"refused\"") && l.contains("TLSConnectionRefused"))
        .collect();
    assert_eq!(refused.len(), 1, "{stdout:?}");
    assert!(
        stdout.iter().all(|l| update_ip(l).is_none()),
        "lease data printed: {stdout:?}"
    );

    fx.server.wait_for_log(
        "DHCPTLS on an insecure-only listener: answered TLSConnectionRefused",
        CLOSE_WITHIN,
    );
    // One connection, refused; no second (plaintext) attempt ever made a query.
    fx.server
        .wait_for_log_count(0, &["leasequery connection closed"], 1, CLOSE_WITHIN);
    assert_eq!(
        fx.server
            .logs_containing(&["leasequery connection closed"])
            .len(),
        1,
        "{}",
        fx.server.log_tail(30)
    );
    assert!(
        fx.server
            .logs_containing(&["active query started"])
            .is_empty(),
        "{}",
        fx.server.log_tail(30)
    );
}

#[test]
fn bulk_with_tls_reports_tls_connection_refused() {
    let pki = TestPki::new();
    let fx = Fixture::start(*RELAY, Mode::InsecureOnly, 150);
    let (code, lines, stderr) = bulk_cli(fx.tcp, &pki.ca, &pki.requestor);
    assert_eq!(code, Some(3), "{lines:?}\n{stderr}");
    assert!(stderr.contains("TLSConnectionRefused"), "{stderr}");
    assert!(lines.is_empty(), "records printed: {lines:?}");
    fx.server.wait_for_log(
        "DHCPTLS on an insecure-only listener: answered TLSConnectionRefused",
        CLOSE_WITHIN,
    );
    assert!(
        fx.server.logs_containing(&["bulk query"]).is_empty(),
        "{}",
        fx.server.log_tail(30)
    );
}

#[test]
fn plaintext_after_a_refusal_on_the_same_connection_gets_nothing() {
    let fx = Fixture::start(*RELAY, Mode::InsecureOnly, 200);
    let rt = runtime();

    // DHCPTLS, the refusal, then a plaintext catch-up query on the same connection.
    let (local, bytes, end) = rt.block_on(async {
        let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let local = tcp.local_addr().unwrap();
        tcp.write_all(&framed(&dhcptls(0x7e57))).await.unwrap();
        let answer = read_message(&mut tcp, Duration::from_secs(10)).await;
        assert_eq!(answer.message_type(), Some(MessageType::Tls), "{answer:?}");
        assert_eq!(status(&answer), Some(StatusCode::TlsConnectionRefused));
        assert_eq!(answer.xid, 0x7e57);
        let (bytes, end) =
            send_and_collect(&mut tcp, &framed(&catch_up_query(0x7e58, fx.since))).await;
        (local, bytes, end)
    });
    assert!(
        bytes.is_empty(),
        "after the refusal: {} ({end:?})",
        summary(&bytes)
    );
    let line = fx.closed_line(local);
    assert!(line.contains("answered TLSConnectionRefused"), "{line}");
    fx.assert_no_session(local);

    // DHCPTLS and a plaintext query in one write: the refusal, nothing more.
    let (local, bytes) = rt.block_on(async {
        let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let local = tcp.local_addr().unwrap();
        let mut both = framed(&dhcptls(0x7e59));
        both.extend(framed(&catch_up_query(0x7e5a, fx.since)));
        let (bytes, _) = send_and_collect(&mut tcp, &both).await;
        (local, bytes)
    });
    assert_no_lease_data("DHCPTLS + query on an insecure-only server", &bytes);
    let got = frames(&bytes);
    assert_eq!(got.len(), 1, "{}", summary(&bytes));
    let refusal = got[0].as_ref().unwrap();
    assert_eq!(status(refusal), Some(StatusCode::TlsConnectionRefused));
    fx.closed_line(local);
    fx.assert_no_session(local);

    // Control: the same query on a fresh plaintext connection gets the leases.
    let ips = rt.block_on(async {
        let mut tcp = TcpStream::connect(fx.tcp).await.unwrap();
        tcp.write_all(&framed(&catch_up_query(0x7e5b, fx.since)))
            .await
            .unwrap();
        let mut ips = BTreeSet::new();
        loop {
            let m = read_message(&mut tcp, Duration::from_secs(10)).await;
            match m.message_type() {
                Some(MessageType::LeaseActive) => {
                    ips.insert(
                        leaseline_requestor::record::Record::from_reply(&m)
                            .unwrap()
                            .ip,
                    );
                }
                Some(MessageType::LeaseQueryStatus)
                    if status(&m) == Some(StatusCode::CatchUpComplete) =>
                {
                    break ips
                }
                other => panic!("unexpected {other:?}: {m:?}"),
            }
        }
    });
    let leased: BTreeSet<Ipv4Addr> = fx.leases.iter().map(|l| l.ip).collect();
    assert_eq!(ips, leased);
}
