//! Helpers shared by the UDP leasequery tests (`lq_udp_*.rs`): a config
//! with leasequery enabled, DHCP exchanges through a relay client (with
//! option 82), and running `leaseline query` as a child process.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use leaseline_test_support::{unix_now, wait_until, Lease, RelayClient, ServerConfig, TestClient};
use leaseline_wire::{DhcpOption, Message, MessageType, RelayAgentInfo, SubOption};

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseline");

/// Exit statuses documented in `leaseline query --help`.
pub const EXIT_ACTIVE: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNASSIGNED: i32 = 3;
pub const EXIT_UNKNOWN: i32 = 4;
pub const EXIT_NO_ANSWER: i32 = 5;

/// One `[[subnet]]`.
pub struct Subnet<'a> {
    pub prefix: &'a str,
    pub pool: &'a str,
    pub relays: &'a [Ipv4Addr],
}

/// A server config: DHCP on `listen`, replies to relays on `relay_port`
/// (so tests need not bind port 67), the given subnets (lease time 3600 s),
/// then `leasequery` verbatim (e.g. [`LQ_LOOPBACK`]).
pub fn config(
    listen: SocketAddr,
    relay_port: u16,
    subnets: &[Subnet<'_>],
    leasequery: &str,
) -> String {
    let mut config = ServerConfig::new(listen)
        .relay_port(relay_port)
        .holds()
        .history(3600, 100_000);
    for sn in subnets {
        config = config.subnet(
            leaseline_test_support::Subnet::new(sn.prefix, sn.pool, sn.relays)
                .lab_options(&[Ipv4Addr::new(10, 0, 0, 2)]),
        );
    }
    config.extra(leasequery).build()
}

/// UDP leasequery on for requestors on loopback, as in examples/loopback.toml.
pub const LQ_LOOPBACK: &str = r#"[leasequery]
allow = ["127.0.0.0/8"]

[leasequery.udp]
enabled = true
rate = 1000
burst = 2000
"#;

/// Option 82 with a circuit-id and a remote-id.
pub fn rai(circuit: &[u8], remote: &[u8]) -> RelayAgentInfo {
    RelayAgentInfo {
        sub_options: vec![
            SubOption {
                code: RelayAgentInfo::CIRCUIT_ID,
                data: circuit.to_vec(),
            },
            SubOption {
                code: RelayAgentInfo::REMOTE_ID,
                data: remote.to_vec(),
            },
        ],
    }
}

/// DISCOVER, OFFER, REQUEST, ACK through `relay`, with option 82 added by
/// the relay when `rai` is given. Panics with the step that failed.
pub fn dora(relay: &mut RelayClient, client: &TestClient, rai: Option<&RelayAgentInfo>) -> Lease {
    dora_with(relay, client, rai, &[])
}

/// As [`dora`], the client also sending `extra` options (e.g. 12, 60)
/// after its PRL.
pub fn dora_with(
    relay: &mut RelayClient,
    client: &TestClient,
    rai: Option<&RelayAgentInfo>,
    extra: &[DhcpOption],
) -> Lease {
    let mut options = vec![DhcpOption::ParameterRequestList(vec![1, 3, 6, 51, 54])];
    options.extend(extra.iter().cloned());
    relay
        .dora_with(client, &options, rai)
        .unwrap_or_else(|e| panic!("DORA of {:02x?}: {e}", client.chaddr))
}

/// A relayed RENEWING REQUEST (ciaddr = `ip`); returns the ACK.
pub fn renew(
    relay: &mut RelayClient,
    client: &TestClient,
    ip: Ipv4Addr,
    rai: Option<&RelayAgentInfo>,
) -> Message {
    let mut r = relay.request_template(client, MessageType::Request);
    r.ciaddr = ip;
    r.options
        .push(DhcpOption::ParameterRequestList(vec![1, 3, 6, 51, 54]));
    if let Some(x) = rai {
        r.options.push(DhcpOption::RelayAgentInfo(x.clone()));
    }
    let ack = relay
        .exchange(&r, 3)
        .unwrap_or_else(|| panic!("no reply to renewing REQUEST for {ip}"));
    assert_eq!(ack.message_type(), Some(MessageType::Ack), "{ack:?}");
    assert_eq!(ack.yiaddr, ip);
    ack
}

pub fn server_id(m: &Message) -> Ipv4Addr {
    m.options
        .iter()
        .find_map(|o| match o {
            DhcpOption::ServerId(a) => Some(*a),
            _ => None,
        })
        .expect("server identifier (54)")
}

pub fn lease_time(m: &Message) -> Option<u32> {
    m.options.iter().find_map(|o| match o {
        DhcpOption::LeaseTime(t) => Some(*t),
        _ => None,
    })
}

/// Waits (polling the clock, with a deadline) until the Unix second is past
/// `t`, so that the next transaction's CLTT is later than one made at `t`.
pub fn wait_past_second(t: u32) {
    wait_until("the clock to pass a second", Duration::from_secs(5), || {
        (unix_now() > t).then_some(())
    });
}

/// Lower-case hex without separators.
pub fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `aa:bb:..`.
pub fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The result of one `leaseline query` run.
#[derive(Debug)]
pub struct QueryRun {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl QueryRun {
    /// stdout as one JSON object (panics unless it is exactly one).
    pub fn json(&self) -> serde_json::Value {
        let mut it =
            serde_json::Deserializer::from_str(&self.stdout).into_iter::<serde_json::Value>();
        let v = it
            .next()
            .unwrap_or_else(|| panic!("no JSON on stdout: {self:?}"))
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"));
        assert!(it.next().is_none(), "more than one JSON value: {self:?}");
        assert!(v.is_object(), "{self:?}");
        v
    }

    /// Asserts the exit status, with everything in the message.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit status of `leaseline query {}`:\n{self:#?}",
            self.args.join(" ")
        );
        self
    }
}

/// Runs `cmd` (a `leaseline query ...` command) to completion.
pub fn run_query_command(mut cmd: Command, args: Vec<String>) -> QueryRun {
    let t0 = Instant::now();
    let out: Output = cmd
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run leaseline query");
    QueryRun {
        args,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t0.elapsed(),
    }
}

/// `leaseline query --server SERVER ARGS...`.
pub fn query(server: SocketAddr, args: &[&str]) -> QueryRun {
    let mut all: Vec<String> = vec!["--server".into(), server.to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let mut cmd = Command::new(BIN);
    cmd.arg("query").args(&all);
    run_query_command(cmd, all)
}

/// As [`query`] with `--json`, expecting exit status `code`; the object.
pub fn query_json(server: SocketAddr, args: &[&str], code: i32) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let r = query(server, &a);
    r.expect_code(code);
    r.json()
}

/// The JSON array `associated_ips` as addresses.
pub fn associated(v: &serde_json::Value) -> Vec<Ipv4Addr> {
    v["associated_ips"]
        .as_array()
        .unwrap_or_else(|| panic!("associated_ips missing: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string").parse().expect("address"))
        .collect()
}
