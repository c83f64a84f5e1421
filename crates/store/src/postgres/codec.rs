//! Binding <-> row. Everything read back is checked: a row that does not
//! decode is `StoreError::Corrupt`, never a panic.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use postgres::Row;
use postgres_types::{to_sql_checked, IsNull, Kind, ToSql, Type};

use leaseline_proto::DATA_SOURCE_REMOTE;

use super::schema::{CHANGE_TYPE, COMMIT_FUNCTION};
use crate::{Binding, DhcpState, StoreError};

/// Column list shared by every SELECT; `decode` reads them by position.
pub(super) const COLUMNS: &str = "ip, state, htype, chaddr, client_id, expiry, cltt, \
     state_since, data_source, relay_info, circuit_id, remote_id, relay_id, \
     vendor_class_id, hostname, lease_time, renew_time, rebind_time, changed_by";

/// The position of `changed_by` in [`COLUMNS`] (the instance whose commit
/// last changed the row).
pub(super) const CHANGED_BY_COLUMN: usize = 18;

/// One commit: a call of the schema's commit function (`schema`,
/// [`COMMIT_FUNCTION`]) with [`Batch`]'s changes; it returns the first log
/// id written and the log time; or it fails with SQLSTATE `ROW_TAKEN`,
/// the addresses whose rows changed since they were read in its DETAIL
/// (then nothing was written: [`unwritten`]).
pub(super) fn commit_call() -> String {
    format!("SELECT out_first_id, out_logged_at FROM {COMMIT_FUNCTION}($1, $2, $3)")
}

/// The address as the table's integer key.
pub(super) fn ip_key(ip: Ipv4Addr) -> i64 {
    i64::from(u32::from(ip))
}

/// The inverse of [`ip_key`]; None for a key that is not an address.
pub(super) fn ip_key_to_ip(key: i64) -> Option<Ipv4Addr> {
    u32::try_from(key).map(Ipv4Addr::from).ok()
}

/// One change of a commit, as the schema's composite type
/// [`CHANGE_TYPE`]: a commit's changes go as one array of it. The database
/// unnests one array of rows in a seventh of the time it takes to unnest
/// twenty-one arrays of columns side by side (bench/RESULTS.md, "one array
/// of rows").
#[derive(Debug)]
struct Change<'a> {
    ord: i64,
    ip: i64,
    state: i16,
    htype: i16,
    chaddr: &'a [u8],
    client_id: Option<&'a [u8]>,
    expiry: i64,
    cltt: i64,
    state_since: i64,
    data_source: i16,
    relay_info: Option<&'a [u8]>,
    circuit_id: Option<&'a [u8]>,
    remote_id: Option<&'a [u8]>,
    relay_id: Option<&'a [u8]>,
    vendor_class_id: Option<&'a [u8]>,
    hostname: Option<&'a [u8]>,
    lease_time: i64,
    renew_time: Option<i64>,
    rebind_time: Option<i64>,
    changed_at: i64,
    /// Whether it opens a lease-history entry, when the writer knows the
    /// row it follows (None: the commit function decides).
    opens: Option<bool>,
    /// The version of the address's row it was decided from (its log id;
    /// -1: no row): written only if the row is still at it. None: written
    /// as given.
    version: Option<i64>,
}

/// [`CHANGE_TYPE`]'s fields in the schema's order (that of
/// [`Change::fields`]), each with the check that its type is one the
/// field's Rust type writes.
const CHANGE_FIELDS: [(&str, Accepts); 22] = [
    ("ord", <i64 as ToSql>::accepts),
    ("ip", <i64 as ToSql>::accepts),
    ("state", <i16 as ToSql>::accepts),
    ("htype", <i16 as ToSql>::accepts),
    ("chaddr", <&[u8] as ToSql>::accepts),
    ("client_id", <Option<&[u8]> as ToSql>::accepts),
    ("expiry", <i64 as ToSql>::accepts),
    ("cltt", <i64 as ToSql>::accepts),
    ("state_since", <i64 as ToSql>::accepts),
    ("data_source", <i16 as ToSql>::accepts),
    ("relay_info", <Option<&[u8]> as ToSql>::accepts),
    ("circuit_id", <Option<&[u8]> as ToSql>::accepts),
    ("remote_id", <Option<&[u8]> as ToSql>::accepts),
    ("relay_id", <Option<&[u8]> as ToSql>::accepts),
    ("vendor_class_id", <Option<&[u8]> as ToSql>::accepts),
    ("hostname", <Option<&[u8]> as ToSql>::accepts),
    ("lease_time", <i64 as ToSql>::accepts),
    ("renew_time", <Option<i64> as ToSql>::accepts),
    ("rebind_time", <Option<i64> as ToSql>::accepts),
    ("changed_at", <i64 as ToSql>::accepts),
    ("opens", <Option<bool> as ToSql>::accepts),
    ("version", <Option<i64> as ToSql>::accepts),
];

