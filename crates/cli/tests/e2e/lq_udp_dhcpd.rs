#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! Interop: `leaseline query` against ISC dhcpd 4.4 (`allow leasequery;`).
//!
//! Two namespaces joined by a veth pair: dhcpd serves 192.0.2.0/24 on the
//! server side; on the client side perfdhcp, as a relay at 192.0.2.2, makes
//! leases for distinct clients (perfdhcp sends client-id 01 + MAC). Then
//! `leaseline query`, in the client namespace, asks dhcpd by IP, MAC and
//! client-id about every lease in dhcpd's lease file, and about a free pool
//! address and strangers; the answers must agree with the file.
//!
//! dhcpd sends leasequery replies to giaddr port 67 (port 68 when giaddr is
//! 127.0.0.1), so the requestor runs with `--bind 192.0.2.3:67`.

use crate::lq_udp_common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use leaseline_test_support::{
    require_root, require_tool, unix_now, wait_until, Netns, NetnsPair, Perfdhcp,
};
use lq_udp_common::*;

const SERVER: &str = "192.0.2.1";
const RELAY: &str = "192.0.2.2";
const REQUESTOR: &str = "192.0.2.3";
const CLIENTS: u32 = 20;

/// The same file `import_config.rs` converts and serves with Leaseline.
const DHCPD_CONF: &str = include_str!("data/interop-dhcpd.conf");

