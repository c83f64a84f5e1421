//! The accepted text forms, tested once as a table: each value goes through
//! `leaseline_proto::text` directly and through every place that reads it
//! (a configuration's reservations, `query`, `bulk`, `watch`, `mirror
//! query`), which must all agree with it.

use std::net::Ipv4Addr;

use clap::Parser;
use leaseline_proto::text;
use leaseline_requestor::bulk::Primary;
use leaseline_requestor::query::QueryKey;
use leaseline_server::Config;

use crate::cmd_mirror::{Lookup, MirrorArgs, MirrorCmd};

/// Hardware addresses and hex octets: the input, and the octets it reads
/// as (None: refused, with an error naming the value).
const OCTETS: &[(&str, Option<&[u8]>)] = &[
    (
        "02:42:ac:11:00:02",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    (
        "02:42:AC:11:00:02",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    // One digit per colon-separated octet, as `ip link` and `arp` print.
    (
        "2:42:ac:11:0:2",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    ("2:42:0:0:0:0", Some(&[0x02, 0x42, 0, 0, 0, 0])),
    // Six octets, never the three of `20:00:01`.
    ("2:0:0:0:0:1", Some(&[2, 0, 0, 0, 0, 1])),
    (
        "02-42-ac-11-00-02",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    (
        "2-42-AC-11-0-2",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    ("0242ac110002", Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02])),
    (
        " 0242AC110002 ",
        Some(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
    ),
    ("01:02:03", Some(&[1, 2, 3])),
    ("010203", Some(&[1, 2, 3])),
    (
        "01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10",
        Some(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    ),
    ("", None),
    ("02::42:ac", None),
    ("02:42:", None),
    ("002:42:ac", None),
    ("02:42-ac:11", None),
    ("0242a", None),
    ("2420000", None),
    ("zz:00:01", None),
    ("02.42.ac.11.00.02", None),
    ("0242.ac11.0002", None),
    ("0x0242ac", None),
    ("02 42 ac", None),
];

/// Points in time: the input and the Unix seconds it reads as.
const TIMES: &[(&str, Option<u32>)] = &[
    ("1700000000", Some(1_700_000_000)),
    ("2023-11-14T22:13:20Z", Some(1_700_000_000)),
    ("2023-11-14 22:13:20", Some(1_700_000_000)),
    ("0", Some(0)),
    ("yesterday", None),
    ("2023-11-14", None),
    ("1969-12-31T23:59:59Z", None),
];

/// IPv4 addresses.
const ADDRESSES: &[(&str, Option<Ipv4Addr>)] = &[
    ("10.0.0.1", Some(Ipv4Addr::new(10, 0, 0, 1))),
    ("10.0.0", None),
    ("10.0.0.256", None),
    ("::1", None),
];

const CONFIG: &str = r#"
[server]
server_id = "127.0.0.1"
[dhcp]
listen = "127.0.0.1:1067"
[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
relay_addresses = ["127.0.0.1"]
[[subnet.reservation]]
ip = "10.0.0.5"
"#;

/// A reservation's `mac` or `client_id` as the configuration reads it.
fn config(key: &str, value: &str) -> Result<Vec<u8>, String> {
    let text = format!("{CONFIG}{key} = \"{value}\"\n");
    let c = Config::parse(&text, "t").map_err(|e| e.to_string())?;
    let r = &c.subnets[0].reservations[0];
    Ok(match key {
        "mac" => r.mac.clone(),
        _ => r.client_id.clone(),
    }
    .expect("the value given"))
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    Query(crate::cmd_query::QueryArgs),
    Bulk(crate::cmd_bulk::BulkArgs),
    Watch(crate::cmd_watch::WatchArgs),
    Mirror(MirrorArgs),
}

fn cli(args: &[&str]) -> Result<Cmd, clap::Error> {
    Cli::try_parse_from(std::iter::once("leaseline").chain(args.iter().copied())).map(|c| c.cmd)
}

fn query(flag: &str, value: &str) -> anyhow::Result<QueryKey> {
    match cli(&["query", "--server", "127.0.0.1", flag, value])? {
        Cmd::Query(q) => q.key(),
        _ => unreachable!(),
    }
}

fn bulk(args: &[&str]) -> anyhow::Result<leaseline_requestor::bulk::BulkRequest> {
    let mut v = vec!["bulk", "--server", "127.0.0.1"];
    v.extend_from_slice(args);
    match cli(&v)? {
        Cmd::Bulk(b) => b.request(),
        _ => unreachable!(),
    }
}

fn watch_since(value: &str) -> anyhow::Result<Option<u32>> {
    match cli(&["watch", "--server", "127.0.0.1", "--since", value])? {
        Cmd::Watch(w) => w.since(),
        _ => unreachable!(),
    }
}

fn mirror_query(flag: &str, value: &str) -> anyhow::Result<Lookup> {
    match cli(&["mirror", "query", "--db", "r.db", flag, value])? {
        Cmd::Mirror(MirrorArgs {
            cmd: Some(MirrorCmd::Query(q)),
            ..
        }) => q.lookup(),
        _ => unreachable!(),
    }
}

#[test]
fn hardware_addresses_and_hex_read_the_same_everywhere() {
    for &(input, want) in OCTETS {
        let want = want.map(<[u8]>::to_vec);
        let ctx = format!("`{input}`");
        // The one parser, and what it says when it refuses.
        let mac = text::parse_mac(input);
        let hex = text::parse_hex(input);
        assert_eq!(mac.as_ref().ok(), want.as_ref(), "{ctx}: text::parse_mac");
        assert_eq!(hex.as_ref().ok(), want.as_ref(), "{ctx}: text::parse_hex");
        if let (Err(m), Err(h)) = (&mac, &hex) {
            assert!(m.to_string().starts_with(&format!("`{input}` ")), "{m}");
            assert!(h.to_string().starts_with(&format!("`{input}` ")), "{h}");
        }
        // Every reader agrees with it.
        let same = |what: &str, got: Option<Vec<u8>>| {
            assert_eq!(got, want, "{ctx}: {what}");
        };
        same("config mac", config("mac", input).ok());
        same("config client_id", config("client_id", input).ok());
        same(
            "query --mac",
            query("--mac", input).ok().map(|k| match k {
                QueryKey::Mac { htype: 1, chaddr } => chaddr,
                other => panic!("{other:?}"),
            }),
        );
        same(
            "query --client-id",
            query("--client-id", input).ok().map(|k| match k {
                QueryKey::ClientId(v) => v,
                other => panic!("{other:?}"),
            }),
        );
        same(
            "query --remote-id",
            query("--remote-id", input).ok().map(|k| match k {
                QueryKey::RemoteId(v) => v,
                other => panic!("{other:?}"),
            }),
        );
        let mac: fn(Vec<u8>) -> Primary = |chaddr| Primary::Mac { htype: 1, chaddr };
        for (flag, primary) in [
            ("--mac", mac),
            ("--client-id", Primary::ClientId),
            ("--remote-id", Primary::RemoteId),
            ("--relay-id", Primary::RelayId),
        ] {
            let got = bulk(&[flag, input]).ok().map(|r| r.primary);
            let want = want.clone().map(primary);
            assert_eq!(got, want, "{ctx}: bulk {flag}");
        }
        for (flag, lookup) in [
            ("--mac", Lookup::Mac as fn(Vec<u8>) -> Lookup),
            ("--client-id", Lookup::ClientId),
            ("--remote-id", Lookup::RemoteId),
            ("--relay-id", Lookup::RelayId),
        ] {
            let got = mirror_query(flag, input).ok();
            assert_eq!(got, want.clone().map(lookup), "{ctx}: mirror query {flag}");
        }
    }
}

#[test]
fn a_hardware_address_has_at_most_16_octets() {
    let long = "01:".repeat(16) + "01";
    assert!(text::parse_mac(&long).is_err());
    assert!(config("mac", &long).is_err());
    assert!(query("--mac", &long).is_err());
    assert!(bulk(&["--mac", &long]).is_err());
    assert!(mirror_query("--mac", &long).is_err());
    // As a client-id it is fine.
    assert_eq!(text::parse_hex(&long).map(|v| v.len()), Ok(17));
    assert_eq!(config("client_id", &long).map(|v| v.len()), Ok(17));
}

#[test]
fn times_read_the_same_everywhere() {
    for &(input, want) in TIMES {
        let ctx = format!("`{input}`");
        assert_eq!(
            text::parse_time(input).ok(),
            want,
            "{ctx}: text::parse_time"
        );
        assert_eq!(
            watch_since(input).ok(),
            want.map(Some),
            "{ctx}: watch --since"
        );
        for flag in ["--since", "--until"] {
            let got = bulk(&["--all", flag, input]).ok().map(|r| match flag {
                "--since" => r.start,
                _ => r.end,
            });
            assert_eq!(got, want.map(Some), "{ctx}: bulk {flag}");
        }
        if let Some(t) = want {
            assert_eq!(text::parse_time(&text::format_time(t)), Ok(t), "{ctx}");
        }
    }
}

#[test]
fn addresses_read_the_same_everywhere() {
    for &(input, want) in ADDRESSES {
        let ctx = format!("`{input}`");
        assert_eq!(
            text::parse_ipv4(input).ok(),
            want,
            "{ctx}: text::parse_ipv4"
        );
        assert_eq!(
            query("--ip", input).ok(),
            want.map(QueryKey::Ip),
            "{ctx}: query --ip"
        );
        assert_eq!(
            mirror_query("--ip", input).ok(),
            want.map(Lookup::Ip),
            "{ctx}: mirror query --ip"
        );
    }
}
