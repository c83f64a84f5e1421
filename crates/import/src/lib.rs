//! Lease files of the servers Leaseline replaces, read as streams of
//! [`LeaseRecord`]s (docs/migration.md):
//!
//! - ISC dhcpd's `dhcpd.leases` journal ([`dhcpd::DhcpdLeases`], format of
//!   dhcpd.leases(5)),
//! - Kea's memfile CSV for DHCPv4 ([`kea_csv::KeaCsv`]).
//!
//! Both are journals: a later record of an address replaces the earlier
//! ones ([`LastRecord`] keeps what that rule needs, per address). Parsing is
//! pure (a `BufRead` in, records out, nothing else touched), reads one
//! line at a time, and reports every malformed record as a
//! [`ParseError`] with its line number: never a panic.
//! [`to_binding`] maps a record to the binding Leaseline stores.
//!
//! Their configurations, too: [`convert_dhcpd_conf`] (dhcpd.conf(5)) and
//! [`convert_kea_config`] (kea-dhcp4's JSON) give a [`ConfigDraft`], whose
//! TOML is a Leaseline configuration, and the list of what does not map,
//! each [`Finding`] with its line and why. Malformed input is a list of
//! [`ParseError`]s, never a panic.

#![forbid(unsafe_code)]

mod config_draft;
pub mod dhcpd;
mod dhcpd_batches;
mod dhcpd_conf;
mod dhcpd_conf_map;
mod dhcpd_tokens;
pub mod kea_csv;
mod kea_json;
mod kea_map;
mod last_record;
mod record;
mod text;
mod to_binding;

pub use config_draft::{
    ConfigDraft, Conversion, DraftReservation, DraftSubnet, Finding, OutputSettings,
};
pub use dhcpd_conf_map::convert_dhcpd_conf;
pub use kea_map::convert_kea_config;
pub use last_record::{Conflict, LastRecord};
pub use record::{LeaseRecord, ParseError, RecordState, Unmapped};
pub use to_binding::{to_binding, Mapped, MappingRules};
