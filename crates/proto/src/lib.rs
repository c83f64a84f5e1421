//! Sans-IO leasequery protocol core. Takes bytes and `now`, returns actions;
//! never touches a socket or a clock.

#![forbid(unsafe_code)]

pub mod active;
pub mod active_session;
mod binding;
pub mod bulk;
pub mod bulk_connection;
mod framed;
mod opening;
mod opts;
pub mod overwrite;
mod ranges;
pub mod relay;
pub mod session;
pub mod shared_wire;
pub mod text;
pub mod time;
pub mod udp_query;
pub mod udp_reply;

pub use active::{parse_active_query, ActiveQuery, ActiveRefusal};
pub use active_session::{
    ActiveConfig, ActiveEnd, ActiveEvent, ActiveSession, History, Taken, Update,
};
pub use binding::{Binding, DhcpState, DATA_SOURCE_REMOTE};
pub use bulk::{
    build_bulk_reply, build_done, build_status, in_window, malformed_query_xid, parse_bulk_query,
    BulkPrimary, BulkQuery,
};
pub use bulk_connection::{
    BulkConfig, BulkConnection, BulkEnd, BulkEvent, Place, StoreFailed, StoreRead,
};
pub use framed::frame_into;
pub use opening::{opening, Opening};
pub use overwrite::{overwrite, same_client, second_lease, ClientOf, Overwrite};
pub use ranges::merge_ranges;
pub use relay::{relay_info_from_raw, relay_info_to_raw};
pub use session::{Close, Now};
pub use shared_wire::{SharedWire, WireSlot};
pub use udp_query::{parse_leasequery, QueryKind, QueryRefusal, UdpQuery};
pub use udp_reply::{
    build_leaseactive, build_leaseunassigned, build_leaseunknown, choose_primary, ExtraOptions,
    Selection, DEFAULT_UDP_PRL,
};
