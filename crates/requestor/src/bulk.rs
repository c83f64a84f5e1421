//! Bulk Leasequery client (RFC 6926 §7): send DHCPBULKLEASEQUERY messages on
//! one connection, demultiplex the interleaved replies by xid (§7.7), and
//! turn each DHCPLEASEACTIVE / DHCPLEASEUNASSIGNED into a [`Record`] with
//! absolute times.
//!
//! Generic over the byte stream (plain TCP, TLS). Two ways to use it:
//!
//! - one query at a time: [`BulkClient::query`] gives a [`QueryStream`]
//!   whose [`QueryStream::next`] yields records until DHCPLEASEQUERYDONE;
//! - several at once: [`BulkClient::send`] each query, then
//!   [`BulkClient::next_event`] until every one has its [`BulkEvent::Done`].
//!
//! Nothing is buffered beyond one read: the caller's pace is the server's
//! pace (TCP backpressure), so a slow consumer never makes memory grow.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use leaseline_wire::{
    encode_frame, DhcpOption, FrameDecoder, Message, MessageType, RelayAgentInfo, StatusCode,
    SubOption,
};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::prl;
use crate::random::random_u32;
use crate::record::Record;

/// BULK_LQ_DATA_TIMEOUT (RFC 6926 §6.3): the requestor's read timeout too (§7.1).
pub const DATA_TIMEOUT: Duration = Duration::from_secs(300);

const MAX_MESSAGE: usize = 65_535;
const READ_BUF: usize = 64 * 1024;

/// The primary query (RFC 6926 §7.2): exactly one per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// Every configured address (no primary query in the message).
    All,
    /// htype/hlen/chaddr.
    Mac { htype: u8, chaddr: Vec<u8> },
    /// Option 61.
    ClientId(Vec<u8>),
    /// Option 82, remote-id sub-option (2).
    RemoteId(Vec<u8>),
    /// Option 82, relay-id sub-option (12, RFC 6925).
    RelayId(Vec<u8>),
}

/// One DHCPBULKLEASEQUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRequest {
    pub primary: Primary,
    /// query-start-time (154): bindings changed on or after this time.
    pub start: Option<u32>,
    /// query-end-time (155): bindings changed on or before this time.
    pub end: Option<u32>,
    /// Parameter request list (55).
    pub prl: Vec<u8>,
}

impl BulkRequest {
    pub fn new(primary: Primary) -> Self {
        BulkRequest {
            primary,
            start: None,
            end: None,
            prl: prl::BINDINGS.to_vec(),
        }
    }

    /// Every configured address.
    pub fn all() -> Self {
        Self::new(Primary::All)
    }

    pub fn window(mut self, start: Option<u32>, end: Option<u32>) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    /// The message (RFC 6926 §7.2): ciaddr, yiaddr, siaddr zero; giaddr
    /// zero too (it means nothing over TCP).
    pub fn to_message(&self, xid: u32) -> Message {
        let mut m = Message {
            xid,
            htype: 0,
            hlen: 0,
            ..Message::default()
        };
        m.options
            .push(DhcpOption::MessageType(MessageType::BulkLeaseQuery));
        match &self.primary {
            Primary::All => {}
            Primary::Mac { htype, chaddr } => {
                let n = chaddr.len().min(16);
                m.htype = *htype;
                m.hlen = n as u8;
                m.chaddr[..n].copy_from_slice(&chaddr[..n]);
            }
            Primary::ClientId(id) => m.options.push(DhcpOption::ClientId(id.clone())),
            Primary::RemoteId(id) => m.options.push(relay_option(RelayAgentInfo::REMOTE_ID, id)),
            Primary::RelayId(id) => m.options.push(relay_option(RelayAgentInfo::RELAY_ID, id)),
        }
        if !self.prl.is_empty() {
            m.options
                .push(DhcpOption::ParameterRequestList(self.prl.clone()));
        }
        if let Some(t) = self.start {
            m.options.push(DhcpOption::QueryStartTime(t));
        }
        if let Some(t) = self.end {
            m.options.push(DhcpOption::QueryEndTime(t));
        }
        m
    }
}

fn relay_option(sub: u8, data: &[u8]) -> DhcpOption {
    DhcpOption::RelayAgentInfo(RelayAgentInfo {
        sub_options: vec![SubOption {
            code: sub,
            data: data.to_vec(),
        }],
    })
}

