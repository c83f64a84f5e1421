//! The bulk queries the mirror needs (RFC 6926): everything at start-up, and
//! a time window to fill a DataMissing gap (RFC 7724 §7.4.1).

use std::net::SocketAddr;
use std::time::Duration;

use leaseline_wire::{DhcpOption, Message, MessageType, StatusCode};
use tokio::sync::mpsc;

use super::convert::{from_reply, Learned};
use crate::active::{base_time_of, status_of, FramedConn};
use crate::watch::BoxStream;

/// BULK_LQ_DATA_TIMEOUT (RFC 6926 §6.3).
const DATA_TIMEOUT: Duration = Duration::from_secs(300);

pub fn bulk_query(xid: u32, start: Option<u32>, end: Option<u32>, prl: &[u8]) -> Message {
    let mut m = Message {
        xid,
        hlen: 0,
        htype: 0,
        ..Message::default()
    };
    m.options
        .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
    m.options
        .push(DhcpOption::ParameterRequestList(prl.to_vec()));
    if let Some(t) = start {
        m.options.push(DhcpOption::QueryStartTime(t));
    }
    if let Some(t) = end {
        m.options.push(DhcpOption::QueryEndTime(t));
    }
    m
}

/// What the first reply's base-time was (the mirror's catch-up point).
pub struct BulkDone {
    pub first_base_time: Option<u32>,
    pub records: u64,
}

/// Run one bulk query for all configured addresses (optionally in a time
/// window) and send every record to `sink`, until DONE.
pub async fn fetch(
    stream: BoxStream,
    peer: SocketAddr,
    xid: u32,
    window: (Option<u32>, Option<u32>),
    prl: &[u8],
    sink: mpsc::Sender<Learned>,
) -> Result<BulkDone, String> {
    let mut conn = FramedConn::new(stream);
    conn.send(&bulk_query(xid, window.0, window.1, prl))
        .await
        .map_err(|e| e.to_string())?;
    let mut done = BulkDone {
        first_base_time: None,
        records: 0,
    };
    loop {
        let m = conn
            .recv(DATA_TIMEOUT)
            .await
            .map_err(|e| format!("bulk query to {peer}: {e}"))?;
        if m.xid != xid {
            // RFC 6926 §7.3: a reply to no outstanding query closes the connection.
            return Err(format!(
                "bulk query to {peer}: reply with unknown xid {:#010x}",
                m.xid
            ));
        }
        if done.first_base_time.is_none() {
            done.first_base_time = base_time_of(&m);
        }
        match m.message_type() {
            Some(MessageType::LeaseQueryDone) => {
                return match status_of(&m) {
                    Some((code, text)) if code != StatusCode::Success => {
                        Err(format!("bulk query refused: {} {text}", code.name()))
                    }
                    _ => Ok(done),
                };
            }
            Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => {
                if let Some(l) = from_reply(&m) {
                    done.records += 1;
                    if sink.send(l).await.is_err() {
                        return Err("the mirror stopped".into());
                    }
                }
            }
            other => {
                return Err(format!(
                    "unexpected {:?} in a bulk reply",
                    other.map(|t| t.name())
                ))
            }
        }
    }
}
