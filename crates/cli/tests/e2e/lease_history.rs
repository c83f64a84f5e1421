#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test
//! The lease history (issue 20) against a running server, as an operator
//! asks it: relayed clients churn through a small pool (DORAs and
//! RELEASEs, recorded by the driver with the seconds they were sent and
//! answered), then
//!
//! 1. each address's history, in order, is exactly the holders and states
//!    the driver made, and for every event whose second is known exactly
//!    `lease4-history` `at` that second names the client that held it;
//! 2. `leaseline history` prints it as text (RFC 3339), JSON lines and CSV;
//! 3. after kill -9 and a restart, the history is the same.
//!
//! On the SQLite store, and on PostgreSQL with two instances on one
//! database (issue 17): half the clients go through each, and the history
//! asked of the first names what went through the second too.
//!
//! Retention (pruning by age and size) is tested on the store with a
//! controlled clock (crates/store/tests/sqlite.rs).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use leaseline_test_support::loopback_relay;
use leaseline_test_support::{
    free_tcp_port, free_udp_port, mac_string, pg_database, unix_now, wait_until, RelayClient,
    ServerConfig, ServerProcess, Subnet, TestClient,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_leaseline");
static RELAY: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
static RELAY_B: LazyLock<Ipv4Addr> = LazyLock::new(loopback_relay);
const CLIENTS: u32 = 40;
const STEPS: u32 = 320;
const MOST_HELD: usize = 15;

/// One change the driver made: the address, the client, the state it
/// left, and the seconds it was sent and known done.
#[derive(Debug, Clone)]
struct Event {
    ip: Ipv4Addr,
    mac: String,
    state: &'static str,
    sent: u32,
    done: u32,
}

fn control(url: &str, command: &str, arguments: Value) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(
            json!({"command": command, "arguments": arguments})
                .to_string()
                .as_bytes(),
        )
        .expect("control API reachable");
    let text = resp.body_mut().read_to_string().expect("answer");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Every entry of an address: (mac, state, start, end).
fn history(url: &str, ip: Ipv4Addr) -> Vec<(String, String, u64, Option<u64>)> {
    let mut args = json!({"ip-address": ip.to_string(), "limit": 7});
    let mut out = Vec::new();
    loop {
        let a = control(url, "lease4-history", args.clone());
        match a["result"].as_u64() {
            Some(3) => break,
            Some(0) => {}
            _ => panic!("lease4-history {ip}: {a}"),
        }
        for e in a["arguments"]["history"].as_array().expect("history") {
            assert_eq!(e["ip-address"], ip.to_string(), "{e}");
            out.push((
                e["hw-address"].as_str().expect("mac").to_owned(),
                e["state"].as_str().expect("state").to_owned(),
                e["start"].as_u64().expect("start"),
                e["end"].as_u64(),
            ));
        }
        match a["arguments"]["cursor"].as_str() {
            Some(c) => args["cursor"] = json!(c),
            None => break,
        }
    }
    out
}

/// Client `i` goes through `relays[i % relays.len()]`; the history is
/// asked of `url`.
fn churn(url: &str, relays: &mut [RelayClient]) -> Vec<Event> {
    let clients: Vec<TestClient> = (1..=CLIENTS).map(TestClient::new).collect();
    let mut held: BTreeMap<u32, (Ipv4Addr, Ipv4Addr)> = BTreeMap::new();
    let mut events = Vec::new();
    for step in 0..STEPS {
        let i = (step * 7 + step / CLIENTS) % CLIENTS;
        let c = &clients[i as usize];
        let mac = mac_string(&c.chaddr);
        let n = relays.len();
        let relay = &mut relays[i as usize % n];
        if let Some((ip, server_id)) = held.remove(&i) {
            let sent = unix_now();
            relay.release(c, ip, server_id).expect("send RELEASE");
            // No reply to a RELEASE: done once the history shows it.
            wait_until(
                "the release is in the history",
                Duration::from_secs(10),
                || {
                    history(url, ip)
                        .last()
                        .is_some_and(|(m, s, start, _)| {
                            *m == mac && s == "released" && *start >= u64::from(sent)
                        })
                        .then_some(())
                },
            );
            events.push(Event {
                ip,
                mac,
                state: "released",
                sent,
                done: unix_now(),
            });
        } else if held.len() < MOST_HELD {
            let sent = unix_now();
            let lease = relay.dora(c).expect("DORA");
            events.push(Event {
                ip: lease.ip,
                mac,
                state: "active",
                sent,
                done: unix_now(),
            });
            held.insert(i, (lease.ip, lease.server_id));
        }
    }
    events
}

fn cli(url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["history", "--server", url])
        .args(args)
        .output()
        .expect("run leaseline history");
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).expect("utf-8"),
    )
}