/// How a query ended: its DHCPLEASEQUERYDONE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub xid: u32,
    /// The status-code option; None means success (RFC 6926 §8.2).
    pub status: Option<(StatusCode, String)>,
    pub base_time: Option<u32>,
}

impl Done {
    /// True unless the DONE carried a status other than Success.
    pub fn succeeded(&self) -> bool {
        matches!(&self.status, None | Some((StatusCode::Success, _)))
    }
}

/// What the server said on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkEvent {
    /// A binding (its `xid` names the query).
    Binding(Record),
    /// A query ended.
    Done(Done),
}

#[derive(Debug, Error)]
pub enum BulkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection while queries were open (it does
    /// so for requestors it does not allow, over its connection limit, and
    /// on protocol errors).
    #[error("the server closed the connection before DHCPLEASEQUERYDONE")]
    Closed,
    #[error("nothing received for {0:?} (BULK_LQ_DATA_TIMEOUT)")]
    Timeout(Duration),
    #[error("bad framing from the server: {0}")]
    Framing(#[from] leaseline_wire::FrameError),
    #[error("undecodable message from the server: {0}")]
    Decode(#[from] leaseline_wire::WireError),
    #[error("could not encode the query: {0}")]
    Encode(String),
    /// A reply for no open query, or a message type a bulk reply cannot be.
    #[error("protocol error from the server: {0}")]
    Protocol(String),
    #[error("no query is open on this connection")]
    NoQuery,
}

impl BulkError {
    /// Errors that mean the connection itself failed (as opposed to a
    /// local mistake).
    pub fn is_connection_failure(&self) -> bool {
        !matches!(self, BulkError::Encode(_) | BulkError::NoQuery)
    }
}

/// A Bulk Leasequery connection.
pub struct BulkClient<S> {
    io: S,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
    open: HashSet<u32>,
    next_xid: u32,
    timeout: Duration,
}

impl BulkClient<TcpStream> {
    /// Connect over plain TCP (RFC 6926 §7.1), giving up after `connect_timeout`.
    pub async fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<BulkClient<TcpStream>, BulkError> {
        let s = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(BulkError::Connect { addr, source }),
            Err(_) => {
                return Err(BulkError::Connect {
                    addr,
                    source: std::io::ErrorKind::TimedOut.into(),
                })
            }
        };
        let _ = s.set_nodelay(true);
        Ok(BulkClient::new(s))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> BulkClient<S> {
    pub fn new(io: S) -> Self {
        // Distinct xids per connection (§7.7); not predictable across runs.
        let seed = random_u32();
        BulkClient {
            io,
            decoder: FrameDecoder::new(MAX_MESSAGE),
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            open: HashSet::new(),
            next_xid: seed | 1,
            timeout: DATA_TIMEOUT,
        }
    }

    /// The read timeout (default BULK_LQ_DATA_TIMEOUT).
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Queries sent and not yet DONE.
    pub fn open_queries(&self) -> usize {
        self.open.len()
    }

    fn fresh_xid(&mut self) -> u32 {
        loop {
            self.next_xid = self.next_xid.wrapping_add(0x9e37_79b9);
            if self.next_xid != 0 && !self.open.contains(&self.next_xid) {
                return self.next_xid;
            }
        }
    }

    /// Send a query; returns its xid. Replies arrive through [`Self::next_event`].
    pub async fn send(&mut self, req: &BulkRequest) -> Result<u32, BulkError> {
        let xid = self.fresh_xid();
        self.send_with_xid(req, xid).await?;
        Ok(xid)
    }

    /// Send a query with a chosen xid (it must not be open already).
    pub async fn send_with_xid(&mut self, req: &BulkRequest, xid: u32) -> Result<(), BulkError> {
        let body = req
            .to_message(xid)
            .to_bytes()
            .map_err(|e| BulkError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(body.len() + 2);
        encode_frame(&body, &mut out)?;
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        self.open.insert(xid);
        Ok(())
    }

    /// The next message from the server, whichever query it belongs to.
    pub async fn next_event(&mut self) -> Result<BulkEvent, BulkError> {
        let m = self.next_reply().await?;
        if m.message_type() == Some(MessageType::LeaseQueryDone) {
            return Ok(BulkEvent::Done(done_of(&m)));
        }
        let r = Record::from_reply(&m)
            .ok_or_else(|| BulkError::Protocol("binding reply without a type".into()))?;
        Ok(BulkEvent::Binding(r))
    }

    /// The next message from the server as received: a binding reply
    /// (DHCPLEASEACTIVE / DHCPLEASEUNASSIGNED) or a DHCPLEASEQUERYDONE (which
    /// closes its query) of an open query; anything else is a protocol error
    /// (RFC 6926 §7.3).
    pub async fn next_reply(&mut self) -> Result<Message, BulkError> {
        if self.open.is_empty() {
            return Err(BulkError::NoQuery);
        }
        let m = self.recv().await?;
        if !self.open.contains(&m.xid) {
            return Err(BulkError::Protocol(format!(
                "{} for xid {:#010x}, which is no open query",
                type_name(&m),
                m.xid
            )));
        }
        match m.message_type() {
            Some(MessageType::LeaseActive | MessageType::LeaseUnassigned) => Ok(m),
            Some(MessageType::LeaseQueryDone) => {
                self.open.remove(&m.xid);
                Ok(m)
            }
            _ => Err(BulkError::Protocol(format!(
                "{} in answer to a bulk query (xid {:#010x})",
                type_name(&m),
                m.xid
            ))),
        }
    }

    /// Send one query and stream its records. Use it when no other query is
    /// open on the connection.
    pub async fn query(&mut self, req: &BulkRequest) -> Result<QueryStream<'_, S>, BulkError> {
        let xid = self.send(req).await?;
        Ok(QueryStream {
            client: self,
            xid,
            done: None,
        })
    }

    async fn recv(&mut self) -> Result<Message, BulkError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Message::decode(frame)?);
            }
            let n = match tokio::time::timeout(self.timeout, self.io.read(&mut self.buf)).await {
                Err(_) => return Err(BulkError::Timeout(self.timeout)),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(BulkError::Closed);
            }
            self.decoder.extend(&self.buf[..n]);
        }
    }

    pub fn into_inner(self) -> S {
        self.io
    }
}

