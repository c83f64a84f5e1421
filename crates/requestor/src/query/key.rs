//! What a DHCPLEASEQUERY asks about, and what the wire can carry.

use std::net::Ipv4Addr;

use super::QueryError;

/// What a DHCPLEASEQUERY asks about: exactly one key (RFC 4388 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKey {
    /// ciaddr = the address; htype, hlen, chaddr zero; no option 61.
    Ip(Ipv4Addr),
    /// htype/hlen/chaddr = the hardware address (1 to 16 octets).
    Mac { htype: u8, chaddr: Vec<u8> },
    /// Option 61.
    ClientId(Vec<u8>),
    /// Option 82 holding only a remote-id sub-option (RFC 6148 §4.1).
    RemoteId(Vec<u8>),
}

impl QueryKey {
    /// Short name: "ip", "mac", "client_id", "remote_id".
    pub fn name(&self) -> &'static str {
        match self {
            QueryKey::Ip(_) => "ip",
            QueryKey::Mac { .. } => "mac",
            QueryKey::ClientId(_) => "client_id",
            QueryKey::RemoteId(_) => "remote_id",
        }
    }

    /// Checks what the wire format can carry.
    pub fn validate(&self) -> Result<(), QueryError> {
        match self {
            QueryKey::Ip(ip) if ip.is_unspecified() => {
                Err(QueryError::BadKey("the address to query is 0.0.0.0".into()))
            }
            QueryKey::Mac { chaddr, .. } if chaddr.is_empty() || chaddr.len() > 16 => {
                Err(QueryError::BadKey(format!(
                    "a hardware address has 1 to 16 octets, not {}",
                    chaddr.len()
                )))
            }
            QueryKey::Mac { chaddr, .. } if chaddr.iter().all(|&b| b == 0) => {
                Err(QueryError::BadKey(
                    "an all-zero hardware address is no query key (RFC 4388 §6.3)".into(),
                ))
            }
            // RFC 2132 §9.14: a client-id is a type octet plus at least one more.
            QueryKey::ClientId(v) if v.len() < 2 || v.len() > 255 => Err(QueryError::BadKey(
                "a client-id has 2 to 255 octets (RFC 2132 §9.14)".into(),
            )),
            QueryKey::RemoteId(v) if v.is_empty() || v.len() > 253 => Err(QueryError::BadKey(
                "a remote-id has 1 to 253 octets (it must fit in option 82)".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_keys_are_refused() {
        assert!(QueryKey::Ip(Ipv4Addr::UNSPECIFIED).validate().is_err());
        assert!(QueryKey::Mac {
            htype: 1,
            chaddr: vec![0; 6]
        }
        .validate()
        .is_err());
        assert!(QueryKey::Mac {
            htype: 1,
            chaddr: vec![1; 17]
        }
        .validate()
        .is_err());
        assert!(QueryKey::ClientId(vec![]).validate().is_err());
        assert!(QueryKey::ClientId(vec![1]).validate().is_err());
        assert!(QueryKey::RemoteId(vec![0; 254]).validate().is_err());
        assert!(QueryKey::RemoteId(vec![0; 253]).validate().is_ok());
    }
}
