//! A commit made by hand: one call of the schema's commit function, as
//! another instance's writer makes it, on a client the test controls (so
//! that it can hold the call's transaction open, or roll it back).

use leaseline_store::PG_SCHEMA_VERSION;
use postgres::GenericClient;

/// One binding for address key `ip`, client `chaddr`, at `t`, decided from
/// the row at `expected` (its log id; -1: no row). Returns the first log id
/// written, or the addresses whose rows changed (nothing written).
pub fn commit_by_hand(
    c: &mut impl GenericClient,
    ip: i64,
    chaddr: &[u8],
    expected: i64,
    t: u32,
) -> Result<Result<i64, Vec<i64>>, postgres::Error> {
    // The function is versioned with the schema.
    let sql = format!(
        "SELECT out_first_id, out_changed FROM leaseline_commit_v{PG_SCHEMA_VERSION}(\
             ARRAY[1]::bigint[], ARRAY[$1]::bigint[], ARRAY[2]::smallint[], \
             ARRAY[1]::smallint[], ARRAY[$4::bytea], ARRAY[NULL]::bytea[], \
             ARRAY[$3::bigint + 60], ARRAY[$3::bigint], ARRAY[$3::bigint], \
             ARRAY[0]::smallint[], ARRAY[NULL]::bytea[], ARRAY[NULL]::bytea[], \
             ARRAY[NULL]::bytea[], ARRAY[NULL]::bytea[], ARRAY[NULL]::bytea[], \
             ARRAY[NULL]::bytea[], ARRAY[60]::bigint[], ARRAY[NULL]::bigint[], \
             ARRAY[NULL]::bigint[], ARRAY[$3::bigint], $3::bigint, 'by-hand', \
             ARRAY[$1]::bigint[], ARRAY[$2]::bigint[])"
    );
    let row = c.query_one(&sql, &[&ip, &expected, &i64::from(t), &chaddr])?;
    Ok(match row.get::<_, Option<Vec<i64>>>(1) {
        Some(changed) => Err(changed),
        None => Ok(row.get(0)),
    })
}
