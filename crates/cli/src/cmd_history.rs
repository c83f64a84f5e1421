//! `leaseline history`: the lease history (`lease4-history` on the control
//! API; docs/operations.md, "Lease history"), followed to its last page,
//! as text, JSON lines or CSV.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args};
use leaseline_proto::text::{format_hex, parse_hex, parse_ipv4, parse_mac, parse_time, TimeFormat};
use serde_json::{json, Map, Value};

use crate::cmd_ctl::{result, ServerArgs};

#[derive(Args)]
#[command(group(ArgGroup::new("key").required(true).args(["ip", "mac", "client_id", "remote_id"])))]
pub struct HistoryArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Who held this address.
    #[arg(long, value_name = "A")]
    ip: Option<String>,
    /// The addresses this hardware address held.
    #[arg(long, value_name = "M")]
    mac: Option<String>,
    /// The addresses this client-id held (hex).
    #[arg(long, value_name = "HEX")]
    client_id: Option<String>,
    /// The addresses leased through this relay remote-id (hex).
    #[arg(long, value_name = "HEX")]
    remote_id: Option<String>,
    /// With --ip: the entry that held it at this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T", conflicts_with_all = ["from", "to"])]
    at: Option<String>,
    /// Entries from this time on (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T")]
    from: Option<String>,
    /// Entries up to this time (inclusive).
    #[arg(long, value_name = "T")]
    to: Option<String>,
    /// Entries asked for per request (the command follows every page).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    page: u32,
    /// One JSON object per line (the control API's entries).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header line (times as Unix seconds).
    #[arg(long)]
    csv: bool,
    /// Text output: times as Unix seconds instead of RFC 3339.
    #[arg(long)]
    epoch: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text(TimeFormat),
    Json,
    Csv,
}

const CSV_HEADER: &str = "start,end,ip,state,mac,client_id,circuit_id,remote_id";

impl HistoryArgs {
    /// The arguments of the first request (`cursor` added per page).
    fn arguments(&self) -> anyhow::Result<Map<String, Value>> {
        let mut args = Map::new();
        if self.at.is_some() && self.ip.is_none() {
            bail!("--at: only with --ip");
        }
        if let Some(ip) = &self.ip {
            let ip = parse_ipv4(ip).map_err(|e| anyhow!("--ip: {e}"))?;
            args.insert("ip-address".into(), json!(ip.to_string()));
        } else if let Some(m) = &self.mac {
            let mac = parse_mac(m).map_err(|e| anyhow!("--mac: {e}"))?;
            args.insert("hw-address".into(), json!(format_hex(&mac)));
        } else if let Some(h) = &self.client_id {
            let id = parse_hex(h).map_err(|e| anyhow!("--client-id: {e}"))?;
            args.insert("client-id".into(), json!(format_hex(&id)));
        } else if let Some(h) = &self.remote_id {
            let id = parse_hex(h).map_err(|e| anyhow!("--remote-id: {e}"))?;
            args.insert("remote-id".into(), json!(format_hex(&id)));
        }
        for (flag, name, value) in [
            ("--at", "at", &self.at),
            ("--from", "from", &self.from),
            ("--to", "to", &self.to),
        ] {
            if let Some(v) = value {
                let t = parse_time(v).map_err(|e| anyhow!("{flag}: {e}"))?;
                args.insert(name.into(), json!(t));
            }
        }
        if let (Some(f), Some(t)) = (args.get("from"), args.get("to")) {
            if f.as_u64() > t.as_u64() {
                bail!("--to is before --from");
            }
        }
        if !(1..=10_000).contains(&self.page) {
            bail!("--page: 1 to 10000");
        }
        args.insert("limit".into(), json!(self.page));
        Ok(args)
    }

    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.csv {
            Format::Csv
        } else {
            Format::Text(TimeFormat::from_epoch_flag(self.epoch))
        }
    }
}

