#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The 2-octet length framing of leasequery over TCP (RFC 6926 §6.3).

use leaseline_wire::{encode_frame, FrameDecoder, FrameError};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame(body, &mut v).unwrap();
    v
}

#[test]
fn encode_frame_prefixes_big_endian_length() {
    assert_eq!(frame(&[7; 3]), vec![0, 3, 7, 7, 7]);
    assert_eq!(frame(&[1; 258])[..2], [1, 2]);
    assert_eq!(
        encode_frame(&[], &mut Vec::new()),
        Err(FrameError::ZeroLength)
    );
    assert_eq!(
        encode_frame(&vec![0; 65536], &mut Vec::new()),
        Err(FrameError::TooLong {
            len: 65536,
            max: 65535
        })
    );
}

#[test]
fn several_frames_in_one_extend() {
    let mut d = FrameDecoder::new(1000);
    let mut s = frame(b"one");
    s.extend(frame(b"two"));
    s.extend(frame(b"three"));
    s.push(0); // half a length
    d.extend(&s);
    assert_eq!(d.next_frame().unwrap(), Some(&b"one"[..]));
    assert_eq!(d.next_frame().unwrap(), Some(&b"two"[..]));
    assert_eq!(d.next_frame().unwrap(), Some(&b"three"[..]));
    assert_eq!(d.next_frame().unwrap(), None);
    assert!(d.mid_message());
    assert_eq!(d.buffered(), 1);
    d.extend(&[2, b'h']);
    assert_eq!(d.next_frame().unwrap(), None);
    d.extend(b"i");
    assert_eq!(d.next_frame().unwrap(), Some(&b"hi"[..]));
    assert!(!d.mid_message());
    assert_eq!(d.buffered(), 0);
}

#[test]
fn one_byte_at_a_time() {
    let body: Vec<u8> = (0..=255).collect();
    let s = frame(&body);
    let mut d = FrameDecoder::new(65535);
    for (i, b) in s.iter().enumerate() {
        d.extend(&[*b]);
        let f = d.next_frame().unwrap().map(<[u8]>::to_vec);
        if i + 1 < s.len() {
            assert_eq!(f, None);
        } else {
            assert_eq!(f, Some(body.clone()));
        }
    }
}

#[test]
fn zero_length_poisons() {
    let mut d = FrameDecoder::new(100);
    d.extend(&[0, 0, 0, 1, 9]);
    assert_eq!(d.next_frame(), Err(FrameError::ZeroLength));
    assert!(d.is_poisoned());
    d.extend(&frame(b"ok"));
    assert_eq!(d.next_frame(), Err(FrameError::ZeroLength));
}

#[test]
fn too_long_is_refused_before_the_body_arrives() {
    let mut d = FrameDecoder::new(10);
    d.extend(&[0, 11]);
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLong { len: 11, max: 10 })
    );
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLong { len: 11, max: 10 })
    );
    // The maximum itself is fine.
    let mut d = FrameDecoder::new(10);
    d.extend(&frame(&[1; 10]));
    assert_eq!(d.next_frame().unwrap(), Some(&[1; 10][..]));
}

#[test]
fn max_len_is_capped_at_65535() {
    let mut d = FrameDecoder::new(1 << 20);
    d.extend(&frame(&vec![5; 65535]));
    assert_eq!(d.next_frame().unwrap().map(<[u8]>::len), Some(65535));
}

#[test]
fn buffer_is_compacted_on_a_long_stream() {
    let mut d = FrameDecoder::new(65535);
    let f = frame(&[3; 100]);
    for _ in 0..10_000 {
        d.extend(&f[..50]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.extend(&f[50..]);
        assert_eq!(d.next_frame().unwrap().map(<[u8]>::len), Some(100));
        assert_eq!(d.next_frame().unwrap(), None);
    }
    assert_eq!(d.buffered(), 0);
}
