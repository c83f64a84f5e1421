#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! No input from the network panics or aborts the process: malformed
//! datagrams of each class, then 10,000 random ones, are each refused with a
//! `dropped datagram` WARN naming the peer and a reason (past 5 a second
//! from one peer for one reason, counted in a `suppressed N similar
//! refusals` summary line instead), nothing is sent back, the server keeps
//! running, and a valid DORA still succeeds.
//!
//! Each class is sent from its own loopback address (127.0.0.41..47, port
//! chosen by the kernel), so its log line can be told apart.
//!
//! Datagrams are read whole, never cut to a buffer: one over the 16 KiB
//! limit is refused as oversized, and a 6,000-byte DISCOVER whose options
//! start after 5,000 bytes of padding is answered.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_udp_port, loopback_config, malformed, require_root, RawRequest, RelayClient,
    ServerProcess, TestClient, XorShift,
};
use leaseline_wire::MessageType;

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
/// This test's relay address (giaddr), distinct from every other test's.
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const RANDOM_DATAGRAMS: usize = 10_000;
const BATCH: usize = 100;

/// A valid DISCOVER followed by padding up to `len` bytes.
fn oversized_discover(len: usize) -> Vec<u8> {
    let mut b = RawRequest::discover(*RELAY, [0x02, 0, 0, 0, 0x0b, 0x1f], 0x0bad_0004).to_bytes();
    b.resize(len, 0);
    b
}

struct Class {
    name: &'static str,
    sock: UdpSocket,
    peer: SocketAddr,
}

fn class(name: &'static str, last_octet: u8) -> Class {
    let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, last_octet), 0))
        .expect("bind a loopback sender");
    let peer = sock.local_addr().expect("local_addr");
    Class { name, sock, peer }
}

