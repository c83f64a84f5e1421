#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Malformed DHCPLEASEQUERY datagrams get no reply and do not hurt the
//! server: two or three query keys, no key, zero giaddr (RFC 4388 §6.3,
//! §6.4.3), bad option lengths and overruns, bad hlen, an empty or doubled
//! remote-id (RFC 6148 §4.1), BOOTREPLY, truncation; then random mutations
//! of a valid query. Each refusal is logged as `dropped datagram` with the
//! peer and a reason, and counted in the shutdown summary.
//!
//! "No reply" is checked without waiting for a timeout: the server handles
//! one socket's datagrams in order, so after the malformed ones a valid
//! query is sent, and its answer must be the only datagram that comes back.

use crate::lq_udp_common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use leaseline_requestor::prl;
use leaseline_requestor::query::{encode_query, QueryKey};
use leaseline_test_support::{free_udp_port, RelayClient, ServerProcess, TestClient, XorShift};
use leaseline_wire::{Message, MessageType};
use lq_udp_common::*;

const REQUESTOR: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 51);
const FUZZER: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 52);
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 50);

/// A raw BOOTP header (op 1, the given fields) + magic cookie + `options`
/// bytes exactly as given (the caller writes END, or not).
struct Raw {
    op: u8,
    htype: u8,
    hlen: u8,
    xid: u32,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: [u8; 16],
    options: Vec<u8>,
}

impl Raw {
    fn new(xid: u32) -> Raw {
        Raw {
            op: 1,
            htype: 0,
            hlen: 0,
            xid,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: REQUESTOR,
            chaddr: [0; 16],
            // DHCPLEASEQUERY; the caller appends the rest and END.
            options: vec![53, 1, 10],
        }
    }
    fn mac(mut self, m: [u8; 6]) -> Raw {
        self.htype = 1;
        self.hlen = 6;
        self.chaddr[..6].copy_from_slice(&m);
        self
    }
    fn ip(mut self, ip: Ipv4Addr) -> Raw {
        self.ciaddr = ip;
        self
    }
    fn opt(mut self, bytes: &[u8]) -> Raw {
        self.options.extend_from_slice(bytes);
        self
    }
    fn end(self) -> Raw {
        self.opt(&[255])
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![self.op, self.htype, self.hlen, 0];
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&[0; 4]); // secs, flags
        b.extend_from_slice(&self.ciaddr.octets());
        b.extend_from_slice(&[0; 8]); // yiaddr, siaddr
        b.extend_from_slice(&self.giaddr.octets());
        b.extend_from_slice(&self.chaddr);
        b.extend_from_slice(&[0; 192]); // sname, file
        b.extend_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(&self.options);
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }
}

/// Polls `cond` until it holds or `timeout` passes (then the caller's
/// assertion reports what is missing).
fn wait_until_opt<T>(timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn recv_all(sock: &UdpSocket, until_xid: u32, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no answer to the sentinel query; got {} datagrams",
            got.len()
        );
        sock.set_read_timeout(Some(left)).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let d = buf[..n].to_vec();
        let xid = d
            .get(4..8)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
        got.push(d);
        if xid == Some(until_xid) {
            return got;
        }
    }
}

/// A server with one subnet served to [`RELAY`], that relay, and the
/// server's DHCP address.
fn server_and_relay() -> (ServerProcess, RelayClient, SocketAddr) {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let cfg = config(
        listen,
        rport,
        &[Subnet {
            prefix: "10.0.0.0/16",
            pool: "10.0.0.10-10.0.0.200",
            relays: &[RELAY],
        }],
        LQ_LOOPBACK,
    );
    let server = ServerProcess::spawn(BIN, &cfg);
    let relay = RelayClient::bind_port(RELAY, rport, listen).expect("bind relay");
    (server, relay, listen)
}

/// A server with one real binding (client-id `01 "cid-4150"`, remote-id
/// `r-4150`): the server's DHCP address, the lease's address and MAC.
fn server_with_a_lease() -> (ServerProcess, SocketAddr, Ipv4Addr, [u8; 6]) {
    let (server, mut relay, listen) = server_and_relay();
    let client = TestClient::new(0x4150).with_client_id(b"\x01cid-4150");
    let lease = dora(&mut relay, &client, Some(&rai(b"c-4150", b"r-4150")));
    (server, listen, lease.ip, client.chaddr)
}

