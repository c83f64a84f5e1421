//! Leaseline requestor side.

pub mod active;
pub mod bulk;
pub mod failover;
pub mod mirror;
pub mod query;
pub mod record;
pub mod resume;
pub mod timearg;
pub mod tls;
pub mod watch;
