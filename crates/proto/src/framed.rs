//! Messages on a leasequery TCP connection: 2-byte length, then the message
//! (RFC 6926 §6.3, RFC 7724 §5.1).

use leaseline_wire::Message;

/// Append `m` framed, encoding in place. A message that does not encode or
/// does not fit a 16-bit length is left out, never half-written.
pub fn frame_into(out: &mut Vec<u8>, m: &Message) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    match m.encode(out) {
        Ok(()) => match u16::try_from(out.len() - at - 2) {
            Ok(len) => out[at..at + 2].copy_from_slice(&len.to_be_bytes()),
            Err(_) => out.truncate(at),
        },
        Err(_) => out.truncate(at),
    }
}
