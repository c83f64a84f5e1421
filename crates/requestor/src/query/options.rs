//! How to run one query: server, local address, giaddr, timing, option 55.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::prl;

/// How to run one query.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The server's address and port.
    pub server: SocketAddr,
    /// Local address to bind; 0.0.0.0:0 when None.
    pub bind: Option<SocketAddr>,
    /// giaddr; when None: the bound address if specific, else the local
    /// address the kernel picks for the route to the server.
    pub giaddr: Option<Ipv4Addr>,
    /// Overall deadline from the first transmission.
    pub timeout: Duration,
    /// Wait before the first retransmission; doubled after each (RFC 4388
    /// §6.6 asks for an exponential backoff).
    pub first_retry: Duration,
    /// Option 55; empty sends none.
    pub prl: Vec<u8>,
    /// xid; random when None.
    pub xid: Option<u32>,
}

impl QueryOptions {
    pub fn new(server: SocketAddr) -> QueryOptions {
        QueryOptions {
            server,
            bind: None,
            giaddr: None,
            timeout: Duration::from_secs(5),
            first_retry: Duration::from_secs(1),
            prl: prl::UDP.to_vec(),
            xid: None,
        }
    }
}
