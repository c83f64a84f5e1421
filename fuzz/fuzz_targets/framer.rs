//! `FrameDecoder` fed a byte stream in pieces. Input layout:
//!
//! - bytes 0..2: the decoder's `max_len`, big-endian;
//! - bytes 2..8: read sizes, used in turn (0 = an empty read);
//! - the rest: the TCP stream.
//!
//! The frames (and the error, if any) must be the same whether the stream
//! arrives at once or in those pieces, and the same as a plain reading of
//! the 2-byte length prefixes (RFC 6926 §6.3).
#![no_main]

use leaseline_wire::{encode_frame, FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
    buffered: usize,
}

/// Take every complete frame; stop at the first error.
fn drain(d: &mut FrameDecoder, out: &mut Outcome) {
    if out.error.is_some() {
        return;
    }
    loop {
        match d.next_frame() {
            Ok(Some(f)) => out.frames.push(f.to_vec()),
            Ok(None) => return,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        }
    }
}

fn finish(d: &mut FrameDecoder, mut out: Outcome) -> Outcome {
    if let Some(e) = &out.error {
        // Poisoned: sticky error, later bytes ignored.
        assert!(d.is_poisoned());
        assert_eq!(d.next_frame().as_ref().err(), Some(e));
        let before = d.buffered();
        d.extend(&[0, 1, 2]);
        assert_eq!(d.buffered(), before, "bytes accepted after an error");
        assert_eq!(d.next_frame().as_ref().err(), Some(e));
    } else {
        assert!(!d.is_poisoned());
        assert_eq!(d.next_frame(), Ok(None), "a frame was left undrained");
    }
    assert_eq!(d.mid_message(), d.buffered() > 0);
    // After an error the rest of the stream is dropped as it arrives, so
    // how much is held depends on the reads: compared only without error.
    out.buffered = if out.error.is_some() { 0 } else { d.buffered() };
    out
}

fn at_once(max_len: usize, stream: &[u8]) -> Outcome {
    let mut d = FrameDecoder::new(max_len);
    let mut out = Outcome { frames: Vec::new(), error: None, buffered: 0 };
    d.extend(stream);
    drain(&mut d, &mut out);
    finish(&mut d, out)
}

fn in_pieces(max_len: usize, sizes: &[u8], stream: &[u8]) -> Outcome {
    let mut d = FrameDecoder::new(max_len);
    let mut out = Outcome { frames: Vec::new(), error: None, buffered: 0 };
    let mut rest = stream;
    let mut i = 0;
    // An empty read never ends the loop on its own: bound the empty ones.
    let mut empties = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s))
            .min(rest.len());
        i += 1;
        if n == 0 {
            empties += 1;
            if empties > 64 {
                d.extend(rest);
                drain(&mut d, &mut out);
                break;
            }
        }
        let (piece, tail) = rest.split_at(n);
        d.extend(piece);
        drain(&mut d, &mut out);
        // Never holds more than what was given and not yet returned.
        assert!(d.buffered() <= stream.len());
        rest = tail;
    }
    finish(&mut d, out)
}

/// The reference: read the length prefixes directly.
fn model(max_len: usize, stream: &[u8]) -> Outcome {
    let max = max_len.min(65535);
    let mut out = Outcome { frames: Vec::new(), error: None, buffered: 0 };
    let mut pos = 0;
    while let Some(&[hi, lo]) = stream.get(pos..pos + 2) {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            out.error = Some(FrameError::ZeroLength);
            break;
        }
        if len > max {
            out.error = Some(FrameError::TooLong { len, max });
            break;
        }
        match stream.get(pos + 2..pos + 2 + len) {
            Some(body) => out.frames.push(body.to_vec()),
            None => break,
        }
        pos += 2 + len;
    }
    out.buffered = if out.error.is_some() { 0 } else { stream.len() - pos };
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (hdr, stream) = data.split_at(8);
    let max_len = usize::from(u16::from_be_bytes([hdr[0], hdr[1]]));
    let sizes = &hdr[2..8];

    let whole = at_once(max_len, stream);
    let pieces = in_pieces(max_len, sizes, stream);
    // One byte at a time: the hardest split.
    let bytes = in_pieces(max_len, &[1], stream);
    let expected = model(max_len, stream);
    assert_eq!(whole, expected, "decoder disagrees with the length prefixes");
    assert_eq!(pieces, whole, "split reads changed the frames");
    assert_eq!(bytes, whole, "byte-at-a-time reads changed the frames");

    // Re-framing what came out gives the stream's decoded prefix back.
    let mut reframed = Vec::new();
    for f in &whole.frames {
        assert!(!f.is_empty() && f.len() <= max_len.min(65535));
        encode_frame(f, &mut reframed).expect("a decoded frame re-encodes");
    }
    assert_eq!(&stream[..reframed.len()], &reframed[..]);
});
