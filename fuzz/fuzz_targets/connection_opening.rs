//! How a leasequery TCP connection opens (`leaseline_proto::opening`, RFC
//! 7724 §7.2, §8.1). Input: byte 0 = listener flags (bit 0 plaintext
//! allowed, bit 1 TLS configured), bytes 1..3 = bytes buffered after the
//! first message (big-endian), the rest = the first message.
//!
//! Checked: a DHCPTLS message never starts a plaintext session; bytes after
//! DHCPTLS never reach a handshake (STARTTLS injection); a secure-only
//! listener never takes plaintext; every answer is a DHCPTLS reply that
//! encodes, with the request's xid, and a status exactly when refused.
#![no_main]

use leaseline_proto::{frame_into, opening, Opening};
use leaseline_wire::{DhcpOption, FrameDecoder, Message, MessageType, StatusCode};
use libfuzzer_sys::fuzz_target;

fn check_answer(answer: &Message, xid: u32, refused: bool) {
    let mut out = Vec::new();
    frame_into(&mut out, answer);
    let mut d = FrameDecoder::new(65_535);
    d.extend(&out);
    let back = Message::decode(d.next_frame().expect("frames").expect("one message"))
        .expect("the answer decodes");
    assert_eq!(back.message_type(), Some(MessageType::Tls));
    assert_eq!(back.xid, xid);
    let status = back.options.iter().find_map(|o| match o {
        DhcpOption::StatusCode(c, _) => Some(*c),
        _ => None,
    });
    assert_eq!(status, refused.then_some(StatusCode::TlsConnectionRefused));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (plaintext, tls) = (data[0] & 1 != 0, data[0] & 2 != 0);
    let buffered = usize::from(u16::from_be_bytes([data[1], data[2]]));
    let first = &data[3..];
    let msg = Message::decode(first).ok();
    let is_tls = msg.as_ref().and_then(Message::message_type) == Some(MessageType::Tls);
    let xid = msg.map_or(0, |m| m.xid);
    match opening(first, buffered, plaintext, tls) {
        Opening::Plain => assert!(plaintext && !is_tls),
        Opening::RefusePlain => assert!(!plaintext && !is_tls),
        Opening::RefuseTls(a) => {
            assert!(is_tls && !tls);
            check_answer(&a, xid, true);
        }
        Opening::EarlyData(n) => assert!(is_tls && tls && n == buffered && n > 0),
        Opening::StartTls(a) => {
            assert!(is_tls && tls && buffered == 0);
            check_answer(&a, xid, false);
        }
    }
});
