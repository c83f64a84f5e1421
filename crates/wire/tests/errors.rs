#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! One malformed input per `WireError` variant (and per rule where the
//! variant covers several options).

mod common;

use common::with_options;
use leaseline_wire::{DhcpOption as O, Message, RelayAgentInfo, SubOption, WireError as E};

fn decode_opts(opts: &[u8]) -> Result<Message, E> {
    Message::decode(&with_options(opts))
}

fn bad_len(code: u8, len: usize) -> impl Fn(&E) -> bool {
    move |e| matches!(e, E::BadOptionLength { code: c, len: l, .. } if *c == code && *l == len)
}

#[test]
fn truncated() {
    let b = with_options(&[255]);
    assert_eq!(
        Message::decode(&b[..239]),
        Err(E::Truncated { len: 239, min: 240 })
    );
    assert_eq!(Message::decode(&[]), Err(E::Truncated { len: 0, min: 240 }));
}

#[test]
fn bad_magic_cookie() {
    let mut b = with_options(&[255]);
    b[239] = 0x64;
    assert_eq!(Message::decode(&b), Err(E::BadMagicCookie(0x6382_5364)));
}

#[test]
fn bad_op_and_hlen() {
    let mut b = with_options(&[255]);
    b[0] = 3;
    assert_eq!(Message::decode(&b), Err(E::BadOp(3)));
    b[0] = 1;
    b[2] = 17;
    assert_eq!(Message::decode(&b), Err(E::BadHlen(17)));
    b[2] = 16;
    assert!(Message::decode(&b).is_ok());
}

#[test]
fn option_overrun_names_code_and_offset() {
    // 53 at offset 240, 61 at 243 claims 9 bytes but only 3 follow.
    assert_eq!(
        decode_opts(&[53, 1, 1, 61, 9, 1, 2, 255]),
        Err(E::OptionOverrun {
            code: 61,
            offset: 243,
            len: 9
        })
    );
    // The length octet itself is missing.
    assert_eq!(
        decode_opts(&[0, 12]),
        Err(E::OptionOverrun {
            code: 12,
            offset: 241,
            len: 0
        })
    );
}

#[test]
fn option_overload_is_refused() {
    assert_eq!(
        decode_opts(&[53, 1, 1, 52, 1, 3, 255]),
        Err(E::OptionOverload)
    );
}

#[test]
fn missing_end() {
    assert_eq!(decode_opts(&[]), Err(E::MissingEnd));
    assert_eq!(decode_opts(&[53, 1, 1, 0, 0]), Err(E::MissingEnd));
}

#[test]
fn data_after_end() {
    assert_eq!(decode_opts(&[53, 1, 1, 255, 0, 0, 1]), Err(E::DataAfterEnd));
    assert!(decode_opts(&[53, 1, 1, 255, 0, 0, 0]).is_ok());
}

#[test]
fn bad_lease_time_length() {
    let e = decode_opts(&[51, 3, 0, 0, 1, 255]).unwrap_err();
    assert_eq!(
        e,
        E::BadOptionLength {
            code: 51,
            len: 3,
            expected: "expected 4"
        }
    );
}

#[test]
fn bad_message_type_length_and_value() {
    assert!(bad_len(53, 2)(
        &decode_opts(&[53, 2, 1, 1, 255]).unwrap_err()
    ));
    assert!(bad_len(53, 0)(&decode_opts(&[53, 0, 255]).unwrap_err()));
    assert_eq!(
        decode_opts(&[53, 1, 19, 255]),
        Err(E::UnknownMessageType(19))
    );
    assert_eq!(decode_opts(&[53, 1, 0, 255]), Err(E::UnknownMessageType(0)));
}

#[test]
fn no_message_type_is_for_callers() {
    let m = decode_opts(&[255]).unwrap();
    assert_eq!(m.require_message_type(), Err(E::NoMessageType));
}

#[test]
fn bad_status_code() {
    assert!(bad_len(151, 0)(&decode_opts(&[151, 0, 255]).unwrap_err()));
    assert_eq!(
        decode_opts(&[151, 3, 0, 0xff, 0xfe, 255]),
        Err(E::BadOptionValue {
            code: 151,
            reason: "status message is not UTF-8"
        })
    );
}

#[test]
fn bad_base_time_length() {
    assert!(bad_len(152, 5)(
        &decode_opts(&[152, 5, 0, 0, 0, 0, 0, 255]).unwrap_err()
    ));
}

