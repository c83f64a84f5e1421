//! A commit made by hand: one call of the schema's commit function, as
//! another instance's writer makes it, on a client the test controls (so
//! that it can hold the call's transaction open, or roll it back).

use leaseline_store::PG_SCHEMA_VERSION;
use postgres::GenericClient;

/// One binding for address key `ip`, client `chaddr`, at `t`, decided from
/// the row at `expected` (its log id; -1: no row). Returns the first log id
/// written, or the addresses the function names as not written (SQLSTATE
/// LL001: the row changed, or was bound meanwhile; nothing written).
pub fn commit_by_hand(
    c: &mut impl GenericClient,
    ip: i64,
    chaddr: &[u8],
    expected: i64,
    t: u32,
) -> Result<Result<i64, Vec<i64>>, postgres::Error> {
    // The function is versioned with the schema.
    let sql = format!(
        "SELECT out_first_id FROM leaseline_commit_v{PG_SCHEMA_VERSION}(\
             ARRAY[ROW(1::bigint, $1::bigint, 2::smallint, 1::smallint, $4::bytea, \
                       NULL::bytea, $3::bigint + 60, $3::bigint, $3::bigint, 0::smallint, \
                       NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, \
                       NULL::bytea, 60::bigint, NULL::bigint, NULL::bigint, $3::bigint, \
                       NULL::boolean, $2::bigint)::leaseline_change], \
             $3::bigint, 'by-hand')"
    );
    match c.query_one(&sql, &[&ip, &expected, &i64::from(t), &chaddr]) {
        Ok(row) => Ok(Ok(row.get(0))),
        Err(e) => match e.as_db_error() {
            Some(db) if db.code().code() == "LL001" => Ok(Err(db
                .detail()
                .unwrap_or("{}")
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .filter_map(|k| k.parse().ok())
                .collect())),
            _ => Err(e),
        },
    }
}
