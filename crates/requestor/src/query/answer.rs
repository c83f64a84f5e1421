//! Reading a DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED or DHCPLEASEUNKNOWN
//! (RFC 4388 §6.4), and printing it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use leaseline_proto::text::{format_hex, format_mac, TimeFormat};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, BOOTREPLY};
use serde::Serialize;

/// The three answers to a DHCPLEASEQUERY (RFC 4388 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ReplyKind {
    #[serde(rename = "DHCPLEASEACTIVE")]
    Active,
    #[serde(rename = "DHCPLEASEUNASSIGNED")]
    Unassigned,
    #[serde(rename = "DHCPLEASEUNKNOWN")]
    Unknown,
}

impl ReplyKind {
    pub fn from_message_type(t: MessageType) -> Option<ReplyKind> {
        match t {
            MessageType::LeaseActive => Some(ReplyKind::Active),
            MessageType::LeaseUnassigned => Some(ReplyKind::Unassigned),
            MessageType::LeaseUnknown => Some(ReplyKind::Unknown),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::Active => "DHCPLEASEACTIVE",
            ReplyKind::Unassigned => "DHCPLEASEUNASSIGNED",
            ReplyKind::Unknown => "DHCPLEASEUNKNOWN",
        }
    }
}

/// Option 82 of a reply, sub-options as hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayInfo {
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    /// Sub-option 12 (RFC 6925).
    pub relay_id: Option<String>,
    /// Every other sub-option, in wire order.
    pub other: Vec<RawOption>,
}

impl RelayInfo {
    fn from_wire(r: &RelayAgentInfo) -> RelayInfo {
        RelayInfo {
            circuit_id: r.circuit_id().map(format_hex),
            remote_id: r.remote_id().map(format_hex),
            relay_id: r.relay_id().map(format_hex),
            other: r
                .sub_options
                .iter()
                .filter(|s| {
                    ![
                        RelayAgentInfo::CIRCUIT_ID,
                        RelayAgentInfo::REMOTE_ID,
                        RelayAgentInfo::RELAY_ID,
                    ]
                    .contains(&s.code)
                })
                .map(|s| RawOption {
                    code: s.code,
                    data: format_hex(&s.data),
                })
                .collect(),
        }
    }
}

/// An option (or sub-option) shown as its code and hex value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawOption {
    pub code: u8,
    pub data: String,
}

/// What a reply says. Times are as on the wire: remaining seconds (51, 58,
/// 59) and seconds ago (91), relative to when the server sent the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    #[serde(rename = "type")]
    pub kind: ReplyKind,
    /// ciaddr: the address the answer is about; None when zero.
    pub ip: Option<Ipv4Addr>,
    /// htype; None when hlen is 0.
    pub htype: Option<u8>,
    /// htype/hlen/chaddr as `aa:bb:..`; None when hlen is 0.
    pub mac: Option<String>,
    /// Option 61 as hex.
    pub client_id: Option<String>,
    /// Option 51: seconds until the lease expires.
    pub lease_time_remaining: Option<u32>,
    /// Option 58: seconds until T1.
    pub renewal_time_remaining: Option<u32>,
    /// Option 59: seconds until T2.
    pub rebinding_time_remaining: Option<u32>,
    /// Option 91: seconds since the client's last transaction.
    pub cltt_age: Option<u32>,
    /// Option 92: the client's other addresses.
    pub associated_ips: Vec<Ipv4Addr>,
    /// Option 82.
    pub relay_agent_info: Option<RelayInfo>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Every other option except 53 and 55, in wire order.
    pub other_options: Vec<RawOption>,
    pub xid: u32,
    /// giaddr as the server sent it back.
    pub giaddr: Ipv4Addr,
}

