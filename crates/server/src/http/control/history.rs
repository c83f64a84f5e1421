//! `lease4-history` (issue 20): who held an address when, and which
//! addresses a client held, from the store's lease history
//! (docs/operations.md, "Lease history").
//!
//! Arguments: exactly one of `ip-address`, `hw-address`, `client-id`,
//! `remote-id`; `at` (with `ip-address` only) or `from` / `to` (Unix
//! seconds, inclusive); `limit` (default 100, at most 10,000); `cursor`
//! (from the previous page). Answer: `{"history": [...], "cursor": c}`,
//! entries ascending by start; result 3 "no history" when none match.

use serde_json::{json, Map, Value};

use leaseline_proto::text::{format_mac, parse_hex, parse_mac};
use leaseline_store::{
    HistoryCursor, HistoryEntry, HistoryKey, HistoryPage, HistoryQuery, StoreError,
};

use super::{ip_arg, str_arg, Answer};

const DEFAULT_LIMIT: u64 = 100;
const KEYS: [&str; 4] = ["ip-address", "hw-address", "client-id", "remote-id"];
const OTHERS: [&str; 4] = ["at", "from", "to", "limit"];

/// The query these arguments ask for, or a result-1 answer saying why not.
pub(super) fn query(args: &Map<String, Value>) -> Result<HistoryQuery, Answer> {
    if let Some(unknown) = args
        .keys()
        .find(|k| !KEYS.contains(&k.as_str()) && !OTHERS.contains(&k.as_str()) && *k != "cursor")
    {
        return Err(Answer::error(format!(
            "unknown argument `{unknown}` (give one of {}; at, from, to, limit, cursor)",
            KEYS.join(", ")
        )));
    }
    let given: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| args.contains_key(*k))
        .collect();
    let [name] = given[..] else {
        return Err(Answer::error(format!(
            "give exactly one of {}",
            KEYS.join(", ")
        )));
    };
    let value = str_arg(args, name)?.unwrap_or_default();
    let bad = |e: leaseline_proto::text::TextError| Answer::error(format!("{name}: {e}"));
    let key = match name {
        "ip-address" => HistoryKey::Ip(ip_arg(value, name)?),
        "hw-address" => HistoryKey::Mac(parse_mac(value).map_err(bad)?),
        "client-id" => HistoryKey::ClientId(parse_hex(value).map_err(bad)?),
        _ => HistoryKey::RemoteId(parse_hex(value).map_err(bad)?),
    };
    let at = seconds(args, "at")?;
    let (from, to) = (seconds(args, "from")?, seconds(args, "to")?);
    let limit = match args.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|l| (1..=HistoryQuery::MAX_LIMIT as u64).contains(l))
            .ok_or_else(|| Answer::error(format!("limit: 1 to {}", HistoryQuery::MAX_LIMIT)))?,
    };
    let after = match str_arg(args, "cursor")? {
        None => None,
        Some(c) => Some(HistoryCursor::parse(c).ok_or_else(|| {
            Answer::error(format!(
                "cursor: `{c}` is not a cursor this server handed out"
            ))
        })?),
    };
    let (from, to) = match at {
        Some(_) if !matches!(key, HistoryKey::Ip(_)) => {
            return Err(Answer::error("at: only with ip-address"))
        }
        Some(_) if from.is_some() || to.is_some() => {
            return Err(Answer::error("at: not with from or to"))
        }
        Some(at) => (at, at),
        None => (from.unwrap_or(0), to.unwrap_or(u32::MAX)),
    };
    if from > to {
        return Err(Answer::error(format!("from ({from}) is after to ({to})")));
    }
    Ok(HistoryQuery {
        key,
        from,
        to,
        limit: if at.is_some() { 1 } else { limit as usize },
        after,
    })
}

/// A time argument: Unix seconds.
fn seconds(args: &Map<String, Value>, name: &str) -> Result<Option<u32>, Answer> {
    match args.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|s| u32::try_from(s).ok())
            .map(Some)
            .ok_or_else(|| Answer::error(format!("{name}: Unix seconds (0 to {})", u32::MAX))),
    }
}

