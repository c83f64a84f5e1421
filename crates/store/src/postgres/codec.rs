//! Binding <-> row. Everything read back is checked: a row that does not
//! decode is `StoreError::Corrupt`, never a panic.

use std::net::Ipv4Addr;

use postgres::types::ToSql;
use postgres::Row;

use crate::{Binding, DhcpState, StoreError};

/// Column list shared by every SELECT; `decode` reads them by position.
pub(super) const COLUMNS: &str = "ip, state, htype, chaddr, client_id, expiry, cltt, \
     state_since, data_source, relay_info, circuit_id, remote_id, relay_id, \
     vendor_class_id, hostname, lease_time, renew_time, rebind_time";

/// Upsert one binding and append it to the change log, in one statement
/// (one round trip). `$20` is the instance id.
pub(super) const UPSERT_AND_LOG: &str = "
WITH b AS (
INSERT INTO bindings (ip, state, htype, chaddr, client_id, expiry, cltt, state_since,
    data_source, relay_info, circuit_id, remote_id, relay_id, vendor_class_id, hostname,
    lease_time, renew_time, rebind_time, changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (ip) DO UPDATE SET
    state = excluded.state, htype = excluded.htype, chaddr = excluded.chaddr,
    client_id = excluded.client_id, expiry = excluded.expiry, cltt = excluded.cltt,
    state_since = excluded.state_since, data_source = excluded.data_source,
    relay_info = excluded.relay_info, circuit_id = excluded.circuit_id,
    remote_id = excluded.remote_id, relay_id = excluded.relay_id,
    vendor_class_id = excluded.vendor_class_id, hostname = excluded.hostname,
    lease_time = excluded.lease_time, renew_time = excluded.renew_time,
    rebind_time = excluded.rebind_time, changed_at = excluded.changed_at
RETURNING *)
INSERT INTO lease_changes (instance_id, ip, state, htype, chaddr, client_id, expiry, cltt,
    state_since, data_source, relay_info, circuit_id, remote_id, relay_id, vendor_class_id,
    hostname, lease_time, renew_time, rebind_time, changed_at)
SELECT $20, ip, state, htype, chaddr, client_id, expiry, cltt, state_since, data_source,
    relay_info, circuit_id, remote_id, relay_id, vendor_class_id, hostname, lease_time,
    renew_time, rebind_time, changed_at FROM b";

/// The address as the table's integer key.
pub(super) fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// The inverse of [`ip_key`]; None for a key that is not an address.
pub(super) fn ip_key_to_ip(key: i64) -> Option<Ipv4Addr> {
    u32::try_from(key).map(Ipv4Addr::from).ok()
}

/// The values of [`UPSERT_AND_LOG`] for `b` changed at `changed_at`.
pub(super) struct Params {
    ints: [i64; 9],
    opt_ints: [Option<i64>; 2],
    smalls: [i16; 3],
}

impl Params {
    pub(super) fn new(b: &Binding, changed_at: u32) -> Self {
        Params {
            ints: [
                ip_key(b.ip),
                i64::from(b.expiry),
                i64::from(b.cltt),
                i64::from(b.state_since),
                i64::from(b.lease_time),
                i64::from(changed_at),
                0,
                0,
                0,
            ],
            opt_ints: [b.renew_time.map(i64::from), b.rebind_time.map(i64::from)],
            smalls: [
                i16::from(b.state.as_u8()),
                i16::from(b.htype),
                i16::from(b.data_source),
            ],
        }
    }

    pub(super) fn refs<'a>(
        &'a self,
        b: &'a Binding,
        instance: &'a String,
    ) -> [&'a (dyn ToSql + Sync); 20] {
        [
            &self.ints[0],
            &self.smalls[0],
            &self.smalls[1],
            &b.chaddr,
            &b.client_id,
            &self.ints[1],
            &self.ints[2],
            &self.ints[3],
            &self.smalls[2],
            &b.relay_info,
            &b.circuit_id,
            &b.remote_id,
            &b.relay_id,
            &b.vendor_class_id,
            &b.hostname,
            &self.ints[4],
            &self.opt_ints[0],
            &self.opt_ints[1],
            &self.ints[5],
            instance,
        ]
    }
}

/// Decode one row selected with `COLUMNS` starting at column `at`.
pub(super) fn decode(row: &Row, at: usize) -> Result<Binding, StoreError> {
    let raw_ip: i64 = row.try_get(at).map_err(|e| StoreError::Corrupt {
        ip: "?".into(),
        reason: format!("ip: {e}"),
    })?;
    let ip = ip_key_to_ip(raw_ip).ok_or_else(|| StoreError::Corrupt {
        ip: raw_ip.to_string(),
        reason: "ip is not a u32".into(),
    })?;
    let d = Decoder { row, ip, at };
    let state_raw: u8 = d.small(1, "state")?;
    let state = DhcpState::from_u8(state_raw).ok_or_else(|| d.corrupt("state", "unknown value"))?;
    Ok(Binding {
        ip,
        state,
        htype: d.small(2, "htype")?,
        chaddr: d
            .opt_blob(3, "chaddr")?
            .ok_or_else(|| d.corrupt("chaddr", "NULL"))?,
        client_id: d.opt_blob(4, "client_id")?,
        expiry: d.int(5, "expiry")?,
        cltt: d.int(6, "cltt")?,
        state_since: d.int(7, "state_since")?,
        data_source: d.small(8, "data_source")?,
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

struct Decoder<'a> {
    row: &'a Row,
    ip: Ipv4Addr,
    at: usize,
}

impl Decoder<'_> {
    fn corrupt(&self, column: &str, what: &str) -> StoreError {
        StoreError::Corrupt {
            ip: self.ip.to_string(),
            reason: format!("{column}: {what}"),
        }
    }

    fn small<T: TryFrom<i16>>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        let v: i16 = self
            .row
            .try_get(self.at + idx)
            .map_err(|e| self.corrupt(column, &e.to_string()))?;
        T::try_from(v).map_err(|_| self.corrupt(column, "out of range"))
    }

    fn int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<T, StoreError> {
        match self.opt_int(idx, column)? {
            Some(v) => Ok(v),
            None => Err(self.corrupt(column, "NULL")),
        }
    }

    fn opt_int<T: TryFrom<i64>>(&self, idx: usize, column: &str) -> Result<Option<T>, StoreError> {
        let v: Option<i64> = self
            .row
            .try_get(self.at + idx)
            .map_err(|e| self.corrupt(column, &e.to_string()))?;
        v.map(|v| T::try_from(v).map_err(|_| self.corrupt(column, "out of range")))
            .transpose()
    }

    fn opt_blob(&self, idx: usize, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.row
            .try_get(self.at + idx)
            .map_err(|e| self.corrupt(column, &e.to_string()))
    }
}
