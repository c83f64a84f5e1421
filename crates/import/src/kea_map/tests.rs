use super::*;
use proptest::prelude::*;

const CONF: &str = r#"{ "Dhcp4": {
  // comment
  "valid-lifetime": 900,
  "option-data": [ { "name": "domain-name-servers", "data": "10.0.0.2, 10.0.0.3" } ],
  "subnet4": [ { "id": 1, "subnet": "10.0.0.0/16",
     "pools": [ { "pool": "10.0.0.10 - 10.0.0.20" }, { "pool": "10.0.1.0/30" } ],
     "relay": { "ip-addresses": [ "127.0.0.1" ] },
     "option-data": [ { "code": 3, "data": "10.0.0.1" }, { "name": "ntp-servers", "data": "10.0.0.5" } ],
     "reservations": [ { "hw-address": "02:00:00:00:00:01", "ip-address": "10.0.5.5", "hostname": "a" } ] } ],
  "client-classes": [ { "name": "x" } ]
} }"#;

#[test]
fn subnets_options_and_reservations_map() {
    let c = convert_kea_config(CONF.as_bytes()).unwrap();
    let s = &c.draft.subnets[0];
    assert_eq!(
        (s.network, s.prefix_len, s.lease_time),
        (Ipv4Addr::new(10, 0, 0, 0), 16, 900)
    );
    assert_eq!(
        s.pools,
        vec![
            (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20)),
            (Ipv4Addr::new(10, 0, 1, 0), Ipv4Addr::new(10, 0, 1, 3))
        ]
    );
    assert_eq!(s.relay_addresses, vec![Ipv4Addr::LOCALHOST]);
    assert_eq!(s.router, vec![Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(s.dns_servers.len(), 2);
    assert_eq!(s.reservations[0].hostname.as_deref(), Some("a"));
    let got: Vec<(u64, &str)> = c
        .unmapped
        .iter()
        .map(|f| (f.line, f.what.as_str()))
        .collect();
    assert_eq!(got, vec![(8, "option ntp-servers"), (10, "class \"x\"")]);
}

#[test]
fn bad_values_are_errors_with_lines() {
    let e = convert_kea_config(
        b"{ \"Dhcp4\": {\n \"subnet4\": [ { \"subnet\": \"10.0.0.0/16\",\n \"pools\": [ { \"pool\": \"10.0.0.300 - 10.0.0.4\" } ],\n \"reservations\": [ { \"hw-address\": \"zz\", \"ip-address\": \"10.0.0.9\" } ] } ] } }",
    )
    .unwrap_err();
    let got: Vec<u64> = e.iter().map(|e| e.line).collect();
    assert_eq!(got, vec![3, 4], "{e:?}");
    let e = convert_kea_config(b"{ \"Dhcp6\": {} }").unwrap_err();
    assert!(e[0].reason.contains("Dhcp4"), "{e:?}");
}

proptest! {
    /// Any bytes: a conversion or errors with a line inside the input, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        if let Err(errs) = convert_kea_config(&bytes) {
            for e in errs { prop_assert!(e.line <= lines, "{e}"); }
        }
    }

    /// Cutting a good file anywhere: never a panic, an error once cut.
    #[test]
    fn any_prefix_is_an_error_never_a_panic(cut in 0..CONF.len() - 1) {
        prop_assert!(convert_kea_config(&CONF.as_bytes()[..cut]).is_err());
    }

    /// Kea-shaped JSON with values of any type where they do not belong.
    #[test]
    fn wrong_types_never_panic(v in prop::sample::select(vec!["1", "\"x\"", "[]", "{}", "null", "[1]", "[{}]", "-1", "1e99"]),
                               key in prop::sample::select(vec!["subnet4", "pools", "pool", "subnet", "relay",
                                   "ip-addresses", "option-data", "reservations", "hw-address", "valid-lifetime",
                                   "shared-networks", "hooks-libraries", "client-classes", "data"])) {
        let text = CONF.replace(&format!("\"{key}\": "), &format!("\"{key}\": {v}, \"was\": "));
        let _ = convert_kea_config(text.as_bytes());
    }
}
