//! Leaseline server: configuration, the DHCP engine, and the network front ends.

pub(crate) mod access;
pub(crate) mod active;
pub mod clock;
pub mod config;
pub(crate) mod dhcp_switch;
pub(crate) mod engine;
pub(crate) mod framed;
pub(crate) mod http;
pub(crate) mod leasequery;
pub(crate) mod listener;
pub(crate) mod overload;
mod peers;
mod reaper;
mod refusal_log;
mod reload;
pub mod run;
pub(crate) mod shared;
pub(crate) mod stats;
mod systemd;
pub mod tls;
pub(crate) mod udp;

pub use config::{Config, ConfigError};
