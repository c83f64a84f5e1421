//! `Message::decode` on arbitrary bytes. Must never panic; whatever it
//! accepts must encode, and decode -> encode -> decode must be stable (the
//! second decode gives the same message, and encoding that gives the same
//! bytes again).
#![no_main]

use leaseline_wire::{pad_to_bootp_minimum, Message, WireError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    // Accessors used on every received message.
    let _ = m.message_type();
    let _ = m.hw_addr();
    let _ = m.broadcast();

    let mut enc = Vec::new();
    match m.encode(&mut enc) {
        Ok(()) => {}
        // Decode has no size cap (neither a UDP payload nor a TCP frame
        // can be over 65535 bytes); the encoder does. Our encoding is never
        // longer than the input (PAD dropped, fragments merged), so this can
        // only happen for an input over the cap.
        Err(WireError::TooLong(_)) if data.len() > 65535 => {
            assert!(enc.is_empty(), "failed encode left bytes in `out`");
            return;
        }
        Err(e) => panic!("decoded message does not encode: {e:?}\n{m:?}"),
    }
    assert!(enc.len() <= data.len(), "encoding longer than the input");

    let m2 = Message::decode(&enc).expect("our own encoding does not decode");
    assert_eq!(m, m2, "decode -> encode -> decode changed the message");
    let enc2 = m2.to_bytes().expect("re-encode");
    assert_eq!(enc, enc2, "encoding is not stable");

    // Zero padding after END is PAD (RFC 2132 §3.1): same message.
    pad_to_bootp_minimum(&mut enc);
    assert_eq!(Message::decode(&enc).expect("padded decode"), m);

    // Appending after existing bytes: the message lands after them intact.
    let mut out = vec![0xAA; 3];
    m.encode(&mut out).expect("encode after a prefix");
    assert_eq!(&out[..3], &[0xAA; 3]);
    assert_eq!(&out[3..], &enc2[..]);
});
