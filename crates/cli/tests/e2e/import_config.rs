#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline import config`: the configurations our interop tests give
//! real ISC dhcpd 4.4 and Kea 2.2 (data/interop-*, the very files
//! lq_udp_dhcpd.rs and import_leases.rs run them with) are converted, and
//! `leaseline serve` runs on the result: a DORA through a relay gets an
//! address of the same pool with the same lease time and options, and
//! leasequery answers where dhcpd's `allow leasequery;` let it. Then
//! hand-written configurations with the usual features (data/import-config/):
//! what maps is checked through `check-config`, what does not is listed
//! with its line. Malformed files: an error with the line, no file written.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use leaseline_test_support::{require_root, Netns, RelayClient, ServerProcess, TestClient};
use leaseline_wire::DhcpOption;

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/data")
        .join(name)
}

fn leaseline(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run leaseline")
}

fn text(o: &Output) -> String {
    leaseline_test_support::output_text(o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `import config --from FROM FILE ARGS...` into `out`; its output.
fn convert(from: &str, file: &Path, out: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "import",
        "config",
        "--from",
        from,
        file.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    leaseline(&all)
}

/// `check-config` must accept the file; its stdout.
fn check_config(file: &Path) -> String {
    let o = leaseline(&["check-config", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Serves `toml` inside `ns` and runs one DORA through a relay at `giaddr`.
fn serve_and_dora(
    ns: &Netns,
    toml: &str,
    giaddr: Ipv4Addr,
    server: SocketAddr,
) -> (ServerProcess, leaseline_test_support::Lease) {
    let server_process = ServerProcess::builder(BIN, toml).netns(ns).spawn();
    let lease = ns.run_inside(move || {
        let mut relay = RelayClient::bind(giaddr, server).expect("bind the relay");
        relay.dora(&TestClient::new(7))
    });
    let lease = lease.unwrap_or_else(|e| panic!("DORA: {e}\n{}", server_process.log_tail(30)));
    (server_process, lease)
}

fn option(lease: &leaseline_test_support::Lease, code: u8) -> Option<&DhcpOption> {
    lease.ack.option(code)
}

#[test]
fn dhcpd_interop_config_converts_and_serves_the_same_pool() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leaseline.toml");
    let o = convert(
        "dhcpd",
        &data("interop-dhcpd.conf"),
        &out,
        &["--listen", "192.0.2.1:67", "--state-dir", "@STATE_DIR@"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("line 5: max-lease-time 7200: Leaseline grants lease_time"),
        "{err}"
    );
    assert!(
        err.contains("line 6: allow leasequery: mapped to [leasequery] allow = \"0.0.0.0/0\""),
        "{err}"
    );
    let summary = check_config(&out);
    assert!(
        summary.contains("subnet 192.0.2.0/24: 51 pool addresses, 0 reservations, lease 600 s"),
        "{summary}"
    );

    let ns = Netns::new("imcfgd");
    for a in ["192.0.2.1/32", "192.0.2.2/32"] {
        ns.ip(&["addr", "add", a, "dev", "lo"]);
    }
    let toml = std::fs::read_to_string(&out).unwrap();
    let server: SocketAddr = "192.0.2.1:67".parse().unwrap();
    let (mut leaseline_serve, lease) =
        serve_and_dora(&ns, &toml, Ipv4Addr::new(192, 0, 2, 2), server);
    let ip = u32::from(lease.ip);
    assert!(
        (u32::from(Ipv4Addr::new(192, 0, 2, 100))..=u32::from(Ipv4Addr::new(192, 0, 2, 150)))
            .contains(&ip),
        "{} outside dhcpd's range",
        lease.ip
    );
    assert_eq!(lease.lease_time, Some(600), "default-lease-time 600");
    assert_eq!(lease.server_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(
        option(&lease, 1),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );

    // `allow leasequery;` mapped: the lease is answered over UDP.
    let q = ns
        .command(BIN)
        .args([
            "query",
            "--server",
            "192.0.2.1:67",
            "--ip",
            &lease.ip.to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", text(&q));
    let v: serde_json::Value = serde_json::from_slice(&q.stdout).expect("one JSON answer");
    assert_eq!(v["type"], "DHCPLEASEACTIVE", "{v}");
    assert_eq!(v["mac"], "02:11:00:00:00:07", "{v}");
    leaseline_serve.assert_running();
}

#[test]
fn kea_interop_and_bench_configs_convert_and_serve_the_same_pool() {
    require_root();
    let ns = Netns::new("imcfgk");
    let server: SocketAddr = "127.0.0.1:1067".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The interop test's file (Kea reads it with @DIR@ filled in; the
    // lease file's name does not map either way), then bench/'s, which
    // has option-data.
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/kea-dhcp4.json");
    for (file, options) in [(data("interop-kea-dhcp4.json"), false), (bench, true)] {
        let out = dir.path().join(format!("from-{options}.toml"));
        let o = convert(
            "kea",
            &file,
            &out,
            &["--listen", "127.0.0.1:1067", "--state-dir", "@STATE_DIR@"],
        );
        assert!(o.status.success(), "{}", text(&o));
        let err = stderr(&o);
        for needle in [
            "lease-database: Leaseline keeps leases in its own store",
            "loggers: Leaseline logs to stderr",
        ] {
            assert!(err.contains(needle), "{}: {needle}: {err}", file.display());
        }
        let summary = check_config(&out);
        assert!(
            summary.contains("subnet 10.0.0.0/16: 65521 pool addresses, 0 reservations, lease 3600 s, via relays [127.0.0.1]"),
            "{summary}"
        );
        let toml = std::fs::read_to_string(&out).unwrap();
        let (mut serve, lease) = serve_and_dora(&ns, &toml, Ipv4Addr::LOCALHOST, server);
        assert_eq!(lease.lease_time, Some(3600), "valid-lifetime 3600");
        let ip = u32::from(lease.ip);
        assert!(
            (u32::from(Ipv4Addr::new(10, 0, 0, 10))..=u32::from(Ipv4Addr::new(10, 0, 255, 250)))
                .contains(&ip),
            "{} outside Kea's pool",
            lease.ip
        );
        if options {
            assert_eq!(
                option(&lease, 3),
                Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1)]))
            );
            assert_eq!(
                option(&lease, 6),
                Some(&DhcpOption::DnsServers(vec![
                    Ipv4Addr::new(10, 0, 0, 2),
                    Ipv4Addr::new(10, 0, 0, 3)
                ]))
            );
            assert_eq!(
                option(&lease, 15),
                Some(&DhcpOption::DomainName(b"lab.example".to_vec()))
            );
        }
        serve.terminate();
    }
}

#[test]
fn hand_written_dhcpd_conf_maps_and_lists_what_does_not_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = data("import-config/site-dhcpd.conf");
    let out = dir.path().join("site.toml");

    // No server identifier anywhere: refused with the way out, nothing written.
    let o = convert("dhcpd", &src, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("give --server-id A.B.C.D"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());

    let o = convert("dhcpd", &src, &out, &["--server-id", "198.51.100.10"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    let expected = [
        "line 7: max-lease-time 86400: Leaseline grants lease_time (default-lease-time) to every client",
        "line 10: log-facility local7: a setting of dhcpd's own files",
        "line 11: allow leasequery: mapped to [leasequery] allow = \"0.0.0.0/0\"",
        "line 13: class \"voip\": client classes do not map: Leaseline does not classify clients",
        "line 18: shared-network office: a shared network of 2 subnets",
        "line 26: allow members of \"voip\": pool permits do not map",
        "line 27: range 10.21.0.50 10.21.0.99: not written: its pool (line 25) is restricted",
        "line 30: deny members of \"voip\": pool permits do not map",
        "line 31: range 10.21.0.100 10.21.0.150: not written",
        "line 64: filename \"pxelinux.0\": per-host parameters do not map",
        "line 68: host roaming: a host without fixed-address",
        "11 item(s) not mapped",
    ];
    for needle in expected {
        assert!(err.contains(needle), "`{needle}` missing:\n{err}");
    }
    let summary = check_config(&out);
    for needle in [
        "subnet 10.20.0.0/24: 100 pool addresses, 1 reservations, lease 3600 s",
        "subnet 10.21.0.0/24: 0 pool addresses, 0 reservations, lease 3600 s",
        "subnet 192.0.2.0/24: 52 pool addresses, 1 reservations, lease 600 s",
        "subnet 203.0.113.0/24: 0 pool addresses, 1 reservations, lease 3600 s",
    ] {
        assert!(summary.contains(needle), "`{needle}`:\n{summary}");
    }
    let toml = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "server_id = \"198.51.100.10\"",
        "dns_servers = [\"198.51.100.53\", \"198.51.100.54\"]",
        "domain_name = \"lab.example\"",
        "domain_name = \"campus.example\"",
        "router = [\"10.21.0.1\"]",
        "pools = [\"192.0.2.100-192.0.2.150\", \"192.0.2.200\"]",
        "ip = \"10.20.0.10\"\nmac = \"00:1b:a9:11:22:33\"\nhostname = \"printer\"",
        "ip = \"192.0.2.20\"\nclient_id = \"01:00:1b:a9:44:55:66\"\nhostname = \"phone7\"",
        "ip = \"203.0.113.10\"\nmac = \"52:54:00:aa:bb:01\"",
        "[leasequery]\nallow = [\"0.0.0.0/0\"]",
    ] {
        assert!(toml.contains(needle), "`{needle}`:\n{toml}");
    }

    // An existing output is kept unless --force.
    let o = convert("dhcpd", &src, &out, &["--server-id", "198.51.100.11"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("exists: not overwritten (use --force"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), toml);
    let o = convert(
        "dhcpd",
        &src,
        &out,
        &["--server-id", "198.51.100.11", "--force", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("198.51.100.11"));
    let report: serde_json::Value = serde_json::from_slice(&o.stderr).expect("a JSON report");
    assert_eq!(
        report["not_mapped"].as_array().unwrap().len(),
        11,
        "{report}"
    );
    assert_eq!(report["not_mapped"][0]["line"], 7, "{report}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

#[test]
fn hand_written_kea_config_maps_and_lists_what_does_not_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = data("import-config/site-kea-dhcp4.json");
    let out = dir.path().join("site.toml");
    let o = convert("kea", &src, &out, &["--listen", "198.51.100.10:67"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    for needle in [
        "line 5: interfaces-config: Leaseline listens on [dhcp] listen",
        "line 16: class \"voip\": client classes do not map",
        "line 23: client-class \"voip\": pool client classes do not map",
        "line 27: option 42: Leaseline sends the subnet mask, routers",
        "line 33: reservation by circuit-id: Leaseline reserves by Ethernet address (hw-address) or client-id only",
        "line 33: reservation of 192.0.2.30: no hw-address or client-id",
        "line 44: loggers: Leaseline logs to stderr",
    ] {
        assert!(err.contains(needle), "`{needle}` missing:\n{err}");
    }
    let summary = check_config(&out);
    for needle in [
        "subnet 192.0.2.0/24: 51 pool addresses, 2 reservations, lease 4000 s, via relays [198.51.100.1]",
        "subnet 10.30.0.0/16: 256 pool addresses, 0 reservations, lease 600 s, via interface eth0",
    ] {
        assert!(summary.contains(needle), "`{needle}`:\n{summary}");
    }
    let toml = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "router = [\"192.0.2.1\"]",
        "dns_servers = [\"198.51.100.53\", \"198.51.100.54\"]",
        "domain_name = \"campus.example\"",
        "renew_time = 1000\nrebind_time = 2000\nlease_time = 4000",
        "ip = \"192.0.2.10\"\nmac = \"00:1b:a9:11:22:33\"\nhostname = \"printer\"",
        "ip = \"192.0.2.20\"\nclient_id = \"01:00:1b:a9:44:55:66\"",
    ] {
        assert!(toml.contains(needle), "`{needle}`:\n{toml}");
    }
    // Stdout instead of a file: the same text.
    let o = leaseline(&[
        "import",
        "config",
        "--from",
        "kea",
        src.to_str().unwrap(),
        "--listen",
        "198.51.100.10:67",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), toml);
}

#[test]
fn malformed_configs_are_refused_by_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let site = std::fs::read(data("import-config/site-dhcpd.conf")).unwrap();
    let kea = std::fs::read(data("import-config/site-kea-dhcp4.json")).unwrap();
    let mut junk = b"subnet 10.0.0.0 netmask 255.0.0.0 {\n range 10.0.0.5 10.0.0.9;\n".to_vec();
    junk.extend_from_slice(b"\x7fELF\x02\x01\x01\x00\x00\xff\n}\n");
    let mut kea_junk = kea[..200].to_vec();
    kea_junk.extend_from_slice(b"\n\xff\xfe\x00\x01 binary\n");
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "dhcpd",
            "truncated.conf",
            site[..site.len() - 60].to_vec(),
            ":60: truncated: the block `group {` has no closing `}` (the file ends on line 65)",
        ),
        (
            "dhcpd",
            "bad-address.conf",
            String::from_utf8(site.clone())
                .unwrap()
                .replace(
                    "range 192.0.2.100 192.0.2.150",
                    "range 192.0.2.100 192.0.2.350",
                )
                .into_bytes(),
            ":40: range: `192.0.2.350` is not an IPv4 address",
        ),
        ("dhcpd", "junk.conf", junk, ":3: binary data, not text"),
        (
            "kea",
            "truncated.json",
            kea[..kea.len() - 40].to_vec(),
            ":44: truncated: EOF while parsing a string",
        ),
        (
            "kea",
            "bad-address.json",
            String::from_utf8(kea.clone())
                .unwrap()
                .replace("\"192.0.2.10\"", "\"192.0.2.1O\"")
                .into_bytes(),
            ":31: \"ip-address\": \"192.0.2.1O\" is not an IPv4 address",
        ),
        ("kea", "junk.json", kea_junk, ":6: binary data, not text"),
    ];
    for (from, name, content, needle) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let out = dir.path().join(format!("{name}.toml"));
        let o = convert(from, &file, &out, &["--server-id", "192.0.2.1"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{}{needle}", file.display())),
            "{name}: `{needle}`:\n{err}"
        );
        assert!(err.contains("nothing written"), "{name}: {err}");
        assert!(!out.exists(), "{name}: output written");
        assert!(o.stdout.is_empty(), "{name}: {}", text(&o));
    }
}
