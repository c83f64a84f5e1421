//! Option 82 (RFC 3046) payload bytes <-> [`RelayAgentInfo`]. The store keeps
//! the payload raw (`Binding::relay_info`); replies carry it typed.

use leaseline_wire::{RelayAgentInfo, SubOption};

/// Parse an option 82 payload (sub-options back to back: code, len, data).
/// `None` when a sub-option runs past the end.
pub fn relay_info_from_raw(raw: &[u8]) -> Option<RelayAgentInfo> {
    let mut sub_options = Vec::new();
    let mut rest = raw;
    while let [code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let data = tail.get(..len)?;
        sub_options.push(SubOption {
            code: *code,
            data: data.to_vec(),
        });
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        // A lone trailing byte: a code without a length.
        return None;
    }
    Some(RelayAgentInfo { sub_options })
}

/// Encode a [`RelayAgentInfo`] as its option 82 payload. `None` when a
/// sub-option is longer than 255 bytes (RFC 3046 §2.0: one-octet length).
pub fn relay_info_to_raw(info: &RelayAgentInfo) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for s in &info.sub_options {
        let len = u8::try_from(s.data.len()).ok()?;
        out.push(s.code);
        out.push(len);
        out.extend_from_slice(&s.data);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = [1, 2, 0xaa, 0xbb, 2, 0, 12, 1, 7];
        let info = relay_info_from_raw(&raw).unwrap();
        assert_eq!(info.circuit_id(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(info.remote_id(), Some(&[][..]));
        assert_eq!(info.relay_id(), Some(&[7][..]));
        assert_eq!(relay_info_to_raw(&info).unwrap(), raw);
        assert_eq!(relay_info_from_raw(&[]).unwrap().sub_options.len(), 0);
    }

    #[test]
    fn malformed() {
        assert!(relay_info_from_raw(&[1]).is_none());
        assert!(relay_info_from_raw(&[1, 3, 0, 0]).is_none());
        let long = RelayAgentInfo {
            sub_options: vec![SubOption {
                code: 2,
                data: vec![0; 256],
            }],
        };
        assert!(relay_info_to_raw(&long).is_none());
    }
}