/// One lease as dhcpd.leases(5) has it (the last entry for an address wins).
#[derive(Debug, Clone, Default)]
struct FileLease {
    ip: Option<Ipv4Addr>,
    state: String,
    starts: u32,
    ends: u32,
    cltt: u32,
    mac: Option<String>,
    uid: Option<Vec<u8>>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `1 2026/11/23 12:35:39` (UTC) → Unix seconds.
fn lease_time(s: &str) -> u32 {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (date, time) = (parts[1], parts[2]);
    let d: Vec<i64> = date.split('/').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    (days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as u32
}

/// `"\001\002\000abc"` → bytes (octal escapes, `\"`, `\\`).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.trim().trim_matches('"').as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn parse_leases(text: &str) -> BTreeMap<Ipv4Addr, FileLease> {
    let mut out = BTreeMap::new();
    let mut cur: Option<FileLease> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("lease ") {
            let ip = rest.trim_end_matches('{').trim().parse().ok();
            cur = Some(FileLease {
                ip,
                ..FileLease::default()
            });
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if l == "}" {
            if let Some(ip) = c.ip {
                out.insert(ip, c.clone());
            }
            cur = None;
            continue;
        }
        let l = l.trim_end_matches(';');
        if let Some(v) = l.strip_prefix("starts ") {
            c.starts = lease_time(v);
        } else if let Some(v) = l.strip_prefix("ends ") {
            c.ends = if v == "never" {
                u32::MAX
            } else {
                lease_time(v)
            };
        } else if let Some(v) = l.strip_prefix("cltt ") {
            c.cltt = lease_time(v);
        } else if let Some(v) = l.strip_prefix("binding state ") {
            c.state = v.to_string();
        } else if let Some(v) = l.strip_prefix("hardware ethernet ") {
            c.mac = Some(v.to_lowercase());
        } else if let Some(v) = l.strip_prefix("uid ") {
            c.uid = Some(unescape(v));
        }
    }
    out
}

struct Dhcpd {
    child: Child,
    log: std::path::PathBuf,
}

impl Dhcpd {
    fn start(ns: &Netns, iface: &str, dir: &Path) -> Dhcpd {
        let dhcpd = require_tool("dhcpd");
        let conf = dir.join("dhcpd.conf");
        let leases = dir.join("dhcpd.leases");
        let log = dir.join("dhcpd.log");
        std::fs::write(&conf, DHCPD_CONF).unwrap();
        std::fs::write(&leases, "").unwrap();
        let child = ns
            .command(dhcpd)
            .args(["-4", "-f", "-d", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(dir.join("dhcpd.pid"))
            .arg(iface)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("dhcpd.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start dhcpd");
        let mut d = Dhcpd { child, log };
        wait_until("dhcpd to start serving", Duration::from_secs(20), || {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("dhcpd exited ({st}):\n{}", d.log_text());
            }
            d.log_text()
                .contains("Server starting service.")
                .then_some(())
        });
        d
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dhcpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dhcpd log ---\n{}", self.log_text());
        }
    }
}

#[test]
fn leaseline_query_agrees_with_dhcpd_lease_file() {
    require_root();
    require_tool("ip");
    require_tool("perfdhcp");
    let net = NetnsPair::new("lqdhcpd");
    net.server.ip(&[
        "addr",
        "add",
        &format!("{SERVER}/24"),
        "dev",
        &net.server_if,
    ]);
    net.client
        .ip(&["addr", "add", &format!("{RELAY}/24"), "dev", &net.client_if]);
    net.client.ip(&[
        "addr",
        "add",
        &format!("{REQUESTOR}/24"),
        "dev",
        &net.client_if,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let dhcpd = Dhcpd::start(&net.server, &net.server_if, dir.path());

    // Leases for CLIENTS distinct clients through a relay at 192.0.2.2.
    let report = Perfdhcp::new(SERVER)
        .netns(&net.client)
        .local(RELAY)
        .rate(20)
        .clients(CLIENTS)
        .num_requests(CLIENTS)
        .drop_time(3.0)
        .exit_wait(Duration::from_secs(3))
        .base_mac("02:00:0c:00:00:00")
        .run(Duration::from_secs(120));
    let leases_path = dir.path().join("dhcpd.leases");
    let leases = wait_until("dhcpd to write its leases", Duration::from_secs(10), || {
        let all = parse_leases(&std::fs::read_to_string(&leases_path).unwrap_or_default());
        let active: BTreeMap<_, _> = all
            .into_iter()
            .filter(|(_, l)| l.state == "active")
            .collect();
        (active.len() as u32 + 2 >= CLIENTS).then_some(active)
    });
    assert!(!leases.is_empty(), "no leases; perfdhcp:\n{report}");
    let server = format!("{SERVER}:67");
    let q = |args: &[&str]| {
        let mut all: Vec<String> = [
            "--server",
            &server,
            "--bind",
            &format!("{REQUESTOR}:67"),
            "--json",
            "--timeout",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        let mut cmd = net.client.command(BIN);
        cmd.arg("query").args(&all);
        run_query_command(cmd, all)
    };

    for (ip, l) in &leases {
        let now = unix_now();
        let mac_s = l.mac.clone().expect("hardware ethernet");
        let uid = l.uid.clone().expect("uid (perfdhcp sends a client-id)");
        // By IP.
        let r = q(&["--ip", &ip.to_string()]);
        r.expect_code(EXIT_ACTIVE);
        let v = r.json();
        assert_eq!(v["type"], "DHCPLEASEACTIVE", "{v}");
        assert_eq!(v["ip"], ip.to_string().as_str(), "{v}");
        assert_eq!(v["mac"], mac_s.as_str(), "{ip}: {v}");
        assert_eq!(v["client_id"], hexs(&uid).as_str(), "{ip}: {v}");
        assert_eq!(v["server_id"], SERVER, "{v}");
        assert_eq!(v["giaddr"], REQUESTOR, "{v}");
        let left = v["lease_time_remaining"].as_i64().expect("option 51");
        let expect_left = i64::from(l.ends) - i64::from(now);
        assert!(
            (left - expect_left).abs() <= 2,
            "{ip}: 51 = {left}, lease file says {expect_left}: {v}"
        );
        let age = v["cltt_age"].as_i64().expect("option 91");
        let expect_age = i64::from(now) - i64::from(l.cltt);
        assert!(
            (age - expect_age).abs() <= 2,
            "{ip}: 91 = {age}, lease file says {expect_age}: {v}"
        );
        // By MAC and by client-id: the same lease.
        for args in [["--mac", mac_s.as_str()], ["--client-id", &hexs(&uid)]] {
            let r = q(&args);
            r.expect_code(EXIT_ACTIVE);
            let v = r.json();
            assert_eq!(v["ip"], ip.to_string().as_str(), "{args:?}: {v}");
            assert_eq!(v["mac"], mac_s.as_str(), "{args:?}: {v}");
        }
    }

    // A pool address nobody has: UNASSIGNED. Outside the pool: UNKNOWN.
    let free = (100..=150u8)
        .rev()
        .map(|n| Ipv4Addr::new(192, 0, 2, n))
        .find(|a| !leases.contains_key(a))
        .expect("a free pool address");
    let r = q(&["--ip", &free.to_string()]);
    r.expect_code(EXIT_UNASSIGNED);
    assert_eq!(r.json()["ip"], free.to_string().as_str());
    let r = q(&["--ip", "198.51.100.7"]);
    r.expect_code(EXIT_UNKNOWN);
    assert_eq!(r.json()["type"], "DHCPLEASEUNKNOWN");
    q(&["--mac", "02:99:99:00:00:01"]).expect_code(EXIT_UNKNOWN);
    q(&["--client-id", "01:02:99:99:00:00:01"]).expect_code(EXIT_UNKNOWN);

    // Readable output of one answer.
    let (ip, l) = leases.iter().next().unwrap();
    let mut cmd = net.client.command(BIN);
    cmd.args([
        "query",
        "--server",
        SERVER,
        "--bind",
        &format!("{REQUESTOR}:67"),
        "--ip",
        &ip.to_string(),
    ]);
    let r = run_query_command(cmd, vec![]);
    r.expect_code(EXIT_ACTIVE);
    assert!(r.stdout.starts_with("DHCPLEASEACTIVE"), "{r:?}");
    assert!(r.stdout.contains(l.mac.as_deref().unwrap()), "{r:?}");

    // Without --bind the reply goes to giaddr port 67, where nobody listens:
    // no answer, told apart by the exit status.
    let mut cmd = net.client.command(BIN);
    cmd.args([
        "query",
        "--server",
        SERVER,
        "--ip",
        &ip.to_string(),
        "--timeout",
        "1.5",
    ]);
    let r = run_query_command(cmd, vec![]);
    r.expect_code(EXIT_NO_ANSWER);

    let log = dhcpd.log_text();
    assert!(log.contains("DHCPLEASEACTIVE to 192.0.2.3"), "{log}");
    assert!(log.contains("DHCPLEASEUNASSIGNED to 192.0.2.3"), "{log}");
    assert!(log.contains("DHCPLEASEUNKNOWN to 192.0.2.3"), "{log}");
}

#[test]
fn lease_file_parsing() {
    let text = "lease 192.0.2.101 {\n  starts 1 2026/11/23 12:25:39;\n  ends 1 2026/11/23 12:35:39;\n  cltt 1 2026/11/23 12:25:39;\n  binding state active;\n  hardware ethernet 02:00:00:00:00:01;\n  uid \"\\001\\002\\000\\000\\000\\000\\001\";\n}\nlease 192.0.2.101 {\n  binding state free;\n}\n";
    let l = parse_leases(text);
    assert_eq!(l[&Ipv4Addr::new(192, 0, 2, 101)].state, "free");
    let l = parse_leases(&text[..text.find("lease 192.0.2.101 {\n  binding").unwrap()]);
    let x = &l[&Ipv4Addr::new(192, 0, 2, 101)];
    assert_eq!(x.uid.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
    assert_eq!(x.ends - x.starts, 600);
    assert_eq!(lease_time("4 1970/01/01 00:00:10"), 10);
    assert_eq!(lease_time("1 2026/11/23 12:25:39"), 1_795_436_739);
    assert_eq!(unescape("\"a\\\"b\\\\\""), b"a\"b\\".to_vec());
}
