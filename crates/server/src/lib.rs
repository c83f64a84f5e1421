//! Leaseline server: configuration, the DHCP engine, and the network front ends.

pub mod access;
pub mod active;
pub mod config;
pub mod dhcp_switch;
pub mod engine;
pub mod http;
pub mod leasequery;
pub mod listener;
pub mod overload;
mod peers;
mod refusal_log;
mod reload;
pub mod run;
pub mod stats;
mod systemd;
pub mod tls;
pub mod udp;

pub use config::{Config, ConfigError};
