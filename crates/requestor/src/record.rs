//! One binding as a requestor learns it from a DHCPLEASEACTIVE or
//! DHCPLEASEUNASSIGNED reply (Bulk and Active Leasequery carry the same
//! contents, RFC 7724 §4). Relative times on the wire (RFC 6926 §6.2.5:
//! ages against base-time) become absolute server times here.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use leaseline_proto::text::{format_hex, format_mac, TimeFormat};
use leaseline_proto::DhcpState;
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub ip: Ipv4Addr,
    /// DHCPLEASEACTIVE or DHCPLEASEUNASSIGNED.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// dhcp-state (option 156); ACTIVE is implied by DHCPLEASEACTIVE when absent.
    pub state: Option<DhcpState>,
    pub htype: u8,
    /// Hardware address as `aa:bb:..`, None when hlen is 0.
    pub mac: Option<String>,
    /// Client identifier (option 61) as hex.
    pub client_id: Option<String>,
    /// Server time the message was built (option 152).
    pub base_time: Option<u32>,
    /// Absolute client-last-transaction-time (option 91 against base-time).
    pub cltt: Option<u32>,
    /// Absolute start of the current state (option 153 against base-time).
    pub state_since: Option<u32>,
    /// Absolute expiry of the lease or state (option 51 against base-time).
    pub expiry: Option<u32>,
    pub data_source: Option<u8>,
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    pub relay_id: Option<String>,
    pub server_id: Option<Ipv4Addr>,
    pub xid: u32,
}

impl Record {
    /// The record a binding reply carries; None for any other message.
    pub fn from_reply(m: &Message) -> Option<Record> {
        let kind = match m.message_type()? {
            MessageType::LeaseActive => "DHCPLEASEACTIVE",
            MessageType::LeaseUnassigned => "DHCPLEASEUNASSIGNED",
            _ => return None,
        };
        let mut r = Record {
            ip: m.ciaddr,
            kind,
            state: None,
            htype: m.htype,
            mac: (m.hlen > 0).then(|| format_mac(m.hw_addr())),
            client_id: None,
            base_time: None,
            cltt: None,
            state_since: None,
            expiry: None,
            data_source: None,
            circuit_id: None,
            remote_id: None,
            relay_id: None,
            server_id: None,
            xid: m.xid,
        };
        let (mut cltt_age, mut state_age, mut lease_left) = (None, None, None);
        for o in &m.options {
            match o {
                DhcpOption::DhcpState(s) => r.state = DhcpState::from_u8(*s),
                DhcpOption::ClientId(id) => r.client_id = Some(format_hex(id)),
                DhcpOption::BaseTime(t) => r.base_time = Some(*t),
                DhcpOption::ClientLastTransactionTime(a) => cltt_age = Some(*a),
                DhcpOption::StartTimeOfState(a) => state_age = Some(*a),
                DhcpOption::LeaseTime(l) => lease_left = Some(*l),
                DhcpOption::DataSource(d) => r.data_source = Some(*d),
                DhcpOption::ServerId(s) => r.server_id = Some(*s),
                DhcpOption::RelayAgentInfo(rai) => r.set_relay(rai),
                _ => {}
            }
        }
        if r.state.is_none() && kind == "DHCPLEASEACTIVE" {
            r.state = Some(DhcpState::Active);
        }
        if let Some(base) = r.base_time {
            r.cltt = cltt_age.map(|a| base.saturating_sub(a));
            r.state_since = state_age.map(|a| base.saturating_sub(a));
            r.expiry = lease_left.map(|l| base.saturating_add(l));
        }
        Some(r)
    }

    fn set_relay(&mut self, rai: &RelayAgentInfo) {
        self.circuit_id = rai.circuit_id().map(format_hex);
        self.remote_id = rai.remote_id().map(format_hex);
        self.relay_id = rai.relay_id().map(format_hex);
    }

    /// One human-readable line; times as `times` prints them
    /// (RFC 3339, or Unix seconds with `--epoch`).
    pub fn line(&self, times: TimeFormat) -> String {
        let mut s = format!(
            "{:<15} {:<11}",
            self.ip,
            self.state
                .map(DhcpState::name)
                .unwrap_or(if self.kind == "DHCPLEASEACTIVE" {
                    "ACTIVE"
                } else {
                    "UNASSIGNED"
                })
        );
        let mut field = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                let _ = write!(s, " {k}={v}");
            }
        };
        field("mac", &self.mac);
        field("client-id", &self.client_id);
        field("circuit-id", &self.circuit_id);
        field("remote-id", &self.remote_id);
        field("relay-id", &self.relay_id);
        for (k, t) in [
            ("expiry", self.expiry),
            ("cltt", self.cltt),
            ("since", self.state_since),
        ] {
            if let Some(t) = t {
                let _ = write!(s, " {k}={}", times.time(t));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaseline_proto::{build_bulk_reply, Binding};

    #[test]
    fn reply_times_become_absolute() {
        let mut b = Binding::available(Ipv4Addr::new(10, 0, 0, 7));
        b.state = DhcpState::Active;
        b.htype = 1;
        b.chaddr = vec![0, 0x0c, 1, 2, 3, 4];
        b.client_id = Some(vec![1, 0, 0x0c, 1, 2, 3, 4]);
        b.cltt = 1_000;
        b.state_since = 900;
        b.expiry = 4_600;
        b.lease_time = 3_600;
        let prl = [51, 61, 82, 91, 152, 153, 156];
        let m = build_bulk_reply(5, &b, 1_100, true, Ipv4Addr::LOCALHOST, &prl, &[]);
        let r = Record::from_reply(&m).expect("a binding reply");
        assert_eq!(r.ip, b.ip);
        assert_eq!(r.state, Some(DhcpState::Active));
        assert_eq!(r.mac.as_deref(), Some("00:0c:01:02:03:04"));
        assert_eq!(r.client_id.as_deref(), Some("01000c01020304"));
        assert_eq!(
            (r.base_time, r.cltt, r.state_since, r.expiry),
            (Some(1_100), Some(1_000), Some(900), Some(4_600))
        );
        assert_eq!(r.server_id, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            r.line(TimeFormat::Rfc3339),
            "10.0.0.7        ACTIVE      mac=00:0c:01:02:03:04 client-id=01000c01020304 \
             expiry=1970-01-01T01:16:40Z cltt=1970-01-01T00:16:40Z since=1970-01-01T00:15:00Z"
        );
        assert_eq!(
            r.line(TimeFormat::Epoch),
            "10.0.0.7        ACTIVE      mac=00:0c:01:02:03:04 client-id=01000c01020304 \
             expiry=4600 cltt=1000 since=900"
        );
    }
}
