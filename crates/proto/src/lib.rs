//! Sans-IO leasequery protocol core. Takes bytes and `now`, returns actions;
//! never touches a socket or a clock.

mod binding;

pub use binding::{Binding, DhcpState, DATA_SOURCE_REMOTE};