impl Answer {
    /// The answer a BOOTREPLY of type 11, 12 or 13 carries; None otherwise.
    pub fn from_reply(m: &Message) -> Option<Answer> {
        if m.op != BOOTREPLY {
            return None;
        }
        let kind = ReplyKind::from_message_type(m.message_type()?)?;
        let hw = m.hw_addr();
        let mut a = Answer {
            kind,
            ip: (!m.ciaddr.is_unspecified()).then_some(m.ciaddr),
            htype: (!hw.is_empty()).then_some(m.htype),
            mac: (!hw.is_empty()).then(|| format_mac(hw)),
            client_id: None,
            lease_time_remaining: None,
            renewal_time_remaining: None,
            rebinding_time_remaining: None,
            cltt_age: None,
            associated_ips: Vec::new(),
            relay_agent_info: None,
            server_id: None,
            other_options: Vec::new(),
            xid: m.xid,
            giaddr: m.giaddr,
        };
        for o in &m.options {
            match o {
                DhcpOption::MessageType(_) | DhcpOption::ParameterRequestList(_) => {}
                DhcpOption::ClientId(id) => a.client_id = Some(format_hex(id)),
                DhcpOption::LeaseTime(t) => a.lease_time_remaining = Some(*t),
                DhcpOption::RenewalTime(t) => a.renewal_time_remaining = Some(*t),
                DhcpOption::RebindingTime(t) => a.rebinding_time_remaining = Some(*t),
                DhcpOption::ClientLastTransactionTime(t) => a.cltt_age = Some(*t),
                DhcpOption::AssociatedIp(ips) => a.associated_ips.extend_from_slice(ips),
                DhcpOption::RelayAgentInfo(r) => a.relay_agent_info = Some(RelayInfo::from_wire(r)),
                DhcpOption::ServerId(s) => a.server_id = Some(*s),
                other => a.other_options.push(raw_option(other)),
            }
        }
        Some(a)
    }

    /// A readable multi-line rendering (no trailing newline); durations
    /// as `times` prints them (`16m30s`, or `990s` with `--epoch`).
    pub fn to_text(&self, times: TimeFormat) -> String {
        let mut s = String::from(self.kind.name());
        let mut line = |k: &str, v: String| {
            let _ = write!(s, "\n  {k:<17} {v}");
        };
        if let Some(ip) = self.ip {
            line("ip", ip.to_string());
        }
        if let (Some(mac), Some(ht)) = (&self.mac, self.htype) {
            line("mac", format!("{mac} (htype {ht})"));
        }
        if let Some(c) = &self.client_id {
            line("client-id", c.clone());
        }
        if let Some(t) = self.lease_time_remaining {
            line("lease remaining", times.duration(t));
        }
        if let Some(t) = self.renewal_time_remaining {
            line("renewal (T1) in", times.duration(t));
        }
        if let Some(t) = self.rebinding_time_remaining {
            line("rebinding (T2) in", times.duration(t));
        }
        if let Some(t) = self.cltt_age {
            line("last transaction", format!("{} ago", times.duration(t)));
        }
        if !self.associated_ips.is_empty() {
            let ips: Vec<String> = self
                .associated_ips
                .iter()
                .map(Ipv4Addr::to_string)
                .collect();
            line("associated ips", ips.join(", "));
        }
        if let Some(r) = &self.relay_agent_info {
            if let Some(v) = &r.circuit_id {
                line("circuit-id", v.clone());
            }
            if let Some(v) = &r.remote_id {
                line("remote-id", v.clone());
            }
            if let Some(v) = &r.relay_id {
                line("relay-id", v.clone());
            }
            for o in &r.other {
                line(&format!("relay sub-opt {}", o.code), o.data.clone());
            }
        }
        for o in &self.other_options {
            line(&format!("option {}", o.code), o.data.clone());
        }
        if let Some(sid) = self.server_id {
            line("server-id", sid.to_string());
        }
        s
    }
}

