use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::KeaCsv;
use crate::{LeaseRecord, ParseError, RecordState};

fn parse(text: &[u8]) -> Vec<Result<LeaseRecord, ParseError>> {
    KeaCsv::new(text).collect()
}

/// As Kea 2.2 writes it.
const FILE: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context
192.0.2.10,00:0c:01:02:03:04,01:00:0c:01:02:03:04,4000,1795441339,1,0,0,pc&#x2c1,0,
192.0.2.11,,,4000,1795441339,1,0,0,,1,
192.0.2.10,00:0c:01:02:03:04,01:00:0c:01:02:03:04,0,1795441339,1,0,0,,0,{ \"a\": 1 }
";

#[test]
fn reads_what_kea_writes() {
    let mut p = KeaCsv::new(FILE.as_bytes());
    let recs: Vec<LeaseRecord> = p.by_ref().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3);
    let r = &recs[0];
    assert_eq!(
        (r.line, r.ip, r.state),
        (2, Ipv4Addr::new(192, 0, 2, 10), RecordState::Active)
    );
    assert_eq!(
        (r.starts, r.ends, r.lease_time),
        (Some(1_795_437_339), Some(1_795_441_339), Some(4000))
    );
    assert_eq!(r.hardware, Some((1, vec![0, 0x0c, 1, 2, 3, 4])));
    assert_eq!(r.client_id.as_deref(), Some(&[1, 0, 0x0c, 1, 2, 3, 4][..]));
    assert_eq!(r.hostname.as_deref(), Some(&b"pc,1"[..]));
    assert_eq!(
        (recs[1].state, recs[1].hardware.clone()),
        (RecordState::Abandoned, None)
    );
    assert_eq!((recs[2].line, recs[2].state), (4, RecordState::Removed));
    assert_eq!(p.unmapped().by_statement["user_context"], (1, vec![4]));
}

#[test]
fn malformed_lines_are_errors_with_their_line() {
    let mut text = FILE.as_bytes()[..FILE.find('\n').unwrap() + 1].to_vec();
    text.extend_from_slice(b"192.0.2.300,,,4000,1,1,0,0,,0,\n192.0.2.12,zz,,4000,1,1,0,0,,0,\n\x00\x01\xff,,\n192.0.2.13,,,4000,1,1,0,0,,7,\n192.0.2.14,00:01,,40");
    let out = parse(&text);
    let errs: Vec<_> = out.iter().map(|r| r.as_ref().unwrap_err()).collect();
    assert_eq!(
        errs.iter().map(|e| e.line).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6],
        "{errs:?}"
    );
    assert!(errs[0].reason.contains("not an IPv4 address"));
    assert!(errs[1].reason.contains("hwaddr"));
    assert!(errs[2].reason.contains("fields"));
    assert!(errs[3].reason.contains("state 7"));
    assert!(errs[4].reason.contains("truncated"));
}

#[test]
fn a_file_that_is_not_kea_s_is_refused_at_line_1() {
    let out = parse(b"lease 192.0.2.1 {\n}\n");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap_err().line, 1);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut text = FILE.as_bytes().to_vec();
        text.extend(bytes);
        let _ = parse(&text);
    }
}
