#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Interop: perfdhcp (Kea) as a relay runs full DORA for 1,000 distinct
//! clients against `leaseline serve`; its own report must show every
//! DISCOVER answered by an OFFER and every REQUEST by an ACK, and the store
//! must then hold 1,000 ACTIVE bindings, one client per address and one
//! address per client.
//!
//! perfdhcp's `-l` must name an address configured on an interface, so the
//! server and perfdhcp run on the loopback of a namespace of this test's own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use leaseline_test_support::{
    assert_no_double_allocation, load_bindings, loopback_config, mac_string, require_root,
    require_tool, Netns, Perfdhcp, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const CLIENTS: u32 = 1000;
const PORT: u16 = 1067;

#[test]
fn perfdhcp_relay_dora_for_1000_clients() {
    require_root();
    require_tool("perfdhcp");
    require_tool("ip");

    let ns = Netns::new("ll-perfdhcp");
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, PORT));
    let config = loopback_config(listen, &[Ipv4Addr::LOCALHOST]);
    let mut server = ServerProcess::builder(BIN, &config).netns(&ns).spawn();

    let report = Perfdhcp::new(Ipv4Addr::LOCALHOST)
        .netns(&ns)
        .remote_port(PORT)
        .local(Ipv4Addr::LOCALHOST)
        .rate(250)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(2.0)
        .exit_wait(Duration::from_secs(3))
        .base_mac("02:00:0c:00:00:00")
        .run(Duration::from_secs(180));
    server.assert_running();
    eprintln!("{report}");

    let offers = report.do_stats();
    let acks = report.ra_stats();
    assert_eq!(offers.sent, CLIENTS as u64, "DISCOVERs sent\n{report}");
    assert_eq!(
        offers.received, offers.sent,
        "every DISCOVER gets an OFFER\n{report}"
    );
    assert_eq!(offers.drops, 0, "{report}");
    assert_eq!(acks.sent, CLIENTS as u64, "REQUESTs sent\n{report}");
    // perfdhcp does not count a NAK as received: the REQUEST is a drop. So
    // received == sent with no drops means every REQUEST got an ACK, no NAK.
    assert_eq!(
        acks.received, acks.sent,
        "every REQUEST gets an ACK\n{report}"
    );
    assert_eq!(acks.drops, 0, "{report}");
    assert_eq!(
        offers.orphans + acks.orphans,
        0,
        "replies matching no exchange\n{report}"
    );
    assert_eq!(offers.rejected_leases + acks.rejected_leases, 0, "{report}");
    assert_eq!(report.malformed, 0, "malformed replies\n{report}");
    assert_eq!(report.exit_code, Some(0), "{report}");

    let status = server.terminate();
    assert!(
        status.success(),
        "server exit status after SIGTERM: {status:?}"
    );

    let bindings = load_bindings(&server.db_path());
    let active = assert_no_double_allocation(&bindings);
    assert!(
        active.len() >= CLIENTS as usize,
        "{} ACTIVE bindings in the store, want >= {CLIENTS} ({} rows in all)",
        active.len(),
        bindings.len()
    );
    eprintln!("store: {} rows, {} ACTIVE", bindings.len(), active.len());
    for b in active.values() {
        assert_eq!(
            b.chaddr.len(),
            6,
            "binding {} has chaddr {:?}",
            b.ip,
            b.chaddr
        );
        assert_eq!(
            &b.chaddr[..3],
            &[0x02, 0x00, 0x0c],
            "{} bound to {}, not a perfdhcp client",
            b.ip,
            mac_string(&b.chaddr)
        );
        let ip = u32::from(b.ip);
        assert!(
            (u32::from(Ipv4Addr::new(10, 0, 0, 10))..=u32::from(Ipv4Addr::new(10, 0, 255, 250)))
                .contains(&ip),
            "{} is outside the pool",
            b.ip
        );
    }
}
