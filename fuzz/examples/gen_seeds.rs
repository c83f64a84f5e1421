//! Writes the committed seed corpora (fuzz/corpus/<target>/) with the
//! project's own codec, so each seed is a valid message of its kind.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//!
//! Seeds are small on purpose; the fuzzer's grown corpus lives in
//! fuzz/work/ (not committed).

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use leaseline_wire::{
    encode_frame, pad_to_bootp_minimum, DhcpOption, Message, MessageType, RelayAgentInfo,
    StatusCode, SubOption, BOOTREPLY,
};

const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const GIADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn base(mt: MessageType) -> Message {
    Message {
        htype: 0,
        hlen: 0,
        xid: 0x1234_5678,
        options: vec![DhcpOption::MessageType(mt)],
        ..Message::default()
    }
}

fn set_mac(m: &mut Message) {
    m.htype = 1;
    m.hlen = 6;
    m.chaddr[..6].copy_from_slice(&MAC);
}

fn relay(subs: &[(u8, &[u8])]) -> DhcpOption {
    DhcpOption::RelayAgentInfo(RelayAgentInfo {
        sub_options: subs
            .iter()
            .map(|(code, data)| SubOption {
                code: *code,
                data: data.to_vec(),
            })
            .collect(),
    })
}

fn messages() -> Vec<(&'static str, Message)> {
    let mut out = Vec::new();

    let mut m = base(MessageType::Discover);
    set_mac(&mut m);
    m.flags = Message::BROADCAST_FLAG;
    m.options.extend([
        DhcpOption::ClientId(vec![1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
        DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 51, 54]),
        DhcpOption::Hostname(b"host".to_vec()),
        DhcpOption::VendorClassId(b"MSFT 5.0".to_vec()),
    ]);
    out.push(("discover", m));

    let mut m = base(MessageType::Request);
    set_mac(&mut m);
    m.giaddr = GIADDR;
    m.hops = 1;
    m.options.extend([
        DhcpOption::RequestedIp(Ipv4Addr::new(10, 0, 0, 5)),
        DhcpOption::ServerId(Ipv4Addr::new(192, 0, 2, 1)),
        relay(&[(1, b"eth0/1"), (2, b"rid")]),
    ]);
    out.push(("request_relayed", m));

    let mut m = base(MessageType::LeaseQuery);
    m.giaddr = GIADDR;
    m.ciaddr = Ipv4Addr::new(10, 0, 0, 5);
    m.options
        .push(DhcpOption::ParameterRequestList(vec![51, 58, 59, 61, 82, 91, 92]));
    out.push(("leasequery_by_ip", m));

    let mut m = base(MessageType::LeaseQuery);
    m.giaddr = GIADDR;
    set_mac(&mut m);
    out.push(("leasequery_by_mac", m));

    let mut m = base(MessageType::LeaseQuery);
    m.giaddr = GIADDR;
    m.options
        .push(DhcpOption::ClientId(vec![1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
    out.push(("leasequery_by_client_id", m));

    let mut m = base(MessageType::LeaseQuery);
    m.giaddr = GIADDR;
    m.options.push(relay(&[(2, b"remote-1")]));
    out.push(("leasequery_by_remote_id", m));

    let m = base(MessageType::BulkLeaseQuery);
    out.push(("bulk_all", m));

    let mut m = base(MessageType::BulkLeaseQuery);
    set_mac(&mut m);
    m.options.extend([
        DhcpOption::QueryStartTime(1_700_000_000),
        DhcpOption::QueryEndTime(1_700_003_600),
        DhcpOption::ParameterRequestList(vec![51, 58, 59, 61, 82]),
        DhcpOption::Vss(vec![255]),
    ]);
    out.push(("bulk_by_mac_window", m));

    let mut m = base(MessageType::BulkLeaseQuery);
    m.options.push(relay(&[(12, b"relay-7")]));
    out.push(("bulk_by_relay_id", m));

    let mut m = base(MessageType::ActiveLeaseQuery);
    m.options.extend([
        DhcpOption::QueryStartTime(1_700_000_000),
        DhcpOption::ParameterRequestList(vec![51, 61, 82]),
    ]);
    out.push(("active", m));

    out.push(("dhcptls", base(MessageType::Tls)));

    // Replies, as a requestor receives them.
    let mut m = base(MessageType::LeaseActive);
    m.op = BOOTREPLY;
    set_mac(&mut m);
    m.ciaddr = Ipv4Addr::new(10, 0, 0, 5);
    m.options.extend([
        DhcpOption::ServerId(Ipv4Addr::new(192, 0, 2, 1)),
        DhcpOption::BaseTime(1_700_000_100),
        DhcpOption::StartTimeOfState(100),
        DhcpOption::DhcpState(2),
        DhcpOption::DataSource(1),
        DhcpOption::ClientLastTransactionTime(100),
        DhcpOption::LeaseTime(3500),
        DhcpOption::AssociatedIp(vec![Ipv4Addr::new(10, 0, 0, 6)]),
    ]);
    out.push(("leaseactive", m));

    let mut m = base(MessageType::LeaseQueryStatus);
    m.op = BOOTREPLY;
    m.options.extend([
        DhcpOption::StatusCode(StatusCode::ConnectionActive, "active".into()),
        DhcpOption::BaseTime(1_700_000_100),
    ]);
    out.push(("status", m));

    // A long option: split into RFC 3396 fragments on the wire.
    let mut m = base(MessageType::Inform);
    m.options.push(DhcpOption::Unknown {
        code: 224,
        data: (0..300u16).map(|i| i as u8).collect(),
    });
    out.push(("long_option", m));

    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut encoded = Vec::new();
    for (name, m) in messages() {
        let mut b = m.to_bytes().expect("seed encodes");
        assert_eq!(Message::decode(&b).unwrap(), m);
        if name == "discover" {
            // As clients send it: padded to 300 bytes.
            pad_to_bootp_minimum(&mut b);
        }
        write(&root.join("decode"), name, &b);
        write(&root.join("query_validation"), name, &b);
        encoded.push((name, b));
    }

    // framer: 2-byte max_len, 6 read sizes, then the stream.
    let get = |n: &str| encoded.iter().find(|(k, _)| *k == n).unwrap().1.clone();
    let framer = root.join("framer");
    let header = |max: u16, sizes: [u8; 6]| {
        let mut h = max.to_be_bytes().to_vec();
        h.extend_from_slice(&sizes);
        h
    };
    // A bulk query then its DHCPLEASEQUERYSTATUS, read in odd pieces.
    let mut s = header(65535, [1, 7, 250, 3, 0, 64]);
    encode_frame(&get("bulk_all"), &mut s).unwrap();
    encode_frame(&get("status"), &mut s).unwrap();
    write(&framer, "two_messages", &s);
    // DHCPTLS then an active query, the second one cut short.
    let mut s = header(1500, [2, 2, 2, 2, 2, 255]);
    encode_frame(&get("dhcptls"), &mut s).unwrap();
    let mut act = Vec::new();
    encode_frame(&get("active"), &mut act).unwrap();
    s.extend_from_slice(&act[..act.len() - 10]);
    write(&framer, "partial_second", &s);
    // A frame over the decoder's limit.
    let mut s = header(300, [5, 5, 5, 5, 5, 5]);
    encode_frame(&get("leaseactive"), &mut s).unwrap();
    encode_frame(&get("long_option"), &mut s).unwrap();
    write(&framer, "too_long", &s);
    // A zero length after a good frame.
    let mut s = header(65535, [16, 0, 16, 0, 16, 0]);
    encode_frame(&get("leasequery_by_ip"), &mut s).unwrap();
    s.extend_from_slice(&[0, 0, 0x12]);
    write(&framer, "zero_length", &s);
    // Several tiny frames.
    let mut s = header(8, [3, 1, 4, 1, 5, 9]);
    for body in [&b"a"[..], b"bc", b"defgh", b"12345678"] {
        encode_frame(body, &mut s).unwrap();
    }
    write(&framer, "tiny_frames", &s);

    // connection_opening: listener flags (bit 0 plaintext, bit 1 TLS), 2
    // bytes buffered after the first message, then the first message.
    let opening = root.join("connection_opening");
    let with = |flags: u8, buffered: u16, first: &[u8]| {
        let mut s = vec![flags];
        s.extend_from_slice(&buffered.to_be_bytes());
        s.extend_from_slice(first);
        s
    };
    write(&opening, "dhcptls_secure", &with(2, 0, &get("dhcptls")));
    write(&opening, "dhcptls_early_data", &with(3, 9, &get("dhcptls")));
    write(&opening, "dhcptls_insecure", &with(1, 0, &get("dhcptls")));
    write(&opening, "bulk_plain", &with(1, 0, &get("bulk_all")));
    write(&opening, "active_secure_only", &with(2, 0, &get("active")));

    // active_session: byte 0 the history (0 none, 1 catch-up of the listed
    // addresses, 2 missing), then ops (see the target's doc): 0 requestor
    // bytes, 1 changes, 2 answer the batch asked for, 3 next timeout, 4
    // shutdown, 5 clock, 6 reader stops/resumes, 7 batch with lost changes.
    let session = root.join("active_session");
    let mut second_query = vec![0, 0];
    encode_frame(&get("active"), &mut second_query).unwrap();
    let n = u8::try_from(second_query.len() - 2).unwrap_or(255);
    second_query[1] = n;
    let seeds: [(&str, Vec<u8>); 5] = [
        ("catchup_then_live", vec![1, 3, 5, 6, 7, 1, 3, 5, 9, 200, 2, 2, 5, 1, 2, 255, 3, 0, 1, 1, 9, 2, 255, 4, 0]),
        ("live_only", vec![0, 1, 4, 1, 2, 3, 4, 2, 1, 1, 2, 1, 2, 2, 255, 5, 3, 3, 0, 4, 0, 2, 5]),
        ("missing", vec![2, 1, 1, 8, 2, 1, 4, 0]),
        ("empty_catchup", vec![1, 0, 1, 2, 1, 2, 2, 255]),
        ("second_active_query", [vec![0, 1, 1, 8, 2, 1], second_query].concat()),
    ];
    for (name, bytes) in seeds {
        write(&session, name, &bytes);
    }

    // sessions: byte 0 the listener (bit 0 plaintext, 1 TLS, 2 active,
    // bits 4-5 query limit - 1), then ops and an argument each (see the
    // target's doc): 1 a templated message (xid, then kind: 0 bulk for
    // all, 1 by MAC, 2 active, 3 DHCPTLS, 4 DHCPDISCOVER, 5 refused bulk;
    // 0x40 / 0x80 add a query-start-time), 2 store answer (rows), 3 next
    // timeout, 4 shutdown, 5 clock, 6 reader stops/resumes, 7 close.
    let sessions = root.join("sessions");
    let seeds: [(&str, Vec<u8>); 7] = [
        ("bulk_all", vec![0x05, 1, 7, 0, 2, 10, 2, 0, 3, 0]),
        ("two_queries_stalled", vec![0x35, 1, 1, 0, 1, 2, 1, 6, 0, 2, 200, 2, 50, 2, 0, 3, 0, 6, 0]),
        ("active_catchup", vec![0x05, 1, 9, 0xc2, 2, 3, 2, 5, 3, 0, 3, 0, 4, 1, 2, 1]),
        ("dhcptls_then_bulk", vec![0x03, 1, 5, 3, 1, 6, 1, 2, 0]),
        ("shutdown_mid_query", vec![0x05, 1, 1, 0, 6, 0, 2, 100, 2, 100, 4, 0]),
        ("limit_then_eof", vec![0x04, 1, 1, 0, 1, 2, 1, 7, 0, 2, 3, 2, 0, 2, 4, 2, 0]),
        ("refused_and_stalls", vec![0x01, 1, 3, 5, 0, 3, 0, 1, 44, 3, 0, 3, 0]),
    ];
    for (name, bytes) in seeds {
        write(&sessions, name, &bytes);
    }
    println!("seeds written under {}", root.display());
}
