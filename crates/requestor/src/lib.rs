//! Leaseline requestor side.

#![forbid(unsafe_code)]

pub mod active;
pub mod addr;
pub mod bulk;
pub mod failover;
pub mod mirror;
pub mod prl;
pub mod query;
pub mod random;
pub mod record;
pub mod resume;
pub mod tls;
pub mod watch;
