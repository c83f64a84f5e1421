//! Binding <-> row. Everything read back is checked: a row that does not
//! decode is `StoreError::Corrupt`, never a panic.

use std::net::Ipv4Addr;

use postgres::types::ToSql;
use postgres::Row;

use leaseline_proto::DATA_SOURCE_REMOTE;

use super::schema::COMMIT_FUNCTION;
use crate::{Binding, DhcpState, StoreError};

/// Column list shared by every SELECT; `decode` reads them by position.
pub(super) const COLUMNS: &str = "ip, state, htype, chaddr, client_id, expiry, cltt, \
     state_since, data_source, relay_info, circuit_id, remote_id, relay_id, \
     vendor_class_id, hostname, lease_time, renew_time, rebind_time, changed_by";

/// One commit: a call of the schema's commit function (`schema`,
/// [`COMMIT_FUNCTION`]) with [`Batch`]'s arrays; it returns the first log id
/// written, the log time, and the addresses whose rows changed since they
/// were read (then nothing was written).
pub(super) fn commit_call() -> String {
    let args: Vec<String> = (1..=25).map(|i| format!("${i}")).collect();
    format!(
        "SELECT out_first_id, out_logged_at, out_changed FROM {COMMIT_FUNCTION}({})",
        args.join(", ")
    )
}

/// The address as the table's integer key.
pub(super) fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// The inverse of [`ip_key`]; None for a key that is not an address.
pub(super) fn ip_key_to_ip(key: i64) -> Option<Ipv4Addr> {
    u32::try_from(key).map(Ipv4Addr::from).ok()
}

/// The arguments of [`commit_call`]: per change, its column arrays
/// (borrowing the bindings' byte strings); per address decided from a
/// stored row, the version read.
#[derive(Default)]
pub(super) struct Batch<'a> {
    ord: Vec<i64>,
    ip: Vec<i64>,
    state: Vec<i16>,
    htype: Vec<i16>,
    chaddr: Vec<&'a [u8]>,
    client_id: Vec<Option<&'a [u8]>>,
    expiry: Vec<i64>,
    cltt: Vec<i64>,
    state_since: Vec<i64>,
    data_source: Vec<i16>,
    relay_info: Vec<Option<&'a [u8]>>,
    circuit_id: Vec<Option<&'a [u8]>>,
    remote_id: Vec<Option<&'a [u8]>>,
    relay_id: Vec<Option<&'a [u8]>>,
    vendor_class_id: Vec<Option<&'a [u8]>>,
    hostname: Vec<Option<&'a [u8]>>,
    lease_time: Vec<i64>,
    renew_time: Vec<Option<i64>>,
    rebind_time: Vec<Option<i64>>,
    changed_at: Vec<i64>,
    check_ip: Vec<i64>,
    check_version: Vec<i64>,
    /// Per change: whether it opens a lease-history entry, when the writer
    /// knows the row it follows (None: the commit function decides).
    opens: Vec<Option<bool>>,
}

impl<'a> Batch<'a> {
    pub(super) fn len(&self) -> usize {
        self.ord.len()
    }

    /// `b` as the batch's next change, changed at `changed_at` (its
    /// handling time); `follows`: the address's row it follows, when the
    /// writer knows it (the stored row it was decided from, or the batch's
    /// previous change of the address; `Some(None)`: none).
    pub(super) fn push(
        &mut self,
        b: &'a Binding,
        changed_at: u32,
        follows: Option<Option<&Binding>>,
    ) {
        self.opens.push(follows.map(|prev| opens_run(prev, b)));
        self.ord.push(self.ord.len() as i64 + 1);
        self.ip.push(ip_key(b.ip));
        self.state.push(i16::from(b.state.as_u8()));
        self.htype.push(i16::from(b.htype));
        self.chaddr.push(&b.chaddr);
        self.client_id.push(b.client_id.as_deref());
        self.expiry.push(i64::from(b.expiry));
        self.cltt.push(i64::from(b.cltt));
        self.state_since.push(i64::from(b.state_since));
        self.data_source.push(i16::from(b.data_source));
        self.relay_info.push(b.relay_info.as_deref());
        self.circuit_id.push(b.circuit_id.as_deref());
        self.remote_id.push(b.remote_id.as_deref());
        self.relay_id.push(b.relay_id.as_deref());
        self.vendor_class_id.push(b.vendor_class_id.as_deref());
        self.hostname.push(b.hostname.as_deref());
        self.lease_time.push(i64::from(b.lease_time));
        self.renew_time.push(b.renew_time.map(i64::from));
        self.rebind_time.push(b.rebind_time.map(i64::from));
        self.changed_at.push(i64::from(changed_at));
    }

    /// The change to `ip` is written only if its row is still at `version`
    /// (its log id; -1: no row).
    pub(super) fn check(&mut self, ip: Ipv4Addr, version: i64) {
        self.check_ip.push(ip_key(ip));
        self.check_version.push(version);
    }

    /// The arguments of [`commit_call`]: `newest` is the newest handling
    /// time of the commit, `instance` the writer.
    pub(super) fn params<'p>(
        &'p self,
        newest: &'p i64,
        instance: &'p String,
    ) -> [&'p (dyn ToSql + Sync); 25] {
        [
            &self.ord,
            &self.ip,
            &self.state,
            &self.htype,
            &self.chaddr,
            &self.client_id,
            &self.expiry,
            &self.cltt,
            &self.state_since,
            &self.data_source,
            &self.relay_info,
            &self.circuit_id,
            &self.remote_id,
            &self.relay_id,
            &self.vendor_class_id,
            &self.hostname,
            &self.lease_time,
            &self.renew_time,
            &self.rebind_time,
            &self.changed_at,
            newest,
            instance,
            &self.check_ip,
            &self.check_version,
            &self.opens,
        ]
    }
}

/// Whether a change that follows `prev` (its address's last row, None:
/// none) opens a lease-history entry: the schema's `opens_run` rule.
fn opens_run(prev: Option<&Binding>, b: &Binding) -> bool {
    prev.is_none_or(|p| (p.state_since, p.state, &p.chaddr) != (b.state_since, b.state, &b.chaddr))
}

/// Decode one row selected with `COLUMNS` starting at column `at`, as seen
/// by instance `me`: a row another instance changed last carries the
/// data-source REMOTE flag (RFC 6926 §6.2.8).
pub(super) fn decode(row: &Row, at: usize, me: &str) -> Result<Binding, StoreError> {
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
    let changed_by: &str = row
        .try_get(at + 18)
        .map_err(|e| d.corrupt("changed_by", &e.to_string()))?;
    let data_source: u8 = d.small(8, "data_source")?;
    let remote = !changed_by.is_empty() && changed_by != me;
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
        data_source: if remote {
            data_source | DATA_SOURCE_REMOTE
        } else {
            data_source
        },
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
