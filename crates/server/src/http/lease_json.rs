//! A binding as the control API shows it: Kea's lease4 fields (so that
//! scripts written for `lease4-get` read it), and what Kea does not have in
//! `user-context.leaseline`. Byte strings in Kea's form, `aa:bb:cc`.

use leaseline_proto::text::format_mac as hex_colon;
use leaseline_proto::{Binding, DhcpState, DATA_SOURCE_REMOTE};
use serde_json::{json, Value};

use crate::config::Config;

/// Kea's lease state: 0 default (leased), 1 declined, 2 expired-reclaimed.
fn kea_state(s: DhcpState) -> u8 {
    match s {
        DhcpState::Active => 0,
        DhcpState::Abandoned => 1,
        _ => 2,
    }
}

/// Kea's subnet-id of the subnet holding `ip`: its position, from 1 (0:
/// none configured holds it).
pub(super) fn subnet_id(cfg: &Config, ip: std::net::Ipv4Addr) -> usize {
    cfg.subnets
        .iter()
        .position(|s| s.prefix.contains(&ip))
        .map_or(0, |i| i + 1)
}

pub(super) fn lease(cfg: &Config, b: &Binding) -> Value {
    let hex = |v: &Option<Vec<u8>>| v.as_deref().map(hex_colon);
    let mut lease = json!({
        "ip-address": b.ip.to_string(),
        "hw-address": hex_colon(&b.chaddr),
        "valid-lft": b.lease_time,
        "cltt": b.cltt,
        "subnet-id": subnet_id(cfg, b.ip),
        "state": kea_state(b.state),
        "fqdn-fwd": false,
        "fqdn-rev": false,
        "hostname": b.hostname.as_deref().map(|h| String::from_utf8_lossy(h).into_owned()).unwrap_or_default(),
        "user-context": {
            "leaseline": {
                "state": format!("{:?}", b.state).to_ascii_lowercase(),
                "expire": b.expiry,
                "state-since": b.state_since,
                "circuit-id": hex(&b.circuit_id),
                "remote-id": hex(&b.remote_id),
                "relay-id": hex(&b.relay_id),
                "remote": b.data_source & DATA_SOURCE_REMOTE != 0,
            }
        }
    });
    if let Some(id) = &b.client_id {
        lease["client-id"] = Value::String(hex_colon(id));
    }
    lease
}
