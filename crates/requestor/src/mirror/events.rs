//! `--events FILE|-`: one JSON line per change applied to the replica, for
//! log shippers and SIEMs.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use leaseline_proto::Binding;
use serde_json::json;

use crate::record::hex;

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
            "mac": (!b.chaddr.is_empty()).then(|| hex(&b.chaddr, true)),
            "client_id": b.client_id.as_deref().map(|v| hex(v, false)),
            "circuit_id": b.circuit_id.as_deref().map(|v| hex(v, false)),
            "remote_id": b.remote_id.as_deref().map(|v| hex(v, false)),
            "relay_id": b.relay_id.as_deref().map(|v| hex(v, false)),
            "expiry": (b.expiry != 0).then_some(b.expiry),
            "cltt": (b.cltt != 0).then_some(b.cltt),
            "state_since": b.state_since,
            "base_time": base_time,
    })
}

/// A binding as one readable line.
pub fn binding_line(b: &Binding) -> String {
    let mut s = format!("{:<15} {:<11}", b.ip, b.state.name());
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(" {k}={v}"));
        }
    };
    add("mac", (!b.chaddr.is_empty()).then(|| hex(&b.chaddr, true)));
    add("client-id", b.client_id.as_deref().map(|v| hex(v, false)));
    add("circuit-id", b.circuit_id.as_deref().map(|v| hex(v, false)));
    add("remote-id", b.remote_id.as_deref().map(|v| hex(v, false)));
    add("expiry", (b.expiry != 0).then(|| b.expiry.to_string()));
    add("cltt", (b.cltt != 0).then(|| b.cltt.to_string()));
    s
}