/// The records of one query, then its DONE.
pub struct QueryStream<'a, S> {
    client: &'a mut BulkClient<S>,
    xid: u32,
    done: Option<Done>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> QueryStream<'_, S> {
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The next record; `Ok(None)` once DHCPLEASEQUERYDONE arrived (see
    /// [`Self::done`] for its status).
    pub async fn next(&mut self) -> Result<Option<Record>, BulkError> {
        if self.done.is_some() {
            return Ok(None);
        }
        match self.client.next_event().await? {
            BulkEvent::Binding(r) if r.xid == self.xid => Ok(Some(r)),
            BulkEvent::Done(d) if d.xid == self.xid => {
                self.done = Some(d);
                Ok(None)
            }
            // Another query's traffic: use next_event() when several are open.
            BulkEvent::Binding(r) => Err(BulkError::Protocol(format!(
                "reply for xid {:#010x} while streaming {:#010x}",
                r.xid, self.xid
            ))),
            BulkEvent::Done(d) => Err(BulkError::Protocol(format!(
                "DONE for xid {:#010x} while streaming {:#010x}",
                d.xid, self.xid
            ))),
        }
    }

    /// The DONE, once [`Self::next`] returned `Ok(None)`.
    pub fn done(&self) -> Option<&Done> {
        self.done.as_ref()
    }
}

fn type_name(m: &Message) -> String {
    match m.message_type() {
        Some(t) => t.name().to_string(),
        None => "message without a type".into(),
    }
}