/// RFC 6148 §5: a query by IP address, MAC address or client-id whose
/// option 82 holds only a remote-id is still that query and is answered
/// (issue 16 item 1: it was dropped as "more than one query key"). Real
/// datagrams, each answered DHCPLEASEACTIVE for the lease, the option 82
/// echoed.
#[test]
fn a_remote_id_beside_another_key_is_answered() {
    let (mut server, listen, ip, m) = server_with_a_lease();
    let cases = [
        ("ciaddr + remote-id", Raw::new(31).ip(ip)),
        ("chaddr + remote-id", Raw::new(32).mac(m)),
        (
            "client-id + remote-id",
            Raw::new(33).opt(&[61, 9, 1, b'c', b'i', b'd', b'-', b'4', b'1', b'5', b'0']),
        ),
        (
            "chaddr + another requestor's remote-id",
            Raw::new(34).mac(m),
        ),
    ];
    let sock = UdpSocket::bind((REQUESTOR, 0)).expect("bind requestor");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (name, raw) in cases {
        let xid = raw.xid;
        let remote_id: &[u8] = if xid == 34 { b"other" } else { b"r-4150" };
        let mut option_82 = vec![82, remote_id.len() as u8 + 2, 2, remote_id.len() as u8];
        option_82.extend_from_slice(remote_id);
        let raw = raw.opt(&option_82).end();
        sock.send_to(&raw.bytes(), listen).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!(
                "`{name}`: no reply ({e}); server log:\n{}",
                server.logs().join("\n")
            )
        });
        let reply = Message::decode(&buf[..n]).expect("reply decodes");
        assert_eq!(reply.xid, xid, "`{name}`");
        assert_eq!(
            reply.message_type(),
            Some(MessageType::LeaseActive),
            "`{name}`"
        );
        assert_eq!(reply.ciaddr, ip, "`{name}`");
    }
    server.assert_running();
}

/// Kea #4578 (issue 16 item 5): a client that sent no hardware address
/// (hlen 0, identified by its client-id) holds a binding with an empty
/// chaddr. A query "by MAC" with htype set and hlen 0, or with an empty
/// client-id, names no key: it gets no reply (RFC 4388 §6.3), and in
/// particular never that binding; a query by the client's real client-id
/// finds it.
#[test]
fn empty_keys_never_match_bindings_with_empty_keys() {
    let (mut server, mut relay, listen) = server_and_relay();
    let client = TestClient::new(0x4160).with_client_id(b"\x01no-mac-4160");
    let no_mac = |relay: &mut RelayClient, ty: MessageType| {
        let mut m = relay.request_template(&client, ty);
        m.hlen = 0;
        m.chaddr = [0; 16];
        m
    };
    let discover = no_mac(&mut relay, MessageType::Discover);
    let offer = relay
        .exchange(&discover, 3)
        .expect("an OFFER for a client without hardware address");
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    let mut req = no_mac(&mut relay, MessageType::Request);
    req.options
        .push(leaseline_wire::DhcpOption::RequestedIp(offer.yiaddr));
    req.options.push(leaseline_wire::DhcpOption::ServerId(
        leaseline_test_support::server_id_of(&offer).expect("server id"),
    ));
    let ack = relay.exchange(&req, 3).expect("a reply to REQUEST");
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    let ip = ack.yiaddr;

    let sock = UdpSocket::bind((REQUESTOR, 0)).expect("bind requestor");
    let empty_mac = {
        let mut r = Raw::new(0x4160_0001).end();
        r.htype = 1; // a hardware type, and no address
        r
    };
    let empty_client_id = Raw::new(0x4160_0002).opt(&[61, 0]).end();
    for r in [&empty_mac, &empty_client_id] {
        sock.send_to(&r.bytes(), listen).expect("send");
    }
    let sentinel = 0x4160_0003;
    let q = encode_query(
        &QueryKey::ClientId(b"\x01no-mac-4160".to_vec()),
        sentinel,
        REQUESTOR,
        prl::UDP,
    )
    .expect("encode");
    sock.send_to(&q, listen).expect("send");
    let got = recv_all(&sock, sentinel, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "only the query by client-id is answered");
    let reply = Message::decode(&got[0]).expect("decodes");
    assert_eq!(reply.message_type(), Some(MessageType::LeaseActive));
    assert_eq!((reply.ciaddr, reply.hlen), (ip, 0), "{reply:?}");
    server.assert_running();
}