#[test]
fn other_length_rules() {
    let cases: &[(&[u8], u8, usize)] = &[
        (&[1, 3, 0, 0, 0], 1, 3),
        (&[3, 0], 3, 0),
        (&[6, 6, 0, 0, 0, 0, 0, 0], 6, 6),
        (&[92, 0], 92, 0),
        (&[50, 5, 0, 0, 0, 0, 0], 50, 5),
        (&[54, 0], 54, 0),
        (&[55, 0], 55, 0),
        (&[12, 0], 12, 0),
        (&[15, 0], 15, 0),
        (&[60, 0], 60, 0),
        (&[61, 1, 1], 61, 1), // RFC 2132 §9.14: minimum 2
        (&[82, 0], 82, 0),
        (&[82, 1, 1], 82, 1),
        (&[58, 2, 0, 0], 58, 2),
        (&[59, 0], 59, 0),
        (&[91, 8, 0, 0, 0, 0, 0, 0, 0, 0], 91, 8),
        (&[153, 1, 0], 153, 1),
        (&[154, 3, 0, 0, 0], 154, 3),
        (&[155, 0], 155, 0),
        (&[156, 2, 1, 1], 156, 2),
        (&[157, 0], 157, 0),
    ];
    for (opts, code, len) in cases {
        let mut v = opts.to_vec();
        v.push(255);
        let e = decode_opts(&v).unwrap_err();
        assert!(bad_len(*code, *len)(&e), "{opts:?}: {e:?}");
    }
}

#[test]
fn joined_fragments_are_length_checked_as_a_whole() {
    // Two 4-byte lease times join into one 8-byte value (RFC 3396 §7).
    assert!(bad_len(51, 8)(
        &decode_opts(&[51, 4, 0, 0, 0, 1, 51, 4, 0, 0, 0, 2, 255]).unwrap_err()
    ));
    // Two 2-byte halves join into a valid one.
    let m = decode_opts(&[51, 2, 0, 0, 51, 2, 0, 9, 255]).unwrap();
    assert_eq!(m.options, vec![O::LeaseTime(9)]);
}

#[test]
fn sub_option_overrun() {
    // Sub-option 2 claims 5 bytes, 1 left in the option.
    assert_eq!(
        decode_opts(&[82, 5, 1, 0, 2, 5, 9, 255]),
        Err(E::SubOptionOverrun { sub: 2, len: 5 })
    );
    // Sub-option 7 has no length octet.
    assert_eq!(
        decode_opts(&[82, 3, 1, 0, 7, 255]),
        Err(E::SubOptionOverrun { sub: 7, len: 0 })
    );
}

#[test]
fn encode_refuses_what_decode_refuses() {
    let enc = |o: O| {
        Message {
            options: vec![o],
            ..Message::default()
        }
        .to_bytes()
    };
    assert!(bad_len(3, 0)(&enc(O::Router(vec![])).unwrap_err()));
    assert!(bad_len(61, 1)(&enc(O::ClientId(vec![1])).unwrap_err()));
    assert!(bad_len(12, 0)(&enc(O::Hostname(vec![])).unwrap_err()));
    assert!(bad_len(82, 0)(
        &enc(O::RelayAgentInfo(RelayAgentInfo::default())).unwrap_err()
    ));
    assert!(matches!(
        enc(O::RelayAgentInfo(RelayAgentInfo {
            sub_options: vec![SubOption {
                code: 1,
                data: vec![0; 256]
            }]
        })),
        Err(E::BadOptionValue { code: 82, .. })
    ));
    assert!(matches!(
        enc(O::Unknown {
            code: 0,
            data: vec![1]
        }),
        Err(E::BadOptionValue { code: 0, .. })
    ));
    assert!(matches!(
        enc(O::Unknown {
            code: 255,
            data: vec![]
        }),
        Err(E::BadOptionValue { code: 255, .. })
    ));
    assert_eq!(
        enc(O::Unknown {
            code: 52,
            data: vec![1]
        }),
        Err(E::OptionOverload)
    );
    // A raw value under a typed code is checked against that type.
    assert!(bad_len(51, 3)(
        &enc(O::Unknown {
            code: 51,
            data: vec![0; 3]
        })
        .unwrap_err()
    ));
    assert_eq!(
        enc(O::Unknown {
            code: 53,
            data: vec![99]
        }),
        Err(E::UnknownMessageType(99))
    );
    assert!(matches!(
        enc(O::Unknown {
            code: 151,
            data: vec![0, 0xff]
        }),
        Err(E::BadOptionValue { code: 151, .. })
    ));
    assert!(matches!(
        enc(O::Unknown {
            code: 82,
            data: vec![1, 9]
        }),
        Err(E::SubOptionOverrun { sub: 1, len: 9 })
    ));

    let mut m = Message {
        op: 0,
        ..Message::default()
    };
    assert_eq!(m.to_bytes(), Err(E::BadOp(0)));
    m.op = 2;
    m.hlen = 17;
    assert_eq!(m.to_bytes(), Err(E::BadHlen(17)));
}

#[test]
fn too_long() {
    let big = O::Unknown {
        code: 224,
        data: vec![7; 40_000],
    };
    let m = Message {
        options: vec![
            big.clone(),
            O::Unknown {
                code: 225,
                data: vec![7; 40_000],
            },
        ],
        ..Message::default()
    };
    let mut out = vec![1, 2, 3];
    let e = m.encode(&mut out).unwrap_err();
    // 240 + 2 * (40_000 + 2 * 157 fragment headers) + END
    assert_eq!(e, E::TooLong(240 + 2 * (40_000 + 2 * 157) + 1));
    assert_eq!(out, vec![1, 2, 3], "out is left unchanged on error");

    // Just under the limit is fine.
    let m = Message {
        options: vec![big],
        ..Message::default()
    };
    assert!(m.to_bytes().unwrap().len() <= 65535);
}
