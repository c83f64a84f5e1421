//! Why a query could not be made.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    #[error("invalid query key: {0}")]
    BadKey(String),
    #[error("leasequery over UDP is IPv4 only; {0} is not an IPv4 address")]
    NotIpv4(SocketAddr),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("no route to {server}: {source}")]
    Route {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("cannot send to {server}: {source}")]
    Send {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("receive failed: {0}")]
    Recv(io::Error),
}
