#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! RFC 4388 §6.4.2: a leasequery reports the lease, renewal (T1) and
//! rebinding (T2) times the client's DHCPACK granted, as time remaining
//! from now, and leaves T1 / T2 out once they are past. Real packets
//! against `leaseline serve` with a subnet of lease 60 s, T1 2 s, T2 4 s:
//! a DORA through a relay, then a UDP leasequery (by IP) and a Bulk
//! leasequery (by MAC) right after the ACK, once T1 is past and once T2 is
//! past. The test waits for those instants, computed from the ACK.
//!
//! Times on the wire are whole seconds of the server clock, so every check
//! is against the range the server's seconds can take: the grant at some
//! instant between sending the REQUEST and receiving the ACK, the reply at
//! some instant between sending the query and receiving the answer (the
//! server runs on this machine's clock). Within one reply, the CLTT age
//! (91, the time since the grant) plus each remaining time is exactly what
//! the ACK granted.
//!
//! Relay and requestor addresses are this module's (`loopback_relay`);
//! replies to the relay go to a per-test port (no root, no port 67).

use crate::bulk_support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulk_support::{bulk_query, free_tcp_port, RawConn, BIN};
use leaseline_requestor::query::{build_query, QueryKey};
use leaseline_test_support::loopback_relay;
use leaseline_test_support::{free_udp_port, RelayClient, ServerConfig, ServerProcess, TestClient};
use leaseline_wire::{DhcpOption, Message, MessageType};

static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
static REQUESTOR: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);

/// Seconds since the Unix epoch, with the fraction.
fn clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// From just before a message was sent to just after its answer arrived:
/// the server handled it at a whole second in `[first, last]`.
#[derive(Debug, Clone, Copy)]
struct Window {
    sent: f64,
    received: f64,
}

impl Window {
    fn first(&self) -> i64 {
        self.sent.floor() as i64
    }
    fn last(&self) -> i64 {
        self.received.floor() as i64
    }
}

/// What one time option of a reply may be, given the grant's window and
/// the reply's: `granted` seconds after the grant, less the time since.
#[derive(Debug)]
enum Expect {
    /// Still ahead whenever the server answered: present, in this range.
    Present(i64, i64),
    /// Reached whenever the server answered: absent.
    Absent,
}

fn expect(granted: u32, ack: Window, reply: Window) -> Expect {
    let min = ack.first() + i64::from(granted) - reply.last();
    let max = ack.last() + i64::from(granted) - reply.first();
    if min > 0 {
        Expect::Present(min, max)
    } else if max <= 0 {
        Expect::Absent
    } else {
        panic!(
            "the reply came too close to a bound to tell ({granted} s after a grant in \
             {ack:?}, answered in {reply:?}): the machine is too slow for this test"
        )
    }
}

fn opt(m: &Message, code: u8) -> Option<u32> {
    m.options.iter().find_map(|o| match (o, code) {
        (DhcpOption::LeaseTime(t), 51)
        | (DhcpOption::RenewalTime(t), 58)
        | (DhcpOption::RebindingTime(t), 59)
        | (DhcpOption::ClientLastTransactionTime(t), 91) => Some(*t),
        _ => None,
    })
}

/// The ACK's lease, T1 and T2.
#[derive(Debug, Clone, Copy)]
struct Grant {
    lease: u32,
    t1: u32,
    t2: u32,
}

/// Checks 51, 58, 59 (and 91) of `reply`, answered in `window`, against
/// `grant` made in `ack`. `phase` and `via` label the failure.
fn check(reply: &Message, window: Window, grant: Grant, ack: Window, phase: &str, via: &str) {
    let what = format!(
        "{via} {phase}: {:?} about {} with {:?}",
        reply.message_type(),
        reply.ciaddr,
        reply.options
    );
    assert_eq!(
        reply.message_type(),
        Some(MessageType::LeaseActive),
        "{what}"
    );
    let age = opt(reply, 91).unwrap_or_else(|| panic!("no CLTT age (91): {what}"));
    for (code, granted) in [(51, grant.lease), (58, grant.t1), (59, grant.t2)] {
        match (expect(granted, ack, window), opt(reply, code)) {
            (Expect::Present(min, max), Some(v)) => {
                let v64 = i64::from(v);
                assert!(
                    (min..=max).contains(&v64),
                    "option {code} is {v}, not the {granted} s granted less the time since \
                     (between {min} and {max}): {what}"
                );
                // Counted from the grant, which is the CLTT.
                assert_eq!(
                    v + age,
                    granted,
                    "option {code} ({v}) + CLTT age ({age}) is not the {granted} s granted: {what}"
                );
            }
            (Expect::Present(min, max), None) => {
                panic!("option {code} missing, {granted} s granted, {min}..={max} s left: {what}")
            }
            (Expect::Absent, None) => {}
            (Expect::Absent, Some(v)) => panic!(
                "option {code} is {v}, but the {granted} s granted are past \
                 (RFC 4388 §6.4.2: MUST NOT return it): {what}"
            ),
        }
    }
}

struct Probe {
    udp: UdpSocket,
    bulk: SocketAddr,
    dhcp: SocketAddr,
    xid: u32,
}

