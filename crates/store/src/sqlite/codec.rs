//! Binding <-> row. Everything read back from disk is checked: a row that
//! does not decode is `StoreError::Corrupt`, never a panic.

use std::net::Ipv4Addr;

use rusqlite::types::ValueRef;
use rusqlite::{params, Row, Statement};

use crate::{Binding, DhcpState, StoreError};

/// Column list shared by every SELECT; `decode` reads them by position.
pub(super) const COLUMNS: &str = "ip, state, htype, chaddr, client_id, expiry, cltt, \
     state_since, data_source, relay_info, circuit_id, remote_id, relay_id, \
     vendor_class_id, hostname, lease_time, renew_time, rebind_time";

/// Insert or replace one binding (`upsert` binds its values).
pub(super) static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO bindings (ip, {columns}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
         ON CONFLICT(ip) DO UPDATE SET {set}",
        columns = crate::columns::SET_BY_A_CHANGE.join(", "),
        set = crate::columns::set_from_excluded(&[]),
    )
});

/// The address as the table's integer key.
pub(super) fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// The inverse of [`ip_key`]; None for a key that is not an address.
pub(super) fn ip_key_to_ip(key: i64) -> Option<Ipv4Addr> {
    u32::try_from(key).map(Ipv4Addr::from).ok()
}

/// Store `b`, changed at `changed_at` (the handling time of its commit).
pub(super) fn upsert(
    stmt: &mut Statement<'_>,
    b: &Binding,
    changed_at: u32,
) -> rusqlite::Result<()> {
    stmt.execute(params![
        ip_key(b.ip),
        b.state.as_u8(),
        b.htype,
        b.chaddr,
        b.client_id,
        b.expiry,
        b.cltt,
        b.state_since,
        b.data_source,
        b.relay_info,
        b.circuit_id,
        b.remote_id,
        b.relay_id,
        b.vendor_class_id,
        b.hostname,
        b.lease_time,
        b.renew_time,
        b.rebind_time,
        changed_at,
    ])?;
    Ok(())
}

/// Decode one row selected with `COLUMNS`.
pub(super) fn decode(row: &Row<'_>) -> Result<Binding, StoreError> {
    let raw_ip = value(row, 0)?;
    let ip = match raw_ip {
        ValueRef::Integer(v) => ip_key_to_ip(v),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt {
        ip: format!("{raw_ip:?}"),
        reason: "ip is not a u32".into(),
    })?;
    let d = Decoder { row, ip };
    let state_raw = d.int::<u8>(1, "state")?;
    let state = DhcpState::from_u8(state_raw).ok_or_else(|| d.corrupt("state", "unknown value"))?;
    Ok(Binding {
        ip,
        state,
        htype: d.int(2, "htype")?,
        chaddr: d
            .opt_blob(3, "chaddr")?
            .ok_or_else(|| d.corrupt("chaddr", "NULL"))?,
        client_id: d.opt_blob(4, "client_id")?,
        expiry: d.int(5, "expiry")?,
        cltt: d.int(6, "cltt")?,
        state_since: d.int(7, "state_since")?,
        data_source: d.int(8, "data_source")?,
        relay_info: d.opt_blob(9, "relay_info")?,
        circuit_id: d.opt_blob(10, "circuit_id")?,
        remote_id: d.opt_blob(11, "remote_id")?,
        relay_id: d.opt_blob(12, "relay_id")?,
        vendor_class_id: d.opt_blob(13, "vendor_class_id")?,
        hostname: d.opt_blob(14, "hostname")?,
        lease_time: d.int(15, "lease_time")?,
        renew_time: d.opt_int(16, "renew_time")?,
        rebind_time: d.opt_int(17, "rebind_time")?,
    })
}

fn value<'r>(row: &'r Row<'_>, idx: usize) -> Result<ValueRef<'r>, StoreError> {
    Ok(row.get_ref(idx)?)
}

struct Decoder<'a, 'r> {
    row: &'a Row<'r>,
    ip: Ipv4Addr,
}

impl Decoder<'_, '_> {
    fn corrupt(&self, column: &str, what: &str) -> StoreError {
        StoreError::Corrupt {
            ip: self.ip.to_string(),
            reason: format!("{column}: {what}"),
        }
    }

    fn int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        match value(self.row, idx)? {
            ValueRef::Integer(v) => {
                T::try_from(v).map_err(|_| self.corrupt(column, "out of range"))
            }
            other => Err(self.corrupt(column, &format!("not an integer: {:?}", other.data_type()))),
        }
    }

    fn opt_int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<Option<T>, StoreError> {
        match value(self.row, idx)? {
            ValueRef::Null => Ok(None),
            _ => self.int(idx, column).map(Some),
        }
    }

    fn opt_blob(&self, idx: usize, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match value(self.row, idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b.to_vec())),
            other => Err(self.corrupt(column, &format!("not a blob: {:?}", other.data_type()))),
        }
    }
}