/// The answer to a page the store returned.
pub(super) fn answer(page: Result<HistoryPage, StoreError>) -> Result<Answer, Answer> {
    let page = match page {
        Ok(p) => p,
        Err(StoreError::HistoryOff) => {
            return Err(Answer::error(
                "the lease history is off on this server ([history] enabled = false)",
            ))
        }
        Err(e) => return Err(Answer::error(format!("store read: {e}"))),
    };
    if page.entries.is_empty() && page.next.is_none() {
        return Ok(Answer::empty("no history"));
    }
    let history: Vec<Value> = page.entries.iter().map(entry).collect();
    Ok(Answer::ok(
        format!(
            "{} history entr{}",
            history.len(),
            if history.len() == 1 { "y" } else { "ies" }
        ),
        json!({
            "history": history,
            "cursor": page.next.map(|c| c.to_string()),
        }),
    ))
}

fn entry(e: &HistoryEntry) -> Value {
    let hex = |v: &Option<Vec<u8>>| v.as_deref().map(format_mac);
    json!({
        "ip-address": e.ip.to_string(),
        "hw-address": format_mac(&e.chaddr),
        "client-id": hex(&e.client_id),
        "circuit-id": hex(&e.circuit_id),
        "remote-id": hex(&e.remote_id),
        "state": format!("{:?}", e.state).to_ascii_lowercase(),
        "start": e.start,
        "end": e.end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(args: Value) -> Result<HistoryQuery, String> {
        let Value::Object(m) = args else { panic!() };
        query(&m).map_err(|a| a.text)
    }

    #[test]
    fn arguments_make_the_query() {
        let got = q(json!({"ip-address": "10.0.0.1", "at": 5})).expect("valid");
        assert_eq!(got, HistoryQuery::at("10.0.0.1".parse().unwrap(), 5));
        let got = q(
            json!({"hw-address": "02:00:00:00:00:07", "from": 1, "to": 9,
            "limit": 2, "cursor": "3.4"}),
        )
        .expect("valid");
        assert_eq!(got.key, HistoryKey::Mac(vec![2, 0, 0, 0, 0, 7]));
        assert_eq!((got.from, got.to, got.limit), (1, 9, 2));
        assert_eq!(got.after, Some(HistoryCursor { start: 3, id: 4 }));
        let got = q(json!({"client-id": "01:02:aa"})).expect("valid");
        assert_eq!(got.key, HistoryKey::ClientId(vec![1, 2, 0xaa]));
        assert_eq!((got.from, got.to, got.limit), (0, u32::MAX, 100));
        let got = q(json!({"remote-id": "0102aa"})).expect("valid");
        assert_eq!(got.key, HistoryKey::RemoteId(vec![1, 2, 0xaa]));
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        for (args, says) in [
            (json!({}), "exactly one of"),
            (
                json!({"ip-address": "10.0.0.1", "hw-address": "02:00"}),
                "exactly one of",
            ),
            (json!({"ip-address": "10.0.0.300"}), "not an IPv4 address"),
            (json!({"ip-address": 7}), "ip-address: a string"),
            (json!({"hw-address": "zz"}), "hw-address"),
            (
                json!({"hw-address": "02:00", "at": 1}),
                "only with ip-address",
            ),
            (
                json!({"ip-address": "10.0.0.1", "at": 1, "from": 0}),
                "not with from",
            ),
            (
                json!({"ip-address": "10.0.0.1", "from": 9, "to": 1}),
                "is after",
            ),
            (
                json!({"ip-address": "10.0.0.1", "from": -1}),
                "Unix seconds",
            ),
            (
                json!({"ip-address": "10.0.0.1", "to": 5_000_000_000u64}),
                "Unix seconds",
            ),
            (
                json!({"ip-address": "10.0.0.1", "limit": 0}),
                "limit: 1 to 10000",
            ),
            (
                json!({"ip-address": "10.0.0.1", "limit": 10_001}),
                "limit: 1 to 10000",
            ),
            (
                json!({"ip-address": "10.0.0.1", "cursor": "x"}),
                "not a cursor",
            ),
            (
                json!({"ip-address": "10.0.0.1", "since": 1}),
                "unknown argument `since`",
            ),
        ] {
            let e = q(args.clone()).expect_err(&args.to_string());
            assert!(e.contains(says), "{args}: {e}");
        }
    }
}
