#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Property tests: no input panics the decoder or the frame decoder.

mod common;

use leaseline_wire::{encode_frame, FrameDecoder, FrameError, Message};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&b);
    }

    #[test]
    fn arbitrary_options_after_valid_header_never_panic(
        opts in prop::collection::vec(any::<u8>(), 0..1200),
    ) {
        let _ = Message::decode(&common::with_options(&opts));
    }

    /// Option-shaped garbage (code, length, bytes) reaches the typing code
    /// far more often than uniform bytes do.
    #[test]
    fn option_shaped_garbage_never_panics(
        items in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)), 0..12),
        end in any::<bool>(),
    ) {
        let mut opts = Vec::new();
        for (code, data) in items {
            opts.push(code);
            opts.push(data.len() as u8);
            opts.extend(data);
        }
        if end {
            opts.push(255);
        }
        if let Ok(m) = Message::decode(&common::with_options(&opts)) {
            let _ = m.to_bytes();
        }
    }
}

/// Everything a decoder yields for one stream: frames, then the error if any.
fn drain(d: &mut FrameDecoder, out: &mut Vec<Vec<u8>>) -> Option<FrameError> {
    loop {
        match d.next_frame() {
            Ok(Some(f)) => out.push(f.to_vec()),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn all_at_once(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut d = FrameDecoder::new(max);
    d.extend(stream);
    let mut frames = Vec::new();
    let err = drain(&mut d, &mut frames);
    (frames, err)
}

fn chunked(stream: &[u8], cuts: &[usize], max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut d = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut err = None;
    let mut rest = stream;
    let mut cut = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cut.next().unwrap()).min(rest.len());
        d.extend(&rest[..n]);
        rest = &rest[n..];
        if let Some(e) = drain(&mut d, &mut frames) {
            err = Some(e);
            break;
        }
    }
    (frames, err)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn framing_arbitrary_chunks_never_panic_and_agree(
        stream in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(1usize..50, 1..20),
        max in 0usize..70_000,
    ) {
        prop_assert_eq!(chunked(&stream, &cuts, max), all_at_once(&stream, max));
    }

    #[test]
    fn framing_recovers_encoded_frames_across_any_split(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..10),
        cuts in prop::collection::vec(1usize..700, 1..20),
    ) {
        let mut stream = Vec::new();
        for b in &bodies {
            encode_frame(b, &mut stream).unwrap();
        }
        let (frames, err) = chunked(&stream, &cuts, 300);
        prop_assert_eq!(err, None);
        prop_assert_eq!(&frames, &bodies);
        prop_assert_eq!(all_at_once(&stream, 300), (bodies, None));
    }
}
