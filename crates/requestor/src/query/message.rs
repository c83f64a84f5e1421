//! Building a DHCPLEASEQUERY (RFC 4388 §6.2, RFC 6148 §4.1).

use std::net::Ipv4Addr;

use leaseline_wire::{
    pad_to_bootp_minimum, DhcpOption, Message, MessageType, RelayAgentInfo, SubOption, BOOTREQUEST,
};

use super::{QueryError, QueryKey};

/// A DHCPLEASEQUERY (RFC 4388 §6.2, RFC 6148 §4.1): BOOTREQUEST, the key,
/// giaddr = where the reply must go, option 53, then option 55 when `prl`
/// is not empty. Fields the key does not use are zero.
pub fn build_query(key: &QueryKey, xid: u32, giaddr: Ipv4Addr, prl: &[u8]) -> Message {
    let mut m = Message {
        op: BOOTREQUEST,
        htype: 0,
        hlen: 0,
        xid,
        giaddr,
        options: vec![DhcpOption::MessageType(MessageType::LeaseQuery)],
        ..Message::default()
    };
    match key {
        QueryKey::Ip(ip) => m.ciaddr = *ip,
        QueryKey::Mac { htype, chaddr } => {
            let n = chaddr.len().min(16);
            m.htype = *htype;
            m.hlen = n as u8;
            m.chaddr[..n].copy_from_slice(&chaddr[..n]);
        }
        QueryKey::ClientId(id) => m.options.push(DhcpOption::ClientId(id.clone())),
        QueryKey::RemoteId(id) => m.options.push(DhcpOption::RelayAgentInfo(RelayAgentInfo {
            sub_options: vec![SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: id.clone(),
            }],
        })),
    }
    if !prl.is_empty() {
        m.options
            .push(DhcpOption::ParameterRequestList(prl.to_vec()));
    }
    m
}

/// [`build_query`] encoded and padded to the BOOTP minimum of 300 octets.
pub fn encode_query(
    key: &QueryKey,
    xid: u32,
    giaddr: Ipv4Addr,
    prl: &[u8],
) -> Result<Vec<u8>, QueryError> {
    let mut out = build_query(key, xid, giaddr, prl)
        .to_bytes()
        .map_err(|e| QueryError::BadKey(e.to_string()))?;
    pad_to_bootp_minimum(&mut out);
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::prl;
    use leaseline_proto::{parse_leasequery, QueryKind};

    pub(in crate::query) const G: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

    /// A query for `key` encoded, then decoded as the server would.
    pub(in crate::query) fn roundtrip(key: &QueryKey) -> Message {
        let bytes = encode_query(key, 0x1234_5678, G, prl::UDP).unwrap();
        assert!(bytes.len() >= 300);
        Message::decode(&bytes).unwrap()
    }

    #[test]
    fn queries_carry_exactly_one_key_the_server_accepts() {
        let ip = Ipv4Addr::new(10, 0, 0, 10);
        let m = roundtrip(&QueryKey::Ip(ip));
        assert_eq!((m.htype, m.hlen, m.chaddr), (0, 0, [0; 16]));
        assert!(!m.has_option(61));
        assert_eq!(parse_leasequery(&m).unwrap().kind, QueryKind::ByIp(ip));

        let mac = vec![0, 0x0c, 1, 2, 3, 4];
        let m = roundtrip(&QueryKey::Mac {
            htype: 1,
            chaddr: mac.clone(),
        });
        assert_eq!((m.htype, m.hlen, m.ciaddr), (1, 6, Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            parse_leasequery(&m).unwrap().kind,
            QueryKind::ByMac {
                htype: 1,
                chaddr: mac
            }
        );

        let m = roundtrip(&QueryKey::ClientId(vec![1, 2, 3]));
        assert_eq!((m.htype, m.hlen), (0, 0));
        assert_eq!(
            parse_leasequery(&m).unwrap().kind,
            QueryKind::ByClientId(vec![1, 2, 3])
        );

        let m = roundtrip(&QueryKey::RemoteId(vec![9, 8]));
        let q = parse_leasequery(&m).unwrap();
        assert_eq!(q.kind, QueryKind::ByRemoteId(vec![9, 8]));
        assert_eq!(q.giaddr, G);
        assert_eq!(q.xid, 0x1234_5678);
        assert_eq!(q.prl, prl::UDP.to_vec());
    }

    #[test]
    fn no_prl_means_no_option_55() {
        let m = build_query(&QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)), 1, G, &[]);
        assert!(!m.has_option(55));
    }
}
