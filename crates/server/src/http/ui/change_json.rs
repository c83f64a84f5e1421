//! A binding change as the live table shows it: the address, its new
//! state, who holds it, and when (Unix seconds; the page formats them).
//! Byte strings in the control API's form, `aa:bb:cc`.

use std::net::Ipv4Addr;

use leaseline_proto::text::format_mac as hex_colon;
use leaseline_proto::{Binding, DhcpState};
use serde_json::{json, Value};

fn state_name(s: DhcpState) -> String {
    format!("{s:?}").to_ascii_lowercase()
}

/// `binding` as of feed time `time`; `None`: the store has no row for `ip`.
pub(super) fn change(ip: Ipv4Addr, binding: Option<&Binding>, time: u32) -> Value {
    let Some(b) = binding else {
        return json!({"ip-address": ip.to_string(), "state": "available", "time": time});
    };
    let hex = |v: &Option<Vec<u8>>| v.as_deref().map(hex_colon);
    json!({
        "ip-address": ip.to_string(),
        "state": state_name(b.state),
        "hw-address": (!b.chaddr.is_empty()).then(|| hex_colon(&b.chaddr)),
        "client-id": hex(&b.client_id),
        "circuit-id": hex(&b.circuit_id),
        "remote-id": hex(&b.remote_id),
        "hostname": b.hostname.as_deref().map(|h| String::from_utf8_lossy(h).into_owned()),
        "expire": b.expiry,
        "time": time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_its_holder_and_a_missing_row_is_available() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let mut b = Binding::available(ip);
        b.state = DhcpState::Active;
        b.chaddr = vec![0x52, 0x54, 0, 0, 0, 1];
        b.client_id = Some(vec![1, 0x52]);
        b.expiry = 1_700_000_600;
        let v = change(ip, Some(&b), 1_700_000_000);
        assert_eq!(v["ip-address"], "10.0.0.7");
        assert_eq!(v["state"], "active");
        assert_eq!(v["hw-address"], "52:54:00:00:00:01");
        assert_eq!(v["client-id"], "01:52");
        assert_eq!(v["remote-id"], Value::Null);
        assert_eq!(v["time"], 1_700_000_000);
        let v = change(ip, None, 5);
        assert_eq!(v["state"], "available");
    }
}
