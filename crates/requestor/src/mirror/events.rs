//! `--events FILE|-`: one JSON line per change applied to the replica, for
//! log shippers and SIEMs.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use leaseline_proto::text::{format_hex, format_mac, TimeFormat};
use leaseline_proto::Binding;
use serde_json::json;

pub struct EventSink {
    out: Option<Box<dyn Write + Send>>,
}

impl EventSink {
    pub fn open(path: Option<&Path>) -> io::Result<EventSink> {
        let out: Option<Box<dyn Write + Send>> = match path {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(io::stdout())),
            Some(p) => Some(Box::new(BufWriter::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            ))),
        };
        Ok(EventSink { out })
    }

    pub fn write(&mut self, b: &Binding, base_time: u32) {
        let Some(out) = self.out.as_mut() else { return };
        let mut line = binding_json(b, Some(base_time)).to_string();
        line.push('\n');
        // A log shipper tails this: one whole line per change, in one
        // write, flushed.
        let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    }
}

/// A binding as one JSON object (events, `mirror query --json`).
pub fn binding_json(b: &Binding, base_time: Option<u32>) -> serde_json::Value {
    json!({
            "ip": b.ip,
            "state": b.state.name(),
            "mac": (!b.chaddr.is_empty()).then(|| format_mac(&b.chaddr)),
            "client_id": b.client_id.as_deref().map(format_hex),
            "circuit_id": b.circuit_id.as_deref().map(format_hex),
            "remote_id": b.remote_id.as_deref().map(format_hex),
            "relay_id": b.relay_id.as_deref().map(format_hex),
            "expiry": (b.expiry != 0).then_some(b.expiry),
            "cltt": (b.cltt != 0).then_some(b.cltt),
            "state_since": b.state_since,
            "base_time": base_time,
    })
}

/// A binding as one readable line; times as `times` prints them (RFC
/// 3339, or Unix seconds with `--epoch`).
pub fn binding_line(b: &Binding, times: TimeFormat) -> String {
    let mut s = format!("{:<15} {:<11}", b.ip, b.state.name());
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(" {k}={v}"));
        }
    };
    add("mac", (!b.chaddr.is_empty()).then(|| format_mac(&b.chaddr)));
    add("client-id", b.client_id.as_deref().map(format_hex));
    add("circuit-id", b.circuit_id.as_deref().map(format_hex));
    add("remote-id", b.remote_id.as_deref().map(format_hex));
    add("expiry", (b.expiry != 0).then(|| times.time(b.expiry)));
    add("cltt", (b.cltt != 0).then(|| times.time(b.cltt)));
    s
}