fn done_of(m: &Message) -> Done {
    let mut d = Done {
        xid: m.xid,
        status: None,
        base_time: None,
    };
    for o in &m.options {
        match o {
            DhcpOption::StatusCode(c, t) => d.status = Some((*c, t.clone())),
            DhcpOption::BaseTime(t) => d.base_time = Some(*t),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use leaseline_proto::{build_bulk_reply, build_done, parse_bulk_query, Binding, BulkPrimary};
    use std::net::Ipv4Addr;

    #[test]
    fn requests_parse_as_the_server_reads_them() {
        let cases = [
            (Primary::All, BulkPrimary::All),
            (
                Primary::Mac {
                    htype: 1,
                    chaddr: vec![2, 0, 0, 0, 0, 9],
                },
                BulkPrimary::ByMac {
                    htype: 1,
                    chaddr: vec![2, 0, 0, 0, 0, 9],
                },
            ),
            (
                Primary::ClientId(vec![1, 2, 3]),
                BulkPrimary::ByClientId(vec![1, 2, 3]),
            ),
            (
                Primary::RemoteId(b"r1".to_vec()),
                BulkPrimary::ByRemoteId(b"r1".to_vec()),
            ),
            (
                Primary::RelayId(b"x".to_vec()),
                BulkPrimary::ByRelayId(b"x".to_vec()),
            ),
        ];
        for (p, want) in cases {
            let req = BulkRequest::new(p).window(Some(10), Some(20));
            let bytes = req.to_message(7).to_bytes().unwrap();
            let q = parse_bulk_query(&Message::decode(&bytes).unwrap()).unwrap();
            assert_eq!(q.primary, want);
            assert_eq!((q.xid, q.start, q.end), (7, Some(10), Some(20)));
            assert_eq!(q.prl, prl::BINDINGS);
        }
    }

    /// A scripted server on an in-memory pipe: interleaved replies of two
    /// queries, demultiplexed by xid.
    #[tokio::test]
    async fn interleaved_replies_are_told_apart_by_xid() {
        let (client_end, mut server_end) = tokio::io::duplex(64 * 1024);
        let mut c = BulkClient::new(client_end);
        let a = c.send(&BulkRequest::all()).await.unwrap();
        let b = c
            .send(&BulkRequest::new(Primary::ClientId(vec![1, 2])))
            .await
            .unwrap();
        assert_ne!(a, b);
        // Read both queries on the server side.
        let mut d = FrameDecoder::new(65535);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 2 {
            let n = server_end.read(&mut buf).await.unwrap();
            d.extend(&buf[..n]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(Message::decode(f).unwrap().xid);
            }
        }
        assert_eq!(got, vec![a, b]);
        let mut out = Vec::new();
        let mut push = |m: &Message| encode_frame(&m.to_bytes().unwrap(), &mut out).unwrap();
        let bind = |i: u8| {
            let mut x = Binding::available(Ipv4Addr::new(10, 0, 0, i));
            x.state = leaseline_proto::DhcpState::Active;
            x
        };
        push(&build_bulk_reply(
            a,
            &bind(1),
            100,
            true,
            Ipv4Addr::LOCALHOST,
            prl::BINDINGS,
            &[],
        ));
        push(&build_bulk_reply(
            b,
            &bind(2),
            100,
            true,
            Ipv4Addr::LOCALHOST,
            prl::BINDINGS,
            &[],
        ));
        push(&build_bulk_reply(
            a,
            &bind(3),
            100,
            false,
            Ipv4Addr::LOCALHOST,
            prl::BINDINGS,
            &[],
        ));
        push(&build_done(
            b,
            Some((StatusCode::NotAllowed, "no")),
            100,
            None,
        ));
        push(&build_done(a, None, 101, None));
        server_end.write_all(&out).await.unwrap();

        let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
        let mut done = Vec::new();
        while c.open_queries() > 0 {
            match c.next_event().await.unwrap() {
                BulkEvent::Binding(r) if r.xid == a => seen_a.push(r.ip),
                BulkEvent::Binding(r) => {
                    assert_eq!(r.xid, b);
                    seen_b.push(r.ip);
                }
                BulkEvent::Done(d) => done.push(d),
            }
        }
        assert_eq!(
            seen_a,
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)]
        );
        assert_eq!(seen_b, vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(done.len(), 2);
        assert!(!done[0].succeeded() && done[0].xid == b);
        assert_eq!(done[0].status.as_ref().unwrap().0, StatusCode::NotAllowed);
        assert!(done[1].succeeded() && done[1].base_time == Some(101));
        assert!(matches!(c.next_event().await, Err(BulkError::NoQuery)));
    }

    #[tokio::test]
    async fn a_close_before_done_is_an_error() {
        let (client_end, server_end) = tokio::io::duplex(4096);
        let mut c = BulkClient::new(client_end);
        let mut q = c.query(&BulkRequest::all()).await.unwrap();
        drop(server_end);
        assert!(matches!(q.next().await, Err(BulkError::Closed)));
    }

    #[tokio::test]
    async fn a_reply_for_an_unknown_xid_is_a_protocol_error() {
        let (client_end, mut server_end) = tokio::io::duplex(4096);
        let mut c = BulkClient::new(client_end);
        let xid = c.send(&BulkRequest::all()).await.unwrap();
        let mut out = Vec::new();
        let m = build_done(xid ^ 1, None, 1, None);
        encode_frame(&m.to_bytes().unwrap(), &mut out).unwrap();
        server_end.write_all(&out).await.unwrap();
        assert!(matches!(c.next_event().await, Err(BulkError::Protocol(_))));
    }
}