impl Probe {
    /// DHCPLEASEQUERY by IP asking for 51, 58, 59 and 91.
    fn udp(&mut self, ip: Ipv4Addr) -> (Message, Window) {
        self.xid += 1;
        let q = build_query(&QueryKey::Ip(ip), self.xid, *REQUESTOR, &[51, 58, 59, 91]);
        let bytes = q.to_bytes().expect("encode the leasequery");
        let sent = clock();
        self.udp
            .send_to(&bytes, self.dhcp)
            .expect("send leasequery");
        let mut buf = [0u8; 1500];
        loop {
            let (n, _) = self.udp.recv_from(&mut buf).expect("a leasequery reply");
            let m = Message::decode(&buf[..n]).expect("the reply decodes");
            if m.xid == self.xid {
                let received = clock();
                return (m, Window { sent, received });
            }
        }
    }

    /// DHCPBULKLEASEQUERY by MAC; its one reply.
    fn bulk(&mut self, chaddr: &[u8]) -> (Message, Window) {
        self.xid += 1;
        let mut q = bulk_query(self.xid);
        q.htype = 1;
        q.hlen = chaddr.len() as u8;
        q.chaddr[..chaddr.len()].copy_from_slice(chaddr);
        let mut conn = RawConn::connect(self.bulk);
        let sent = clock();
        conn.send(&q);
        let mut answer = conn.until_done(self.xid);
        let received = clock();
        assert_eq!(answer.replies.len(), 1, "{answer:?}");
        (answer.replies.remove(0), Window { sent, received })
    }
}

/// Sleeps until the clock reads `at` (seconds since the epoch).
fn sleep_until(at: f64) {
    let left = at - clock();
    if left > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(left));
    }
}

#[test]
fn leasequery_reports_the_granted_times_and_omits_past_ones() {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let bulk = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let relay_port = free_udp_port();
    let config = ServerConfig::new(dhcp)
        .relay_port(relay_port)
        .subnet_toml(&format!(
            "[[subnet]]\nprefix = \"10.80.0.0/24\"\npools = [\"10.80.0.10-10.80.0.20\"]\n\
             relay_addresses = [\"{}\"]\nlease_time = 60\nrenew_time = 2\nrebind_time = 4\n",
            *RELAY
        ))
        .allow(&["127.0.0.0/8"])
        .udp(1000, 2000)
        .bulk(bulk, "")
        .build();
    let _server = ServerProcess::spawn(BIN, &config);
    let mut relay = RelayClient::bind_port(*RELAY, relay_port, dhcp)
        .unwrap_or_else(|e| panic!("bind relay {}:{relay_port}: {e}", *RELAY));
    let udp = UdpSocket::bind((*REQUESTOR, 0)).expect("bind the requestor socket");
    udp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut probe = Probe {
        udp,
        bulk,
        dhcp,
        xid: 0x8000_0000,
    };

    // DORA; the grant is made while the REQUEST is answered.
    let client = TestClient::new(0x8001);
    let d = relay.request_template(&client, MessageType::Discover);
    let offer = relay.exchange(&d, 3).expect("OFFER");
    assert_eq!(offer.message_type(), Some(MessageType::Offer), "{offer:?}");
    let sid = offer
        .options
        .iter()
        .find_map(|o| match o {
            DhcpOption::ServerId(s) => Some(*s),
            _ => None,
        })
        .expect("server id in OFFER");
    let mut r = relay.request_template(&client, MessageType::Request);
    r.options.push(DhcpOption::RequestedIp(offer.yiaddr));
    r.options.push(DhcpOption::ServerId(sid));
    let sent = clock();
    let ack = relay.exchange(&r, 3).expect("ACK");
    let ack_window = Window {
        sent,
        received: clock(),
    };
    assert_eq!(ack.message_type(), Some(MessageType::Ack), "{ack:?}");
    let ip = ack.yiaddr;
    let grant = Grant {
        lease: opt(&ack, 51).expect("lease time in the ACK"),
        t1: opt(&ack, 58).expect("T1 in the ACK"),
        t2: opt(&ack, 59).expect("T2 in the ACK"),
    };
    // The configured times, as the ACK says.
    assert_eq!((grant.lease, grant.t1, grant.t2), (60, 2, 4), "{ack:?}");

    let phases = [
        ("right after the ACK", None),
        ("once T1 is past", Some(grant.t1)),
        ("once T2 is past", Some(grant.t2)),
    ];
    for (phase, wait) in phases {
        if let Some(t) = wait {
            // Whatever second the server granted in, it is at most the one
            // the ACK arrived in: from here on, that many seconds are past.
            sleep_until(ack_window.received + f64::from(t));
        }
        let (m, w) = probe.udp(ip);
        assert_eq!(m.ciaddr, ip, "{m:?}");
        check(&m, w, grant, ack_window, phase, "UDP leasequery");
        let (m, w) = probe.bulk(&client.chaddr);
        assert_eq!(m.ciaddr, ip, "{m:?}");
        check(&m, w, grant, ack_window, phase, "bulk leasequery");
        // Each phase looks at what it is named after.
        let (t1, t2) = (
            expect(grant.t1, ack_window, w),
            expect(grant.t2, ack_window, w),
        );
        match wait {
            None => assert!(matches!(t1, Expect::Present(..)), "{phase}: {t1:?}"),
            Some(t) if t == grant.t1 => assert!(
                matches!((&t1, &t2), (Expect::Absent, Expect::Present(..))),
                "{phase}: {t1:?} {t2:?}"
            ),
            Some(_) => assert!(
                matches!((&t1, &t2), (Expect::Absent, Expect::Absent)),
                "{phase}: {t1:?} {t2:?}"
            ),
        }
    }
}
