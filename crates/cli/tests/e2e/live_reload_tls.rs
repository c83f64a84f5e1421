#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Live reload of secure mode (issue 19, RFC 7724 §8.1): the server
//! certificate and `allowed_requestors` change with `config-reload`.
//!
//! Two requestors hold TLS sessions with active queries running. The
//! server's certificate and key files are replaced and one requestor is
//! taken off `allowed_requestors`; then:
//!
//! - a new connection's handshake presents the new certificate;
//! - the requestor still allowed keeps its session, started under the old
//!   certificate, and gets the next binding change on it;
//! - the requestor taken off gets QueryTerminated and is closed, and its
//!   next handshake is refused.

use crate::tls_common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_requestor::active::active_query;
use leaseline_requestor::prl;
use leaseline_test_support::loopback_relay;
use leaseline_test_support::pki::{Ca, Leaf};
use leaseline_test_support::{ServerConfig, ServerProcess, Subnet};
use leaseline_wire::{MessageType, StatusCode};
use tls_common::*;
use tokio::io::AsyncWriteExt;

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const ALLOWED: &str = "requestor.leaseline.lab";
const REMOVED: &str = "other.leaseline.lab";

fn write(dir: &Path, stem: &str, leaf: &Leaf) -> Identity {
    use std::os::unix::fs::PermissionsExt;
    let id = Identity {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    };
    std::fs::write(&id.cert, &leaf.pem).expect("write certificate");
    std::fs::write(&id.key, &leaf.key_pem).expect("write key");
    std::fs::set_permissions(&id.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    id
}

fn tls_section(server: &Identity, ca: &Path, allowed: &[&str]) -> String {
    let list: Vec<String> = allowed.iter().map(|a| format!("\"san:{a}\"")).collect();
    format!(
        "[leasequery.tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\nallowed_requestors = [{}]\n",
        server.cert.display().to_string(),
        server.key.display().to_string(),
        ca.display().to_string(),
        list.join(", ")
    )
}

/// The certificate the server presented on `s`.
fn presented(s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec()
}

fn config_reload(url: &str) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["ctl", "--server", url, "--json", "config-reload"])
        .output()
        .expect("run leaseline ctl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert!(out.status.success(), "config-reload: {v}");
    v
}

#[test]
fn certificate_and_allowed_requestors_change_live() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let ca = Ca::new("Leaseline reload CA");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).expect("write ca.pem");
    let (old_leaf, new_leaf) = (ca.server_leaf(), ca.server_leaf());
    let server_id = write(dir, "server", &old_leaf);
    let allowed = write(dir, "allowed", &ca.requestor_leaf(ALLOWED));
    let removed = write(dir, "removed", &ca.requestor_leaf(REMOVED));

    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, leaseline_test_support::free_udp_port()));
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let text = ServerConfig::new(dhcp)
        .subnet(Subnet::new("10.0.0.0/24", "10.0.0.10-10.0.0.40", &[*RELAY]).router())
        .allow(&["127.0.0.0/8"])
        .bulk(tcp, "data_timeout = 10")
        .active(false, "")
        .extra(&tls_section(&server_id, &ca_path, &[ALLOWED, REMOVED]))
        .extra(&format!("\n[http]\nlisten = \"{web}\"\n"))
        .build();
    let server = ServerProcess::spawn(BIN, &text);
    let url = format!("http://{web}");
    let rt = runtime();
    let version = &rustls::version::TLS13;

    rt.block_on(async {
        // Two sessions, each with an active query, under the old certificate.
        let mark = server.log_mark();
        let mut sessions = Vec::new();
        for (xid, who) in [(1u32, &allowed), (2, &removed)] {
            let (_, r) = connect_tls(tcp, client_config(&ca_path, Some(who), version, false)).await;
            let mut s = r.expect("handshake");
            assert_eq!(presented(&s), old_leaf.der);
            s.write_all(&framed(&active_query(xid, None, prl::BINDINGS)))
                .await
                .expect("send the active query");
            sessions.push(s);
        }
        server.wait_for_log_count(mark, &["active query started"], 2, Duration::from_secs(10));
        let mut gone = sessions.pop().unwrap();
        let mut kept = sessions.pop().unwrap();

        // New certificate and key in place, one requestor off the list.
        write(dir, "server", &new_leaf);
        let changed = server
            .config_text()
            .replace(&format!(", \"san:{REMOVED}\""), "");
        assert_ne!(changed, server.config_text());
        std::fs::write(server.config_path(), &changed).expect("rewrite the config");
        let r = config_reload(&url);
        assert_eq!(r["arguments"]["need-restart"], serde_json::json!([]), "{r}");

        // A new connection sees the new certificate.
        let (_, r) =
            connect_tls(tcp, client_config(&ca_path, Some(&allowed), version, false)).await;
        let fresh = r.expect("handshake after the reload");
        assert_eq!(presented(&fresh), new_leaf.der, "the new certificate");
        assert_ne!(old_leaf.der, new_leaf.der);
        drop(fresh);

        // The requestor taken off: QueryTerminated, then the close.
        let m = read_message(&mut gone, Duration::from_secs(10)).await;
        assert_eq!(
            m.message_type(),
            Some(MessageType::LeaseQueryStatus),
            "{m:?}"
        );
        assert_eq!(status(&m), Some(StatusCode::QueryTerminated), "{m:?}");
        let (rest, _) = read_to_close(&mut gone).await;
        assert!(rest.is_empty(), "after QueryTerminated: {}", summary(&rest));
        // And it cannot come back.
        let (_, r) =
            connect_tls(tcp, client_config(&ca_path, Some(&removed), version, false)).await;
        match r {
            Err(_) => {}
            Ok(mut s) => {
                let (got, _) = read_to_close(&mut s).await;
                assert_eq!(binding_frames(&got), 0, "{}", summary(&got));
            }
        }

        // The session still allowed, opened under the old certificate,
        // gets the next change.
        let lease = dora(*RELAY, dhcp, 1, 1).pop().expect("a lease");
        let m = read_message(&mut kept, Duration::from_secs(10)).await;
        assert_eq!(m.message_type(), Some(MessageType::LeaseActive), "{m:?}");
        assert_eq!(m.ciaddr, lease.ip);
    });
}