impl Change<'_> {
    /// The values in [`CHANGE_FIELDS`]' order.
    fn fields(&self) -> [&(dyn ToSql + Sync); 22] {
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
            &self.opens,
            &self.version,
        ]
    }
}

type BoxedError = Box<dyn std::error::Error + Sync + Send>;

/// Whether a Rust type writes a database type ([`ToSql::accepts`]).
type Accepts = fn(&Type) -> bool;

/// A composite value in PostgreSQL's binary format: the field count, then
/// each field's type, length (-1: NULL) and bytes. Written by position:
/// [`ToSql::accepts`] has checked that the type's fields are
/// [`CHANGE_FIELDS`], in that order, and of the fields' Rust types (the
/// `postgres-types` derive would match each field by name, for every
/// field of every row).
impl ToSql for Change<'_> {
    fn to_sql(&self, ty: &Type, buf: &mut BytesMut) -> Result<IsNull, BoxedError> {
        let Kind::Composite(fields) = ty.kind() else {
            return Err(format!("{} is not a composite type", ty.name()).into());
        };
        buf.put_i32(i32::try_from(fields.len())?);
        for (field, value) in fields.iter().zip(self.fields()) {
            buf.put_u32(field.type_().oid());
            let at = buf.len();
            buf.put_i32(0);
            let len = match value.to_sql_checked(field.type_(), buf)? {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - at - 4)?,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        let Kind::Composite(fields) = ty.kind() else {
            return false;
        };
        ty.name() == CHANGE_TYPE
            && fields.len() == CHANGE_FIELDS.len()
            && fields
                .iter()
                .zip(CHANGE_FIELDS)
                .all(|(field, (name, accepts))| field.name() == name && accepts(field.type_()))
    }

    to_sql_checked!();
}

/// The arguments of [`commit_call`]: the changes (borrowing the bindings'
/// byte strings), each with the version of its address's row the writer
/// decided from.
#[derive(Default)]
pub(super) struct Batch<'a> {
    changes: Vec<Change<'a>>,
    /// Per address decided from a stored row: the version read.
    checked: HashMap<i64, i64>,
}

impl<'a> Batch<'a> {
    pub(super) fn len(&self) -> usize {
        self.changes.len()
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
        let ip = ip_key(b.ip);
        self.changes.push(Change {
            ord: self.changes.len() as i64 + 1,
            ip,
            state: i16::from(b.state.as_u8()),
            htype: i16::from(b.htype),
            chaddr: &b.chaddr,
            client_id: b.client_id.as_deref(),
            expiry: i64::from(b.expiry),
            cltt: i64::from(b.cltt),
            state_since: i64::from(b.state_since),
            data_source: i16::from(b.data_source),
            relay_info: b.relay_info.as_deref(),
            circuit_id: b.circuit_id.as_deref(),
            remote_id: b.remote_id.as_deref(),
            relay_id: b.relay_id.as_deref(),
            vendor_class_id: b.vendor_class_id.as_deref(),
            hostname: b.hostname.as_deref(),
            lease_time: i64::from(b.lease_time),
            renew_time: b.renew_time.map(i64::from),
            rebind_time: b.rebind_time.map(i64::from),
            changed_at: i64::from(changed_at),
            opens: follows.map(|prev| opens_run(prev, b)),
            version: self.checked.get(&ip).copied(),
        });
    }