#[test]
fn malformed_queries_get_no_reply_and_no_crash() {
    // A real binding, so that each malformed query names something the
    // server could answer about.
    let (mut server, listen, ip, m) = server_with_a_lease();

    let cases: Vec<(&str, Raw, &str)> = vec![
        (
            "ciaddr and chaddr",
            Raw::new(1).ip(ip).mac(m).end(),
            "more than one query key",
        ),
        (
            "ciaddr and client-id",
            Raw::new(2).ip(ip).opt(&[61, 3, 1, 2, 3]).end(),
            "more than one query key",
        ),
        (
            "chaddr and client-id",
            Raw::new(3).mac(m).opt(&[61, 3, 1, 2, 3]).end(),
            "more than one query key",
        ),
        (
            "client-id, remote-id and ciaddr",
            Raw::new(5).ip(ip).opt(&[61, 2, 1, 2, 82, 3, 2, 1, 7]).end(),
            "more than one query key",
        ),
        (
            "no key",
            Raw::new(6).opt(&[55, 2, 51, 82]).end(),
            "no query key",
        ),
        (
            "no key: htype/hlen set, chaddr zero",
            {
                let mut r = Raw::new(7).end();
                r.htype = 1;
                r.hlen = 6;
                r
            },
            "no query key",
        ),
        (
            "no key: option 82 without remote-id",
            Raw::new(8).opt(&[82, 4, 1, 2, 0xaa, 0xbb]).end(),
            "no query key",
        ),
        (
            "zero giaddr",
            {
                let mut r = Raw::new(9).ip(ip).end();
                r.giaddr = Ipv4Addr::UNSPECIFIED;
                r
            },
            "giaddr is zero",
        ),
        (
            "zero giaddr, by MAC",
            {
                let mut r = Raw::new(10).mac(m).end();
                r.giaddr = Ipv4Addr::UNSPECIFIED;
                r
            },
            "giaddr is zero",
        ),
        (
            "option 53 of length 2",
            {
                let mut r = Raw::new(11).ip(ip);
                r.options = vec![53, 2, 10, 10, 255];
                r
            },
            "option 53: bad length 2",
        ),
        (
            "option 61 of length 1",
            Raw::new(12).opt(&[61, 1, 1]).end(),
            "option 61: bad length 1",
        ),
        (
            "option 61 of length 0",
            Raw::new(13).opt(&[61, 0]).end(),
            "option 61: bad length 0",
        ),
        (
            "option 55 of length 0",
            Raw::new(14).ip(ip).opt(&[55, 0]).end(),
            "option 55: bad length 0",
        ),
        (
            "option 91 of length 3",
            Raw::new(15).ip(ip).opt(&[91, 3, 0, 0, 1]).end(),
            "option 91: bad length 3",
        ),
        (
            "option 92 of length 6",
            Raw::new(16).ip(ip).opt(&[92, 6, 10, 0, 0, 1, 0, 0]).end(),
            "option 92: bad length 6",
        ),
        (
            "option 54 of length 5",
            Raw::new(17).ip(ip).opt(&[54, 5, 1, 2, 3, 4, 5]).end(),
            "option 54: bad length 5",
        ),
        (
            "option 82 of length 1",
            Raw::new(18).opt(&[82, 1, 2]).end(),
            "option 82: bad length 1",
        ),
        (
            "option 82 sub-option overrun",
            Raw::new(19).opt(&[82, 4, 2, 9, 1, 2]).end(),
            "sub-option 2: length 9 runs past",
        ),
        (
            "option 82 sub-option header cut",
            Raw::new(20).opt(&[82, 4, 2, 1, 7, 1]).end(),
            "sub-option 1: length 0 runs past",
        ),
        (
            "option length past the end",
            {
                let mut r = Raw::new(21).ip(ip);
                r.options.extend_from_slice(&[55, 250, 51]);
                r.options.resize(r.options.len() + 40, 0);
                r
            },
            "runs past the end of the options",
        ),
        (
            "empty remote-id",
            Raw::new(22).opt(&[82, 2, 2, 0]).end(),
            "remote-id sub-option is empty",
        ),
        (
            "two remote-ids",
            Raw::new(23).opt(&[82, 6, 2, 1, 7, 2, 1, 8]).end(),
            "several remote-id",
        ),
        (
            "hlen 17",
            {
                let mut r = Raw::new(24).mac(m).end();
                r.hlen = 17;
                r
            },
            "hlen 17",
        ),
        (
            "BOOTREPLY",
            {
                let mut r = Raw::new(25).ip(ip).end();
                r.op = 2;
                r
            },
            "BOOTREQUEST",
        ),
        (
            "no END",
            Raw::new(26).ip(ip).opt(&[55, 1, 51]),
            "missing end option",
        ),
        (
            "option 52 (overload)",
            Raw::new(27).ip(ip).opt(&[52, 1, 1]).end(),
            "overload",
        ),
        (
            "unknown message type",
            {
                let mut r = Raw::new(28).ip(ip);
                r.options = vec![53, 1, 99, 255];
                r
            },
            "unknown message type 99",
        ),
    ];
    let sock = UdpSocket::bind((REQUESTOR, 0)).expect("bind requestor");
    let peer = format!("peer={}", sock.local_addr().unwrap());
    let mark = server.log_mark();
    for (name, raw, _) in &cases {
        sock.send_to(&raw.bytes(), listen)
            .unwrap_or_else(|e| panic!("send `{name}`: {e}"));
    }
    // Truncated datagrams too: a header cut short, and nothing at all.
    let short = Raw::new(29).ip(ip).end().bytes();
    sock.send_to(&short[..100], listen).unwrap();
    sock.send_to(&short[..239], listen).unwrap();
    sock.send_to(&[], listen).unwrap();
    let extra_refusals = 3;

    // The sentinel: a valid query from the same socket.
    let sentinel = 0x4151_0001;
    let q = encode_query(&QueryKey::Ip(ip), sentinel, REQUESTOR, prl::UDP).unwrap();
    sock.send_to(&q, listen).unwrap();
    let got = recv_all(&sock, sentinel, Duration::from_secs(10));
    assert_eq!(
        got.len(),
        1,
        "replies to malformed queries: xids {:?}",
        got.iter()
            .map(|d| d.get(4..8).map(|x| x.to_vec()))
            .collect::<Vec<_>>()
    );
    let reply = Message::decode(&got[0]).expect("sentinel reply decodes");
    assert_eq!(reply.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(reply.ciaddr, ip);

    // Each one refused with a reason, and logged with the requestor.
    // (The log reaches us through a pipe: wait for the lines, with a deadline.)
    let expected = cases.len() + extra_refusals;
    let refusals_now = || -> Vec<String> {
        server.logs()[mark..]
            .iter()
            .filter(|l| l.contains("dropped datagram") && l.contains(&peer))
            .cloned()
            .collect()
    };
    let _ = wait_until_opt(Duration::from_secs(10), || {
        (refusals_now().len() >= expected).then_some(())
    });
    let refusals = refusals_now();
    assert_eq!(
        refusals.len(),
        cases.len() + extra_refusals,
        "one `dropped datagram` per malformed query:\n{}",
        refusals.join("\n")
    );
    for (i, (name, _, reason)) in cases.iter().enumerate() {
        assert!(
            refusals[i].contains(reason) && refusals[i].contains("WARN"),
            "case `{name}`: expected a refusal mentioning `{reason}`, got:\n{}",
            refusals[i]
        );
    }

    // Random mutations of valid queries, from another requestor: whatever
    // the server makes of them, it stays up and its replies decode.
    let fuzz = UdpSocket::bind((FUZZER, 0)).expect("bind fuzzer");
    fuzz.set_nonblocking(true).unwrap();
    let mut rng = XorShift::new(0x4152);
    let keys = [
        QueryKey::Ip(ip),
        QueryKey::Mac {
            htype: 1,
            chaddr: m.to_vec(),
        },
        QueryKey::ClientId(b"\x01cid-4150".to_vec()),
        QueryKey::RemoteId(b"r-4150".to_vec()),
    ];
    let mut replies = 0;
    let mut buf = [0u8; 4096];
    for i in 0..1500u32 {
        let key = &keys[i as usize % keys.len()];
        let mut d = encode_query(key, 0x4152_0000 + i, FUZZER, prl::UDP).unwrap();
        let end = d.iter().rposition(|&b| b != 0).unwrap_or(d.len() - 1) + 1;
        d.truncate(end);
        // giaddr (octets 24..28) is never touched: replies go there, and
        // must stay on loopback.
        // (XorShift::range is inclusive.)
        for _ in 0..rng.range(1, 3) {
            let at = rng.range(0, d.len() - 1);
            match rng.range(0, 2) {
                0 if !(24..28).contains(&at) => d[at] = rng.next_u64() as u8,
                1 if at >= 28 => d.truncate(at),
                2 if at >= 28 => d.insert(at, rng.next_u64() as u8),
                _ => {}
            }
        }
        let _ = fuzz.send_to(&d, listen);
        while let Ok((n, _)) = fuzz.recv_from(&mut buf) {
            Message::decode(&buf[..n]).expect("every reply decodes");
            replies += 1;
        }
    }
    // Stay within the fuzzer's rate budget (burst 2000), then check the
    // server still answers.
    let sentinel2 = 0x4151_0002;
    let q = encode_query(
        &QueryKey::Mac {
            htype: 1,
            chaddr: m.to_vec(),
        },
        sentinel2,
        REQUESTOR,
        prl::UDP,
    )
    .unwrap();
    sock.send_to(&q, listen).unwrap();
    let got = recv_all(&sock, sentinel2, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    server.assert_running();
    eprintln!("fuzzed: 1500 datagrams, {replies} replies seen while sending");

    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let summary = server
        .logs_containing(&["leaseline stopped"])
        .pop()
        .expect("shutdown summary");
    for counter in [
        "\"several_query_keys\"=",
        "\"no_query_key\"=",
        "\"zero_giaddr\"=",
        "\"malformed\"=",
    ] {
        assert!(
            summary.contains(counter),
            "`{counter}` not counted: {summary}"
        );
    }
}
