use super::*;
use proptest::prelude::*;

const CONF: &str = "\
option domain-name-servers 10.0.0.2, 10.0.0.3;
default-lease-time 600;
max-lease-time 7200;
subnet 10.0.0.0 netmask 255.255.0.0 {
  option routers 10.0.0.1;
  range 10.0.0.10 10.0.0.20;
  pool {
    deny unknown-clients;
    range 10.0.1.10 10.0.1.20;
  }
}
host a {
  hardware ethernet 02:00:00:00:00:01;
  fixed-address 10.0.5.5;
}
class \"x\" { match hardware; }
";

#[test]
fn subnets_options_and_hosts_map() {
    let c = convert_dhcpd_conf(CONF.as_bytes()).unwrap();
    let s = &c.draft.subnets[0];
    assert_eq!(
        (s.network, s.prefix_len, s.lease_time),
        (Ipv4Addr::new(10, 0, 0, 0), 16, 600)
    );
    assert_eq!(
        s.pools,
        vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 20))]
    );
    assert_eq!(s.router, vec![Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(s.dns_servers.len(), 2);
    assert_eq!(s.reservations[0].ip, Ipv4Addr::new(10, 0, 5, 5));
    assert_eq!(s.reservations[0].hostname.as_deref(), Some("a"));
    let lines: Vec<(u64, &str)> = c
        .unmapped
        .iter()
        .map(|f| (f.line, f.what.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, "max-lease-time 7200"),
            (8, "deny unknown-clients"),
            (9, "range 10.0.1.10 10.0.1.20"),
            (16, "class \"x\""),
        ]
    );
}

#[test]
fn without_default_lease_time_dhcpds_default_is_written() {
    let c = convert_dhcpd_conf(b"subnet 10.0.0.0 netmask 255.0.0.0 { }").unwrap();
    assert_eq!(c.draft.subnets[0].lease_time, 43_200);
}

#[test]
fn bad_values_are_errors_with_lines() {
    let e = convert_dhcpd_conf(
        b"subnet 10.0.0.0 netmask 255.255.0.0 {\n range 10.0.0.300 10.0.0.4;\n range 10.1.0.1 10.1.0.2;\n}\nhost h { hardware ethernet zz; fixed-address 10.0.0.1; }\n",
    )
    .unwrap_err();
    let got: Vec<(u64, &str)> = e.iter().map(|e| (e.line, e.reason.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (2, "range: `10.0.0.300` is not an IPv4 address"),
            (3, "range 10.1.0.1 10.1.0.2 lies outside subnet 10.0.0.0/16"),
            (5, "hardware ethernet: `zz` is not an Ethernet address"),
        ]
    );
    let e = convert_dhcpd_conf(b"# nothing\n").unwrap_err();
    assert!(e[0].reason.contains("no subnet"), "{e:?}");
}

#[test]
fn global_leasequery_allows_every_requestor() {
    let c =
        convert_dhcpd_conf(b"allow leasequery;\nsubnet 10.0.0.0 netmask 255.0.0.0 { }\n").unwrap();
    assert_eq!(c.draft.leasequery_allow, vec!["0.0.0.0/0".to_string()]);
    let c =
        convert_dhcpd_conf(b"subnet 10.0.0.0 netmask 255.0.0.0 { allow leasequery; }\n").unwrap();
    assert_eq!(c.draft.leasequery_allow, vec!["10.0.0.0/8".to_string()]);
}

proptest! {
    /// Any bytes: a conversion or errors with a line inside the input, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        if let Err(errs) = convert_dhcpd_conf(&bytes) {
            for e in errs { prop_assert!(e.line <= lines, "{e}"); }
        }
    }

    /// Words of the grammar in any order: never a panic.
    #[test]
    fn shuffled_statements_never_panic(words in proptest::collection::vec(
        prop::sample::select(vec!["subnet", "10.0.0.0", "netmask", "255.255.0.0", "{", "}", ";",
            "range", "10.0.0.9", "host", "fixed-address", "hardware", "ethernet", "pool", "allow",
            "deny", "members", "of", "\"x\"", "option", "routers", "shared-network", "group",
            "default-lease-time", "0", "4294967295", "1:2:3", "dhcp-client-identifier", "\n"]), 0..80)) {
        let _ = convert_dhcpd_conf(words.join(" ").as_bytes());
    }

    /// Cutting a good file anywhere: never a panic.
    #[test]
    fn any_prefix_never_panics(cut in 0..CONF.len()) {
        let _ = convert_dhcpd_conf(&CONF.as_bytes()[..cut]);
    }
}
