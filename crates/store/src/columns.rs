//! The columns of a binding row that a change sets, shared by both
//! backends' SQL (the tables are the same shape in SQLite and PostgreSQL).

/// Every column after `ip`, in the order both backends bind them.
pub(crate) const SET_BY_A_CHANGE: [&str; 18] = [
    "state",
    "htype",
    "chaddr",
    "client_id",
    "expiry",
    "cltt",
    "state_since",
    "data_source",
    "relay_info",
    "circuit_id",
    "remote_id",
    "relay_id",
    "vendor_class_id",
    "hostname",
    "lease_time",
    "renew_time",
    "rebind_time",
    "changed_at",
];

/// The `DO UPDATE SET` list of an upsert into `bindings`: each column a
/// change sets, and the backend's `extra` ones, from the new row.
pub(crate) fn set_from_excluded(extra: &[&str]) -> String {
    set_from("excluded", extra)
}

/// An `UPDATE ... SET` list: each column a change sets, and the `extra`
/// ones, from the same column of `source` (a table or a subquery).
pub(crate) fn set_from(source: &str, extra: &[&str]) -> String {
    SET_BY_A_CHANGE
        .iter()
        .chain(extra)
        .map(|c| format!("{c} = {source}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `SELECT` list: each column a change sets, from `source` (a table or
/// a subquery).
pub(crate) fn of(source: &str) -> String {
    SET_BY_A_CHANGE
        .iter()
        .map(|c| format!("{source}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_select_list_names_each_column_of_its_source_once() {
        let list = of("l");
        assert!(list.starts_with("l.state, l.htype, l.chaddr"));
        assert!(list.ends_with("l.rebind_time, l.changed_at"));
        assert_eq!(list.matches("l.").count(), SET_BY_A_CHANGE.len());
    }

    #[test]
    fn the_set_list_names_each_column_once_and_the_extra_ones_last() {
        let set = set_from_excluded(&["changed_by"]);
        assert!(set.starts_with("state = excluded.state, htype = excluded.htype"));
        assert!(set.ends_with("changed_at = excluded.changed_at, changed_by = excluded.changed_by"));
        assert_eq!(set.matches(" = excluded.").count(), 19);
    }
}