fn raw_option(o: &DhcpOption) -> RawOption {
    // Encode the lone option through the codec to get its value bytes.
    let code = o.code();
    let probe = Message {
        options: vec![o.clone()],
        ..Message::default()
    };
    let data = probe
        .to_bytes()
        .ok()
        .and_then(|b| {
            // 240 octets of header and cookie, then code, length, value.
            let body = b.get(240..)?;
            let mut i = 0;
            let mut value = Vec::new();
            while i + 1 < body.len() && body[i] == code {
                let len = body[i + 1] as usize;
                value.extend_from_slice(body.get(i + 2..i + 2 + len)?);
                i += 2 + len;
            }
            Some(value)
        })
        .unwrap_or_default();
    RawOption {
        code,
        data: format_hex(&data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::message::tests::{roundtrip, G};
    use crate::query::QueryKey;
    use leaseline_proto::parse_leasequery;

    #[test]
    fn answers_are_read_from_server_replies() {
        use leaseline_proto::{
            build_leaseactive, build_leaseunknown, Binding, DhcpState, ExtraOptions,
        };
        let q = parse_leasequery(&roundtrip(&QueryKey::Mac {
            htype: 1,
            chaddr: vec![0, 0x0c, 1, 2, 3, 4],
        }))
        .unwrap();
        let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, 7));
        b.state = DhcpState::Active;
        b.htype = 1;
        b.chaddr = vec![0, 0x0c, 1, 2, 3, 4];
        b.client_id = Some(vec![1, 0, 0x0c, 1, 2, 3, 4]);
        b.cltt = 1_000;
        b.state_since = 1_000;
        b.expiry = 4_600;
        b.lease_time = 3_600;
        let now = 1_100;
        let m = build_leaseactive(
            &q,
            &b,
            &[Ipv4Addr::new(10, 0, 0, 8)],
            now,
            G,
            &ExtraOptions::NONE,
        );
        let m = Message::decode(&m.to_bytes().unwrap()).unwrap();
        let a = Answer::from_reply(&m).unwrap();
        assert_eq!(a.kind, ReplyKind::Active);
        assert_eq!(a.ip, Some(b.ip));
        assert_eq!(a.mac.as_deref(), Some("00:0c:01:02:03:04"));
        assert_eq!(a.client_id.as_deref(), Some("01000c01020304"));
        assert_eq!(a.lease_time_remaining, Some(3_500));
        assert_eq!(a.cltt_age, Some(100));
        assert_eq!(a.associated_ips, vec![Ipv4Addr::new(10, 0, 0, 8)]);
        assert_eq!(a.server_id, Some(G));
        assert!(a.other_options.is_empty(), "{:?}", a.other_options);
        let text = a.to_text(TimeFormat::Rfc3339);
        assert!(text.starts_with("DHCPLEASEACTIVE"), "{text}");
        assert!(text.contains("10.0.0.8"), "{text}");
        assert!(text.contains("\n  lease remaining   58m20s\n"), "{text}");
        assert!(text.contains("\n  last transaction  1m40s ago"), "{text}");
        let text = a.to_text(TimeFormat::Epoch);
        assert!(text.contains("\n  lease remaining   3500s\n"), "{text}");
        assert!(text.contains("\n  last transaction  100s ago"), "{text}");
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["type"], "DHCPLEASEACTIVE");
        assert_eq!(json["associated_ips"][0], "10.0.0.8");

        let m = build_leaseunknown(&q, G);
        let a = Answer::from_reply(&m).unwrap();
        assert_eq!(a.kind, ReplyKind::Unknown);
        assert_eq!(a.ip, None);
    }

    #[test]
    fn other_options_keep_their_bytes() {
        let o = raw_option(&DhcpOption::Unknown {
            code: 200,
            data: vec![1, 2, 0xff],
        });
        assert_eq!(
            o,
            RawOption {
                code: 200,
                data: "0102ff".into()
            }
        );
        let o = raw_option(&DhcpOption::Hostname(b"ab".to_vec()));
        assert_eq!(
            o,
            RawOption {
                code: 12,
                data: "6162".into()
            }
        );
    }

    #[test]
    fn requests_are_not_answers() {
        let m = roundtrip(&QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(Answer::from_reply(&m).is_none());
    }
}
