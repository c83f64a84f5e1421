#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! `leaseline import leases` against lease files the real servers wrote:
//! Kea 2.2 and ISC dhcpd 4.4 each serve perfdhcp clients in a network
//! namespace; their lease file is imported into a fresh store, `leaseline
//! serve` runs on it, and Bulk Leasequery for all must answer, for every
//! lease the file holds as active, the same binding (address, MAC,
//! client-id, expiry within a second). The file is read here on its own
//! terms (a few lines per format), not with the importer's parser.
//! Also: malformed files and `--dry-run` write nothing, and a store a
//! running server has open is refused.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use leaseline_test_support::{
    free_tcp_port, free_udp_port, require_root, require_tool, unix_now, wait_until, Netns,
    NetnsPair, Perfdhcp, ServerConfig, ServerProcess,
};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
const CLIENTS: u32 = 20;

/// What a lease file says of one active lease.
#[derive(Debug)]
struct Expected {
    mac: String,
    client_id: String,
    expiry: u32,
}

/// The import's config: the loopback server's pool (10.0.0.10-10.0.255.250)
/// and, for dhcpd's network, 192.0.2.0/24; the store at `db`; bulk on `tcp`.
fn config(dhcp: SocketAddr, tcp: SocketAddr, db: &Path) -> String {
    ServerConfig::loopback(dhcp, &[Ipv4Addr::LOCALHOST])
        .store(&format!("path = \"{}\"\n", db.display()))
        .subnet_toml(
            "[[subnet]]\nprefix = \"192.0.2.0/24\"\npools = [\"192.0.2.100-192.0.2.150\"]\n\
             relay_addresses = [\"192.0.2.2\"]\n",
        )
        .allow(&["127.0.0.0/8"])
        .bulk(tcp, "")
        .build()
}

fn import(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(["import", "leases"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run leaseline import")
}

fn text(o: &Output) -> String {
    leaseline_test_support::output_text(o)
}

/// Imports `file`, starts `leaseline serve` on the store, and checks
/// every expected lease through `leaseline bulk --all --json`.
fn import_then_compare(from: &str, file: &Path, expected: &BTreeMap<Ipv4Addr, Expected>) {
    assert!(
        expected.len() as u32 + 2 >= CLIENTS,
        "too few leases: {expected:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("imported.db");
    let dhcp: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let tcp: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let cfg_text = config(dhcp, tcp, &db);
    let cfg = dir.path().join("leaseline.toml");
    std::fs::write(
        &cfg,
        cfg_text.replace("@STATE_DIR@", &dir.path().display().to_string()),
    )
    .unwrap();

    let dry = import(&["--from", from, "--dry-run", file.to_str().unwrap()], &cfg);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(!db.exists(), "--dry-run created the store");
    let out = String::from_utf8_lossy(&dry.stdout).to_string();
    for ip in expected.keys() {
        assert!(
            out.contains(&format!("would import {ip} ACTIVE")),
            "{ip}: {out}"
        );
    }

    let o = import(&["--from", from, file.to_str().unwrap()], &cfg);
    assert!(o.status.success(), "{}", text(&o));
    let summary = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(summary.contains("in one transaction"), "{summary}");

    let mut server = ServerProcess::spawn(BIN, &cfg_text);
    // The server has the store open: a second import is refused.
    let again = import(&["--from", from, file.to_str().unwrap()], &cfg);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("stop the server first"),
        "{}",
        text(&again)
    );

    let bulk = Command::new(BIN)
        .args(["bulk", "--server", &tcp.to_string(), "--all", "--json"])
        .output()
        .unwrap();
    assert!(bulk.status.success(), "{}", text(&bulk));
    let records: BTreeMap<Ipv4Addr, serde_json::Value> = String::from_utf8(bulk.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON record per line");
            (v["ip"].as_str().unwrap().parse().unwrap(), v)
        })
        .collect();
    for (ip, e) in expected {
        let r = records
            .get(ip)
            .unwrap_or_else(|| panic!("{ip} not answered"));
        assert_eq!(r["state"], "ACTIVE", "{ip}: {r}");
        assert_eq!(r["mac"], e.mac.as_str(), "{ip}: {r}");
        assert_eq!(r["client_id"], e.client_id.as_str(), "{ip}: {r}");
        let expiry = r["expiry"].as_u64().expect("expiry") as i64;
        assert!(
            (expiry - i64::from(e.expiry)).abs() <= 1,
            "{ip}: {r} vs {e:?}"
        );
    }
    server.assert_running();
}

/// Kea's memfile, read as Kea's loader does: the last line of an address wins.
fn kea_active(csv: &str) -> BTreeMap<Ipv4Addr, Expected> {
    let now = unix_now();
    let mut last = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        last.insert(
            f[0].parse::<Ipv4Addr>().unwrap(),
            f.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
    }
    last.into_iter()
        .filter(|(_, f)| f[9] == "0" && f[3] != "0" && f[4].parse::<u32>().unwrap() > now)
        .map(|(ip, f)| {
            let e = Expected {
                mac: f[1].clone(),
                client_id: f[2].replace(':', ""),
                expiry: f[4].parse().unwrap(),
            };
            (ip, e)
        })
        .collect()
}

/// Converted and served by import_config.rs too.
const KEA_CONF: &str = include_str!("data/interop-kea-dhcp4.json");

/// A child killed and reaped when dropped.
struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stop(peer: Peer) {
    let mut peer = peer;
    // SAFETY: a plain signal to our own child.
    unsafe { libc::kill(peer.0.id() as i32, libc::SIGTERM) };
    let _ = peer.0.wait();
}

#[test]
fn kea_leases_are_answered_the_same_after_import() {
    require_root();
    let kea = require_tool("kea-dhcp4");
    require_tool("perfdhcp");
    let ns = Netns::new("imkea");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kea.json");
    std::fs::write(
        &conf,
        KEA_CONF.replace("@DIR@", &dir.path().display().to_string()),
    )
    .unwrap();
    let log = dir.path().join("kea.log");
    let port = 6767;
    let child = ns
        .command(kea)
        .args(["-p", &port.to_string(), "-c"])
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", dir.path())
        .env("KEA_LOCKFILE_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start kea-dhcp4");
    let kea = Peer(child);
    wait_until("kea-dhcp4 to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("DHCP4_STARTED")
            .then_some(())
    });
    let report = Perfdhcp::new("127.0.0.1")
        .netns(&ns)
        .remote_port(port)
        .rate(20)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(3.0)
        .exit_wait(Duration::from_secs(3))
        .run(Duration::from_secs(120));
    stop(kea);
    let csv = std::fs::read_to_string(dir.path().join("kea-leases4.csv")).unwrap();
    let expected = kea_active(&csv);
    assert!(
        !expected.is_empty(),
        "no leases; perfdhcp:\n{report}\n{csv}"
    );
    import_then_compare("kea-csv", &dir.path().join("kea-leases4.csv"), &expected);
}