pub fn run(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let mut args = a.arguments()?;
    let format = a.format();
    let client = a.server.client()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == Format::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut printed = 0usize;
    loop {
        let answer = client.send(&json!({"command": "lease4-history", "arguments": args}))?;
        let code = result(&answer);
        if code != 0 {
            let text = answer.get("text").and_then(Value::as_str).unwrap_or("");
            if code == 3 && printed == 0 {
                out.flush()?;
                eprintln!("{text}");
                return Ok(ExitCode::from(3));
            }
            bail!("lease4-history: {text} (result {code})");
        }
        let page = answer.get("arguments").unwrap_or(&Value::Null);
        let entries = page
            .get("history")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("lease4-history: the answer has no history"))?;
        for e in entries {
            match write_entry(&mut out, e, format) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                r => r?,
            }
            printed += 1;
        }
        match page.get("cursor").and_then(Value::as_str) {
            Some(c) => {
                args.insert("cursor".into(), json!(c));
            }
            None => break,
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// A byte string of the answer (colon hex) as text prints octets (bare hex).
fn octets(e: &Value, name: &str) -> Option<String> {
    let v = e.get(name)?.as_str()?;
    Some(parse_hex(v).map_or_else(|_| v.to_owned(), |o| format_hex(&o)))
}

fn write_entry(out: &mut impl Write, e: &Value, format: Format) -> std::io::Result<()> {
    let s = |name: &str| e.get(name).and_then(Value::as_str).unwrap_or("");
    let t = |name: &str| {
        e.get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, e)?;
            out.write_all(b"\n")
        }
        Format::Csv => {
            let n = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
            let o = |name: &str| octets(e, name).unwrap_or_default();
            writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                n(t("start")),
                n(t("end")),
                s("ip-address"),
                s("state"),
                s("hw-address"),
                o("client-id"),
                o("circuit-id"),
                o("remote-id"),
            )
        }
        Format::Text(times) => {
            let mut line = format!(
                "{} {} {:<15} {:<11} mac={}",
                times.time_or_dash(t("start")),
                times.time_or_dash(t("end")),
                s("ip-address"),
                s("state").to_ascii_uppercase(),
                s("hw-address"),
            );
            for (k, name) in [
                ("client-id", "client-id"),
                ("circuit-id", "circuit-id"),
                ("remote-id", "remote-id"),
            ] {
                if let Some(v) = octets(e, name) {
                    line.push_str(&format!(" {k}={v}"));
                }
            }
            writeln!(out, "{line}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: HistoryArgs,
    }

    fn parse(argv: &[&str]) -> Result<HistoryArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("history").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_become_the_commands_arguments() {
        let a = parse(&["--ip", "10.0.0.5", "--at", "2026-11-23T10:00:00Z"]).expect("valid");
        assert_eq!(
            Value::Object(a.arguments().expect("valid")),
            json!({"ip-address": "10.0.0.5", "at": 1_795_428_000u32, "limit": 1000})
        );
        let a = parse(&["--mac", "02-00-00-00-00-07", "--from", "5", "--to", "9"]).expect("valid");
        assert_eq!(
            Value::Object(a.arguments().expect("valid")),
            json!({"hw-address": "020000000007", "from": 5, "to": 9, "limit": 1000})
        );
        let a = parse(&["--client-id", "01:02:03", "--page", "2"]).expect("valid");
        assert_eq!(a.arguments().expect("valid")["client-id"], "010203");
    }

    #[test]
    fn bad_flags_are_refused_before_asking() {
        assert!(parse(&[]).is_err(), "a key is required");
        assert!(parse(&["--ip", "10.0.0.5", "--mac", "02:00:00:00:00:01"]).is_err());
        assert!(parse(&["--ip", "10.0.0.5", "--at", "5", "--from", "1"]).is_err());
        assert!(parse(&["--ip", "10.0.0.5", "--json", "--csv"]).is_err());
        for (argv, says) in [
            (&["--ip", "10.0.0.300"][..], "--ip"),
            (&["--ip", "10.0.0.5", "--at", "yesterday"][..], "--at"),
            (
                &["--ip", "10.0.0.5", "--from", "9", "--to", "1"][..],
                "before --from",
            ),
            (&["--mac", "zz"][..], "--mac"),
            (
                &["--mac", "02:00:00:00:00:01", "--at", "5"][..],
                "only with --ip",
            ),
            (&["--ip", "10.0.0.5", "--page", "0"][..], "--page"),
        ] {
            let e = parse(argv)
                .expect("parses")
                .arguments()
                .expect_err("refused");
            assert!(e.to_string().contains(says), "{argv:?}: {e}");
        }
    }

    #[test]
    fn each_format_prints_an_entry() {
        let e = json!({"ip-address": "10.0.0.5", "hw-address": "02:00:00:00:00:07",
            "client-id": "01:02", "circuit-id": null, "remote-id": "72:07",
            "state": "active", "start": 1_795_428_000u32, "end": null});
        let print = |f: Format| {
            let mut v = Vec::new();
            write_entry(&mut v, &e, f).expect("write");
            String::from_utf8(v).expect("utf-8")
        };
        assert_eq!(
            print(Format::Text(TimeFormat::Rfc3339)),
            "2026-11-23T10:00:00Z - 10.0.0.5        ACTIVE      mac=02:00:00:00:00:07 client-id=0102 remote-id=7207\n"
        );
        assert!(print(Format::Text(TimeFormat::Epoch)).starts_with("1795428000 - 10.0.0.5"));
        assert_eq!(
            print(Format::Csv),
            "1795428000,,10.0.0.5,active,02:00:00:00:00:07,0102,,7207\n"
        );
        let line = print(Format::Json);
        assert_eq!(serde_json::from_str::<Value>(&line).expect("json"), e);
    }
}