#[test]
fn history_names_who_held_each_address_and_survives_kill9() {
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let (server, relay) = serve(web, *RELAY, "");
    history_as_the_driver_made_it(web, server, vec![relay]);
}

#[test]
fn history_on_postgres_is_every_instances() {
    let db = pg_database();
    let store = format!("backend = \"postgres\"\nurl = \"{}\"\n", db.url);
    let web = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let (a, relay_a) = serve(web, *RELAY, &store);
    let web_b = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()));
    let (b, relay_b) = serve(web_b, *RELAY_B, &store);
    a.wait_for_log("of=2", Duration::from_secs(20));
    history_as_the_driver_made_it(web, a, vec![relay_a, relay_b]);
    drop(b);
}

/// A server answering relay `relay` (its own DHCP and relay ports) with
/// the control API on `web`, on `store` (`[store]` lines; "" for SQLite).
fn serve(web: SocketAddr, relay: Ipv4Addr, store: &str) -> (ServerProcess, RelayClient) {
    let dhcp = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
    let rport = free_udp_port();
    let cfg = ServerConfig::new(dhcp)
        .relay_port(rport)
        .subnet(Subnet::new(
            "10.0.0.0/24",
            "10.0.0.10-10.0.0.29",
            &[*RELAY, *RELAY_B],
        ))
        .store(store)
        .extra(&format!("\n[http]\nlisten = \"{web}\"\n"))
        .build();
    let server = ServerProcess::spawn(BIN, &cfg);
    let relay = RelayClient::bind_port(relay, rport, dhcp).expect("bind relay");
    (server, relay)
}

