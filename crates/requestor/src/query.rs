//! Leasequery over UDP, the requestor side (RFC 4388 §6.2, §6.5, §6.6;
//! RFC 6148 §4.1).
//!
//! [`build_query`] makes one DHCPLEASEQUERY for a [`QueryKey`];
//! [`Answer::from_reply`] reads a DHCPLEASEACTIVE, DHCPLEASEUNASSIGNED or
//! DHCPLEASEUNKNOWN; [`query`] does the exchange: it binds a local UDP port,
//! puts its own address in giaddr (the reply goes there, RFC 4388 §6.4.3),
//! retransmits with exponential backoff under one overall deadline and takes
//! the first reply whose xid matches, ignoring everything else.

//!
//! One concern per file under `query/`: the key ([`QueryKey`]), the
//! message ([`build_query`]), the answer ([`Answer`]), the options
//! ([`QueryOptions`]) and the UDP exchange ([`query`]).

mod answer;
mod error;
mod exchange;
mod key;
mod message;
mod options;

pub use answer::{Answer, RawOption, RelayInfo, ReplyKind};
pub use error::QueryError;
pub use exchange::{local_addr_for, open, query, Endpoint, Outcome};
pub use key::QueryKey;
pub use message::{build_query, encode_query};
pub use options::QueryOptions;