#[test]
fn malformed_datagrams_are_dropped_and_logged() {
    // Port 67 on the relay's address for the relay client.
    require_root();

    let port = free_udp_port();
    let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut server = ServerProcess::spawn(BIN, &loopback_config(server_addr, &[*RELAY]));

    let cases: Vec<(Class, Vec<u8>)> = vec![
        (class("truncated", 41), malformed::truncated(*RELAY)),
        (
            class("bad magic cookie", 42),
            malformed::bad_magic_cookie(*RELAY),
        ),
        (
            class("option past the end", 43),
            malformed::option_overrun(*RELAY),
        ),
        (
            class("option 52 overload", 44),
            malformed::option_overload(*RELAY),
        ),
        (
            class("message type 99", 45),
            malformed::unknown_message_type(*RELAY),
        ),
        (class("oversized", 47), oversized_discover(20_000)),
    ];
    for (c, bytes) in &cases {
        let mark = server.log_mark();
        c.sock.send_to(bytes, server_addr).expect("send");
        let peer = format!("peer={}", c.peer);
        let line = server
            .try_wait_for_line(mark, Duration::from_secs(10), |l| {
                l.contains("dropped datagram") && l.contains(&peer)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `dropped datagram` line with `{peer}` for the {} datagram\n--- server log ---\n{}",
                    c.name,
                    server.log_tail(50)
                )
            });
        assert!(line.contains("WARN"), "{}: not a WARN line: {line}", c.name);
        assert!(
            line.split("reason=")
                .nth(1)
                .is_some_and(|r| !r.trim().is_empty()),
            "{}: no reason= in: {line}",
            c.name
        );
        if c.name == "oversized" {
            assert!(line.contains("oversized datagram: 20000 bytes"), "{line}");
        }
        eprintln!("{}: {line}", c.name);
        server.assert_running();
    }

    // A large but acceptable DISCOVER is read whole: its options (message
    // type included) start after 5,000 pad bytes, so a cut copy would not
    // decode as a DISCOVER.
    let mut relay = RelayClient::bind(*RELAY, server_addr).expect("bind the relay");
    let big = TestClient::new(0x0bad_0003);
    let m = relay.request_template(&big, MessageType::Discover);
    let mut bytes = m.to_bytes().expect("encodes");
    bytes.splice(240..240, std::iter::repeat_n(0u8, 5_000));
    assert!(bytes.len() > 5_000);
    relay.send_raw(&bytes).expect("send");
    let offer = relay
        .recv_reply(m.xid, Duration::from_secs(10))
        .expect("an OFFER for the 5,000-byte-padded DISCOVER");
    assert_eq!(offer.message_type(), Some(MessageType::Offer));

    // 10,000 random datagrams from one more sender, in batches: each batch
    // is followed by a DISCOVER from the relay client, and the next batch
    // is sent once its OFFER came back. The server handles the socket's
    // datagrams in order, so the whole batch has been handled by then: none
    // is lost to a full socket buffer and every one must be accounted for.
    // The log throttles refusals (5 a second in full per peer and reason,
    // then one `suppressed N similar refusals` line per second): every
    // datagram is either a `dropped datagram` line or counted in a summary.
    let probe = TestClient::new(0x0bad_0002);
    let random = class("random", 46);
    let peer = format!("peer={}", random.peer);
    let needles = ["dropped datagram", "WARN", peer.as_str(), "reason="];
    let mut rng = XorShift::new(0x1ea5_e11e);
    let mark = server.log_mark();
    let mut sent = 0;
    while sent < RANDOM_DATAGRAMS {
        for _ in 0..BATCH {
            let d = malformed::random(&mut rng, *RELAY);
            random
                .sock
                .send_to(&d, server_addr)
                .expect("send random datagram");
            sent += 1;
        }
        relay
            .discover(&probe)
            .unwrap_or_else(|| panic!("no OFFER after {sent} random datagrams"));
    }
    let accounted = |server: &ServerProcess| -> (usize, u64) {
        let logs = server.logs();
        let full = logs[mark..]
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count();
        let summarised = server.suppressed_refusals(mark, random.peer.ip());
        (full, summarised)
    };
    // The last second's summary comes once that second is over.
    let (logged, summarised) = leaseline_test_support::wait_until(
        "every random datagram logged or summarised",
        Duration::from_secs(10),
        || {
            let (f, s) = accounted(&server);
            (f as u64 + s >= RANDOM_DATAGRAMS as u64).then_some((f, s))
        },
    );
    assert_eq!(
        logged as u64 + summarised,
        RANDOM_DATAGRAMS as u64,
        "each random datagram is one `dropped datagram` line or counted in a summary"
    );
    assert!(
        logged < RANDOM_DATAGRAMS / 4,
        "the refusal log is throttled: {logged} full lines for {RANDOM_DATAGRAMS} datagrams"
    );
    eprintln!(
        "random: {logged} `dropped datagram` lines and {summarised} summarised, for {RANDOM_DATAGRAMS} datagrams"
    );
    server.assert_running();

    // The server still serves: a full DORA through the relay client.
    let lease = relay
        .dora(&TestClient::new(0x0bad_0001))
        .unwrap_or_else(|e| {
            panic!(
                "DORA after the malformed datagrams: {e}\n{}",
                server.log_tail(50)
            )
        });
    assert!(lease.ip.octets()[0] == 10, "leased {}", lease.ip);
    assert_eq!(lease.server_id, Ipv4Addr::LOCALHOST);
    eprintln!(
        "DORA afterwards: leased {} for {:?} s",
        lease.ip, lease.lease_time
    );

    // Nothing was ever sent back to a sender of malformed datagrams.
    for (c, _) in &cases {
        c.sock.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 2048];
        assert!(
            c.sock.recv_from(&mut buf).is_err(),
            "the server answered the {} datagram",
            c.name
        );
    }
    random.sock.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    assert!(
        random.sock.recv_from(&mut buf).is_err(),
        "the server answered a random datagram"
    );

    server.assert_running();
    let status = server.interrupt();
    assert!(
        status.success(),
        "server exit status after SIGINT: {status:?}"
    );
}
