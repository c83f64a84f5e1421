//! `leaseline query`: one DHCPLEASEQUERY over UDP (RFC 4388, RFC 6148).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

use leaseline_proto::text::{format_prl, parse_hex, parse_ipv4, parse_mac, parse_prl, TimeFormat};
use leaseline_requestor::addr::{addr_port, server_addr};
use leaseline_requestor::prl;
use leaseline_requestor::query::{query, Outcome, QueryKey, QueryOptions, ReplyKind};
use serde_json::json;

// Exit statuses. 1 is any error (main prints it); 2 is left to clap, which
// exits 2 on a command-line usage error, so no answer shares it.
/// Exit status for DHCPLEASEACTIVE.
pub const EXIT_ACTIVE: u8 = 0;
/// Exit status for DHCPLEASEUNASSIGNED.
pub const EXIT_UNASSIGNED: u8 = 3;
/// Exit status for DHCPLEASEUNKNOWN.
pub const EXIT_UNKNOWN: u8 = 4;
/// Exit status when no answer came before --timeout.
pub const EXIT_NO_ANSWER: u8 = 5;

const AFTER_HELP: &str = "\
Exactly one of --ip, --mac, --client-id, --remote-id.

The query goes from a local UDP port (0.0.0.0:0 unless --bind) with giaddr set
to this host's address towards the server (the reply is sent to giaddr). It is
retransmitted after 1 s, 2 s, 4 s, ... until --timeout; the first reply with
the query's xid is printed: readable text, or one JSON object with --json.
Text shows the remaining times as durations (16m30s; 990s with --epoch); JSON
gives them as seconds.

Exit status:
  0  DHCPLEASEACTIVE      the address (or client) has an active lease
  3  DHCPLEASEUNASSIGNED  the server manages the address; it is not leased
  4  DHCPLEASEUNKNOWN     no active lease for that client, or not the
                          server's address
  5  no answer before --timeout
  1  error (bad value, socket error)
  2  command-line usage error

Servers that reply to a fixed port: ISC dhcpd sends leasequery replies to
giaddr port 67 (port 68 when giaddr is 127.0.0.1); use --bind ADDR:67
(or ADDR:68), which needs root. Leaseline replies to the query's source port
when the query comes from giaddr.

Examples:
  leaseline query --server 127.0.0.1:1067 --ip 10.0.0.10
  leaseline query --server 192.0.2.1 --mac 00:0c:29:aa:bb:cc --json
  leaseline query --server 192.0.2.1 --client-id 01:00:0c:29:aa:bb:cc
  leaseline query --server 192.0.2.1 --remote-id 0a0b0c --bind 192.0.2.5:67";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
#[command(group(clap::ArgGroup::new("key").required(true).multiple(false)
    .args(["ip", "mac", "client_id", "remote_id"])))]
pub struct QueryArgs {
    /// Server address, ADDR[:PORT] (port 67 by default).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub server: String,
    /// Query by IP address (ciaddr).
    #[arg(long, value_name = "A", value_parser = parse_ipv4)]
    pub ip: Option<Ipv4Addr>,
    /// Query by hardware address (02:42:ac:11:00:02, 2:42:ac:11:0:2,
    /// 02-42-ac-11-00-02 or 0242ac110002; with --htype).
    #[arg(long, value_name = "M")]
    pub mac: Option<String>,
    /// Query by client identifier (option 61), as hex (01:00:0c:... or 01000c...).
    #[arg(long, value_name = "HEX")]
    pub client_id: Option<String>,
    /// Query by relay agent remote-id (option 82 sub-option 2, RFC 6148), as hex.
    #[arg(long, value_name = "HEX")]
    pub remote_id: Option<String>,
    /// Hardware type for --mac [default: 1, Ethernet].
    #[arg(long, value_name = "N", conflicts_with_all = ["ip", "client_id", "remote_id"])]
    pub htype: Option<u8>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Text output: durations as whole seconds (990s) instead of 16m30s.
    #[arg(long)]
    pub epoch: bool,
    /// Give up after this many seconds without an answer.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub timeout: f64,
    /// Local address to send from and receive on, ADDR[:PORT] (default 0.0.0.0:0).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub bind: Option<String>,
    /// giaddr (where the server sends the reply); default: the --bind
    /// address, else this host's address on the route to the server.
    #[arg(long, value_name = "A", value_parser = parse_ipv4)]
    pub giaddr: Option<Ipv4Addr>,
    /// Parameter request list (option 55), e.g. 51,82,91; `none` sends no option 55.
    #[arg(long, value_name = "CODES", default_value = default_prl())]
    pub prl: String,
}

/// [`prl::UDP`] as `--prl` reads it, for clap's default.
fn default_prl() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format_prl(prl::UDP));
    &TEXT
}

impl QueryArgs {
    pub(crate) fn key(&self) -> anyhow::Result<QueryKey> {
        let key = if let Some(ip) = self.ip {
            QueryKey::Ip(ip)
        } else if let Some(m) = &self.mac {
            QueryKey::Mac {
                htype: self.htype.unwrap_or(1),
                chaddr: parse_mac(m).map_err(|e| anyhow::anyhow!("--mac: {e}"))?,
            }
        } else if let Some(c) = &self.client_id {
            QueryKey::ClientId(parse_hex(c).map_err(|e| anyhow::anyhow!("--client-id: {e}"))?)
        } else if let Some(r) = &self.remote_id {
            QueryKey::RemoteId(parse_hex(r).map_err(|e| anyhow::anyhow!("--remote-id: {e}"))?)
        } else {
            anyhow::bail!("one of --ip, --mac, --client-id, --remote-id is required");
        };
        key.validate()?;
        Ok(key)
    }
}

