//! The bulk queries the mirror needs (RFC 6926): everything at start-up, and
//! a time window to fill a DataMissing gap (RFC 7724 §7.4.1), through the
//! requestor's [`BulkClient`].

use std::net::SocketAddr;

use leaseline_wire::{MessageType, StatusCode};
use tokio::sync::mpsc;

use super::convert::{from_reply, Learned};
use crate::active::{base_time_of, status_of};
use crate::bulk::{BulkClient, BulkRequest};
use crate::watch::BoxStream;

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
    let failed = |e: crate::bulk::BulkError| format!("bulk query to {peer}: {e}");
    let mut client = BulkClient::new(stream);
    let mut req = BulkRequest::all().window(window.0, window.1);
    req.prl = prl.to_vec();
    client.send_with_xid(&req, xid).await.map_err(failed)?;
    let mut done = BulkDone {
        first_base_time: None,
        records: 0,
    };
    loop {
        let m = client.next_reply().await.map_err(failed)?;
        if done.first_base_time.is_none() {
            done.first_base_time = base_time_of(&m);
        }
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            return match status_of(&m) {
                Some((code, text)) if code != StatusCode::Success => {
                    Err(format!("bulk query refused: {} {text}", code.name()))
                }
                _ => Ok(done),
            };
        }
        if let Some(l) = from_reply(&m) {
            done.records += 1;
            if sink.send(l).await.is_err() {
                return Err("the mirror stopped".into());
            }
        }
    }
}
