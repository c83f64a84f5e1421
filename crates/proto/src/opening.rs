//! How a leasequery TCP connection opens (RFC 7724 §7.2, §8.1), sans IO:
//! from its first message, decide between a plaintext session, the DHCPTLS
//! exchange and TLS, or a refusal.

use leaseline_wire::{DhcpOption, Message, MessageType, StatusCode, BOOTREPLY};

/// What to do with a connection's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// Not DHCPTLS, and plaintext is allowed: the session starts with it.
    Plain,
    /// Plaintext on a secure-only listener: close, sending nothing (RFC 7724 §8.1).
    RefusePlain,
    /// DHCPTLS on a listener without TLS: send this (DHCPTLS with
    /// TLSConnectionRefused), then close; nothing more is read (RFC 7724 §7.2).
    RefuseTls(Message),
    /// Bytes arrived after DHCPTLS, before the handshake: close without
    /// reading them (the STARTTLS injection flaw).
    EarlyData(usize),
    /// Send this DHCPTLS answer, then run the TLS handshake (RFC 7724 §8.1).
    StartTls(Message),
}

/// `first`: the first framed message; `buffered`: bytes already received
/// after it; `plaintext`: the listener takes plaintext sessions; `tls`: it
/// can run TLS.
pub fn opening(first: &[u8], buffered: usize, plaintext: bool, tls: bool) -> Opening {
    let msg = Message::decode(first).ok();
    if msg.as_ref().and_then(Message::message_type) != Some(MessageType::Tls) {
        return if plaintext {
            Opening::Plain
        } else {
            Opening::RefusePlain
        };
    }
    // DHCPTLS: its options are ignored (RFC 7724 §8.1).
    let xid = msg.map_or(0, |m| m.xid);
    if !tls {
        return Opening::RefuseTls(tls_answer(xid, Some(StatusCode::TlsConnectionRefused)));
    }
    if buffered > 0 {
        return Opening::EarlyData(buffered);
    }
    Opening::StartTls(tls_answer(xid, None))
}

/// The server's DHCPTLS message: the request's xid, and a status when refused.
fn tls_answer(xid: u32, status: Option<StatusCode>) -> Message {
    let mut m = Message {
        op: BOOTREPLY,
        xid,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options.push(DhcpOption::MessageType(MessageType::Tls));
    if let Some(code) = status {
        m.options.push(DhcpOption::StatusCode(code, String::new()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: MessageType, xid: u32) -> Vec<u8> {
        let m = Message {
            xid,
            options: vec![DhcpOption::MessageType(t)],
            ..Message::default()
        };
        m.to_bytes().expect("encodes")
    }

    #[test]
    fn each_opening() {
        let tls = msg(MessageType::Tls, 9);
        let bulk = msg(MessageType::BulkLeaseQuery, 9);
        assert_eq!(opening(&bulk, 0, true, true), Opening::Plain);
        assert_eq!(opening(&bulk, 0, false, true), Opening::RefusePlain);
        assert_eq!(opening(b"garbage", 0, false, true), Opening::RefusePlain);
        assert_eq!(opening(&tls, 5, true, true), Opening::EarlyData(5));
        let Opening::StartTls(a) = opening(&tls, 0, false, true) else {
            panic!("DHCPTLS starts TLS");
        };
        assert_eq!((a.xid, a.message_type()), (9, Some(MessageType::Tls)));
        assert!(!a
            .options
            .iter()
            .any(|o| matches!(o, DhcpOption::StatusCode(..))));
        let Opening::RefuseTls(r) = opening(&tls, 3, true, false) else {
            panic!("DHCPTLS without TLS is refused");
        };
        assert!(r.options.contains(&DhcpOption::StatusCode(
            StatusCode::TlsConnectionRefused,
            String::new()
        )));
    }
}
