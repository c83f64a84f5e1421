#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Property tests: typed message -> bytes -> same message; bytes that decode
//! re-encode to bytes that decode to the same message.

mod common;

use common::{message, value_bytes};
use leaseline_wire::{Message, MIN_MESSAGE_LEN};
use proptest::prelude::*;

/// Raw option bytes that are often, not always, valid: codes biased towards
/// the typed ones, lengths towards the ones they want, duplicates allowed.
fn raw_options() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        3 => prop::sample::select(vec![
            1u8, 3, 6, 12, 15, 50, 51, 53, 54, 55, 58, 59, 60, 61, 82, 91, 92, 151, 152, 153,
            154, 155, 156, 157, 221,
        ]),
        1 => any::<u8>().prop_filter("not PAD/END/overload", |c| ![0, 52, 255].contains(c)),
    ];
    let len = prop_oneof![Just(1usize), Just(2), Just(4), Just(8), 0usize..20];
    let item = prop_oneof![
        1 => Just(vec![0u8]),
        8 => (code, len).prop_flat_map(|(c, l)| {
            prop::collection::vec(any::<u8>(), l).prop_map(move |d| {
                let mut v = vec![c, d.len() as u8];
                v.extend(d);
                v
            })
        }),
    ];
    prop::collection::vec(item, 0..8).prop_map(|items| {
        let mut v: Vec<u8> = items.concat();
        v.push(255);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_message_round_trips(m in message()) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    /// RFC 3396: however the values are fragmented (and PADs sprinkled),
    /// the decoded message is the same.
    #[test]
    fn any_fragmentation_decodes_the_same(
        m in message(),
        cuts in prop::collection::vec((1usize..=255, 0usize..3), 64),
    ) {
        let mut bytes = Message { options: vec![], ..m.clone() }.to_bytes().unwrap();
        bytes.truncate(MIN_MESSAGE_LEN);
        let mut cut = cuts.iter().cycle();
        for o in &m.options {
            let v = value_bytes(o);
            let mut rest = &v[..];
            loop {
                let &(n, pads) = cut.next().unwrap();
                let n = n.min(rest.len());
                bytes.resize(bytes.len() + pads, 0); // PADs
                bytes.push(o.code());
                bytes.push(n as u8);
                bytes.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        bytes.push(255);
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn decode_encode_decode_is_stable(
        m in message(),
        opts in raw_options(),
    ) {
        let mut bytes = Message { options: vec![], ..m }.to_bytes().unwrap();
        bytes.truncate(MIN_MESSAGE_LEN);
        bytes.extend_from_slice(&opts);
        if let Ok(first) = Message::decode(&bytes) {
            let again = first.to_bytes().expect("a decoded message encodes");
            prop_assert_eq!(Message::decode(&again).unwrap(), first.clone());
            // Canonical after one pass: encoding is a fixed point.
            prop_assert_eq!(Message::decode(&again).unwrap().to_bytes().unwrap(), again);
        }
    }
}