    /// The changes to `ip` (this one and the batch's later ones: the
    /// database writes an address's last) are written only if its row is
    /// still at `version` (its log id; -1: no row). Called before the
    /// change decided from it is pushed.
    pub(super) fn check(&mut self, ip: Ipv4Addr, version: i64) {
        self.checked.insert(ip_key(ip), version);
    }

    /// The arguments of [`commit_call`]: `newest` is the newest handling
    /// time of the commit, `instance` the writer.
    pub(super) fn params<'p>(
        &'p self,
        newest: &'p i64,
        instance: &'p String,
    ) -> [&'p (dyn ToSql + Sync); 3] {
        [&self.changes, newest, instance]
    }
}

/// The addresses a commit that failed with SQLSTATE `ROW_TAKEN` did not
/// write, from its DETAIL (`{1,2}`, PostgreSQL's text of a bigint array);
/// empty for a DETAIL that is not one.
pub(super) fn unwritten(detail: Option<&str>) -> Vec<Ipv4Addr> {
    detail
        .and_then(|d| d.strip_prefix('{')?.strip_suffix('}'))
        .map(|list| {
            list.split(',')
                .filter_map(|k| k.trim().parse::<i64>().ok())
                .filter_map(ip_key_to_ip)
                .collect()
        })
        .unwrap_or_default()
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
        .try_get(at + CHANGED_BY_COLUMN)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
    use super::{unwritten, Change, CHANGED_BY_COLUMN, CHANGE_FIELDS, CHANGE_TYPE, COLUMNS};
    use postgres_types::{Field, Kind, ToSql, Type};
    use std::net::Ipv4Addr;

    #[test]
    fn changed_by_is_where_the_column_list_puts_it() {
        let names: Vec<&str> = COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(names.get(CHANGED_BY_COLUMN), Some(&"changed_by"));
    }

    /// The composite type as the schema makes it, with `fields` (name,
    /// type) in the given order.
    fn composite(name: &str, fields: &[(&str, Type)]) -> Type {
        let fields = fields
            .iter()
            .map(|(n, t)| Field::new((*n).to_owned(), t.clone()))
            .collect();
        Type::new(
            name.to_owned(),
            90_000,
            Kind::Composite(fields),
            "public".into(),
        )
    }

    fn schema_fields() -> Vec<(&'static str, Type)> {
        CHANGE_FIELDS
            .iter()
            .map(|(name, _)| {
                let ty = match *name {
                    "ord" | "ip" | "expiry" | "cltt" | "state_since" | "lease_time"
                    | "renew_time" | "rebind_time" | "changed_at" | "version" => Type::INT8,
                    "state" | "htype" | "data_source" => Type::INT2,
                    "opens" => Type::BOOL,
                    _ => Type::BYTEA,
                };
                (*name, ty)
            })
            .collect()
    }

    /// Written by position: only the schema's type, its fields in the
    /// schema's order and of the Rust fields' types, is accepted.
    #[test]
    fn a_change_is_written_only_as_the_schemas_type_field_for_field() {
        assert!(Change::accepts(&composite(CHANGE_TYPE, &schema_fields())));
        let mut swapped = schema_fields();
        swapped.swap(2, 3);
        assert!(!Change::accepts(&composite(CHANGE_TYPE, &swapped)));
        let mut retyped = schema_fields();
        retyped[1].1 = Type::INT4;
        assert!(!Change::accepts(&composite(CHANGE_TYPE, &retyped)));
        let mut short = schema_fields();
        short.pop();
        assert!(!Change::accepts(&composite(CHANGE_TYPE, &short)));
        assert!(!Change::accepts(&composite("other", &schema_fields())));
        assert!(!Change::accepts(&Type::INT8));
    }

    /// The addresses a refused commit names in its DETAIL; nothing from a
    /// DETAIL that is not a list of addresses.
    #[test]
    fn the_addresses_a_refused_commit_did_not_write_are_read_from_its_detail() {
        assert_eq!(
            unwritten(Some("{167772161,167772170}")),
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 10)]
        );
        assert!(unwritten(Some("{}")).is_empty());
        assert!(unwritten(None).is_empty());
        assert!(unwritten(Some("some text")).is_empty());
        assert!(unwritten(Some("{-1,x,4294967296}")).is_empty());
    }
}