/// lq_udp_dhcpd.rs's (with `allow leasequery;`), converted by import_config.rs.
const DHCPD_CONF: &str = include_str!("data/interop-dhcpd.conf");

/// dhcpd.leases(5) as a few lines of reading: the last record of an
/// address wins; `ends W YYYY/MM/DD HH:MM:SS` is UTC.
fn dhcpd_active(text: &str) -> BTreeMap<Ipv4Addr, Expected> {
    let mut last: BTreeMap<Ipv4Addr, (String, Expected)> = BTreeMap::new();
    let mut cur: Option<(Ipv4Addr, String, Expected)> = None;
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("lease ") {
            let ip = rest.trim_end_matches('{').trim().parse().unwrap();
            cur = Some((
                ip,
                String::new(),
                Expected {
                    mac: String::new(),
                    client_id: String::new(),
                    expiry: 0,
                },
            ));
        } else if l == "}" {
            if let Some((ip, state, e)) = cur.take() {
                last.insert(ip, (state, e));
            }
        } else if let Some((_, state, e)) = cur.as_mut() {
            let l = l.trim_end_matches(';');
            if let Some(v) = l.strip_prefix("binding state ") {
                *state = v.to_owned();
            } else if let Some(v) = l.strip_prefix("hardware ethernet ") {
                e.mac = v.to_lowercase();
            } else if let Some(v) = l.strip_prefix("ends ") {
                let out = Command::new("date")
                    .args(["-u", "-d", &v[2..].replace('/', "-"), "+%s"])
                    .output()
                    .unwrap();
                e.expiry = String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
            } else if let Some(v) = l.strip_prefix("uid ") {
                e.client_id = uid_hex(v);
            }
        }
    }
    let now = unix_now();
    last.into_iter()
        .filter(|(_, (s, e))| s == "active" && e.expiry > now)
        .map(|(ip, (_, e))| (ip, e))
        .collect()
}

