//! One encoding of a change, shared by every Active Leasequery session that
//! sends it. A committed change goes to every connected requestor, and the
//! message each gets differs only in its xid as long as base-time, the
//! requested options, the denied options and the server-id agree (RFC 7724
//! §7.4: the same contents as a bulk reply, whose xid is the query's,
//! RFC 6926 §8.3). So the first session to send a change encodes it into the
//! change's slot; the others copy those bytes and write their own xid.

use std::sync::OnceLock;

/// A change's framed message as one session built it.
#[derive(Debug)]
pub struct SharedWire {
    /// What the message depends on besides the binding and base-time:
    /// server-id, denied options, requested options (see [`WireKey`]).
    key: Box<[u8]>,
    base: u32,
    /// 2-byte length, then the message (RFC 6926 §6.3).
    framed: Box<[u8]>,
}

/// Where a change keeps its shared encoding: set once, by the first session.
pub type WireSlot = OnceLock<SharedWire>;

/// Offset of the xid in a framed message: 2-byte length, then op, htype,
/// hlen, hops (RFC 2131 §2).
const XID_AT: usize = 2 + 4;

/// A session's parameters that shape a message, as bytes to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireKey(Box<[u8]>);

impl WireKey {
    pub fn new(server_id: std::net::Ipv4Addr, denied: &[u8], prl: &[u8]) -> Self {
        let mut k = Vec::with_capacity(4 + 1 + denied.len() + prl.len());
        k.extend_from_slice(&server_id.octets());
        // Lengths keep (denied, prl) pairs apart: [1,2]+[3] is not [1]+[2,3].
        k.push(u8::try_from(denied.len()).unwrap_or(u8::MAX));
        k.extend_from_slice(denied);
        k.extend_from_slice(prl);
        WireKey(k.into_boxed_slice())
    }
}

/// Append the slot's message to `out` with `xid` if it was built for `key`
/// and `base`; false (nothing appended) otherwise.
pub fn copy_shared(slot: &WireSlot, key: &WireKey, base: u32, xid: u32, out: &mut Vec<u8>) -> bool {
    match slot.get() {
        Some(w) if w.base == base && *w.key == *key.0 && w.framed.len() >= XID_AT + 4 => {
            let at = out.len();
            out.extend_from_slice(&w.framed);
            out[at + XID_AT..at + XID_AT + 4].copy_from_slice(&xid.to_be_bytes());
            true
        }
        _ => false,
    }
}

/// Offer `framed` (just built for `key` and `base`) to the slot; the first
/// offer wins, later ones are dropped.
pub fn offer_shared(slot: &WireSlot, key: &WireKey, base: u32, framed: &[u8]) {
    if slot.get().is_none() && framed.len() >= XID_AT + 4 {
        let _ = slot.set(SharedWire {
            key: key.0.clone(),
            base,
            framed: framed.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn framed(xid: u32) -> Vec<u8> {
        let mut f = vec![0, 8, 2, 1, 6, 0];
        f.extend_from_slice(&xid.to_be_bytes());
        f
    }

    #[test]
    fn copy_patches_the_xid_and_needs_the_same_key_and_base() {
        let slot = WireSlot::new();
        let key = WireKey::new(Ipv4Addr::new(10, 0, 0, 1), &[92], &[1, 3]);
        let mut out = vec![0xEE];
        assert!(!copy_shared(&slot, &key, 100, 7, &mut out), "empty slot");
        offer_shared(&slot, &key, 100, &framed(1));
        assert!(copy_shared(&slot, &key, 100, 0xA1B2_C3D4, &mut out));
        let mut want = vec![0xEE];
        want.extend_from_slice(&framed(0xA1B2_C3D4));
        assert_eq!(out, want);

        let before = out.len();
        assert!(
            !copy_shared(&slot, &key, 101, 7, &mut out),
            "other base-time"
        );
        let other = WireKey::new(Ipv4Addr::new(10, 0, 0, 1), &[92], &[1]);
        assert!(!copy_shared(&slot, &other, 100, 7, &mut out), "other PRL");
        let moved = WireKey::new(Ipv4Addr::new(10, 0, 0, 1), &[92, 1], &[3]);
        assert!(
            !copy_shared(&slot, &moved, 100, 7, &mut out),
            "denied/PRL split"
        );
        assert_eq!(out.len(), before, "nothing appended on a miss");
    }

    #[test]
    fn first_offer_wins() {
        let slot = WireSlot::new();
        let key = WireKey::new(Ipv4Addr::new(10, 0, 0, 1), &[], &[]);
        offer_shared(&slot, &key, 5, &framed(1));
        offer_shared(&slot, &key, 6, &framed(2));
        let mut out = Vec::new();
        assert!(copy_shared(&slot, &key, 5, 9, &mut out));
        assert!(!copy_shared(&slot, &key, 6, 9, &mut out));
    }
}