pub fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let key = args.key()?;
    let server = server_addr(&args.server).map_err(|e| anyhow::anyhow!("--server: {e}"))?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 3600.0) {
        anyhow::bail!("--timeout: give seconds between 0 and 3600");
    }
    let mut opts = QueryOptions::new(server);
    opts.timeout = Duration::from_secs_f64(args.timeout);
    opts.bind = args
        .bind
        .as_deref()
        .map(|b| addr_port(b, 0))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--bind: {e}"))?;
    opts.giaddr = args.giaddr;
    opts.prl = parse_prl(&args.prl).map_err(|e| anyhow::anyhow!("--prl: {e}"))?;

    let (outcome, ep) = query(&opts, &key)?;
    tracing::debug!(local = %ep.local, giaddr = %ep.giaddr, xid = ep.xid, event = "query_done", "query done");
    match outcome {
        Outcome::Answered {
            answer,
            from,
            attempts,
            elapsed,
        } => {
            if args.json {
                let mut v = serde_json::to_value(&answer)?;
                v["server"] = json!(from.to_string());
                v["attempts"] = json!(attempts);
                v["rtt_ms"] = json!((elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0);
                println!("{v}");
            } else {
                println!(
                    "{}",
                    answer.to_text(TimeFormat::from_epoch_flag(args.epoch))
                );
            }
            Ok(ExitCode::from(match answer.kind {
                ReplyKind::Active => EXIT_ACTIVE,
                ReplyKind::Unassigned => EXIT_UNASSIGNED,
                ReplyKind::Unknown => EXIT_UNKNOWN,
            }))
        }
        Outcome::NoAnswer { attempts, rejected } => {
            if args.json {
                println!(
                    "{}",
                    json!({
                        "type": null,
                        "error": "no answer",
                        "server": server.to_string(),
                        "attempts": attempts,
                        "xid": ep.xid,
                        "giaddr": ep.giaddr.to_string(),
                        "rejected": rejected,
                    })
                );
            }
            eprintln!(
                "leaseline query: no answer from {server} within {} s ({attempts} transmissions; xid {:#010x}, giaddr {}, local {})",
                args.timeout, ep.xid, ep.giaddr, ep.local
            );
            for r in &rejected {
                eprintln!("leaseline query: ignored reply {r}");
            }
            Ok(ExitCode::from(EXIT_NO_ANSWER))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        q: QueryArgs,
    }

    fn parse(args: &[&str]) -> Result<QueryArgs, clap::Error> {
        Wrap::try_parse_from(std::iter::once("query").chain(args.iter().copied())).map(|w| w.q)
    }

    #[test]
    fn default_prl_is_the_library_default() {
        let a = parse(&["--server", "127.0.0.1", "--ip", "10.0.0.1"]).unwrap();
        assert_eq!(parse_prl(&a.prl).unwrap(), prl::UDP.to_vec());
        assert_eq!(a.key().unwrap(), QueryKey::Ip(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn exactly_one_key() {
        assert!(parse(&["--server", "127.0.0.1"]).is_err());
        assert!(parse(&[
            "--server",
            "127.0.0.1",
            "--ip",
            "10.0.0.1",
            "--mac",
            "00:01:02:03:04:05"
        ])
        .is_err());
        assert!(parse(&["--server", "127.0.0.1", "--htype", "6", "--ip", "10.0.0.1"]).is_err());
        let a = parse(&[
            "--server",
            "x",
            "--mac",
            "00:01:02:03:04:05",
            "--htype",
            "6",
        ])
        .unwrap();
        assert_eq!(
            a.key().unwrap(),
            QueryKey::Mac {
                htype: 6,
                chaddr: vec![0, 1, 2, 3, 4, 5]
            }
        );
        let a = parse(&["--server", "x", "--remote-id", "0a:0b"]).unwrap();
        assert_eq!(a.key().unwrap(), QueryKey::RemoteId(vec![10, 11]));
        let a = parse(&["--server", "x", "--client-id", "zz"]).unwrap();
        assert!(a.key().is_err());
    }

    #[test]
    fn exit_statuses_are_distinct_and_avoid_clap_usage() {
        let codes = [
            EXIT_ACTIVE,
            1,
            2,
            EXIT_UNASSIGNED,
            EXIT_UNKNOWN,
            EXIT_NO_ANSWER,
        ];
        let set: std::collections::HashSet<u8> = codes.iter().copied().collect();
        assert_eq!(set.len(), codes.len());
        assert!(AFTER_HELP.contains(&format!("  {EXIT_UNASSIGNED}  DHCPLEASEUNASSIGNED")));
        assert!(AFTER_HELP.contains(&format!("  {EXIT_UNKNOWN}  DHCPLEASEUNKNOWN")));
        assert!(AFTER_HELP.contains(&format!("  {EXIT_NO_ANSWER}  no answer")));
    }
}