fn history_as_the_driver_made_it(
    web: SocketAddr,
    mut server: ServerProcess,
    mut relays: Vec<RelayClient>,
) {
    let url = format!("http://{web}");
    let events = churn(&url, &mut relays);
    assert!(events.len() > 120, "{} events", events.len());

    // 1. Each address's history is the driver's events on it, in order.
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_ip.entry(e.ip).or_default().push(e);
    }
    let reused = by_ip
        .values()
        .filter(|evs| evs.iter().any(|e| e.mac != evs[0].mac))
        .count();
    assert!(reused > 0, "some address went to another client");
    let mut before = BTreeMap::new();
    for (&ip, evs) in &by_ip {
        let h = history(&url, ip);
        let got: Vec<(&str, &str)> = h
            .iter()
            .map(|(m, s, ..)| (m.as_str(), s.as_str()))
            .collect();
        let want: Vec<(&str, &str)> = evs.iter().map(|e| (e.mac.as_str(), e.state)).collect();
        assert_eq!(got, want, "{ip}");
        for (entry, e) in h.iter().zip(evs) {
            assert!(
                (u64::from(e.sent)..=u64::from(e.done)).contains(&entry.2),
                "{ip}: {entry:?} started outside {e:?}"
            );
        }
        // Each entry ends where the next starts; the last is current.
        for w in h.windows(2) {
            assert_eq!(w[0].3, Some(w[1].2), "{ip}: {h:?}");
        }
        assert_eq!(h.last().expect("an entry").3, None);
        before.insert(ip, h);
    }

    // `at` a second known exactly: the last change on the address that
    // was done by then.
    let mut asked = 0;
    for (&ip, evs) in &by_ip {
        for (k, e) in evs.iter().enumerate() {
            if e.sent != e.done {
                continue;
            }
            let s = e.sent;
            let later = &evs[k + 1..];
            if later.iter().any(|f| f.sent <= s && f.done > s) {
                continue; // a later change may or may not be at s
            }
            let holder = later.iter().take_while(|f| f.done <= s).last().unwrap_or(e);
            let a = control(
                &url,
                "lease4-history",
                json!({"ip-address": ip.to_string(), "at": s}),
            );
            assert_eq!(a["result"], 0, "{a}");
            let entries = a["arguments"]["history"].as_array().expect("history");
            assert_eq!(entries.len(), 1, "{a}");
            assert_eq!(
                (
                    entries[0]["hw-address"].as_str(),
                    entries[0]["state"].as_str()
                ),
                (Some(holder.mac.as_str()), Some(holder.state)),
                "{ip} at {s}"
            );
            asked += 1;
        }
    }
    assert!(asked > 20, "only {asked} events had an exact second");
    // Before its first lease an address has no history.
    let first = events.iter().map(|e| e.sent).min().expect("events");
    let a = control(
        &url,
        "lease4-history",
        json!({"ip-address": events[0].ip.to_string(), "at": first - 1}),
    );
    assert_eq!(
        (a["result"].as_u64(), a["text"].as_str()),
        (Some(3), Some("no history"))
    );

    // By MAC: every address that client held, in order of start.
    let mac = &events[0].mac;
    let mine: Vec<&Event> = events.iter().filter(|e| &e.mac == mac).collect();
    let a = control(&url, "lease4-history", json!({"hw-address": mac}));
    let got: Vec<(String, String)> = a["arguments"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["ip-address"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = mine
        .iter()
        .map(|e| (e.ip.to_string(), e.state.to_owned()))
        .collect();
    assert_eq!(got, want, "{a}");

    // 2. The CLI: text, JSON lines, CSV, following the cursor.
    let (ip, h) = before
        .iter()
        .max_by_key(|(_, h)| h.len())
        .expect("an address");
    let ip = ip.to_string();
    let (code, text) = cli(&url, &["--ip", &ip, "--page", "2"]);
    assert_eq!(code, 0, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), h.len(), "{text}");
    for (line, (m, s, start, _)) in lines.iter().zip(h) {
        let t = leaseline_proto::text::format_time(*start as u32);
        assert!(line.starts_with(&t), "{line}");
        assert!(
            line.contains(&format!(" {} ", s.to_ascii_uppercase())),
            "{line}"
        );
        assert!(line.contains(&format!("mac={m}")), "{line}");
    }
    let (code, json_lines) = cli(&url, &["--ip", &ip, "--json"]);
    assert_eq!(code, 0);
    let starts: Vec<u64> = json_lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("a JSON line")["start"]
                .as_u64()
                .expect("start")
        })
        .collect();
    assert_eq!(starts, h.iter().map(|e| e.2).collect::<Vec<_>>());
    // `--from`: the CSV is the control API's answer for the same start,
    // row for row (which entries overlap a range is the store's rule,
    // tested there).
    let from = h[h.len() / 2].2;
    let (code, csv) = cli(&url, &["--ip", &ip, "--csv", "--from", &from.to_string()]);
    assert_eq!(code, 0);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("start,end,ip,state,mac,client_id,circuit_id,remote_id")
    );
    let api = control(
        &url,
        "lease4-history",
        json!({"ip-address": ip, "from": from, "limit": 1000}),
    );
    let want: Vec<(String, String, String)> = api["arguments"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["start"].as_u64().expect("start").to_string(),
                e["state"].as_str().expect("state").to_owned(),
                e["hw-address"].as_str().expect("mac").to_owned(),
            )
        })
        .collect();
    let got: Vec<(String, String, String)> = rows
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            (f[0].to_owned(), f[3].to_owned(), f[4].to_owned())
        })
        .collect();
    assert!(!got.is_empty(), "{csv}");
    assert_eq!(got, want, "{csv}");
    assert!(
        got.iter().any(|(start, ..)| *start == from.to_string()),
        "the entry starting at {from} is in: {csv}"
    );
    let (code, _) = cli(&url, &["--ip", "10.0.0.200"]);
    assert_eq!(code, 3, "no history");
    let at = leaseline_proto::text::format_time(h[0].2 as u32);
    let (code, one) = cli(&url, &["--ip", &ip, "--at", &at, "--csv"]);
    assert_eq!((code, one.lines().count()), (0, 2), "{one}");

    // 3. kill -9: what was answered is still there.
    server.kill9();
    server.restart();
    wait_until("the control API is back", Duration::from_secs(20), || {
        std::net::TcpStream::connect(web).ok()
    });
    for (&ip, h) in &before {
        assert_eq!(&history(&url, ip), h, "{ip} after kill -9");
    }
}