/// `"\001\002..."` (octal escapes, `\"`, `\\`) or colon hex → hex.
fn uid_hex(v: &str) -> String {
    if !v.starts_with('"') {
        return v
            .split(':')
            .map(|o| format!("{:02x}", u8::from_str_radix(o, 16).unwrap()))
            .collect();
    }
    let b = v.trim_matches('"').as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap(), 8).unwrap(),
            );
            i += 4;
        } else if b[i] == b'\\' {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dhcpd_leases_are_answered_the_same_after_import() {
    require_root();
    let dhcpd = require_tool("dhcpd");
    require_tool("perfdhcp");
    let net = NetnsPair::new("imdhcpd");
    net.server
        .ip(&["addr", "add", "192.0.2.1/24", "dev", &net.server_if]);
    net.client
        .ip(&["addr", "add", "192.0.2.2/24", "dev", &net.client_if]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dhcpd.conf");
    let leases = dir.path().join("dhcpd.leases");
    let log = dir.path().join("dhcpd.log");
    std::fs::write(&conf, DHCPD_CONF).unwrap();
    std::fs::write(&leases, "").unwrap();
    let child = net
        .server
        .command(dhcpd)
        .args(["-4", "-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(dir.path().join("dhcpd.pid"))
        .arg(&net.server_if)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start dhcpd");
    let server = Peer(child);
    wait_until("dhcpd to start serving", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Server starting service.")
            .then_some(())
    });
    let report = Perfdhcp::new("192.0.2.1")
        .netns(&net.client)
        .local("192.0.2.2")
        .rate(20)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(3.0)
        .exit_wait(Duration::from_secs(3))
        .base_mac("02:00:0c:00:00:00")
        .run(Duration::from_secs(120));
    stop(server);
    let text = std::fs::read_to_string(&leases).unwrap();
    let expected = dhcpd_active(&text);
    assert!(
        !expected.is_empty(),
        "no leases; perfdhcp:\n{report}\n{text}"
    );
    import_then_compare("dhcpd", &leases, &expected);
}

/// A store after a good import, then malformed files: each error named by
/// its line, exit 1, the store's file unchanged.
#[test]
fn malformed_files_are_reported_by_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let cfg = dir.path().join("leaseline.toml");
    let cfg_text = config(
        "127.0.0.1:6767".parse().unwrap(),
        "127.0.0.1:6768".parse().unwrap(),
        &db,
    );
    std::fs::write(
        &cfg,
        cfg_text.replace("@STATE_DIR@", &dir.path().display().to_string()),
    )
    .unwrap();
    let far = unix_now() + 3600;
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        format!("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
                 10.0.0.10,02:00:00:00:00:01,01:02:00:00:00:00:01,3600,{far},1,0,0,,0,\n\
                 10.1.0.10,02:00:00:00:00:02,,3600,{far},1,0,0,,0,\n"),
    )
    .unwrap();
    let o = import(&["--from", "kea-csv", good.to_str().unwrap()], &cfg);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("imported: 1 bindings (1 ACTIVE)"), "{out}");
    assert!(out.contains("(not imported): 1: line 3 10.1.0.10"), "{out}");
    let stored = std::fs::read(&db).unwrap();

    let cases: [(&str, &str, Vec<u8>, &[&str]); 3] = [
        (
            "dhcpd",
            "truncated.leases",
            b"lease 10.0.0.11 {\n  binding state active;\n}\nlease 10.0.0.12 {\n  starts 1 2026/11/23 12:35:39;\n  ends 1 2026/11".to_vec(),
            &[":4: truncated: lease 10.0.0.12 has no closing }"],
        ),
        (
            "dhcpd",
            "junk.leases",
            b"lease 10.0.0.300 {\n  binding state active;\n}\n\x7fELF\x02\x01\x01\x00\x00\xff\n".to_vec(),
            &[":1: lease \"10.0.0.300\": not an IPv4 address", ":4: binary data, not text"],
        ),
        (
            "kea-csv",
            "bad.csv",
            b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n10.0.0.11,,,3600,1,1,0,0,,0,\n10.0.0.x,,,3600,1,1,0,0,,0,\n10.0.0.13,,,36".to_vec(),
            &[":3: address \"10.0.0.x\" is not an IPv4 address", ":4: 4 fields, the header has 11"],
        ),
    ];
    for (from, name, content, needles) in cases {
        let file: PathBuf = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        for dry in [false, true] {
            let mut args = vec!["--from", from, file.to_str().unwrap()];
            if dry {
                args.push("--dry-run");
            }
            let o = import(&args, &cfg);
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
            for n in needles {
                assert!(
                    err.contains(&format!("{}{n}", file.display())),
                    "{name}: {n}: {err}"
                );
            }
            assert!(err.contains("nothing imported"), "{err}");
            assert_eq!(
                std::fs::read(&db).unwrap(),
                stored,
                "{name}: the store changed"
            );
        }
    }
}
