use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::DhcpdLeases;
use crate::{LeaseRecord, ParseError, RecordState, Unmapped};

fn parse(text: &[u8]) -> Vec<Result<LeaseRecord, ParseError>> {
    DhcpdLeases::new(text).collect()
}

/// As [`parse`], read ahead in a thread; with what was not mapped.
fn parse_threaded(text: &[u8]) -> (Vec<Result<LeaseRecord, ParseError>>, Unmapped) {
    let mut p = DhcpdLeases::threaded(std::io::Cursor::new(text.to_vec()));
    (p.by_ref().collect(), p.unmapped().clone())
}

/// As dhcpd 4.4 writes it (with an OMAPI `host`, failover and comments).
const FILE: &str = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\000\001\000\001.\262\231\033\016\237\252\010\000\000";

failover peer "pair" state {
  my state normal at 3 2026/11/25 10:00:00;
  partner state normal at 3 2026/11/25 10:00:00;
}

lease 192.0.2.100 {
  starts 1 2026/11/23 12:35:39;
  ends 1 2026/11/23 12:45:39;
  cltt 1 2026/11/23 12:35:39;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:0c:01:02:03:04;
  uid "\001\000\014\001\002\003\004";
  set vendor-class-identifier = "MSFT 5.0";
  option agent.circuit-id "eth0/1";
  option agent.remote-id 0:1:2:3;
  client-hostname "pc-1";
}
lease 192.0.2.101 {
  starts epoch 1795437339; # 2026/11/23 12:35:39
  ends never;
  binding state abandoned;
}
"#;

#[test]
fn reads_what_dhcpd_writes() {
    let mut p = DhcpdLeases::new(FILE.as_bytes());
    let recs: Vec<LeaseRecord> = p.by_ref().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!((r.line, r.ip), (14, Ipv4Addr::new(192, 0, 2, 100)));
    assert_eq!(r.state, RecordState::Active);
    assert_eq!(
        (r.starts, r.ends, r.cltt),
        (
            Some(1_795_437_339),
            Some(1_795_437_939),
            Some(1_795_437_339)
        )
    );
    assert_eq!(r.lease_time, Some(600));
    assert_eq!(r.hardware, Some((1, vec![0, 0x0c, 1, 2, 3, 4])));
    assert_eq!(r.client_id.as_deref(), Some(&[1, 0, 0x0c, 1, 2, 3, 4][..]));
    assert_eq!(r.circuit_id.as_deref(), Some(&b"eth0/1"[..]));
    assert_eq!(r.remote_id.as_deref(), Some(&[0, 1, 2, 3][..]));
    assert_eq!(r.vendor_class_id.as_deref(), Some(&b"MSFT 5.0"[..]));
    assert_eq!(r.hostname.as_deref(), Some(&b"pc-1"[..]));
    assert_eq!(
        (recs[1].state, recs[1].ends, recs[1].starts),
        (RecordState::Abandoned, None, Some(1_795_437_339))
    );
    let un = &p.unmapped().by_statement;
    assert_eq!(un["authoring-byte-order little-endian"], (1, vec![5]));
    assert_eq!(un["failover peer"], (1, vec![9]));
    assert_eq!(un["next binding"].0, 1);
    assert!(un.contains_key(
        "server-duid \"\0\u{1}\0\u{1}.\u{fffd}\u{fffd}\u{1b}\u{e}\u{fffd}\u{fffd}\u{8}\0\0\""
    ));
}

#[test]
fn truncated_record_is_an_error_at_its_line() {
    let cut = &FILE[..FILE.find("  client-hostname").unwrap()];
    let out = parse(cut.as_bytes());
    let e = out.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.line, 14);
    assert!(e.reason.contains("truncated"), "{e}");
}

#[test]
fn bad_address_and_junk_are_errors_and_reading_goes_on() {
    let text = b"lease 192.0.2.300 {\n  binding state active;\n}\n\x00\xff\xfe junk\nlease 192.0.2.7 {\n  binding state free;\n}\nlease 192.0.2.8 {\n  starts 1 2026/13/01 00:00:00;\n}\n";
    let out = parse(text);
    let errs: Vec<_> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errs.len(), 3, "{out:?}");
    assert!(errs[0].line == 1 && errs[0].reason.contains("not an IPv4 address"));
    assert!(errs[1].line == 4 && errs[1].reason.contains("binary"));
    assert!(errs[2].line == 9 && errs[2].reason.contains("not a YYYY/MM/DD"));
    let ok: Vec<_> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!((ok[0].line, ok[0].state), (5, RecordState::Free));
}

#[test]
fn unwanted_records_are_skipped_unparsed_but_must_end() {
    let text = b"lease 10.0.0.1 {\n  binding state bogus;\n}\nlease 10.0.0.2 {\n  binding state active;\n}\nlease 10.0.0.1 {\n  binding state free;\n";
    let wanted = |ip: Ipv4Addr, _line: u64| ip == Ipv4Addr::new(10, 0, 0, 2);
    let mut p = DhcpdLeases::new(&text[..]);
    let r = p.next_wanted(wanted).unwrap().unwrap();
    assert_eq!((r.line, r.state), (4, RecordState::Active));
    let e = p.next_wanted(wanted).unwrap().unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.reason.contains("truncated"), "{e}");
    assert!(p.next_wanted(wanted).is_none());
    // Wanted, the first record is an error.
    let all = parse(text);
    assert!(all[0]
        .as_ref()
        .unwrap_err()
        .reason
        .contains("unknown binding state"));
}

#[test]
fn read_ahead_in_a_thread_gives_the_same_records_over_many_batches() {
    // Some 1 MiB: many batches, records and strings cut across their ends.
    let mut text = FILE.repeat(1000);
    text.push_str("lease 192.0.2.9 {\n  binding state bogus;\n}\nlease 192.0.2.10 {\n");
    let (threaded, unmapped) = parse_threaded(text.as_bytes());
    let mut inline = DhcpdLeases::new(text.as_bytes());
    assert_eq!(threaded, inline.by_ref().collect::<Vec<_>>());
    assert_eq!(&unmapped, inline.unmapped());
    assert_eq!(threaded.len(), 2 * 1000 + 2);
    let lines = FILE.lines().count() as u64 * 1000;
    let errors: Vec<_> = threaded.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].line, lines + 2);
    assert!(
        errors[0].reason.contains("unknown binding state"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].line, lines + 4);
    assert!(errors[1].reason.contains("truncated"), "{}", errors[1]);
}

proptest! {
    /// Read ahead in a thread or not: the same records, errors and
    /// unmapped statements.
    #[test]
    fn read_ahead_reads_the_same(bytes in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0..FILE.len()) {
        for text in [&bytes[..], &FILE.as_bytes()[..cut]] {
            let (threaded, unmapped) = parse_threaded(text);
            let mut inline = DhcpdLeases::new(text);
            prop_assert_eq!(threaded, inline.by_ref().collect::<Vec<_>>());
            prop_assert_eq!(&unmapped, inline.unmapped());
        }
    }


    /// Any bytes: records or errors with a line inside the input, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        for r in parse(&bytes) {
            if let Err(e) = r { prop_assert!(e.line <= lines); }
        }
    }

    /// Cutting a good file anywhere: never a panic; a cut inside a record is an error.
    #[test]
    fn any_prefix_never_panics(cut in 0..FILE.len()) {
        let _ = parse(&FILE.as_bytes()[..cut]);
    }
}
